"""The alert lifecycle: open, deliver, retry, escalate, acknowledge.

Every state change happens under the alert's row lock and queues its event in the same
transaction, so the case view and the pager never disagree for long, and two notify replicas
never act on one alert at once. Functions here flush; the caller commits.
"""

from __future__ import annotations

import random
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.models import Alert, Delivery, DeliveryAttempt, Setting, outbox
from services.notify.settings import NotifySettings
from shared.errors import Conflict, NotFound
from shared.events import AlertEvent, RiskAssessed, utcnow
from shared.outbox import add_event
from shared.topics import ALERT_EVENTS

SECRET_KEY = "alert_webhook_secret"


async def webhook_secret(session: AsyncSession, *, configured: str | None) -> str:
    """The configured secret, or the one generated at first start (kept across restarts)."""
    if configured:
        return configured
    await session.execute(
        insert(Setting)
        .values(key=SECRET_KEY, value=secrets.token_hex(32))
        .on_conflict_do_nothing()
    )
    return (await session.get(Setting, SECRET_KEY)).value  # type: ignore[union-attr]


async def _publish(session: AsyncSession, alert: Alert, what: str, **extra: object) -> None:
    event = AlertEvent(
        alert_id=alert.id,
        screening_id=alert.screening_id,
        status=alert.status,  # type: ignore[arg-type]
        risk_level=alert.risk_level,  # type: ignore[arg-type]
        urgency=alert.urgency,
        escalation_level=alert.escalation_level,
        created_at=alert.created_at,
        changed_at=alert.changed_at,
        **extra,  # type: ignore[arg-type]
    )
    await add_event(
        session, outbox, topic=ALERT_EVENTS, key=alert.screening_id,
        event=event.envelope(correlation_id=alert.correlation_id, event_type=f"alert.{what}"),
    )


def _new_delivery(alert: Alert, now: datetime) -> Delivery:
    return Delivery(
        id=uuid.uuid4(),
        alert_id=alert.id,
        escalation_level=alert.escalation_level,
        status="pending",
        attempts=0,
        due_at=now,
        created_at=now,
    )


async def open_alert(
    session: AsyncSession, *, assessed: RiskAssessed, settings: NotifySettings, correlation_id: str
) -> Alert | None:
    """Open the screening's one alert and its first page, due now; None if it already exists."""
    now = utcnow()
    # Notify's configuration decides deadlines; the rule set's response table is the fallback.
    deadline = (
        settings.ack_deadline_seconds.get(assessed.level)
        or assessed.response.ack_deadline_seconds
        or settings.ack_deadline_seconds["moderate"]
    )
    alert_id = await session.scalar(
        insert(Alert)
        .values(
            id=uuid.uuid4(),
            screening_id=assessed.screening_id,
            assessment_id=assessed.assessment_id,
            risk_level=assessed.level,
            urgency=assessed.response.urgency,
            reasons=assessed.reasons,
            status="pending",
            escalation_level=0,
            ack_deadline_seconds=deadline,
            created_at=now,
            changed_at=now,
            correlation_id=correlation_id,
        )
        .on_conflict_do_nothing(index_elements=[Alert.screening_id])
        .returning(Alert.id)
    )
    if alert_id is None:
        return None
    alert = await session.get(Alert, alert_id)
    assert alert is not None
    session.add(_new_delivery(alert, now))
    await _publish(session, alert, "created")
    await session.flush()
    return alert


async def acknowledge(session: AsyncSession, *, alert_id: uuid.UUID, by: str) -> Alert:
    """Stop the alert: no escalation, no retry, no further page. Idempotent."""
    alert = await session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    if alert.status == "acknowledged":
        return alert
    if alert.status == "resolved":
        raise Conflict("the alert is already resolved")
    now = utcnow()
    alert.status = "acknowledged"
    alert.acknowledged_at = now
    alert.acknowledged_by = by
    alert.escalate_at = None
    alert.changed_at = now
    await session.execute(
        update(Delivery)
        .where(Delivery.alert_id == alert_id, Delivery.status == "pending")
        .values(status="cancelled", finished_at=now)
    )
    await _publish(session, alert, "acknowledged")
    await session.flush()
    return alert


def retry_delay(attempt: int, settings: NotifySettings) -> float:
    """Exponential backoff with full jitter on the upper half, so replicas do not retry in step."""
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempt - 1))
    return ceiling / 2 + random.random() * ceiling / 2


async def escalate(session: AsyncSession, alert: Alert, *, settings: NotifySettings, why: str) -> None:
    """Page the next level now, or mark the alert failed when there is no level left."""
    now = utcnow()
    alert.changed_at = now
    alert.escalate_at = None
    if alert.escalation_level >= settings.max_escalation_level:
        alert.status = "failed"
        await _publish(session, alert, "failed", failure=why)
        return
    alert.escalation_level += 1
    alert.status = "escalated"
    session.add(_new_delivery(alert, now))
    await _publish(session, alert, "escalated", failure=why)


async def record_outcome(
    session: AsyncSession,
    *,
    delivery_id: uuid.UUID,
    attempt: DeliveryAttempt,
    settings: NotifySettings,
) -> None:
    """Apply one attempt's outcome under the alert's lock."""
    delivery = await session.get(Delivery, delivery_id)
    assert delivery is not None
    alert = await session.get(Alert, delivery.alert_id, with_for_update=True)
    assert alert is not None
    await session.refresh(delivery, with_for_update=True)
    session.add(attempt)
    now = utcnow()
    if delivery.status != "pending":  # cancelled by an acknowledgement while in flight
        return
    delivery.lease_until = None
    if attempt.outcome == "delivered":
        delivery.status = "delivered"
        delivery.finished_at = now
        alert.status = "delivered" if alert.escalation_level == 0 else "escalated"
        alert.first_delivered_at = alert.first_delivered_at or now
        alert.escalate_at = now + timedelta(seconds=alert.ack_deadline_seconds)
        alert.changed_at = now
        await _publish(session, alert, "delivered", attempt=attempt.attempt)
        return
    if attempt.outcome == "temporary_failure" and delivery.attempts < settings.delivery_max_attempts:
        delivery.due_at = now + timedelta(seconds=retry_delay(delivery.attempts, settings))
        return
    delivery.status = "failed"
    delivery.finished_at = now
    await escalate(session, alert, settings=settings, why=attempt.error or attempt.outcome)


async def escalate_overdue(session: AsyncSession, *, settings: NotifySettings, limit: int = 50) -> int:
    """Escalate every alert whose acknowledgement deadline has passed; returns how many."""
    alerts = list(
        await session.scalars(
            select(Alert)
            .where(Alert.escalate_at <= utcnow(), Alert.status.in_(("delivered", "escalated")))
            .order_by(Alert.escalate_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for alert in alerts:
        await escalate(session, alert, settings=settings, why="not acknowledged in time")
    await session.flush()
    return len(alerts)
