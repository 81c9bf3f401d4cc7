"""Only intake's signed records on the access topic make keys: a record written straight to
`triage.access.events.v1` by anyone else (unsigned, signed with another key, altered after
signing, filed under another key's id, or an old state of a revoked key played again) mints
nothing on any service, and says why in its log."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy.localstack import free_port
from shared.auth.credentials import CredentialChanged, key_digest, new_key
from shared.auth.roles import Role
from shared.auth.signing import RecordSigner, new_access_key_pair
from shared.events import Envelope, utcnow
from shared.topics import ACCESS_EVENTS
from tests.support.keys import ACCESS_SIGNING_KEY, ACCESS_VERIFY_KEY, ADMIN, bearer
from tests.support.services import ServiceProcesses

#: A route of each service that an admin key may call.
ROUTES = {"intake": "/v1/api-keys", "risk": "/v1/rulesets/current", "notify": "/v1/oncall"}
INTAKE = RecordSigner.from_setting(ACCESS_SIGNING_KEY)
STRANGER = RecordSigner.from_setting(new_access_key_pair()[0])


def _data(key: str, *, role: Role = Role.ADMIN, credential_id: uuid.UUID | None = None) -> dict:
    changed = CredentialChanged(
        credential_id=credential_id or uuid.uuid4(),
        name="forged",
        role=role,
        key_hash=key_digest(key),
        created_at=utcnow(),
    )
    return changed.model_dump(mode="json")


async def _write(services: ServiceProcesses, records: list[tuple[str, dict[str, Any]]]) -> None:
    """Each (Kafka key, data) as a `credential.issued` record, by a producer of our own."""
    producer = AIOKafkaProducer(bootstrap_servers=services.env["KAFKA_BOOTSTRAP_SERVERS"])
    await producer.start()
    try:
        for kafka_key, data in records:
            envelope = Envelope(type="credential.issued", correlation_id="forged", data=data)
            await producer.send_and_wait(ACCESS_EVENTS, envelope.encode(), key=kafka_key.encode())
    finally:
        await producer.stop()


async def _statuses(services: ServiceProcesses, key: str) -> dict[str, int]:
    out = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for service, route in ROUTES.items():
            response = await client.get(services.url(service) + route, headers=bearer(key))
            out[service] = response.status_code
    return out


async def _until(services: ServiceProcesses, key: str, status: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (seen := await _statuses(services, key)) != dict.fromkeys(ROUTES, status):
        assert time.monotonic() < deadline, seen
        await asyncio.sleep(0.2)


async def _read_to_the_end(services: ServiceProcesses) -> None:
    """Every service has read the topic past what was written before this call: a key it has
    never seen is answered only after its next confirmed read to the topic's end."""
    assert await _statuses(services, new_key()) == dict.fromkeys(ROUTES, 401)
    await asyncio.sleep(0.5)
    assert await _statuses(services, new_key()) == dict.fromkeys(ROUTES, 401)


async def test_a_record_not_signed_by_intake_mints_no_key(services: ServiceProcesses) -> None:
    unsigned, stranger, altered, misfiled, good = (new_key() for _ in range(5))
    forged = {
        "unsigned": _data(unsigned),
        "another key's signature": STRANGER.sign(_data(stranger)),
        # Signed by intake as a hotline key, then made an admin key.
        "altered": {**INTAKE.sign(_data(altered, role=Role.HOTLINE)), "role": "admin"},
    }
    misfiled_data = INTAKE.sign(_data(misfiled))
    records = [(data["credential_id"], data) for data in forged.values()]
    records.append((str(uuid.uuid4()), misfiled_data))  # intake's record, under another key id
    good_data = INTAKE.sign(_data(good))
    records.append((good_data["credential_id"], good_data))
    await _write(services, records)

    await _until(services, good, 200)  # intake's own signature is taken everywhere
    await _read_to_the_end(services)
    for key in (unsigned, stranger, altered, misfiled):
        assert await _statuses(services, key) == dict.fromkeys(ROUTES, 401), key
    for service in ROUTES:
        log = (services.log_dir / f"{service}.log").read_text()
        assert "refused a record on triage.access.events.v1" in log, service
        for key in (unsigned, stranger, altered, misfiled):
            assert key_digest(key) not in log and key not in log


