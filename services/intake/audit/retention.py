"""Retention of the audit trail without breaking its chain.

Entries older than `AUDIT_RETENTION_DAYS` (six years by default: HIPAA's retention for such
records) are removed as a prefix, up to the newest entry older than the cut-off that a signed
checkpoint names, which is kept: the checkpoint vouches for its hash, so `triage audit verify`
anchors the kept chain there. Each pruning leaves a signed record (`intake.audit_prunings`): the
first entry kept and, per service and numbering lane, the highest entry number removed so far,
so verify knows the missing prefix was retention's and where each service's numbering resumes.
The database lets the delete through only when such a record covers it (intake migration 0013);
a prefix removed any other way fails verification.
"""

from __future__ import annotations

import json
from datetime import datetime

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.intake.audit.checkpoints import marks_text, sign_pruning
from services.intake.audit.numbering import LANES, mark_key
from shared.events import utcnow

_ANCHOR = """
    SELECT c.seq, c.hash FROM intake.audit_checkpoints AS c
      JOIN intake.audit_log AS l ON l.seq = c.seq
     WHERE l.at < $1
     ORDER BY c.seq DESC LIMIT 1
"""
_PREVIOUS = "SELECT marks FROM intake.audit_prunings ORDER BY before_seq DESC LIMIT 1"
_REMOVED = """
    SELECT service, max(service_seq) AS mark FROM intake.audit_log
     WHERE seq < $1 AND service_seq IS NOT NULL GROUP BY service, service_seq % $2
"""
_RECORD = """
    INSERT INTO intake.audit_prunings (before_seq, hash, at, marks, key_id, signature)
    VALUES ($1, $2, $3, $4, $5, $6)
"""


async def retire(conn: asyncpg.Connection, key: Ed25519PrivateKey, *, before: datetime) -> int:
    """Remove the entries before the newest checkpointed one older than `before` (which is
    kept: the checkpoint vouches for its hash), recording the pruning signed; how many."""
    anchor = await conn.fetchrow(_ANCHOR, before)
    if anchor is None or anchor["seq"] <= 1:
        return 0
    async with conn.transaction():
        if not await conn.fetchval("SELECT 1 FROM intake.audit_log WHERE seq < $1", anchor["seq"]):
            return 0  # retired by an earlier pass
        previous = await conn.fetchval(_PREVIOUS)
        marks: dict[str, int] = json.loads(previous) if previous else {}
        for row in await conn.fetch(_REMOVED, anchor["seq"], LANES):
            lane = mark_key(row["service"], int(row["mark"]))
            marks[lane] = max(marks.get(lane, 0), int(row["mark"]))
        text, at = marks_text(marks), utcnow()
        key_id, signature = sign_pruning(key, anchor["seq"], anchor["hash"], at, text)
        await conn.execute(_RECORD, anchor["seq"], anchor["hash"], at, text, key_id, signature)
        await conn.execute("SET LOCAL triage.audit_retention = 'on'")
        status = await conn.execute("DELETE FROM intake.audit_log WHERE seq < $1", anchor["seq"])
    return int(status.split()[-1])
