"""Screenings: accept them exactly once, and keep the case view current from events."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, literal, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from services.intake.fhir.resthooks import enqueue_pushes
from services.intake.models import AlertView, SafetyPlan, Screening, outbox, sealed
from services.intake.safety_plans.service import open_safety_plan
from services.intake.scope import replay_scope, visible
from services.intake.screenings.digest import request_digest, same_request
from services.intake.screenings.schemas import ScreeningIn
from shared import audit
from shared.auth import Principal
from shared.db import driver
from shared.errors import Conflict, NotFound, Unprocessable, validation_problems
from shared.events import AlertEvent, RiskAssessed, ScreeningSubmitted, utcnow
from shared.instruments import parse_answers
from shared.kafka import PoisonMessage
from shared.outbox import add_event_after, event_row
from shared.pagination import Columns
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


#: The screening and its event in one statement, so a screening without an Idempotency-Key
#: costs one round trip, atomic without a BEGIN and a COMMIT around it. A repeat of a message
#: (same source and external_id in the submitter's replay scope, `scope.replay_scope`) inserts
#: neither and returns no row: DO NOTHING waits for a concurrent insert of the same message to
#: commit, so the look-up after it finds that row.
_SCREENING_CTE = """
    WITH screening AS (
        INSERT INTO intake.screenings (id, subject_id, source, external_id, instrument, answers,
                                       imminent_danger, contact, notes, request_hash, status,
                                       received_at, updated_at, submitted_by, filed_under,
                                       replay_scope)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'received', $11, $11, $12, $13, $14)
        ON CONFLICT (replay_scope, source, external_id) WHERE external_id IS NOT NULL DO NOTHING
        RETURNING id
    )
"""
_INSERT_SCREENING = _SCREENING_CTE + add_event_after(outbox, "screening", first_param=15)
#: The same with the request's audit entry queued in the same statement.
_INSERT_SCREENING_AUDITED = _SCREENING_CTE + add_event_after(
    outbox, "screening", first_param=15, events=2
)
_FIND_KEY = "SELECT request_hash, screening_id FROM intake.idempotency_keys WHERE key = $1"
_INSERT_KEY = """
    INSERT INTO intake.idempotency_keys (key, request_hash, screening_id, created_at)
    VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING RETURNING key