async def test_a_revoked_key_played_again_stays_revoked(
    services: ServiceProcesses, intake: httpx.AsyncClient
) -> None:
    issued = (await intake.post("/v1/api-keys", json={"name": "replayed", "role": "admin"})).json()
    await _until(services, issued["key"], 200)
    assert (await intake.delete(f"/v1/api-keys/{issued['id']}", headers=ADMIN)).status_code == 204
    await _until(services, issued["key"], 401)

    # Its state at issue, signed by intake: what the topic held before the revocation.
    old = INTAKE.sign(_data(issued["key"], credential_id=uuid.UUID(issued["id"])))
    await _write(services, [(issued["id"], old)])
    await _read_to_the_end(services)
    assert await _statuses(services, issued["key"]) == dict.fromkeys(ROUTES, 401)


async def test_keys_announced_unsigned_before_an_upgrade_work_once_intake_restarts(
    services: ServiceProcesses, db: asyncpg.Pool, tmp_path: Path
) -> None:
    """An intake from before the records were signed left keys in its table and unsigned
    records on the topic: refused now, until the new intake starts and announces them again."""
    live, revoked = new_key(), new_key()
    records = []
    for key, revoked_at in ((live, None), (revoked, utcnow())):
        data = _data(key)
        await db.execute(
            "INSERT INTO intake.api_keys (id, name, role, identifier_systems, key_hash,"
            " created_at, revoked_at) VALUES ($1, 'older', 'admin', '{}', $2, now(), $3)",
            uuid.UUID(data["credential_id"]),
            data["key_hash"],
            revoked_at,
        )
        records.append((data["credential_id"], data))
        if revoked_at is not None:
            records.append((data["credential_id"], {**data, "revoked_at": revoked_at.isoformat()}))
    await _write(services, records)
    await _read_to_the_end(services)
    assert await _statuses(services, live) == dict.fromkeys(ROUTES, 401)

    upgraded = ServiceProcesses(env=services.env, ports={"intake": free_port()}, log_dir=tmp_path)
    await asyncio.to_thread(upgraded.start, "intake")
    try:
        await _until(services, live, 200)
        assert await _statuses(services, revoked) == dict.fromkeys(ROUTES, 401)
    finally:
        await asyncio.to_thread(upgraded.stop)


@pytest.mark.parametrize(
    ("service", "change", "says"),
    [
        ("risk", {"ACCESS_VERIFY_KEY": None}, "ACCESS_VERIFY_KEY is not set"),
        ("notify", {"ACCESS_VERIFY_KEY": "bm90IGEga2V5"}, "ACCESS_VERIFY_KEY must be 32 bytes"),
        ("intake", {"ACCESS_SIGNING_KEY": None}, "ACCESS_SIGNING_KEY is not set"),
        ("intake", {"ACCESS_VERIFY_KEY": new_access_key_pair()[1]}, "not the public half"),
        # Intake alone needs no ACCESS_VERIFY_KEY: the public half of its own key.
        ("intake", {"ACCESS_VERIFY_KEY": None}, None),
    ],
)
def test_a_service_without_the_access_keys_refuses_to_start(
    services: ServiceProcesses,
    tmp_path: Path,
    service: str,
    change: dict[str, str | None],
    says: str | None,
) -> None:
    env = {k: v for k, v in services.env.items() if change.get(k, v) is not None}
    env.update({k: v for k, v in change.items() if v is not None})
    procs = ServiceProcesses(env=env, ports={service: free_port()}, log_dir=tmp_path)
    try:
        if says is None:
            procs.start(service, timeout=60)
            return
        with pytest.raises(RuntimeError, match=says):
            procs.start(service, timeout=60)
        log = procs.log_tail(service, lines=200)
        assert ACCESS_SIGNING_KEY not in log and ACCESS_VERIFY_KEY not in log
    finally:
        procs.stop()
