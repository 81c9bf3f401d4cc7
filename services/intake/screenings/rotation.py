"""`triage phi rotate`: re-encrypt the screenings' contact and notes under the current key.

In batches by id, each committed on its own, touching only rows not yet under the current key
(or stored before encryption), so it can be stopped and run again: it resumes where it was.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from shared.phi import PREFIX, KeyRing, aad

_NOT_CURRENT = f"""
    (contact IS NOT NULL AND contact NOT LIKE '{PREFIX}' || $1 || ':%')
    OR (notes IS NOT NULL AND notes NOT LIKE '{PREFIX}' || $1 || ':%')
"""
_COUNT = f"SELECT count(*) FROM intake.screenings WHERE {_NOT_CURRENT}"
_BATCH = f"""
    SELECT id, contact, notes FROM intake.screenings
     WHERE id > $2 AND ({_NOT_CURRENT}) ORDER BY id LIMIT $3 FOR UPDATE
"""
_UPDATE = "UPDATE intake.screenings SET contact = $2, notes = $3 WHERE id = $1"


async def remaining(conn: asyncpg.Connection, ring: KeyRing) -> int:
    return int(await conn.fetchval(_COUNT, ring.current))


async def rotate(
    conn: asyncpg.Connection,
    ring: KeyRing,
    *,
    batch: int = 500,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Re-encrypt every row not under `ring.current`; how many rows were rewritten."""
    done, after = 0, "00000000-0000-0000-0000-000000000000"
    while True:
        async with conn.transaction():
            rows = await conn.fetch(_BATCH, ring.current, after, batch)
            for row in rows:
                values = []
                for column in ("contact", "notes"):
                    where = aad("intake.screenings", column, row["id"])
                    values.append(ring.seal(ring.open(row[column], aad=where), aad=where))
                await conn.execute(_UPDATE, row["id"], *values)
        if not rows:
            return done
        done += len(rows)
        after = str(rows[-1]["id"])
        progress(len(rows))
