"""What a replay is compared with: a digest of the request without its PHI, and the PHI itself.

A replay (the same Idempotency-Key, or the same external_id in the submitter's replay scope)
must be the same request, or it is 409. The digest stored for that (`screenings.request_hash`,
`idempotency_keys.request_hash`) covers only what the screening's row holds in clear anyway
(subject, source, external_id, instrument, the validated answers, imminent danger), marked
`v2:`, and contact and notes are compared apart, decrypted from the screening the replay names:
an unkeyed digest over contact and notes, beside the encrypted values, would let whoever holds a
dump ask "did this number call?" in a fraction of a second. No key is involved, so rotating or
retiring keys never leaves a digest that cannot be compared.

An unmarked digest (64 hex digits: SHA-256 over the whole request, contact and notes included)
is still compared as it was made, so a replay of the request it was stored for is still told
apart; `triage phi rotate` rewrites those from the rows themselves
(`rewrite_old_digests`), after which a dump holds no digest of any PHI.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

from services.intake.screenings.schemas import ScreeningIn
from shared.locales import DEFAULT_LANGUAGE

MARK = "v2:"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def digest_of(
    *,
    subject_id: str,
    source: str,
    external_id: str | None,
    instrument: str,
    answers: Mapping[str, Any],
    imminent_danger: bool,
    locale: Mapping[str, str] | None = None,
) -> str:
    """The request's digest without PHI. `locale`: the language, country and region the
    request named, if any (left out when none was named, so the digests of requests from
    before languages are unchanged)."""
    fields: dict[str, Any] = {
        "subject_id": subject_id,
        "source": source,
        "external_id": external_id,
        "instrument": instrument,
        "answers": answers,
        "imminent_danger": imminent_danger,
    }
    if locale:
        fields["locale"] = dict(locale)
    return MARK + hashlib.sha256(_canonical(fields)).hexdigest()


def request_digest(payload: ScreeningIn, answers: Mapping[str, Any]) -> str:
    """`payload`'s digest; `answers` are its validated answers (as the row stores them)."""
    return digest_of(
        subject_id=payload.subject_id,
        source=payload.source,
        external_id=payload.external_id,
        instrument=payload.instrument,
        answers=answers,
        imminent_danger=payload.imminent_danger,
        locale={
            name: value
            for name, value in (
                ("language", payload.language if payload.language != DEFAULT_LANGUAGE else None),
                ("country", payload.country),
                ("region", payload.region),
            )
            if value is not None
        },
    )


def _old_digest(payload: ScreeningIn) -> str:
    """The digest stored before `v2:`: SHA-256 over the whole request, PHI included."""
    return hashlib.sha256(_canonical(payload.model_dump(mode="json"))).hexdigest()


def same_request(
    stored: str,
    payload: ScreeningIn,
    answers: Mapping[str, Any],
    phi: Callable[[], tuple[dict[str, Any] | None, str | None]],
) -> bool:
    """Whether `payload` is the request `stored` was made from. `phi` opens the contact and
    notes of the screening it made (called only for a `v2:` digest that matches)."""
    if not stored.startswith(MARK):
        return hmac.compare_digest(stored, _old_digest(payload))
    if not hmac.compare_digest(stored, request_digest(payload, answers)):
        return False
    contact, notes = phi()
    wanted = payload.contact.model_dump(exclude_none=True) if payload.contact else None
    return contact == wanted and notes == payload.notes


# --- `triage phi rotate`: old digests rewritten from the rows ------------------------------------

_OLD = f"request_hash NOT LIKE '{MARK}%'"
_COUNT_OLD = f"""
    SELECT (SELECT count(*) FROM intake.screenings WHERE {_OLD})
         + (SELECT count(*) FROM intake.idempotency_keys WHERE {_OLD})
"""
_ROW = "s.subject_id, s.source, s.external_id, s.instrument, s.answers::text, s.imminent_danger"
_OLD_SCREENINGS = f"""
    SELECT s.id AS row_key, {_ROW} FROM intake.screenings s
     WHERE s.{_OLD} LIMIT $1 FOR UPDATE SKIP LOCKED
"""
#: A key's digest is its screening's: the key is stored only with the screening its request made.
_OLD_KEYS = f"""
    SELECT k.key AS row_key, {_ROW} FROM intake.idempotency_keys k
      JOIN intake.screenings s ON s.id = k.screening_id
     WHERE k.{_OLD} LIMIT $1 FOR UPDATE OF k SKIP LOCKED
"""
_REWRITES = (
    (_OLD_SCREENINGS, "UPDATE intake.screenings SET request_hash = $2 WHERE id = $1"),
    (_OLD_KEYS, "UPDATE intake.idempotency_keys SET request_hash = $2 WHERE key = $1"),
)


def _row_digest(row: asyncpg.Record) -> str:
    return digest_of(
        subject_id=row["subject_id"],
        source=row["source"],
        external_id=row["external_id"],
        instrument=row["instrument"],
        answers=json.loads(row["answers"]),
        imminent_danger=row["imminent_danger"],
    )


async def old_digests(conn: asyncpg.Connection) -> int:
    """How many stored digests are of the old kind (PHI inside)."""
    return int(await conn.fetchval(_COUNT_OLD))


async def rewrite_old_digests(
    conn: asyncpg.Connection,
    *,
    batch: int = 500,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Rewrite every old digest from its row, in batches each committed on its own (resumable,
    as the rest of the rotation); how many were rewritten."""
    done = 0
    for select, update in _REWRITES:
        while True:
            async with conn.transaction():
                rows = await conn.fetch(select, batch)
                if rows:
                    await conn.executemany(update, [(r["row_key"], _row_digest(r)) for r in rows])
            if not rows:
                break
            done += len(rows)
            progress(len(rows))
    return done
