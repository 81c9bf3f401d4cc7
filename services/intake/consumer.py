"""Kafka handlers of intake: assessments and alert events keep the case view current; every
service's audit entries are appended to the one trail."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.audit import service as audit_trail
from services.intake.cases.service import (
    apply_alert_events,
    open_case_work,
    record_assessments,
)
from services.intake.follow_ups.service import Policy
from services.intake.settings import IntakeSettings
from shared.audit import AuditRecorded
from shared.events import AlertEvent, Envelope, RiskAssessed
from shared.kafka import Batch, Handler
from shared.topics import ALERT_EVENTS, AUDIT_EVENTS, RISK_ASSESSED

#: No page waits on what intake consumes, so all of it comes a pause (GATHER_MS) at a time: the
#: first event after a quiet spell at once, then what came meanwhile in one poll.
GATHERED_TOPICS = frozenset({RISK_ASSESSED, ALERT_EVENTS, AUDIT_EVENTS})


def handlers(settings: IntakeSettings) -> dict[str, Handler | Batch]:
    follow_up = Policy.of(settings)

    async def on_assessments(session: AsyncSession, envelopes: list[Envelope]) -> None:
        await record_assessments(session, [RiskAssessed.model_validate(e.data) for e in envelopes])

    async def on_risk_assessed(session: AsyncSession, envelope: Envelope) -> None:
        await open_case_work(
            session,
            assessed=RiskAssessed.model_validate(envelope.data),
            due_minutes=settings.safety_plan_due_minutes,
            correlation_id=envelope.correlation_id,
            follow_up=follow_up,
        )

    async def on_alert_events(session: AsyncSession, envelopes: list[Envelope]) -> None:
        await apply_alert_events(session, [AlertEvent.model_validate(e.data) for e in envelopes])

    async def on_audit_entries(session: AsyncSession, envelopes: list[Envelope]) -> None:
        await audit_trail.append(session, [AuditRecorded.model_validate(e.data) for e in envelopes])

    return {
        RISK_ASSESSED: Batch(on_assessments, each=on_risk_assessed),
        ALERT_EVENTS: Batch(on_alert_events),
        AUDIT_EVENTS: Batch(on_audit_entries),
    }
