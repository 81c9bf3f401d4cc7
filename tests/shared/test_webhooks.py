"""The signed POST's client for the operator's own address: the environment's proxy, looked up
once when the session is made (shared/webhooks.py `webhook_session`)."""

from __future__ import annotations

import pytest

from shared.webhooks import post_signed, webhook_session
from tests.support.receiver import Receiver

#: A name that resolves nowhere (RFC 2606): only a proxy can take a POST there.
PAGER = "http://pager.example.invalid/hook"


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> Receiver:
    """The receiver stands in for a forward proxy: it takes the absolute-form request."""
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{receiver.port}")
    return receiver


async def _post(proxy_for: str | None = None) -> str:
    async with webhook_session(limit=1, proxy_for=proxy_for) as client:
        answer = await post_signed(client, PAGER, b"{}", secrets=["s"], event_id="e", deadline=5)
    return answer.outcome


async def test_the_operators_address_goes_through_the_environments_proxy(
    proxy_env: Receiver,
) -> None:
    before = len(proxy_env.got)
    assert await _post(PAGER) == "delivered"
    got = proxy_env.got[before:]
    assert [g.headers.get("host") for g in got] == ["pager.example.invalid"]
    assert "x-triage-signature" in got[0].headers


async def test_no_proxy_and_no_address_mean_no_proxy(
    proxy_env: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = len(proxy_env.got)
    assert await _post() == "temporary_failure"  # no address given: the name does not resolve
    monkeypatch.setenv("NO_PROXY", "pager.example.invalid")
    assert await _post(PAGER) == "temporary_failure"
    assert len(proxy_env.got) == before, "nothing went through the proxy"
