"""Requests to URLs that came through the API (clinicians' webhooks, EHR rest-hooks): SSRF guard.

Such a URL must be `https` (plain `http` only with `OUTBOUND_ALLOW_HTTP`) and must not reach
loopback, private, link-local (cloud metadata), multicast, reserved or unspecified addresses,
unless they fall in `OUTBOUND_ALLOWED_NETWORKS`. The check is made when the URL is registered
and again for every connection, and the connection goes to the very address that was checked
(`GuardedTransport`), so a name that resolves to a public address at registration and to
169.254.169.254 a minute later (DNS rebinding) is refused. Operator settings
(`ONCALL_WEBHOOK_URL`, SMTP) are trusted as they are and never pass here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UnsafeUrl(ValueError):
    """The URL may not be called; the message says why (naming no address beyond the URL's)."""


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _forbidden(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address inside an IPv6 one reaches that IPv4 host: judge it by that.
        if address.ipv4_mapped is not None:
            return _forbidden(address.ipv4_mapped)
        if address.sixtofour is not None:
            return _forbidden(address.sixtofour)
        if address in _NAT64:
            return _forbidden(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    for what, hit in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    ):
        if hit:
            return what
    return None


class OutboundPolicy:
    def __init__(
        self,
        *,
        allow_http: bool = False,
        allowed_networks: Iterable[str] = (),
        resolver: Resolver = system_resolver,
    ) -> None:
        self.allow_http = allow_http
        self.allowed = [ipaddress.ip_network(n.strip(), strict=False) for n in allowed_networks]
        self._resolve = resolver

    @classmethod
    def from_settings(cls, settings: object) -> OutboundPolicy:
        networks = getattr(settings, "outbound_allowed_networks", "") or ""
        return cls(
            allow_http=bool(getattr(settings, "outbound_allow_http", False)),
            allowed_networks=[n for n in networks.split(",") if n.strip()],
        )

    def check_address(self, address: str) -> None:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if any(ip in network for network in self.allowed):
            return
        reason = _forbidden(ip)
        if reason is not None:
            raise UnsafeUrl(f"the URL's host is a {reason} address")

    def check_form(self, url: str) -> httpx.URL:
        """Scheme and host, without resolving: https (http if allowed), an absolute URL."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            raise UnsafeUrl("not an absolute URL") from None
        allowed = ("https", "http") if self.allow_http else ("https",)
        if parsed.scheme not in allowed or not parsed.host:
            raise UnsafeUrl(f"must be an absolute {' or '.join(allowed)} URL")
        if parsed.userinfo:
            raise UnsafeUrl("must not carry a user name or password")
        return parsed

    async def check(self, url: str) -> None:
        """At registration: the form, and every address the host resolves to now. A host that
        does not resolve yet is let through; the connection is checked again when made."""
        parsed = self.check_form(url)
        try:
            await self.addresses(parsed.host, parsed.port or _default_port(parsed))
        except OSError:
            return

    async def addresses(self, host: str, port: int) -> list[str]:
        """The host's addresses, every one of them allowed (else UnsafeUrl); OSError when the
        host does not resolve."""
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
            found = [host]
        except ValueError:
            found = await self._resolve(host, port)
        if not found:
            raise OSError(f"{host} does not resolve")
        for address in found:
            self.check_address(address)
        return found


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


class GuardedTransport(httpx.AsyncBaseTransport):
    """Connects only to an address the policy allows, the one it checked, with TLS still
    verified against the URL's host name (SNI and certificate)."""

    def __init__(self, policy: OutboundPolicy, inner: httpx.AsyncBaseTransport | None = None):
        self._policy = policy
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        try:
            self._policy.check_form(str(url))
            addresses = await self._policy.addresses(url.host, url.port or _default_port(url))
        except (UnsafeUrl, OSError) as exc:
            raise httpx.ConnectError(f"refused: {exc}", request=request) from exc
        request.url = url.copy_with(host=addresses[0])
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": url.host}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def require_safe_url(settings: object, url: str, *, field: str) -> None:
    """422 naming `field` when `url` may not be called (at registration)."""
    from shared.errors import Unprocessable

    try:
        await OutboundPolicy.from_settings(settings).check(url)
    except UnsafeUrl as exc:
        raise Unprocessable(
            f"{field} is refused: {exc}", problems=[{"field": field, "problem": str(exc)}]
        ) from None
