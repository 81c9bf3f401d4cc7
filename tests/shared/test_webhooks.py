"""The signed POST's client for the operator's own address: the environment's proxy, looked up
once when the session is made, and the environment's CA bundle (shared/webhooks.py)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.webhooks import _tls, environment_proxy, post_signed, webhook_session
from tests.support.receiver import Receiver

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


def test_tls_trusts_the_environments_ca_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A pager behind a private CA: SSL_CERT_FILE names its root, as httpx honoured it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hospital Private Root")])
    now = datetime.datetime.now(datetime.UTC)
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    bundle = tmp_path / "private-root.pem"
    bundle.write_bytes(root.public_bytes(serialization.Encoding.PEM))

    def roots() -> list[str]:
        return [str(c["subject"]) for c in _tls().get_ca_certs()]

    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert [r for r in roots() if "Hospital Private Root" in r]
    monkeypatch.delenv("SSL_CERT_FILE")
    assert not [r for r in roots() if "Hospital Private Root" in r] and roots()  # certifi's
