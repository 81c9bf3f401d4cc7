"""The audit trail, end to end: reads of a person's record, changes and refusals leave entries
(from every service, in one trail), the trail names no PHI, refuses edits, and `triage audit
verify` catches an edited, a deleted and a reordered entry."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from services.intake.audit.checkpoints import (
    new_signing_key,
    public_key_text,
    signing_key,
    write_checkpoint,
)
from services.intake.audit.retention import retire
from services.intake.audit.service import append_rows
from services.intake.db import outbox as intake_outbox
from shared.audit import AuditRecorded, chain_hash, new_entry
from shared.db import asyncpg_dsn
from shared.events import Envelope
from shared.migrate import migrate
from shared.outbox import event_row, insert_sql
from shared.topics import AUDIT_EVENTS
from tests.support.cases import HIGH_CSSRS, screening
from tests.support.keys import (
    AUDIT_SIGNING_KEY,
    CLINICIAN,
    EHR,
    HOTLINE,
    HOTLINE2,
    SUPERVISOR,
)
from tests.support.services import ServiceProcesses

CANARY = {"name": "Audit Canary Person", "phone": "+1 555 0142 9931"}
CANARY_NOTES = "audit canary note: keeps pills in the kitchen drawer"
TRIAGE = Path(sys.executable).with_name("triage")


async def _entries(intake: httpx.AsyncClient, count: int, **filters: str) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        response = await intake.get("/v1/audit", params=filters, headers=SUPERVISOR)
        assert response.status_code == 200, response.text
        if len(response.json()) >= count or time.monotonic() > deadline:
            return response.json()
        await asyncio.sleep(0.1)


async def test_reads_changes_and_refusals_of_a_record_leave_entries(
    intake: httpx.AsyncClient,
) -> None:
    body = screening(HIGH_CSSRS, contact=CANARY, notes=CANARY_NOTES)
    sid = (await intake.post("/v1/screenings", json=body, headers=HOTLINE)).json()["id"]
    path = f"/v1/screenings/{sid}"
    assert (await intake.get(path, headers=CLINICIAN)).status_code == 200
    assert (await intake.get(path, headers=HOTLINE2)).status_code == 404
    assert (await intake.get(path, headers={"Authorization": ""})).status_code == 401

    got = await _entries(intake, 4, resource=f"screening/{sid}")
    seen = {(e["actor"], e["action"], e["outcome"]) for e in got}
    assert {
        ("jsmith", "post_screening", "success"),
        ("dr-lee", "get_screening", "success"),
        ("amoreno", "get_screening", "not_found"),
        ("anonymous", "get_screening", "denied"),
    } <= seen
    for e in got:
        assert {"seq", "at", "service", "actor", "role", "action", "resource", "outcome"} <= set(e)
        assert {"correlation_id", "hash", "prev_hash"} <= set(e)
    text = json.dumps(got)
    for secret in (*CANARY.values(), CANARY_NOTES):
        assert secret not in text

    log = await intake.get(f"{path}/access-log", headers=CLINICIAN)
    assert log.status_code == 200
    assert {e["actor"] for e in log.json()} >= {"jsmith", "dr-lee"}
    assert (await intake.get(f"{path}/access-log", headers=HOTLINE)).status_code == 403
    assert (await intake.get("/v1/audit", headers=CLINICIAN)).status_code == 403


async def test_break_glass_reads_a_case_out_of_scope_and_says_why(
    intake: httpx.AsyncClient,
) -> None:
    body = screening(HIGH_CSSRS, contact=CANARY)
    sid = (await intake.post("/v1/screenings", json=body, headers=HOTLINE)).json()["id"]
    path = f"/v1/screenings/{sid}"
    reason = {"X-Break-Glass-Reason": "caller rang back, first counsellor off shift"}
    assert (await intake.get(path, headers=HOTLINE2)).status_code == 404
    read = await intake.get(path, headers={**HOTLINE2, **reason})
    assert read.status_code == 200 and read.json()["contact"] == CANARY
    short = await intake.get(path, headers={**HOTLINE2, "X-Break-Glass-Reason": "why"})
    assert short.status_code == 422
    assert (await intake.get(path, headers={**EHR, **reason})).status_code == 404
    got = await _entries(intake, 1, resource=f"screening/{sid}", outcome="break-glass")
    assert [(e["actor"], e["reason"]) for e in got] == [("amoreno", reason["X-Break-Glass-Reason"])]


async def test_the_trail_as_fhir_audit_events(intake: httpx.AsyncClient) -> None:
    sid = (await intake.post("/v1/screenings", json=screening(HIGH_CSSRS), headers=HOTLINE)).json()[
        "id"
    ]
    assert (await intake.get(f"/v1/screenings/{sid}", headers=CLINICIAN)).status_code == 200
    await _entries(intake, 2, resource=f"screening/{sid}")
    search = await intake.get(
        "/v1/fhir/AuditEvent",
        params={"entity": f"screening/{sid}", "date": "ge2026-01-01"},
        headers=SUPERVISOR,
    )
    assert search.status_code == 200, search.text
    assert search.headers["content-type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate(search.json())
    assert bundle.type == "searchset" and len(bundle.entry) == 2
    events = [AuditEvent.model_validate(e.resource.model_dump()) for e in bundle.entry]
    assert {e.agent[0].who.display for e in events} == {"jsmith", "dr-lee"}
    assert {e.action for e in events} == {"C", "R"}
    assert all(e.entity[0].what.identifier.value == sid for e in events)
    mine = await intake.get(
        "/v1/fhir/AuditEvent", params={"agent": "dr-lee", "_count": 1}, headers=SUPERVISOR
    )
    assert len(mine.json()["entry"]) == 1
    assert any(link["relation"] == "next" for link in mine.json()["link"])
    refused = await intake.get("/v1/fhir/AuditEvent", headers=CLINICIAN)
    assert refused.status_code == 403 and refused.json()["resourceType"] == "OperationOutcome"
    bad = await intake.get("/v1/fhir/AuditEvent", params={"date": "soon"}, headers=SUPERVISOR)
    assert bad.status_code == 422


async def test_entries_of_notify_reach_the_one_trail(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient
) -> None:
    made = await notify.post("/v1/clinicians", json={"name": "Dr Audit"}, headers=SUPERVISOR)
    assert made.status_code == 201
    got = await _entries(intake, 1, action="create_clinician", actor="sup-kim")
    assert got and got[0]["service"] == "notify" and got[0]["outcome"] == "success"


async def test_the_trail_refuses_update_delete_and_truncate(db: asyncpg.Pool) -> None:
    for statement in (
        "UPDATE intake.audit_log SET actor = 'x'",
        "DELETE FROM intake.audit_log",
        "TRUNCATE intake.audit_log",
    ):
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await db.execute(statement)


def _verify(
    database_url: str, signing_key: str = AUDIT_SIGNING_KEY, *, private: bool = False
) -> subprocess.CompletedProcess[str]:
    """`triage audit verify` with the public key only (AUDIT_VERIFY_KEY) of `signing_key`, or
    (`private`) with the signing key alone, as before AUDIT_VERIFY_KEY."""
    from services.intake.audit.checkpoints import signing_key as decode

    public = public_key_text(decode(signing_key)) if signing_key else ""
    keys = (
        {"AUDIT_VERIFY_KEY": "", "AUDIT_SIGNING_KEY": signing_key}
        if private
        else {"AUDIT_VERIFY_KEY": public, "AUDIT_SIGNING_KEY": ""}
    )
    return subprocess.run(
        [str(TRIAGE), "audit", "verify"],
        env={**os.environ, "DATABASE_URL": database_url, **keys},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_verify_passes_on_the_live_trail_and_its_checkpoints(
    intake: httpx.AsyncClient, database_url: str, db: asyncpg.Pool
) -> None:
    await _entries(intake, 1)
    deadline = time.monotonic() + 10
    while not await db.fetchval("SELECT count(*) FROM intake.audit_checkpoints"):
        assert time.monotonic() < deadline, "no checkpoint written within 10 s (every 1 s here)"
        await asyncio.sleep(0.2)
    done = _verify(database_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("audit: ") and "entries verified" in done.stdout
    with_private = _verify(database_url, private=True)  # the older setting still works
    assert with_private.returncode == 0, with_private.stdout + with_private.stderr


async def _append(conn: asyncpg.Connection, count: int) -> None:
    """`count` entries, appended as the consumer does: a poll's entries at once (here two
    polls), a redelivered one among them left out."""
    entries = [
        AuditRecorded(
            **new_entry(
                service="intake",
                actor=f"user-{i}",
                role="clinician",
                credential_id="k",
                action="get_screening",
                resource=f"screening/{uuid.uuid4()}",
                outcome="success",
                client="127.0.0.1",
                correlation_id=str(uuid.uuid4()),
            )
        ).model_dump()
        for i in range(count)
    ]
    half = count // 2
    async with conn.transaction():
        await append_rows(conn, entries[:half])
    async with conn.transaction():
        await append_rows(conn, [*entries[half - 1 : half], *entries[half:]])
    tail = await conn.fetch(
        "SELECT seq, entry_id FROM intake.audit_log ORDER BY seq DESC LIMIT $1", count
    )
    tail = tail[::-1]  # the entries just appended, each once, in order, in a row
    assert [r["entry_id"] for r in tail] == [e["entry_id"] for e in entries]
    assert [r["seq"] for r in tail] == list(range(tail[0]["seq"], tail[0]["seq"] + count))


@pytest.fixture
async def lone_trail(database_url: str, db: asyncpg.Pool) -> AsyncIterator[str]:
    """A database of its own with five chained entries and a checkpoint, to tamper with."""
    name = f"tamper_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE DATABASE {name}")
    url = database_url.rsplit("/", 1)[0] + f"/{name}"
    await migrate(url)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await _append(conn, 5)
        assert await write_checkpoint(conn, signing_key(AUDIT_SIGNING_KEY)) == 5
    finally:
        await conn.close()
    yield url
    await db.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        ("UPDATE intake.audit_log SET actor = 'someone else' WHERE seq = 3", "entry 3"),
        ("DELETE FROM intake.audit_log WHERE seq = 2", "entry 2"),
        (
            "UPDATE intake.audit_log SET seq = -2 WHERE seq = 2;"
            "UPDATE intake.audit_log SET seq = 2 WHERE seq = 3;"
            "UPDATE intake.audit_log SET seq = 3 WHERE seq = -2",
            "entry 2",
        ),
        ("DELETE FROM intake.audit_log WHERE seq = 5", "entry 5"),
        (
            "DELETE FROM intake.audit_log WHERE seq > 3;"
            "UPDATE intake.audit_head SET (seq, hash) ="
            " (SELECT seq, hash FROM intake.audit_log WHERE seq = 3)",
            "entry 5",
        ),
        ("UPDATE intake.audit_checkpoints SET hash = repeat('a', 64)", "entry 5"),
    ],
    ids=["edit", "delete", "reorder", "truncated-tail", "cut-tail-and-head", "checkpoint"],
)
async def test_verify_names_the_first_entry_that_fails(
    lone_trail: str, tamper: str, named: str
) -> None:
    assert _verify(lone_trail).returncode == 0
    conn = await asyncpg.connect(asyncpg_dsn(lone_trail))
    try:  # as the superuser, with the append-only triggers out of the way
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(tamper)
    finally:
        await conn.close()
    done = _verify(lone_trail)
    assert done.returncode == 1
    assert named in done.stdout, done.stdout


async def test_a_cut_tail_with_a_rewritten_head_needs_the_checkpoints(lone_trail: str) -> None:
    """Without the signing key the chain alone looks whole; with it, verify names the entry."""
    conn = await asyncpg.connect(asyncpg_dsn(lone_trail))
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "DELETE FROM intake.audit_log WHERE seq > 3;"
            "UPDATE intake.audit_head SET (seq, hash) ="
            " (SELECT seq, hash FROM intake.audit_log WHERE seq = 3)"
        )
    finally:
        await conn.close()
    assert _verify(lone_trail, signing_key="").returncode == 0
    other = _verify(lone_trail, signing_key=new_signing_key())
    assert other.returncode == 1 and "bad signature" in other.stdout


async def test_retention_retires_a_prefix_anchored_by_a_checkpoint(lone_trail: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(lone_trail))
    try:
        await _append(conn, 2)  # entries 6 and 7, after the checkpoint at 5
        key = signing_key(AUDIT_SIGNING_KEY)
        assert await retire(conn, key, before=datetime.now(UTC) - timedelta(days=1)) == 0
        assert await retire(conn, key, before=datetime.now(UTC) + timedelta(days=1)) == 4
        assert await conn.fetchval("SELECT min(seq) FROM intake.audit_log") == 5
    finally:
        await conn.close()
    kept = _verify(lone_trail)
    assert kept.returncode == 0 and "3 entries verified" in kept.stdout, kept.stdout
    conn = await asyncpg.connect(asyncpg_dsn(lone_trail))
    try:  # a prefix cut anywhere but at a checkpoint (as a superuser could, past the triggers)
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("DELETE FROM intake.audit_log WHERE seq = 5")
    finally:
        await conn.close()
    cut = _verify(lone_trail)
    assert cut.returncode == 1 and "entry 6" in cut.stdout, cut.stdout


async def test_reads_of_a_screenings_assessments_reach_the_trail(
    intake: httpx.AsyncClient, services: ServiceProcesses
) -> None:
    sid = (await intake.post("/v1/screenings", json=screening(HIGH_CSSRS), headers=HOTLINE)).json()[
        "id"
    ]
    deadline = time.monotonic() + 10
    async with httpx.AsyncClient(base_url=services.url("risk"), headers=CLINICIAN) as risk:
        while (
            read := await risk.get("/v1/assessments", params={"screening_id": sid})
        ).status_code != 200:
            assert time.monotonic() < deadline, read.text
            await asyncio.sleep(0.1)
    resource = f"screening/{sid}"  # reads before risk had assessed it: outcome not_found
    got = await _entries(intake, 1, action="assessments_of", resource=resource, outcome="success")
    assert [(e["service"], e["actor"]) for e in got] == [("risk", "dr-lee")]


def _read(i: int) -> dict:
    return new_entry(
        service="intake",
        actor=f"reader-{i}",
        role="clinician",
        credential_id="k",
        action="get_screening",
        resource=f"screening/{uuid.uuid4()}",
        outcome="success",
        client="127.0.0.1",
        correlation_id=str(uuid.uuid4()),
    )


async def _queue(conn: asyncpg.Connection, count: int) -> None:
    """`count` reads' entries queued in intake's outbox as a request queues them (the outbox
    numbers each at commit)."""
    for i in range(count):
        event = AuditRecorded(**_read(i)).event()
        row = event_row(topic=AUDIT_EVENTS, key=event.data["resource"], event=event)
        await conn.execute(insert_sql(intake_outbox), *row)


async def _deliver(conn: asyncpg.Connection) -> None:
    """What the relay, the broker and intake's consumer do with the queued entries, without the
    broker (this database has no services): each entry not yet processed is appended, in order."""
    async with conn.transaction():
        rows = await conn.fetch(
            "DELETE FROM intake.outbox WHERE topic = $1 RETURNING id, event_id, value", AUDIT_EVENTS
        )
        rows = sorted(rows, key=lambda r: r["id"])
        claimed = await conn.fetch(
            "INSERT INTO intake.processed_events (event_id, topic)"
            " SELECT unnest($1::uuid[]), $2 ON CONFLICT DO NOTHING RETURNING event_id",
            [r["event_id"] for r in rows],
            AUDIT_EVENTS,
        )
        fresh = {r["event_id"] for r in claimed}
        entries = [
            AuditRecorded.model_validate(Envelope.decode(r["value"]).data).model_dump()
            for r in rows
            if r["event_id"] in fresh
        ]
        await append_rows(conn, entries)


async def _as_the_services(conn: asyncpg.Connection, statements: str) -> bool:
    """Run `statements` as the services' own database role would (the retention setting on):
    True when the database let them through. When it refused, they are run again as a superuser
    who disables the triggers could: verify must catch them either way."""
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL triage.audit_retention = 'on'")
            await conn.execute(statements)
    except asyncpg.RaiseError as refused:
        assert "append-only" in str(refused) or "only moves forward" in str(refused)
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(statements)
        return False
    return True


async def test_a_prefix_deleted_with_the_retention_setting_is_caught(lone_trail: str) -> None:
    """Deleting everything before a recent checkpoint (entry 5) is not retention's doing."""
    conn = await asyncpg.connect(asyncpg_dsn(lone_trail))
    try:
        await _queue(conn, 2)
        await _deliver(conn)  # entries 6 and 7
        allowed = await _as_the_services(conn, "DELETE FROM intake.audit_log WHERE seq < 5")
    finally:
        await conn.close()
    assert not allowed, "the services' role could delete with the retention setting alone"
    done = _verify(lone_trail)
    assert done.returncode == 1, done.stdout
    assert "entries 1-4 are missing" in done.stdout, done.stdout