"""


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
) -> tuple[Screening, bool]:
    """Store a screening and queue its event in the caller's transaction.

    Returns (screening, created); a replay returns the first screening, and the same key or
    external_id with a different body is 409. Raises ConcurrentDuplicate when a concurrent
    request with the same Idempotency-Key won: the caller retries once.

    `alone`: the caller's session holds nothing else to commit with the screening, so without
    an Idempotency-Key no transaction is opened and the one statement commits by itself.

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
        key = await conn.fetchrow(_FIND_KEY, idempotency_key)
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
    )
    event = ScreeningSubmitted(
        screening_id=screening.id,
        source=payload.source,
        instrument=payload.instrument,
        answers=answers,
        imminent_danger=payload.imminent_danger,
        submitted_at=now,
    ).envelope(correlation_id=correlation_id)
    audit.about(f"screening/{screening.id}")
    scope = audit.current()
    fused = scope.fused_row() if scope is not None else None
    inserted = await conn.fetchval(
        _INSERT_SCREENING if fused is None else _INSERT_SCREENING_AUDITED,
        screening.id,
        screening.subject_id,
        screening.source,
        screening.external_id,
        screening.instrument,
        json.dumps(answers),
        screening.imminent_danger,
        screening.contact,
        screening.notes,
        digest,
        now,
        screening.submitted_by,
        screening.filed_under,
        replay,
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
        _INSERT_KEY, idempotency_key, digest, screening.id, now
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


async def get_case(
    session: AsyncSession,
    *,
    screening_id: uuid.UUID,
    principal: Principal,
    break_glass: bool = False,
) -> tuple[Screening, list[AlertView], SafetyPlan | None]:
    """The case, if `principal` may see it; `break_glass`: whatever its scope (the caller has
    given a reason, which the audit entry records).

    One statement (a row per alert, the screening and its plan joined to each): the case view is
    what a clinician opens from a page, and its audit entry is committed before the answer, so
    its reads are one round trip rather than three. The plan's entries and review note are not
    loaded (nor decrypted): the view shows the plan's state, not its words."""
    scope = true() if break_glass else visible(principal)
    rows = (
        await session.execute(
            select(Screening, SafetyPlan, AlertView)
            .outerjoin(SafetyPlan, SafetyPlan.screening_id == Screening.id)
            .outerjoin(AlertView, AlertView.screening_id == Screening.id)
            .where(Screening.id == screening_id, scope)
            .order_by(AlertView.created_at)
            .options(
                defer(SafetyPlan.steps, raiseload=True),
                defer(SafetyPlan.review_note, raiseload=True),
            )
        )
    ).all()
    if not rows:
        raise NotFound(f"no screening {screening_id}")
    screening, plan, _ = rows[0]
    return screening, [alert for _, _, alert in rows if alert is not None], plan


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


#: The assessment's fields the list filters on, written into the statement rather than bound:
#: the planner matches the statistics on these expressions (migrations/0012_lists.sql) only to
#: the same text, so it knows how common a level is, also in a cached generic plan.
_FLAGGED = literal("flagged", literal_execute=True)
_LEVEL = literal("level", literal_execute=True)


@dataclass(frozen=True)
class ScreeningFilters:
    """What `GET /v1/screenings` narrows the list to; None (or no levels) is no condition."""

    since: datetime | None = None
    #: True or False matches assessed screenings only: one not assessed yet is neither.
    flagged: bool | None = None
    levels: tuple[str, ...] = ()
    status: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.since is not None:
            out.append(Screening.received_at >= self.since)
        if self.flagged is not None:
            out.append(Screening.risk[_FLAGGED].as_boolean() == self.flagged)
        if self.levels:
            out.append(Screening.risk[_LEVEL].astext.in_(self.levels))
        if self.status is not None:
            out.append(Screening.status == self.status)
        return out


def screenings_listed(principal: Principal, filters: ScreeningFilters) -> Columns:
    """The caller's screenings (scope in the WHERE, as for the case view) with their plan's id,
    status and due time: one statement for a whole page, the plan by its unique screening_id.

    Columns, not entities: `contact`, `notes` and the answers are never read, so nothing is
    decrypted and no PHI leaves the database for a list."""
    return (
        select(
            Screening.id,
            Screening.subject_id,
            Screening.source,
            Screening.instrument,
            Screening.status,
            Screening.received_at,
            Screening.risk,
            SafetyPlan.id.label("plan_id"),
            SafetyPlan.status.label("plan_status"),
            SafetyPlan.due_at.label("plan_due_at"),
        )
        .outerjoin(SafetyPlan, SafetyPlan.screening_id == Screening.id)
        .where(visible(principal), *filters.conditions())
    )


_RECORD_RISK = """
    UPDATE intake.screenings SET status = 'assessed', risk = $2, updated_at = $3
     WHERE id = $1
    RETURNING source
"""
_UPSERT_ALERT = """
    INSERT INTO intake.alerts (id, screening_id, status, risk_level, urgency, escalation_level,
                               created_at, changed_at, version)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (id) DO UPDATE
       SET status = excluded.status, escalation_level = excluded.escalation_level,
           changed_at = excluded.changed_at, version = excluded.version
     WHERE CASE WHEN intake.alerts.version IS NOT NULL AND excluded.version IS NOT NULL
                THEN intake.alerts.version < excluded.version
                ELSE intake.alerts.changed_at <= excluded.changed_at END
"""


async def apply_assessment(
    session: AsyncSession,
    *,
    assessed: RiskAssessed,
    due_minutes: dict[str, int],
    correlation_id: str,
) -> None:
    """Record the assessment on the case; a flagged one opens the safety plan.

    Every screening passes here: the case update goes straight to asyncpg (the UPDATE takes the
    row lock the ORM's SELECT ... FOR UPDATE took before).
    """
    risk = {
        "level": assessed.level,
        "flagged": assessed.flagged,
        "reasons": assessed.reasons,
        "rules_version": assessed.rules_version,
        "assessed_at": assessed.assessed_at.isoformat(),
        "details": assessed.details,
    }
    source = await (await driver(session)).fetchval(
        _RECORD_RISK, assessed.screening_id, json.dumps(risk), utcnow()
    )
    if source is None:
        # Screenings commit before their event is published, so this one is not ours.
        raise PoisonMessage(f"assessment for unknown screening {assessed.screening_id}")
    if source == "ehr":
        # An EHR that registered a rest-hook gets the RiskAssessment back (queued in this
        # transaction).
        await enqueue_pushes(
            session, screening_id=assessed.screening_id, assessment_id=assessed.assessment_id
        )
    if assessed.flagged and assessed.response.safety_plan:
        minutes = due_minutes.get(assessed.level, due_minutes.get("moderate", 1440))
        await open_safety_plan(
            session,
            screening_id=assessed.screening_id,
            risk_level=assessed.level,
            emergency_task=assessed.response.emergency_task,
            due_at=assessed.assessed_at + timedelta(minutes=minutes),
            correlation_id=correlation_id,
        )


async def apply_alert_event(session: AsyncSession, *, event: AlertEvent) -> None:
    """Upsert the case view's copy of an alert; an older state never overwrites a newer one,
    ordered by the alert's version (by time only for events without one)."""
    await (await driver(session)).execute(
        _UPSERT_ALERT,
        event.alert_id,
        event.screening_id,
        event.status,
        event.risk_level,
        event.urgency,
        event.escalation_level,
        event.created_at,
        event.changed_at,
        event.version,
    )
