"""What each attempt of a page changes: recorded, retried with backoff, or, once every page
of its step failed for good, the alert escalated at once (not after its deadline).

Every page passes here, so the statements go straight to asyncpg (`shared.db.driver`), under
the alert's lock (taken first, as everywhere). Functions here flush; the caller commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.alerts.escalation import escalate, plan_for, step_of
from services.notify.alerts.events import event
from services.notify.alerts.models import OPEN, Alert
from services.notify.alerts.queries import LOCK_ALERT
from services.notify.delivery.channels import Outcome
from services.notify.delivery.models import Delivery, DeliveryAttempt
from services.notify.delivery.queries import (
    ADD_ATTEMPT,
    DELIVERED,
    DELIVERY_ACCEPTED,
    DELIVERY_DONE,
    DELIVERY_RETRY,
    LOCK_DELIVERY,
    NEXT_METHODS_NOW,
    OPT_OUT,
)
from services.notify.models import sealed
from services.notify.oncall.policies import Step, level_delay
from services.notify.settings import NotifySettings
from shared.db import driver
from shared.events import utcnow
from shared.outbox import event_row
from shared.phi import ring_of
from shared.topics import ALERT_EVENTS
from shared.webhooks import backoff_seconds
from shared.workqueue import next_step


def retry_delay(attempt: int, settings: NotifySettings, *, asked: float | None = None) -> float:
    """Backoff with jitter; a receiver's Retry-After is honoured up to RETRY_MAX_SECONDS."""
    delay = backoff_seconds(
        attempt, base=settings.retry_base_seconds, ceiling=settings.retry_max_seconds
    )
    if asked is not None:
        delay = max(delay, min(asked, settings.retry_max_seconds))
    return delay


@dataclass(frozen=True)
class Recorded:
    """What recording an attempt changed, for the metrics."""

    #: Seconds from the assessment to this, the alert's first delivered page.
    first_delivery_after: float | None = None
    escalated: bool = False


