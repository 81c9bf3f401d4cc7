"""Requests to URLs that came through the API (clinicians' webhooks, EHR rest-hooks): SSRF guard.

Such a URL must be `https` (plain `http` only with `OUTBOUND_ALLOW_HTTP`) and must not reach
loopback, private, link-local (cloud metadata), multicast, reserved or unspecified addresses,
unless they fall in `OUTBOUND_ALLOWED_NETWORKS`. The check is made when the URL is registered
and again for every request, and the connection goes to the very address that was checked
(`GuardedResolver`, aiohttp's resolver hook, for names; `OutboundPolicy.middleware` for
address literals, which aiohttp does not resolve), so a name that resolves to a public address at
registration and to 169.254.169.254 a minute later (DNS rebinding) is refused. Operator settings
(`ONCALL_WEBHOOK_URL`, SMTP) are trusted as they are and never pass here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_middlewares import ClientHandlerType
from yarl import URL

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
        self._check_scheme(parsed.scheme, parsed.host)
        if parsed.userinfo:
            raise UnsafeUrl("must not carry a user name or password")
        return parsed

    def _check_scheme(self, scheme: str, host: str | None) -> None:
        allowed = ("https", "http") if self.allow_http else ("https",)
        if scheme not in allowed or not host:
            raise UnsafeUrl(f"must be an absolute {' or '.join(allowed)} URL")

    def check_request(self, url: URL) -> None:
        """At every request, on the URL as the client parsed it: the scheme, and the address
        when the host is one (the client connects to an address literal without resolving)."""
        host = url.raw_host or ""
        self._check_scheme(url.scheme, host)
        if _is_address(host):
            self.check_address(host)
        elif ":" in host or host.replace(".", "").isdigit():
            # The client takes it for an address and would connect without resolving it
            # (127.1, 2130706433, 127.000.000.001): only the canonical forms are judged here.
            raise UnsafeUrl("the URL's host is an address not in its canonical form")
        # A name is checked by the resolver, as it resolves.

    async def middleware(
        self, request: aiohttp.ClientRequest, handler: ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """aiohttp's client middleware: `check_request` on every request a session makes, a
        redirect's too. With `GuardedResolver` on the session's connector, that is the guard."""
        self.check_request(request.url)
        return await handler(request)

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
            found = [host] if _is_address(host) else await self._resolve(host, port)
        except UnicodeError:  # an empty label or one over 63 characters: no host name at all
            raise UnsafeUrl("the URL's host is not a valid name") from None
        if not found:
            raise OSError(f"{host} does not resolve")
        for address in found:
            self.check_address(address)
        return found


def _is_address(host: str) -> bool:
    """An address in its canonical form (IPv4 dotted quad; IPv6, with a zone id or not)."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0] if ":" in host else host)
    except ValueError:
        return False
    return True


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver hook: a name's addresses, every one of them allowed, else UnsafeUrl.
    The connector connects only to what this returns, with TLS still verified against the URL's
    host name (SNI and certificate)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in await self._policy.addresses(host, port)
        ]

    async def close(self) -> None:
        return None


async def require_safe_url(settings: object, url: str, *, field: str) -> None:
    """422 naming `field` when `url` may not be called (at registration)."""
    from shared.errors import Unprocessable

    try:
        await OutboundPolicy.from_settings(settings).check(url)
    except UnsafeUrl as exc:
        raise Unprocessable(
            f"{field} is refused: {exc}", problems=[{"field": field, "problem": str(exc)}]
        ) from None
