"""The services' HTTP APIs, called with the signed-in person's credential.

This is the console's only way to data: it has no database and no Kafka client. A service's
answer maps to what the page does: 401 ends the session (the key was revoked, the token
expired), 403 and 404 are shown as such, 409 and 422 go back to the form that caused them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from services.console.i18n import _
from shared.logging import CORRELATION

log = logging.getLogger(__name__)

SERVICES = ("intake", "risk", "notify")


class UpstreamError(Exception):
    """A service's answer that a page cannot go on from."""

    status_code = 502

    def __init__(self, message: str, *, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.body = body or {}

    @property
    def problems(self) -> list[dict[str, Any]]:
        return list(self.body.get("problems") or [])

    @property
    def summary(self) -> str:
        """What a form shows: each problem the service named (`field: problem; ...`), else the
        service's message."""
        named = "; ".join(f"{p.get('field')}: {p.get('problem')}" for p in self.problems)
        return named or self.message


class SignedOut(UpstreamError):
    """401: the credential is no longer accepted; the person signs in again."""

    status_code = 401


class NotAllowed(UpstreamError):
    status_code = 403


class Missing(UpstreamError):
    status_code = 404


class Conflict(UpstreamError):
    """409: a stale version, an acknowledged alert, a taken name."""

    status_code = 409


class Invalid(UpstreamError):
    """422 (or another 4xx): the form's input; the service names the field."""

    status_code = 422


class Unavailable(UpstreamError):
    """The service is down or answered 5xx: say so, never pretend."""

    status_code = 503


_ERRORS: dict[int, type[UpstreamError]] = {
    401: SignedOut,
    403: NotAllowed,
    404: Missing,
    409: Conflict,
}


class Upstream:
    """One pooled HTTP client per service."""

    def __init__(self, urls: dict[str, str], *, timeout: float = 10.0) -> None:
        self._clients = {
            name: httpx.AsyncClient(base_url=url, timeout=timeout) for name, url in urls.items()
        }

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        credential: str,
        json: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The service's answer when 2xx; otherwise the matching `UpstreamError`."""
        sent = {"Authorization": f"Bearer {credential}", "Accept": "application/json"}
        correlation = CORRELATION.get()
        if correlation:
            sent["X-Correlation-ID"] = correlation
        sent.update(headers or {})
        try:
            answer = await self._clients[service].request(
                method, path, json=json, params=params, headers=sent
            )
        except httpx.HTTPError as exc:
            log.warning("%s %s on %s failed: %s", method, path, service, type(exc).__name__)
            raise Unavailable(
                _("%(service)s cannot be reached right now") % {"service": service}
            ) from exc
        if answer.is_success:
            return answer
        body = _body(answer)
        message = str(body.get("detail") or answer.reason_phrase)
        if answer.status_code >= 500:
            log.warning("%s %s on %s answered %d", method, path, service, answer.status_code)
            raise Unavailable(
                _("%(service)s cannot answer right now (%(status)d)")
                % {"service": service, "status": answer.status_code},
                body=body,
            )
        raise _ERRORS.get(answer.status_code, Invalid)(message, body=body)

    async def get(self, service: str, path: str, *, credential: str, **kw: Any) -> Any:
        return (await self.call(service, "GET", path, credential=credential, **kw)).json()

    async def send(
        self, service: str, method: str, path: str, *, credential: str, **kw: Any
    ) -> Any:
        answer = await self.call(service, method, path, credential=credential, **kw)
        return answer.json() if answer.content else None

    async def healthy(self) -> dict[str, bool]:
        """Each service's `/healthz`, asked of all at once: the console is ready when it can
        reach them."""

        async def answers(client: httpx.AsyncClient) -> bool:
            try:
                return (await client.get("/healthz", timeout=2.0)).status_code == 200
            except httpx.HTTPError:
                return False

        names = list(self._clients)
        found = await asyncio.gather(*(answers(self._clients[name]) for name in names))
        return dict(zip(names, found, strict=True))


def _body(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
