"""Access settings that need services of their own: HTTPS, the clinic's identity provider, and
rate limits (a risk and an intake process beside the session's, on the same stack)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from deploy.localstack import free_port
from tests.support.cases import HIGH_CSSRS, screening
from tests.support.idp import AUDIENCE, IdentityProvider, running_idp
from tests.support.keys import ADMIN, HOTLINE, bearer
from tests.support.services import ServiceProcesses
from tests.support.tls import self_signed


@pytest.fixture(scope="module")
async def idp() -> AsyncIterator[IdentityProvider]:
    async with running_idp() as provider:
        yield provider


@pytest.fixture(scope="module")
def secure_risk(
    services: ServiceProcesses, idp: IdentityProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcesses]:
    """risk over HTTPS, taking the identity provider's tokens beside API keys."""
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    procs = ServiceProcesses(
        env={
            **services.env,
            "TLS_CERT_FILE": cert,
            "TLS_KEY_FILE": key,
            "OIDC_ISSUER": idp.issuer,
            "OIDC_AUDIENCE": AUDIENCE,
            "OIDC_ROLES_CLAIM": "realm_access.roles",
        },
        ports={"risk": free_port()},
        log_dir=tmp_path_factory.mktemp("secure-risk"),
        ca_file=cert,
    )
    procs.start("risk")
    yield procs
    procs.stop()


async def test_a_service_serves_https_when_given_a_certificate(
    secure_risk: ServiceProcesses,
) -> None:
    url = secure_risk.url("risk")
    assert url.startswith("https://")
    async with httpx.AsyncClient(base_url=url, verify=secure_risk.verify) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/v1/rulesets/current", headers=ADMIN)).status_code == 200
    plain = url.replace("https://", "http://")
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.HTTPError):
            await client.get(f"{plain}/healthz")


async def test_identity_provider_tokens_are_credentials(
    secure_risk: ServiceProcesses, idp: IdentityProvider
) -> None:
    kid = idp.published[0]
    cases = [
        (idp.token(kid, sub="dr-ruiz"), 200),
        (idp.token(kid, exp=int(time.time()) - 120), 401),
        (idp.token(kid, aud="another-api"), 401),
        (idp.token(kid, iss="http://127.0.0.1:1/realms/evil"), 401),
        (idp.token(kid, realm_access={"roles": ["hotline"]}), 403),
        (idp.token(idp.add_key("RS256", publish=False)), 401),
    ]
    async with httpx.AsyncClient(
        base_url=secure_risk.url("risk"), verify=secure_risk.verify
    ) as client:
        for token, status in cases:
            response = await client.get("/v1/rulesets/current", headers=bearer(token))
            assert response.status_code == status, response.text
            assert token not in response.text


def _own_intake(
    services: ServiceProcesses, folder: Path, settings: dict[str, str]
) -> Iterator[ServiceProcesses]:
    """An intake process of its own with `settings`, on the session's stack."""
    procs = ServiceProcesses(
        env={**services.env, **settings}, ports={"intake": free_port()}, log_dir=folder
    )
    procs.start("intake")
    yield procs
    procs.stop()


@pytest.fixture(scope="module")
def limited_intake(
    services: ServiceProcesses, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcesses]:
    # A day: the sliding window counter weighs the previous window, so four requests that
    # straddle a window boundary on a loaded machine would not all count.
    limits = {"RATE_LIMITS": '{"hotline": "3/day"}', "AUTH_FAILURE_LIMIT": "4/day"}
    yield from _own_intake(services, tmp_path_factory.mktemp("limited-intake"), limits)


async def test_writes_are_limited_per_credential_and_admin_is_not(
    limited_intake: ServiceProcesses,
) -> None:
    async with httpx.AsyncClient(base_url=limited_intake.url("intake")) as client:
        statuses = [
            (await client.post("/v1/screenings", json=screening(HIGH_CSSRS), headers=HOTLINE))
            for _ in range(4)
        ]
        assert [r.status_code for r in statuses] == [202, 202, 202, 429]
        assert int(statuses[-1].headers["retry-after"]) >= 1
        for _ in range(5):
            admin = await client.post("/v1/screenings", json=screening(HIGH_CSSRS), headers=ADMIN)
            assert admin.status_code == 202


async def test_bad_credentials_from_one_address_are_slowed_without_locking_out_good_keys(
    limited_intake: ServiceProcesses,
) -> None:
    async with httpx.AsyncClient(base_url=limited_intake.url("intake")) as client:
        guesses = [
            (await client.get("/v1/api-keys", headers=bearer(f"ctk_guess-{i:030d}"))).status_code
            for i in range(6)
        ]
        assert guesses[:4] == [401] * 4 and guesses[4:] == [429, 429]
        assert (await client.get("/v1/api-keys", headers=ADMIN)).status_code == 200


@pytest.fixture(scope="module")
def blind_intake(
    services: ServiceProcesses, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcesses]:
    """An intake whose copy of the access topic is never current enough (a broker failover
    that never ends): it checks keys against its own table instead."""
    stale = {"CREDENTIALS_MAX_STALENESS_SECONDS": "0.000001"}
    yield from _own_intake(services, tmp_path_factory.mktemp("blind-intake"), stale)


async def test_intake_checks_keys_against_its_table_while_the_topic_is_not_current(
    blind_intake: ServiceProcesses,
) -> None:
    async with httpx.AsyncClient(base_url=blind_intake.url("intake")) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        issued = await client.post(
            "/v1/api-keys", json={"name": "desk 9", "role": "hotline"}, headers=ADMIN
        )
        assert issued.status_code == 201, issued.text
        key = bearer(issued.json()["key"])
        posted = await client.post("/v1/screenings", json=screening(HIGH_CSSRS), headers=key)
        assert posted.status_code == 202, posted.text
        revoked = await client.delete(f"/v1/api-keys/{issued.json()['id']}", headers=ADMIN)
        assert revoked.status_code == 204, revoked.text
        refused = await client.post("/v1/screenings", json=screening(HIGH_CSSRS), headers=key)
        assert refused.status_code == 401, refused.text
    log = (blind_intake.log_dir / "intake.log").read_text()
    assert "checking API keys against their source" in log
