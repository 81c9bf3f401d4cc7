"""Screenings: accept them exactly once (the case view, and keeping it current from events, are
`cases/`)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, true
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.db import sealed
from services.intake.screenings.digest import request_digest, same_request
from services.intake.screenings.models import Screening
from services.intake.screenings.queries import (
    FIND_KEY,
    INSERT_KEY,
    INSERT_SCREENING,
    INSERT_SCREENING_AUDITED,
    screening_params,
)
from services.intake.screenings.schemas import ScreeningIn
from services.intake.screenings.scope import replay_scope, visible
from shared import audit
from shared.auth import Principal
from shared.db import driver
from shared.errors import Conflict, NotFound, Unprocessable, validation_problems
from shared.events import ScreeningSubmitted, utcnow
from shared.instruments import parse_answers
from shared.locales import DEFAULT_LANGUAGE
from shared.outbox import event_row
from shared.phi import KeyRing, ring_of
from shared.topics import SCREENING_SUBMITTED

log = logging.getLogger(__name__)


def validated_answers(payload: ScreeningIn) -> dict[str, Any]:
    """The instrument's answers checked (types, ranges, skip logic); 422 names each problem."""
    try:
        answers = parse_answers(payload.instrument, payload.answers)
    except ValidationError as exc:
        problems = [
            {**p, "field": f"answers.{p['field']}" if p["field"] != "body" else "answers"}
            for p in validation_problems(exc.errors())
        ]
        raise Unprocessable(f"invalid {payload.instrument} answers", problems=problems) from exc
    return answers.model_dump(mode="json", exclude_none=True)


class ConcurrentDuplicate(Exception):
    """A concurrent request with the same Idempotency-Key committed first: roll back and retry
    once; the retry finds that request's screening as a replay."""


async def submit_screening(
    session: AsyncSession,
    *,
    payload: ScreeningIn,
    answers: dict[str, Any],
    idempotency_key: str | None,
    correlation_id: str,
    principal: Principal,
    filed_under: str | None,
    phi: KeyRing | None = None,
    alone: bool = False,
    default_country: str | None = None,
) -> tuple[Screening, bool]:
    """Store a screening and queue its event in the caller's transaction.

    Returns (screening, created); a replay returns the first screening, and the same key or
    external_id with a different body is 409. Raises ConcurrentDuplicate when a concurrent
    request with the same Idempotency-Key won: the caller retries once.

    `alone`: the caller's session holds nothing else to commit with the screening, so without
    an Idempotency-Key no transaction is opened and the one statement commits by itself.

    The person's country is the payload's, else `default_country` (the deployment's
    DEFAULT_COUNTRY), recorded as it was when the screening came in.

    `contact` and `notes` are stored encrypted under `phi` (bound to the screening's row).
    The screening is recorded as `principal`'s and filed under `filed_under` (object scope);
    an Idempotency-Key is the credential's own, as with Stripe's keys per account, and an
    external_id is looked for in the submitter's replay scope only (`scope.replay_scope`): a
    replay is always a screening the caller can read, never another caller's.

    Every screening passes here, so the statements go straight to asyncpg (`shared.db.driver`):
    a look-up only for an Idempotency-Key, then one statement that stores the screening and its
    event, or finds that the EHR message was sent before.
    """
    digest = request_digest(payload, answers)
    replay = replay_scope(principal, filed_under)
    ring = phi if phi is not None else ring_of(session)
    if idempotency_key is not None:
        idempotency_key = f"{principal.credential_id}:{idempotency_key}"
    conn = await driver(session, begin=not alone or idempotency_key is not None)
    if idempotency_key is not None:
        key = await conn.fetchrow(FIND_KEY, idempotency_key)
        if key is not None:
            stored = await _stored(session, key["screening_id"])
            if not same_request(key["request_hash"], payload, answers, _phi(stored, ring)):
                raise Conflict("Idempotency-Key was already used with a different request body")
            audit.about(f"screening/{stored.id}")
            return stored, False
    now = utcnow()
    screening_id = uuid.uuid4()
    screening = Screening(
        id=screening_id,
        subject_id=payload.subject_id,
        source=payload.source,
        external_id=payload.external_id,
        instrument=payload.instrument,
        answers=answers,
        imminent_danger=payload.imminent_danger,
        contact=_CONTACT.seal(phi, {"id": screening_id}, _contact_json(payload)),
        notes=_NOTES.seal(phi, {"id": screening_id}, payload.notes),
        request_hash=digest,
        status="received",
        received_at=now,
        updated_at=now,
        submitted_by=principal.credential_id,
        filed_under=filed_under,
        replay_scope=replay,
        language=payload.language,
        country=payload.country or default_country,
        region=payload.region,
    )
    event = ScreeningSubmitted(
        screening_id=screening.id,
        source=payload.source,
        instrument=payload.instrument,
        answers=answers,
        imminent_danger=payload.imminent_danger,
        submitted_at=now,
        language=payload.language,
    ).envelope(correlation_id=correlation_id)
    audit.about(f"screening/{screening.id}")
    scope = audit.current()
    fused = scope.fused_row() if scope is not None else None
    inserted = await conn.fetchval(
        INSERT_SCREENING if fused is None else INSERT_SCREENING_AUDITED,
        *screening_params(screening),
        *event_row(topic=SCREENING_SUBMITTED, key=screening.id, event=event),
        *(fused or ()),
    )
    if inserted is None:
        if scope is not None and fused is not None:
            scope.unstage()  # nothing was inserted: the entry goes in at commit instead
        resent = await _resent(session, payload, answers, replay, ring)
        audit.about(f"screening/{resent.id}")
        return resent, False
    if idempotency_key is not None and not await conn.fetchval(
        INSERT_KEY, idempotency_key, digest, screening.id, now
    ):
        raise ConcurrentDuplicate(idempotency_key)
    return screening, True


