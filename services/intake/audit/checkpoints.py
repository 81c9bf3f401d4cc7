"""Signed checkpoints of the audit chain (Ed25519, `cryptography`).

The hash chain shows an edited, deleted or reordered entry, but not a tail cut off together with
a rewritten head row: whoever can write the database can do both. A checkpoint signs the head
(seq, hash, time) with a key that is not in the database; `triage audit verify` checks every
signature and that the chain still holds that hash at that seq.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
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


async def write_checkpoint(conn: asyncpg.Connection, key: Ed25519PrivateKey) -> int | None:
    """Sign the head if it moved since the last checkpoint; the seq signed, or None."""
    head = await conn.fetchrow("SELECT seq, hash FROM intake.audit_head")
    if head is None or head["seq"] == 0 or head["seq"] == await conn.fetchval(_LATEST):
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
                    retired = await retire(conn, before=utcnow() - timedelta(days=retention_days))
                    if retired:
                        log.info("retention: %d audit entries retired", retired)
            finally:
                await conn.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("audit checkpoint not written: %s", type(exc).__name__)
