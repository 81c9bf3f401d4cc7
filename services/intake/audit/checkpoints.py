"""Signed checkpoints of the audit chain (Ed25519, `cryptography`).

The hash chain shows an edited, deleted or reordered entry, but not a tail cut off together with
a rewritten head row: whoever can write the database can do both. A checkpoint signs the head
(seq, hash, time) with a key that is not in the database; `triage audit verify` checks every
signature and that the chain still holds that hash at that seq, with the public key alone
(`AUDIT_VERIFY_KEY`): whoever verifies cannot sign.

Before signing, a checkpoint re-verifies the chain it vouches for since the previous one (each
link, each hash, the head naming the last entry) and refuses, signing nothing, when it does not
hold: a head moved onto a forged entry is not made to look vouched for.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from datetime import datetime, timedelta

import asyncpg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.events import utcnow

log = logging.getLogger(__name__)

_LATEST = "SELECT seq FROM intake.audit_checkpoints ORDER BY seq DESC LIMIT 1"
_INSERT = """
    INSERT INTO intake.audit_checkpoints (seq, hash, at, key_id, signature)
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING
"""


def signing_key(encoded: str) -> Ed25519PrivateKey:
    """AUDIT_SIGNING_KEY: the 32-byte Ed25519 private key, base64."""
    try:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(encoded, validate=True))
    except ValueError as exc:
        raise ValueError("AUDIT_SIGNING_KEY must be 32 bytes of Ed25519 key, base64") from exc


def verify_key(encoded: str) -> Ed25519PublicKey:
    """AUDIT_VERIFY_KEY: the 32-byte Ed25519 public key, base64."""
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded, validate=True))
    except ValueError as exc:
        raise ValueError("AUDIT_VERIFY_KEY must be 32 bytes of Ed25519 public key, base64") from exc


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The AUDIT_VERIFY_KEY that goes with a signing key."""
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def new_signing_key() -> str:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    raw = Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    return base64.b64encode(raw).decode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _payload(seq: int, chain_hash: str, at: datetime) -> bytes:
    when = at.isoformat(timespec="microseconds")
    return f"triage-audit-checkpoint|{seq}|{chain_hash}|{when}".encode()


def _pruning_payload(before_seq: int, chain_hash: str, at: datetime, marks: str) -> bytes:
    when = at.isoformat(timespec="microseconds")
    return f"triage-audit-pruning|{before_seq}|{chain_hash}|{when}|{marks}".encode()


def marks_text(marks: dict[str, int]) -> str:
    """Per service and lane (`intake/3`), the highest entry number retention removed: the form
    that is signed."""
    return json.dumps(dict(sorted(marks.items())), separators=(",", ":"))


def sign_pruning(
    key: Ed25519PrivateKey, before_seq: int, chain_hash: str, at: datetime, marks: str
) -> tuple[str, str]:
    """(key id, signature) of a retention record."""
    signature = key.sign(_pruning_payload(before_seq, chain_hash, at, marks))
    return key_id(key.public_key()), base64.b64encode(signature).decode()


def pruning_signed(pruning: dict, public: Ed25519PublicKey) -> bool:
    payload = _pruning_payload(
        pruning["before_seq"], pruning["hash"], pruning["at"], pruning["marks"]
    )
    try:
        public.verify(base64.b64decode(pruning["signature"]), payload)
    except (InvalidSignature, ValueError):
        return False
    return True


_SINCE = """
    SELECT seq, {columns}, prev_hash, hash FROM intake.audit_log WHERE seq >= $1 ORDER BY seq
"""
_LATEST_SIGNED = "SELECT seq, hash FROM intake.audit_checkpoints ORDER BY seq DESC LIMIT 1"


async def segment_failure(conn: asyncpg.Connection, head: asyncpg.Record) -> str | None:
    """Why the chain from the previous checkpoint to `head` does not hold, or None (read in the
    same snapshot as `head`: an entry past it is one the head hides, not one appended since)."""
    from services.intake.audit.service import COLUMNS, check_chain

    last = await conn.fetchrow(_LATEST_SIGNED)
    start = last["seq"] if last is not None else 1
    rows = [dict(r) for r in await conn.fetch(_SINCE.format(columns=COLUMNS), start)]
    if last is not None and (not rows or (rows[0]["seq"], rows[0]["hash"]) != tuple(last)):
        return f"entry {last['seq']} no longer matches its signed checkpoint"
    if last is None and rows and rows[0]["seq"] != 1:
        return f"entry {rows[0]['seq']} follows no signed checkpoint (entries before it gone)"
    return check_chain(rows, dict(head), anchored=last is not None).failure


async def write_checkpoint(conn: asyncpg.Connection, key: Ed25519PrivateKey) -> int | None:
    """Sign the head if it moved since the last checkpoint and the chain up to it holds; the
    seq signed, or None."""
    async with conn.transaction(isolation="repeatable_read"):  # the head and chain, one snapshot
        head = await conn.fetchrow("SELECT seq, hash FROM intake.audit_head")
        if head is None or head["seq"] == 0 or head["seq"] == await conn.fetchval(_LATEST):
            return None
        failure = await segment_failure(conn, head)
        if failure is not None:
            log.error("audit checkpoint refused, the chain does not hold: %s", failure)
            return None
        at = utcnow()
        signature = key.sign(_payload(head["seq"], head["hash"], at))
        await conn.execute(
            _INSERT,
            head["seq"],
            head["hash"],
            at,
            key_id(key.public_key()),
            base64.b64encode(signature).decode(),
        )
    return int(head["seq"])


def check_checkpoints(
    checkpoints: list[dict], hashes: dict[int, str], public: Ed25519PublicKey | None
) -> str | None:
    """The first checkpoint that fails, and why; None when all hold. Checkpoints of entries
    removed by retention are skipped, except the one that anchors the first kept entry."""
    if public is None:
        return None
    first = min(hashes, default=None)
    for cp in checkpoints:
        if first is not None and cp["seq"] < first:
            continue  # its entry was retired
        try:
            public.verify(
                base64.b64decode(cp["signature"]), _payload(cp["seq"], cp["hash"], cp["at"])
            )
        except (InvalidSignature, ValueError):
            return f"checkpoint at entry {cp['seq']} has a bad signature"
        if cp["seq"] not in hashes:
            return f"entry {cp['seq']} is missing (a signed checkpoint names it)"
        if hashes[cp["seq"]] != cp["hash"]:
            return f"entry {cp['seq']} does not match its signed checkpoint"
    return None


def anchored(checkpoints: list[dict], first: dict) -> bool:
    """Whether a signed checkpoint vouches for the first kept entry (after retention removed
    the entries before it)."""
    return any(cp["seq"] == first["seq"] and cp["hash"] == first["hash"] for cp in checkpoints)


async def run_checkpoints(
    dsn: str, key: Ed25519PrivateKey, *, every: float, retention_days: float | None = None
) -> None:
    """Write a checkpoint every `every` seconds for the service's lifetime, and retire what
    retention allows."""
    from services.intake.audit.retention import retire

    while True:
        await asyncio.sleep(every)
        try:
            conn = await asyncpg.connect(dsn)
            try:
                await write_checkpoint(conn, key)
                if retention_days is not None:
                    retired = await retire(
                        conn, key, before=utcnow() - timedelta(days=retention_days)
                    )
                    if retired:
                        log.info("retention: %d audit entries retired", retired)
            finally:
                await conn.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("audit checkpoint not written: %s", type(exc).__name__)