async def record_outcome(
    session: AsyncSession,
    *,
    delivery_id: uuid.UUID,
    alert_id: uuid.UUID,
    attempt: DeliveryAttempt | None,
    outcome: Outcome,
    settings: NotifySettings,
) -> Recorded:
    """Apply one attempt's outcome under the alert's lock (taken first, as everywhere).

    `attempt` is the attempt's record, None when the outcome is a provider's later report on
    an attempt already recorded (services/notify/phones/). Every page passes here, so the
    statements go straight to asyncpg (`shared.db.driver`); only an escalation, rare, loads the
    alert into the session for `escalate`.
    """
    conn = await driver(session)
    row = await conn.fetchrow(LOCK_ALERT, alert_id)
    delivery = await conn.fetchrow(
        LOCK_DELIVERY.sql, *LOCK_DELIVERY.args(id=delivery_id, alert_id=alert_id)
    )
    assert row is not None and delivery is not None
    if attempt is not None:
        await conn.execute(
            ADD_ATTEMPT.sql,
            *ADD_ATTEMPT.args(
                delivery_id=delivery_id,
                attempt=attempt.attempt,
                target=sealed("delivery_attempts").seal(
                    ring_of(session),
                    {"delivery_id": delivery_id, "attempt": attempt.attempt},
                    attempt.target,
                ),
                started_at=attempt.started_at,
                finished_at=attempt.finished_at,
                http_status=attempt.http_status,
                outcome=attempt.outcome,
                error=attempt.error,
                worker=attempt.worker,
            ),
        )
    now = utcnow()
    if outcome.opted_out and delivery["contact_method_id"] is not None:
        await conn.execute(OPT_OUT.sql, *OPT_OUT.args(id=delivery["contact_method_id"], now=now))
    if delivery["status"] != "pending":  # cancelled by an ack, a resolve or an escalation in flight
        return Recorded()
    if outcome.outcome == "accepted":
        # The provider reports the text's or call's fate later (a status callback); until
        # then the page stays pending, and is claimed again only if that report is overdue.
        wait = (
            settings.call_status_wait_seconds
            if delivery["channel"] == "voice"
            else settings.sms_status_wait_seconds
        )
        await conn.execute(
            DELIVERY_ACCEPTED.sql,
            *DELIVERY_ACCEPTED.args(
                id=delivery_id,
                provider_sid=outcome.provider_sid,
                due_at=now + timedelta(seconds=wait),
            ),
        )
        return Recorded()
    alert = Alert(**dict(row))  # not attached to the session
    current = Step(delivery["escalation_level"], delivery["repeat_round"]) == step_of(alert)
    if outcome.outcome == "delivered":
        if not current or alert.status not in OPEN:
            await conn.execute(
                DELIVERY_DONE.sql,
                *DELIVERY_DONE.args(id=delivery_id, status="delivered", finished_at=now),
            )
            return Recorded()
        first = alert.first_delivered_at is None
        alert.status = "delivered" if step_of(alert) == Step(0, 0) else "escalated"
        alert.first_delivered_at = alert.first_delivered_at or now
        if alert.escalate_at is None:  # the step's first delivered page starts its deadline
            plan = await plan_for(session, alert, settings=settings)
            delay = level_delay(plan, step_of(alert), default=alert.ack_deadline_seconds)
            alert.escalate_at = now + timedelta(seconds=delay)
        alert.changed_at = now
        delivered = event(alert, "delivered", attempt=delivery["attempts"])
        await conn.execute(
            DELIVERED,
            delivery_id,
            now,
            alert.id,
            alert.status,
            alert.first_delivered_at,
            alert.escalate_at,
            alert.version,
            *event_row(topic=ALERT_EVENTS, key=alert.screening_id, event=delivered),
        )
        since = alert.assessed_at or alert.created_at
        return Recorded(first_delivery_after=(now - since).total_seconds() if first else None)
    if next_step(outcome.outcome, delivery["attempts"], settings.delivery_max_attempts) == "retry":
        # The due time moved by hand, not `retry_at`: a receiver's Retry-After counts too.
        wait = retry_delay(delivery["attempts"], settings, asked=outcome.retry_after)
        due_at = now + timedelta(seconds=wait)
        await conn.execute(DELIVERY_RETRY.sql, *DELIVERY_RETRY.args(id=delivery_id, due_at=due_at))
        return Recorded()
    await conn.execute(
        DELIVERY_DONE.sql, *DELIVERY_DONE.args(id=delivery_id, status="failed", finished_at=now)
    )
    if delivery["channel"] == "sms" and delivery["contact_method_id"] is not None:
        # A text that failed for good: the clinician's next method need not wait its delay.
        await conn.execute(
            NEXT_METHODS_NOW.sql,
            *NEXT_METHODS_NOW.args(
                alert_id=alert_id,
                escalation_level=delivery["escalation_level"],
                repeat_round=delivery["repeat_round"],
                method_id=delivery["contact_method_id"],
                now=now,
            ),
        )
    if (
        not current
        or alert.status not in OPEN
        or await _step_still_has_hope(
            session, alert_id=alert.id, delivery_id=delivery_id, step=step_of(alert)
        )
    ):
        return Recorded()
    # Every page of this step failed for good: nobody was reached, so do not wait the deadline.
    loaded = await session.get(Alert, alert_id)  # locked above, in this transaction
    assert loaded is not None
    plan = await plan_for(session, loaded, settings=settings)
    await escalate(
        session, loaded, plan=plan, settings=settings, why=outcome.error or outcome.outcome, now=now
    )
    return Recorded(escalated=True)


async def _step_still_has_hope(
    session: AsyncSession, *, alert_id: uuid.UUID, delivery_id: uuid.UUID, step: Step
) -> bool:
    """Whether another page of the same step is still pending or was delivered."""
    return bool(
        await session.scalar(
            select(
                exists().where(
                    Delivery.alert_id == alert_id,
                    Delivery.escalation_level == step.level,
                    Delivery.repeat_round == step.repeat,
                    Delivery.id != delivery_id,
                    Delivery.status.in_(("pending", "delivered")),
                )
            )
        )
    )


async def wait_for_target(
    session: AsyncSession,
    *,
    delivery_id: uuid.UUID,
    attempt: DeliveryAttempt,
    settings: NotifySettings,
) -> None:
    """No ONCALL_WEBHOOK_URL and nobody on call: record it and try again later (never dropped)."""
    delivery = await session.get(Delivery, delivery_id, with_for_update=True)
    session.add(attempt)
    if delivery is not None and delivery.status == "pending":
        delivery.lease_until = None
        delivery.attempts = 0  # waiting for a target is not a failed attempt
        delivery.due_at = utcnow() + timedelta(seconds=settings.no_target_retry_seconds)
