"""The one audit trail: entries appended in a hash chain, read back, and verified.

Intake's consumer appends every `audit.recorded` event (its own and risk's and notify's) a
poll at a time (`append`): it locks the chain's head row (so appends are serialised across
replicas), gives each new entry the next seq and the hash over the previous hash, the seq and
the entry's canonical form (`shared.audit.chain_hash`, the function `verify` uses), inserts them
all in one statement and moves the head: four round trips for a poll's entries, not one each.
`verify` recomputes the chain from the rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.audit.checkpoints import anchored, check_checkpoints, pruning_signed
from services.intake.audit.numbering import numbering_failure
from shared.audit import FIELDS, GENESIS, NUMBERED, AuditRecorded, chain_hash
from shared.db import driver
from shared.events import utcnow

COLUMNS = ", ".join((*FIELDS, NUMBERED))
_TYPES = {"entry_id": "uuid", "at": "timestamptz", NUMBERED: "bigint"}  # the others are text
_HEAD = "SELECT seq, hash FROM intake.audit_head FOR UPDATE"
_KNOWN = "SELECT entry_id FROM intake.audit_log WHERE entry_id = ANY($1::uuid[])"
_ARRAYS = ", ".join(
    f"${i}::{t}[]"
    for i, t in enumerate(
        ("bigint", *(_TYPES.get(f, "text") for f in (*FIELDS, NUMBERED)), "text", "text"), 1
    )
)
_INSERT = f"""
    INSERT INTO intake.audit_log (seq, {COLUMNS}, prev_hash, hash)
    SELECT * FROM unnest({_ARRAYS})
"""
_MOVE = "UPDATE intake.audit_head SET seq = $1, hash = $2"


async def append(session: AsyncSession, entries: Sequence[AuditRecorded]) -> None:
    """Append `entries` in their order, in the consumer's transaction."""
    await append_rows(await driver(session), [entry.model_dump() for entry in entries])


async def append_rows(conn: asyncpg.Connection, entries: Sequence[dict[str, Any]]) -> None:
    """Append `entries` (dicts of FIELDS) in their order, within `conn`'s transaction; an
    entry already in the trail (a redelivery) is left out."""
    head = await conn.fetchrow(_HEAD)  # first: another replica's appends wait from here on
    known = {row[0] for row in await conn.fetch(_KNOWN, [e["entry_id"] for e in entries])}
    seq, prev = head["seq"], head["hash"]
    rows = []
    for entry in entries:
        if entry["entry_id"] in known:
            continue
        known.add(entry["entry_id"])
        seq += 1
        digest = chain_hash(prev, seq, entry)
        numbered = entry.get(NUMBERED)
        rows.append((seq, *(entry[name] for name in FIELDS), numbered, prev, digest))
        prev = digest
    if rows:
        await conn.execute(_INSERT, *(list(column) for column in zip(*rows, strict=True)))
        await conn.execute(_MOVE, seq, prev)


@dataclass(frozen=True)
class Verdict:
    entries: int
    #: The first entry that fails, and why; None when the whole chain holds.
    failure: str | None = None


def check_chain(
    rows: Sequence[dict[str, Any]], head: dict[str, Any] | None, *, anchored: bool = False
) -> Verdict:
    """Walk the entries in seq order: consecutive seqs from 1 (or, after retention, from the
    entry a signed checkpoint anchors), each linked to the one before, each hash right for its
    content; the head names the last one."""
    prev, start = GENESIS, 1
    if rows and rows[0]["seq"] != 1:
        if not anchored:
            first = rows[0]["seq"]
            return Verdict(
                len(rows), f"entry {first} follows no signed checkpoint (entries before it gone)"
            )
        prev, start = rows[0]["prev_hash"], rows[0]["seq"]
    for expected_seq, row in enumerate(rows, start=start):
        seq = row["seq"]
        if seq != expected_seq:
            return Verdict(len(rows), f"entry {expected_seq} is missing (next found: {seq})")
        if row["prev_hash"] != prev:
            return Verdict(len(rows), f"entry {seq} does not follow entry {seq - 1}")
        if row["hash"] != chain_hash(prev, seq, row):
            return Verdict(len(rows), f"entry {seq} was altered (its hash does not match)")
        prev = row["hash"]
    last = rows[-1]["seq"] if rows else 0
    if head is not None and (head["seq"], head["hash"]) != (last, prev):
        return Verdict(
            len(rows), f"the chain's head names entry {head['seq']}, the trail ends at {last}"
        )
    return Verdict(len(rows))