async def test_newest_entries_rewritten_with_the_head_are_caught(lone_trail: str) -> None:
    """After the checkpoint at 5: entries 6 and 7 replaced by a rewritten 6 alone (7 hidden),
    hashes recomputed and the head moved onto it, before any checkpoint signs it."""
    conn = await asyncpg.connect(asyncpg_dsn(lone_trail))
    try:
        await _queue(conn, 2)
        await _deliver(conn)
        six = dict(await conn.fetchrow("SELECT * FROM intake.audit_log WHERE seq = 6"))
        seven = await conn.fetchval("SELECT service_seq FROM intake.audit_log WHERE seq = 7")
        forged = {**six, "actor": "someone-else"}
        digest = chain_hash(six["prev_hash"], 6, forged)
        allowed = await _as_the_services(
            conn,
            "DELETE FROM intake.audit_log WHERE seq >= 6;"
            "UPDATE intake.audit_head SET (seq, hash) ="
            " (SELECT seq, hash FROM intake.audit_log WHERE seq = 5)",
        )
        assert not allowed, "the services' role could delete the newest entries"
        await append_rows(conn, [forged])  # the forger's entry 6, chained and the head moved
        assert await conn.fetchval("SELECT hash FROM intake.audit_head") == digest
    finally:
        await conn.close()
    done = _verify(lone_trail)
    assert done.returncode == 1, done.stdout
    assert f"intake: entry numbers {seven} are missing" in done.stdout, done.stdout


