"""The SSRF guard on URLs given through the API: each refused class, and DNS rebinding.

No request leaves the loopback address: resolvers are stubs, and the one real connection goes
to a receiver on 127.0.0.1."""

from __future__ import annotations

import pytest

from shared.outbound import OutboundPolicy, UnsafeUrl
from shared.webhooks import post_signed, webhook_session
from tests.support.pagers import Reply
from tests.support.receiver import Receiver


def _resolving(*answers: list[str]):
    """A stub resolver answering each call with the next list (the last one repeats)."""
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://127.0.0.1/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://172.16.0.9/hook", "private"),
        ("https://192.168.1.1/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://224.0.0.1/hook", "multicast"),
        ("https://240.0.0.1/hook", "reserved"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://100.64.0.1/hook", "globally routable"),
        ("https://[64:ff9b::a9fe:a9fe]/hook", "link-local"),
        ("https://[2002:0a00:0001::1]/hook", "private"),
    ],
)
async def test_each_refused_address_class(url: str, why: str) -> None:
    with pytest.raises(UnsafeUrl, match=why):
        await OutboundPolicy().check(url)


async def test_a_name_resolving_to_a_refused_address_is_refused_at_registration() -> None:
    policy = OutboundPolicy(resolver=_resolving(["93.184.215.14", "10.0.0.5"]))
    with pytest.raises(UnsafeUrl, match="private"):
        await policy.check("https://pager.example.org/hook")


@pytest.mark.parametrize(
    "url", ["http://93.184.215.14/hook", "ftp://pager.example.org/x", "https://u:p@example.org/"]
)
async def test_only_https_without_credentials(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        await OutboundPolicy(resolver=_resolving(["93.184.215.14"])).check(url)


async def test_settings_loosen_it_for_local_setups() -> None:
    policy = OutboundPolicy(allow_http=True, allowed_networks=["127.0.0.0/8"])
    await policy.check("http://127.0.0.1:9/hook")
    with pytest.raises(UnsafeUrl, match="private"):
        await policy.check("http://10.0.0.1/hook")


async def test_a_host_that_is_no_name_is_refused_at_registration() -> None:
    with pytest.raises(UnsafeUrl, match=r"not a valid name|not an absolute URL"):
        await OutboundPolicy().check("https://a..b/hook")
    with pytest.raises(UnsafeUrl, match="not a valid name"):
        await OutboundPolicy().check("https://" + "x" * 64 + ".example.org/hook")


async def test_public_names_pass_and_unresolvable_ones_wait_for_the_connection() -> None:
    resolver = _resolving(["93.184.215.14"])
    assert await OutboundPolicy(resolver=resolver).check("https://ehr.example.org/") is None
    assert resolver.calls == ["ehr.example.org"]  # type: ignore[attr-defined]

    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError("does not resolve")

    assert await OutboundPolicy(resolver=nxdomain).check("https://not-yet.example.org/") is None


async def test_dns_rebinding_is_refused_at_connect_time() -> None:
    """Public when registered, loopback when connecting: the connection is never made."""
    resolver = _resolving(["93.184.215.14"], ["127.0.0.1"])
    policy = OutboundPolicy(resolver=resolver)
    await policy.check("https://rebind.example.org/hook")  # registration: public, accepted
    async with webhook_session(limit=1, guard=policy) as session:
        with pytest.raises(UnsafeUrl, match="loopback"):
            await session.post("https://rebind.example.org/hook", data=b"{}")
    assert resolver.calls == ["rebind.example.org", "rebind.example.org"]  # type: ignore[attr-defined]


async def test_an_address_literal_is_refused_at_connect_time(receiver: Receiver) -> None:
    """The client connects to an address literal without resolving it: the guard still sees
    it, whether the URL was registered before the rules tightened or never registered."""
    policy = OutboundPolicy(allow_http=True)  # loopback not allowed
    before = len(receiver.got)
    async with webhook_session(limit=1, guard=policy) as session:
        for url in (receiver.url, f"http://[::ffff:127.0.0.1]:{receiver.port}/hook"):
            answer = await post_signed(session, url, b"{}", secrets=["s"], event_id="e", deadline=2)
            assert answer.outcome == "temporary_failure", answer
            assert answer.error == "refused: the URL's host is a loopback address"
        with pytest.raises(UnsafeUrl, match="absolute https or http URL"):
            await session.post(f"ws://127.0.0.1:{receiver.port}/hook")
        # Other spellings of 127.0.0.1: those the client would take for an address are refused
        # unless canonical; a name (hexadecimal is one) is resolved, then refused.
        for host, why in (
            ("127.1", "an address not in its canonical form"),
            ("2130706433", "an address not in its canonical form"),
            ("127.000.000.001", "an address not in its canonical form"),
            ("[::ffff:127.000.000.001]", "an address not in its canonical form"),
            ("0x7f000001", "a loopback address"),
            ("a..b", "not a valid name"),
        ):
            url = f"http://{host}:{receiver.port}/hook"
            answer = await post_signed(session, url, b"{}", secrets=["s"], event_id="e", deadline=2)
            assert answer.outcome == "temporary_failure", (host, answer)
            assert answer.error is not None and answer.error.endswith(why), (host, answer)
    assert len(receiver.got) == before, "nothing reached the refused address"


async def test_the_connection_goes_to_the_checked_address(receiver: Receiver) -> None:
    """The name resolves (stub) to the receiver's loopback address, allowed by the settings;
    the request reaches it with the URL's own host name in Host."""
    port = receiver.port
    policy = OutboundPolicy(
        allow_http=True, allowed_networks=["127.0.0.0/8"], resolver=_resolving(["127.0.0.1"])
    )
    before = len(receiver.got)
    async with (
        webhook_session(limit=1, guard=policy) as session,
        session.post(f"http://hooks.test:{port}/hook", data=b"{}") as response,
    ):
        assert response.status < 300
    got = receiver.got[before:]
    assert got and got[-1].headers.get("host") == f"hooks.test:{port}"


async def test_a_redirect_is_an_answer_and_is_not_followed(receiver: Receiver) -> None:
    """A receiver that answers 307 to the cloud's metadata address gets no second request
    anywhere: the 3xx is the outcome (it will not change by retrying)."""
    policy = OutboundPolicy(allow_http=True, allowed_networks=["127.0.0.0/8"])
    receiver.script.append(Reply(307, headers={"Location": "http://169.254.169.254/latest"}))
    before = len(receiver.got)
    async with webhook_session(limit=1, guard=policy) as session:
        answer = await post_signed(
            session, receiver.url, b"{}", secrets=["s"], event_id="e", deadline=2
        )
    assert (answer.outcome, answer.http_status) == ("permanent_failure", 307)
    assert len(receiver.got) == before + 1
