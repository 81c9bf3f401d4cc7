"""The signed POSTs' clients (shared/webhooks.py): the operator's address through the
environment's proxy, looked up once; TLS verified against the environment's CA bundle and the
URL's name, on the guarded client too."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deploy.localstack import free_port
from shared.outbound import OutboundPolicy
from shared.webhooks import Answer, environment_proxy, post_signed, webhook_session
from tests.support.receiver import Receiver, serve, shut
from tests.support.tls import self_signed

#: A name that resolves nowhere (RFC 2606): only a proxy can take a POST there.
PAGER = "http://pager.example.invalid/hook"


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> Receiver:
    """The receiver stands in for a forward proxy: it takes the absolute-form request."""
    _no_proxies(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", f"http://pages:s3cret@127.0.0.1:{receiver.port}")
    return receiver


def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for scheme in ("http", "https", "all", "no"):
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
        monkeypatch.delenv(f"{scheme.upper()}_PROXY", raising=False)


async def _post(proxy_for: str | None = None) -> str:
    async with webhook_session(limit=1, proxy_for=proxy_for) as client:
        return (await _send(client, PAGER)).outcome


async def test_the_operators_address_goes_through_the_environments_proxy(
    proxy_env: Receiver,
) -> None:
    before = len(proxy_env.got)
    assert await _post(PAGER) == "delivered"
    got = proxy_env.got[before:]
    assert [g.headers.get("host") for g in got] == ["pager.example.invalid"]
    assert "x-triage-signature" in got[0].headers
    assert got[0].headers.get("proxy-authorization") == "Basic cGFnZXM6czNjcmV0"  # pages:s3cret


async def test_no_proxy_and_no_address_mean_no_proxy(
    proxy_env: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = len(proxy_env.got)
    assert await _post() == "temporary_failure"  # no address given: the name does not resolve
    monkeypatch.setenv("NO_PROXY", "pager.example.invalid")
    assert await _post(PAGER) == "temporary_failure"
    assert len(proxy_env.got) == before, "nothing went through the proxy"


def test_the_proxy_is_taken_by_scheme_then_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_proxies(monkeypatch)
    assert environment_proxy("https://pager.example.org/") is None
    monkeypatch.setenv("ALL_PROXY", "http://egress.internal:3128")
    assert str(environment_proxy("https://pager.example.org/")) == "http://egress.internal:3128"
    monkeypatch.setenv("HTTPS_PROXY", "http://pages:s3cret@egress.internal:8080")
    assert str(environment_proxy("https://pager.example.org/")) == (
        "http://pages:s3cret@egress.internal:8080"
    )


@pytest.mark.parametrize("named", ["https://egress.internal:3128", "socks5://egress.internal:1080"])
def test_a_proxy_the_client_cannot_speak_to_is_refused_not_gone_round(
    monkeypatch: pytest.MonkeyPatch, named: str
) -> None:
    _no_proxies(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", named)
    with pytest.raises(ValueError, match="only through an http:// proxy") as refused:
        environment_proxy("https://pager.example.org/")
    assert "egress" not in str(refused.value)
    monkeypatch.setenv("NO_PROXY", "pager.example.org")  # not used for that address: no matter
    assert environment_proxy("https://pager.example.org/") is None


@contextlib.asynccontextmanager
async def _https_pager(cert: str, key: str) -> AsyncIterator[int]:
    """A pager answering 200 over HTTPS on 127.0.0.1 with `cert`; yields its port."""

    async def ok(request: Request) -> Response:
        return Response("ok")

    port = free_port()
    app = Starlette(routes=[Route("/hook", ok, methods=["POST"])])
    server, task = await serve(app, port, ssl_certfile=cert, ssl_keyfile=key)
    try:
        yield port
    finally:
        await shut(server, task)


async def _send(session: aiohttp.ClientSession, url: str) -> Answer:
    return await post_signed(session, url, b"{}", secrets=["s"], event_id="e", deadline=5)


async def test_tls_is_verified_against_the_environments_ca_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A pager behind a private CA: SSL_CERT_FILE names its root, as httpx honoured it; without
    it, certifi's roots do not know that CA and nothing is delivered."""
    cert, key = self_signed(tmp_path, common_name="Hospital Private Root")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    async with _https_pager(cert, key) as port:
        url = f"https://127.0.0.1:{port}/hook"
        monkeypatch.setenv("SSL_CERT_FILE", cert)
        async with webhook_session(limit=1) as session:
            assert (await _send(session, url)).outcome == "delivered"
        monkeypatch.delenv("SSL_CERT_FILE")
        async with webhook_session(limit=1) as session:
            answer = await _send(session, url)
        assert answer.outcome == "temporary_failure"
        assert answer.error == "ClientConnectorCertificateError"


async def test_a_guarded_connection_verifies_the_urls_name_not_the_address(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The guard connects to the address it checked, and TLS is still verified against the
    URL's host name: a certificate for pager.test only is good for https://pager.test/ and not
    for the same server by its address."""
    cert, key = self_signed(tmp_path, names=["pager.test"], addresses=())
    monkeypatch.setenv("SSL_CERT_FILE", cert)

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    policy = OutboundPolicy(allowed_networks=["127.0.0.0/8"], resolver=resolve)
    async with _https_pager(cert, key) as port, webhook_session(limit=1, guard=policy) as session:
        assert (await _send(session, f"https://pager.test:{port}/hook")).outcome == "delivered"
        refused = await _send(session, f"https://127.0.0.1:{port}/hook")
    assert refused.error == "ClientConnectorCertificateError"