async def test_a_checkpoint_refuses_to_sign_a_forged_head(
    lone_trail: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The head moved back onto entry 6 to hide entry 7 (as a superuser past the triggers): the
    next checkpoint finds the chain does not hold up to it and signs nothing."""
    conn = await asyncpg.connect(asyncpg_dsn(lone_trail))
    try:
        await _append(conn, 2)  # entries 6 and 7
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                "UPDATE intake.audit_head SET (seq, hash) ="
                " (SELECT seq, hash FROM intake.audit_log WHERE seq = 6)"
            )
        with caplog.at_level("ERROR", logger="services.intake.audit.checkpoints"):
            assert await write_checkpoint(conn, signing_key(AUDIT_SIGNING_KEY)) is None
        assert await conn.fetchval("SELECT max(seq) FROM intake.audit_checkpoints") == 5
    finally:
        await conn.close()
    assert "audit checkpoint refused" in caplog.text
    assert "entry 6" in caplog.text and "ends at 7" in caplog.text


async def _caught_in_the_outbox(
    intake: httpx.AsyncClient, db: asyncpg.Pool, attack: str
) -> asyncpg.Record:
    """A read's entry caught in intake's outbox before the relay sends it (audit entries wait
    up to a second for its next pass), and `attack` run on it (parameter: the entry's key): the
    row as it was queued."""
    for _ in range(20):
        sid = uuid.uuid4()
        assert (await intake.get(f"/v1/screenings/{sid}", headers=CLINICIAN)).status_code == 404
        row = await db.fetchrow(attack, f"screening/{sid}")
        if row is not None:
            return row
    raise AssertionError("the relay sent every entry before the test could reach it")


def _number(row: asyncpg.Record) -> int:
    return int(Envelope.decode(row["value"]).data["service_seq"])


async def _put_back(db: asyncpg.Pool, row: asyncpg.Record) -> None:
    """Queue the entry again (its number kept): the trail is whole again for the other tests."""
    await db.execute(
        "INSERT INTO intake.outbox (event_id, topic, key, value) VALUES ($1, $2, $3, $4)",
        row["event_id"],
        row["topic"],
        row["key"],
        row["value"],
    )
    deadline = time.monotonic() + 15
    find = "SELECT 1 FROM intake.audit_log WHERE entry_id = $1"
    while not await db.fetchval(find, row["event_id"]):
        assert time.monotonic() < deadline, "the entry put back never reached the trail"
        await asyncio.sleep(0.1)


async def test_an_entry_deleted_from_the_outbox_is_missing_by_number(
    intake: httpx.AsyncClient, database_url: str, db: asyncpg.Pool
) -> None:
    row = await _caught_in_the_outbox(
        intake,
        db,
        "DELETE FROM intake.outbox WHERE key = $1 RETURNING event_id, topic, key, value",
    )
    done = _verify(database_url)
    assert done.returncode == 1, done.stdout
    assert f"intake: entry numbers {_number(row)} are missing" in done.stdout, done.stdout
    await _put_back(db, row)
    again = _verify(database_url)
    assert again.returncode == 0, again.stdout


async def test_an_entry_dropped_as_already_processed_is_missing_by_number(
    intake: httpx.AsyncClient, database_url: str, db: asyncpg.Pool
) -> None:
    row = await _caught_in_the_outbox(
        intake,
        db,
        "WITH queued AS (SELECT event_id, topic, key, value FROM intake.outbox WHERE key = $1),"
        " claimed AS (INSERT INTO intake.processed_events (event_id, topic)"
        "  SELECT event_id, topic FROM queued ON CONFLICT DO NOTHING RETURNING event_id)"
        " SELECT queued.* FROM queued JOIN claimed USING (event_id)",
    )
    deadline = time.monotonic() + 15  # the relay sends it; intake's consumer drops it
    while await db.fetchval("SELECT 1 FROM intake.outbox WHERE event_id = $1", row["event_id"]):
        assert time.monotonic() < deadline, "the relay never sent the entry"
        await asyncio.sleep(0.1)
    done = _verify(database_url)
    assert done.returncode == 1, done.stdout
    assert f"intake: entry numbers {_number(row)} are missing" in done.stdout, done.stdout
    await db.execute("DELETE FROM intake.processed_events WHERE event_id = $1", row["event_id"])
    await _put_back(db, row)
    again = _verify(database_url)
    assert again.returncode == 0, again.stdout


async def test_retention_of_numbered_entries_is_signed_and_a_forged_record_is_caught(
    lone_trail: str,
) -> None:
    """Retention removes numbered entries too; its signed record says up to which number each
    service's entries are gone, so the rest still verify. A record forged (the database cannot
    check a signature) lets a delete through, but not past verify."""
    conn = await asyncpg.connect(asyncpg_dsn(lone_trail))
    try:
        await _queue(conn, 3)
        await _deliver(conn)  # entries 6-8, intake's first three in one lane
        seven = await conn.fetchval("SELECT service_seq FROM intake.audit_log WHERE seq = 7")
        assert await write_checkpoint(conn, signing_key(AUDIT_SIGNING_KEY)) == 8
        await _queue(conn, 1)
        await _deliver(conn)  # entry 9
        key = signing_key(AUDIT_SIGNING_KEY)
        assert await retire(conn, key, before=datetime.now(UTC) + timedelta(days=1)) == 7
        marks = await conn.fetchval("SELECT marks FROM intake.audit_prunings")
        assert json.loads(marks) == {f"intake/{seven % 16}": seven}
    finally:
        await conn.close()
    kept = _verify(lone_trail)
    assert kept.returncode == 0 and "2 entries verified" in kept.stdout, kept.stdout
    conn = await asyncpg.connect(asyncpg_dsn(lone_trail))
    try:
        await conn.execute(
            "INSERT INTO intake.audit_prunings (before_seq, hash, at, marks, key_id, signature)"
            " SELECT 9, hash, now(), '{}', 'x', 'AA==' FROM intake.audit_log WHERE seq = 9;"
            "INSERT INTO intake.audit_checkpoints (seq, hash, at, key_id, signature)"
            " SELECT 9, hash, now(), 'x', 'AA==' FROM intake.audit_log WHERE seq = 9"
        )
        assert await _as_the_services(conn, "DELETE FROM intake.audit_log WHERE seq < 9")
    finally:
        await conn.close()
    cut = _verify(lone_trail)
    assert cut.returncode == 1, cut.stdout
    assert "checkpoint at entry 9 has a bad signature" in cut.stdout, cut.stdout