def _contact_json(payload: ScreeningIn) -> str | None:
    return json.dumps(payload.contact.model_dump(exclude_none=True)) if payload.contact else None


_CONTACT, _NOTES = sealed("screenings")[:2]


def opened(screening: Screening, phi: KeyRing | None) -> tuple[dict[str, Any] | None, str | None]:
    """The screening's contact and notes in clear; PhiUnreadable when they do not decrypt."""
    contact = _CONTACT.open(phi, screening, screening.contact)
    return (json.loads(contact) if contact else None), _NOTES.open(phi, screening, screening.notes)


def _phi(
    screening: Screening, phi: KeyRing | None
) -> Callable[[], tuple[dict[str, Any] | None, str | None]]:
    """The screening's contact and notes, opened when a replay is compared with them."""
    return lambda: opened(screening, phi)


async def _stored(session: AsyncSession, screening_id: uuid.UUID) -> Screening:
    screening = await session.get(Screening, screening_id)
    assert screening is not None  # the key's foreign key
    return screening


async def _resent(
    session: AsyncSession,
    payload: ScreeningIn,
    answers: dict[str, Any],
    replay: str,
    phi: KeyRing | None,
) -> Screening:
    """The screening a message with this source and external_id already created in `replay`."""
    existing = await session.scalar(
        select(Screening).where(
            Screening.replay_scope == replay,
            Screening.source == payload.source,
            Screening.external_id == payload.external_id,
        )
    )
    if existing is None:  # the conflicting insert was rolled back after all: try again
        raise ConcurrentDuplicate(payload.external_id)
    if not same_request(existing.request_hash, payload, answers, _phi(existing, phi)):
        raise Conflict(
            f"external_id was already used by source {payload.source!r} with a different screening"
        )
    return existing


async def get_screening(
    session: AsyncSession,
    *,
    screening_id: uuid.UUID,
    principal: Principal,
    break_glass: bool = False,
) -> Screening:
    """The screening, if `principal` may see it; 404 otherwise, as if it did not exist."""
    scope = true() if break_glass else visible(principal)
    screening = await session.scalar(select(Screening).where(Screening.id == screening_id, scope))
    if screening is None:
        raise NotFound(f"no screening {screening_id}")
    return screening


@dataclass(frozen=True)
class PersonLocale:
    """Where the person is and the language they speak: what their plan prints, in which
    language, and who is paged beside the on-call clinician. Not PHI."""

    language: str
    country: str
    region: str | None


async def locale_of(
    session: AsyncSession, screening_id: uuid.UUID, *, default_country: str
) -> PersonLocale:
    """The screening's language, country (the deployment's default for a screening stored
    without one) and region; English in the default country for an unknown screening."""
    row = (
        await session.execute(
            select(Screening.language, Screening.country, Screening.region).where(
                Screening.id == screening_id
            )
        )
    ).first()
    if row is None:
        return PersonLocale(DEFAULT_LANGUAGE, default_country, None)
    return PersonLocale(row.language, row.country or default_country, row.region)
