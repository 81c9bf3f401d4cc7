"""After the load: the case view read with contact (what a clinician opens from a page), and the
audit trail the run left (its size per 10,000 screenings, and `triage audit verify` on it)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from bench.client import HttpClient
from bench.loadgen import Sent
from bench.report import Distribution
from shared.db import asyncpg_dsn


async def case_view_reads(
    intake_url: str, api_key: str | None, sents: Sequence[Sent], *, count: int = 1000
) -> Distribution:
    """`count` case views, one at a time, of the run's screenings (with contact and notes: the
    bench key sees them, so each is decrypted and its audit entry committed before the answer)."""
    ids = [s.screening_id for s in sents if s.ok and s.screening_id]
    client = HttpClient(intake_url, max_connections=1, api_key=api_key)
    seconds: list[float] = []
    try:
        for i in range(min(count, len(ids) * 4)):
            raw = client.get_bytes(f"/v1/screenings/{ids[(i * 7919) % len(ids)]}")
            started = time.perf_counter()
            status, body = await client.send(raw)
            elapsed = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"a case view answered {status}: {body[:200]!r}")
            if i >= 50:  # the first reads warm the connection and caches
                seconds.append(elapsed)
    finally:
        await client.aclose()
    return Distribution.of(seconds)


_TRAIL = """
    SELECT (SELECT count(*) FROM intake.audit_log) AS entries,
           pg_total_relation_size('intake.audit_log') AS bytes,
           (SELECT count(*) FROM intake.screenings) AS screenings
"""


async def audit_trail(database_url: str, signing_key: str) -> dict[str, object]:
    """The trail's entries and bytes (with indexes), per 10,000 screenings, and whether
    `triage audit verify` passes on it; {} on a tree without a trail."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        row = await conn.fetchrow(_TRAIL)
    except asyncpg.UndefinedTableError:
        return {}
    finally:
        await conn.close()
    screenings = max(1, row["screenings"])
    triage = Path(sys.executable).with_name("triage")
    verify = await asyncio.to_thread(
        subprocess.run,
        [str(triage), "audit", "verify"],
        env={  # the signing key's own public half, whatever AUDIT_VERIFY_KEY the shell has
            **os.environ,
            "DATABASE_URL": database_url,
            "AUDIT_VERIFY_KEY": "",
            "AUDIT_SIGNING_KEY": signing_key,
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    return {
        "entries": row["entries"],
        "bytes": row["bytes"],
        "screenings": row["screenings"],
        "entries_per_10k_screenings": round(row["entries"] * 10_000 / screenings),
        "mib_per_10k_screenings": round(row["bytes"] * 10_000 / screenings / 2**20, 2),
        "verify": (verify.stdout or verify.stderr).strip().splitlines()[-1:],
        "verified": verify.returncode == 0,
    }
