"""The alert's lifecycle: opened by a flagged assessment (or the assessment watchdog),
acknowledged, resolved. Its paging, step by step, is escalation.py's; each page's outcome is
applied by delivery/service.py.

Every state change happens under the alert's row lock and queues its event in the same
transaction, so the case view and the pager never disagree for long, and two notify replicas
never act on one alert at once. Functions here flush; the caller commits.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.alerts.escalation import start_step, stop_pages
from services.notify.alerts.events import publish
from services.notify.alerts.models import Alert
from services.notify.alerts.queries import MOVED_ON, OPEN_ALERT, OPEN_REPLY_ALERT
from services.notify.oncall import languages
from services.notify.oncall.policies import fallback_plan
from services.notify.oncall.service import plan_for_risk_level
from services.notify.settings import NotifySettings
from shared import tracing
from shared.db import driver
from shared.errors import Conflict, NotFound
from shared.events import FollowUpEvent, LevelResponseData, RiskAssessed, utcnow
from shared.locales import DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Unassessed:
    """What `open_alert` reads of an assessment, for an alert that has none behind it, paged as
    a `high` screening is: the watchdog's, for a screening not assessed in time, and a risky
    reply to a Caring Contact (intake's `follow_up.reply_risk`: ids and reason codes only)."""

    screening_id: uuid.UUID
    reasons: list[str]
    assessment_id: None = None
    assessed_at: None = None
    level: str = "high"
    response: LevelResponseData = field(
        default_factory=lambda: LevelResponseData(
            alert=True,
            urgency="urgent",
            safety_plan=False,
            emergency_task=False,
            ack_deadline_seconds=None,
        )
    )


async def open_alert(
    session: AsyncSession,
    *,
    assessed: RiskAssessed | Unassessed,
    settings: NotifySettings,
    correlation_id: str,
    reply_id: uuid.UUID | None = None,
) -> Alert | None:
    """Open the screening's one alert and its first pages, due now; None if it already exists.
    (`Unassessed`: the watchdog's, for a screening not assessed in time, or a risky reply's.)

    Every flagged assessment passes here, so its statements go straight to asyncpg
    (`shared.db.driver`); the returned Alert is not attached to the session.
    """
    now = utcnow()
    # Notify's configuration decides deadlines; the rule set's response table is the fallback.
    deadline = (
        settings.ack_deadline_seconds.get(assessed.level)
        or assessed.response.ack_deadline_seconds
        or settings.ack_deadline_seconds["moderate"]
    )
    plan = await plan_for_risk_level(session, risk_level=assessed.level)
    language = getattr(assessed, "language", None) or DEFAULT_LANGUAGE
    first = plan.levels[0].clinician_ids if plan and plan.levels else ()
    needed = await languages.interpreter_needed(session, language=language, at=now, named=first)
    conn = await driver(session)
    alert = Alert(
        id=uuid.uuid4(),
        screening_id=assessed.screening_id,
        assessment_id=assessed.assessment_id,
        risk_level=assessed.level,
        urgency=assessed.response.urgency,
        reasons=assessed.reasons,
        status="pending",
        escalation_level=0,
        repeat_round=0,
        ack_deadline_seconds=deadline,
        created_at=now,
        changed_at=now,
        correlation_id=correlation_id,
        policy_id=plan.policy_id if plan else None,
        assessed_at=assessed.assessed_at,
        language=language,
        interpreter_needed=needed,
    )
    statement = OPEN_ALERT if reply_id is None else OPEN_REPLY_ALERT
    if not await conn.fetchval(
        statement.sql,
        *statement.args(
            id=alert.id,
            screening_id=alert.screening_id,
            assessment_id=alert.assessment_id,
            risk_level=alert.risk_level,
            urgency=alert.urgency,
            reasons=json.dumps(alert.reasons),
            ack_deadline_seconds=deadline,
            now=now,
            correlation_id=correlation_id,
            policy_id=alert.policy_id,
            assessed_at=alert.assessed_at,
            traceparent=tracing.traceparent(),
            language=language,
            interpreter_needed=needed,
            reply_id=reply_id,
        ),
    ):
        return None
    await publish(session, alert, "created")
    await start_step(
        session,
        alert,
        plan=plan or fallback_plan(settings.max_escalation_level),
        settings=settings,
        now=now,
    )
    if (alert.status, alert.escalation_level, alert.repeat_round) != ("pending", 0, 0):
        # Nobody was on call for the first steps: start_step moved the alert on.
        await conn.execute(
            MOVED_ON.sql,
            *MOVED_ON.args(
                id=alert.id,
                status=alert.status,
                escalation_level=alert.escalation_level,
                repeat_round=alert.repeat_round,
                changed_at=alert.changed_at,
                version=alert.version,
            ),
        )
    return alert


async def acknowledge(session: AsyncSession, *, alert_id: uuid.UUID, by: str) -> tuple[Alert, bool]:
    """Stop the alert: no escalation, no retry, no further page. Idempotent.

    Returns the alert and whether this call acknowledged it.
    """
    alert = await session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    if alert.status == "acknowledged":
        return alert, False
    if alert.status == "resolved":
        raise Conflict("the alert is already resolved")
    now = utcnow()
    alert.status = "acknowledged"
    alert.acknowledged_at = now
    alert.acknowledged_by = by
    alert.escalate_at = None
    alert.changed_at = now
    await stop_pages(session, alert_id, now)
    await publish(session, alert, "acknowledged")
    await session.flush()
    return alert, True


async def resolve(session: AsyncSession, *, alert_id: uuid.UUID) -> Alert:
    """Close the alert (from any state); every page not yet sent is cancelled. Idempotent."""
    alert = await session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    if alert.status == "resolved":
        return alert
    now = utcnow()
    alert.status = "resolved"
    alert.resolved_at = now
    alert.escalate_at = None
    alert.changed_at = now
    await stop_pages(session, alert_id, now)
    await publish(session, alert, "resolved")
    await session.flush()
    return alert


async def open_reply_alert(
    session: AsyncSession, *, event: FollowUpEvent, settings: NotifySettings, correlation_id: str
) -> Alert | None:
    """One alert per risky reply (`event.notice_id` is the reply's id), however redelivered."""
    return await open_alert(
        session,
        assessed=Unassessed(event.screening_id, list(event.reasons)),
        settings=settings,
        correlation_id=correlation_id,
        reply_id=event.notice_id,
    )
