"""The case view, read: one case (the screening, its alerts and its plan) and the worklist of
the screenings a caller may read; and the statements that keep it current from events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, literal, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from services.intake.cases.models import AlertView
from services.intake.safety_plans.models import SafetyPlan
from services.intake.screenings.models import Screening
from services.intake.screenings.scope import visible
from shared.auth import Principal
from shared.errors import NotFound
from shared.pagination import Columns


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


#: A poll's assessments on their screenings (no screening twice: `shared.db.rounds`).
RECORD_RISKS = """
    UPDATE intake.screenings AS s SET status = 'assessed', risk = a.risk, updated_at = $3
      FROM unnest($1::uuid[], $2::jsonb[]) AS a (id, risk)
     WHERE s.id = a.id
    RETURNING s.id, s.source
"""
#: A poll's alert events on the case view's copies (no alert twice: `shared.db.rounds`).
UPSERT_ALERTS = """
    INSERT INTO intake.alerts (id, screening_id, status, risk_level, urgency, escalation_level,
                               created_at, changed_at, version, interpreter_needed)
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[],
                         $7::timestamptz[], $8::timestamptz[], $9::int[], $10::bool[])
    ON CONFLICT (id) DO UPDATE
       SET status = excluded.status, escalation_level = excluded.escalation_level,
           changed_at = excluded.changed_at, version = excluded.version,
           interpreter_needed = coalesce(excluded.interpreter_needed,
                                         intake.alerts.interpreter_needed)
     WHERE CASE WHEN intake.alerts.version IS NOT NULL AND excluded.version IS NOT NULL
                THEN intake.alerts.version < excluded.version
                ELSE intake.alerts.changed_at <= excluded.changed_at END
"""
