"""The alert's events on triage.alert.events.v1: one per change, versioned, queued in the
transaction of the change (the outbox), so the case view and the pager never disagree for long."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.alerts.models import Alert
from services.notify.models import outbox
from shared.events import AlertEvent, Envelope
from shared.outbox import add_event
from shared.topics import ALERT_EVENTS


async def publish(session: AsyncSession, alert: Alert, what: str, **extra: object) -> None:
    """Queue the alert.<what> event of the alert as it stands."""
    await add_event(
        session,
        outbox,
        topic=ALERT_EVENTS,
        key=alert.screening_id,
        event=event(alert, what, **extra),
    )


def event(alert: Alert, what: str, **extra: object) -> Envelope:
    """The alert.<what> event of the alert as it stands: one more change, so one more version
    (the caller stores it with the change)."""
    alert.version = (alert.version or 0) + 1
    return AlertEvent(
        alert_id=alert.id,
        screening_id=alert.screening_id,
        status=alert.status,
        risk_level=alert.risk_level,
        urgency=alert.urgency,
        escalation_level=alert.escalation_level,
        created_at=alert.created_at,
        changed_at=alert.changed_at,
        version=alert.version,
        interpreter_needed=alert.interpreter_needed,
        **extra,
    ).envelope(correlation_id=alert.correlation_id, event_type=f"alert.{what}")