_PRUNINGS = "SELECT before_seq, hash, at, marks, signature FROM intake.audit_prunings"


def _prefix(
    rows: Sequence[dict[str, Any]],
    checkpoints: list[dict[str, Any]],
    prunings: list[dict[str, Any]],
    public: Ed25519PublicKey | None,
    retention_days: float | None,
) -> tuple[bool, dict[str, int], str | None]:
    """Whether the entries before the first kept one were removed by retention: (anchored,
    per service the highest number removed, failure). Retention leaves a signed record naming
    the first entry it kept; a trail pruned before such records were written is accepted when
    its first entry is older than the retention horizon and a checkpoint names it."""
    if public is None:
        return False, {}, None
    for pruning in prunings:
        if not pruning_signed(pruning, public):
            return (
                False,
                {},
                f"the retention record at entry {pruning['before_seq']} has a bad signature",
            )
    if not rows or rows[0]["seq"] == 1:
        return False, {}, None
    first = rows[0]
    record = next((p for p in prunings if p["before_seq"] == first["seq"]), None)
    if record is not None and record["hash"] == first["hash"] and anchored(checkpoints, first):
        return True, {k: int(v) for k, v in json.loads(record["marks"]).items()}, None
    if (
        record is None
        and retention_days is not None
        and first["at"] < utcnow() - timedelta(days=retention_days)
        and anchored(checkpoints, first)
    ):
        return True, {}, None
    return (
        False,
        {},
        f"entries 1-{first['seq'] - 1} are missing: no signed retention record covers their"
        f" removal, and entry {first['seq']} is younger than the retention horizon",
    )


async def verify(
    conn: asyncpg.Connection,
    public: Ed25519PublicKey | None = None,
    *,
    retention_days: float | None = None,
    grace: float = 3.0,
) -> Verdict:
    """The chain, then (with the checkpoints' public key) every signed checkpoint and retention
    record, then each service's numbering of its entries."""
    # One snapshot for the entries, the head, the checkpoints and the retention records: the
    # trail is appended while it is verified, and a head (or checkpoint) read a moment after
    # the entries could name one they did not include.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rows = [
            dict(r)
            for r in await conn.fetch(
                f"SELECT seq, {COLUMNS}, prev_hash, hash FROM intake.audit_log ORDER BY seq"
            )
        ]
        head = await conn.fetchrow("SELECT seq, hash FROM intake.audit_head")
        checkpoints = [
            dict(r)
            for r in await conn.fetch(
                "SELECT seq, hash, at, signature FROM intake.audit_checkpoints ORDER BY seq"
            )
        ]
        prunings = [dict(r) for r in await conn.fetch(_PRUNINGS + " ORDER BY before_seq")]
    # A cut tail is caught by the checkpoints first: the head row may have been rewritten too.
    failure = check_checkpoints(checkpoints, {r["seq"]: r["hash"] for r in rows}, public)
    if failure is not None:
        return Verdict(len(rows), failure)
    ok, floors, failure = _prefix(rows, checkpoints, prunings, public, retention_days)
    if failure is not None:
        return Verdict(len(rows), failure)
    verdict = check_chain(rows, dict(head) if head else None, anchored=ok)
    if verdict.failure is not None:
        return verdict
    return Verdict(len(rows), await numbering_failure(conn, floors, grace=grace))
