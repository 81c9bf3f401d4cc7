"""Kafka handlers of notify: a flagged assessment opens the screening's one alert; every
submission is awaited until its assessment is seen (services/notify/watchdog/); a follow-up's
events remind people (overdue, unreachable) or open an alert for a risky reply."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.alerts.service import open_alert, open_reply_alert
from services.notify.reminders import service as reminders
from services.notify.settings import NotifySettings
from services.notify.watchdog import service as watchdog
from shared.events import Envelope, FollowUpEvent, RiskAssessed
from shared.kafka import Batch, Handler, Statement
from shared.topics import (
    FOLLOW_UP_EVENTS,
    RISK_ASSESSED,
    SAFETY_PLAN_EVENTS,
    SCREENING_SUBMITTED,
)

#: What no page waits on comes a fifth of a second at a time (`EventConsumer`'s `gathered`):
#: submissions the watchdog awaits for seconds, and plans' events that remind people in
#: minutes. An assessment or a follow-up's risky reply is fetched as soon as it comes.
GATHERED_TOPICS = frozenset({SCREENING_SUBMITTED, SAFETY_PLAN_EVENTS})


def handlers(settings: NotifySettings) -> dict[str, Handler | Batch]:
    async def on_assessments(session: AsyncSession, envelopes: list[Envelope]) -> None:
        await watchdog.on_assessed(
            session, [RiskAssessed.model_validate(e.data) for e in envelopes]
        )

    def on_assessment_alone(envelope: Envelope) -> Statement | None:
        """Most assessments (seven in ten in the bench's mix) page nobody: alone in a poll,
        such a one is one statement, not a transaction of four round trips."""
        assessed = RiskAssessed.model_validate(envelope.data)
        if _pages(assessed):
            return None  # its alert opens in a transaction, with the upsert

        async def statement(session: AsyncSession) -> None:
            await watchdog.on_assessed_alone(
                session, assessed, event_id=envelope.event_id, topic=RISK_ASSESSED
            )

        return statement

    async def on_risk_assessed(session: AsyncSession, envelope: Envelope) -> None:
        assessed = RiskAssessed.model_validate(envelope.data)
        if _pages(assessed):
            await open_alert(
                session,
                assessed=assessed,
                settings=settings,
                correlation_id=envelope.correlation_id,
            )

    async def on_follow_up_event(session: AsyncSession, envelope: Envelope) -> None:
        if envelope.type == "follow_up.reply_risk":
            await open_reply_alert(
                session,
                event=FollowUpEvent.model_validate(envelope.data),
                settings=settings,
                correlation_id=envelope.correlation_id,
            )
            return
        await reminders.on_follow_up_event(session, envelope)

    async def on_submitted(session: AsyncSession, envelopes: list[Envelope]) -> None:
        await watchdog.on_submitted(
            session, envelopes, deadline=settings.assessment_deadline_seconds
        )

    return {
        SCREENING_SUBMITTED: Batch(on_submitted),
        RISK_ASSESSED: Batch(on_assessments, each=on_risk_assessed, alone=on_assessment_alone),
        SAFETY_PLAN_EVENTS: reminders.on_safety_plan_event,
        FOLLOW_UP_EVENTS: on_follow_up_event,
    }


def _pages(assessed: RiskAssessed) -> bool:
    """Whether the assessment opens an alert (its rule's response pages someone)."""
    return assessed.flagged and assessed.response.alert
