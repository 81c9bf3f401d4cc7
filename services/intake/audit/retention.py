"""Retention of the audit trail without breaking its chain.

Entries older than `AUDIT_RETENTION_DAYS` (six years by default: HIPAA's retention for such
records) are removed as a prefix, up to the newest entry older than the cut-off that a signed
checkpoint names, which is kept: the checkpoint vouches for its hash, so `triage audit verify`
anchors the kept chain there; a prefix cut anywhere else fails.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

_ANCHOR = """
    SELECT max(c.seq) FROM intake.audit_checkpoints AS c
      JOIN intake.audit_log AS l ON l.seq = c.seq
     WHERE l.at < $1
"""


async def retire(conn: asyncpg.Connection, *, before: datetime) -> int:
    """Remove the entries before the newest checkpointed one older than `before` (which is
    kept: the checkpoint vouches for its hash); how many."""
    anchor = await conn.fetchval(_ANCHOR, before)
    if anchor is None:
        return 0
    async with conn.transaction():
        await conn.execute("SET LOCAL triage.audit_retention = 'on'")
        status = await conn.execute("DELETE FROM intake.audit_log WHERE seq < $1", anchor)
    return int(status.split()[-1])
