"""The alert lifecycle: open, deliver, retry, escalate, repeat, acknowledge, resolve.

Every state change happens under the alert's row lock and queues its event in the same
transaction, so the case view and the pager never disagree for long, and two notify replicas
never act on one alert at once. An alert stands at one step (escalation level, round) of its
plan; the step's deliveries (one per contact method reached) are the durable timers of its pages,
and `alerts.escalate_at` is the durable timer of its next step. Functions here flush; the caller
commits.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import exists, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.delivery.channels import Outcome
from services.notify.models import (
    Alert,
    Delivery,
    DeliveryAttempt,
    Policy,
    Setting,
    outbox,
    sealed,
)
from services.notify.oncall.policies import (
    Plan,
    Step,
    fallback_plan,
    level_delay,
    next_step,
    plan_from_row,
)
from services.notify.oncall.service import level_targets, plan_for_risk_level
from services.notify.settings import NotifySettings
from shared import tracing
from shared.db import driver, is_transient
from shared.errors import Conflict, NotFound
from shared.events import AlertEvent, Envelope, RiskAssessed, utcnow
from shared.outbox import add_event, add_event_after, event_row
from shared.phi import PhiUnreadable, ring_of
from shared.topics import ALERT_EVENTS
from shared.webhooks import backoff_seconds

if TYPE_CHECKING:
    from services.notify.watchdog.service import DelayedAssessment

log = logging.getLogger(__name__)

SECRET_KEY = "alert_webhook_secret"
#: The secret ack links are signed with (a key derived from it: services/notify/signing.py).
ACK_SECRET_KEY = "ack_link_secret"
#: Alerts still being paged. `failed` means nobody answered the whole policy; it is re-paged.
OPEN = ("pending", "delivered", "escalated", "failed")


async def webhook_secret(session: AsyncSession, *, configured: str | None) -> str:
    """The configured secret, or the one generated at first start (kept across restarts)."""
    return await stored_secret(session, SECRET_KEY, configured=configured)


async def ack_link_secret(session: AsyncSession, *, configured: str | None) -> str:
    """ACK_LINK_SECRET, or the one generated at first start (kept across restarts)."""
    return await stored_secret(session, ACK_SECRET_KEY, configured=configured)


async def stored_secret(session: AsyncSession, key: str, *, configured: str | None) -> str:
    """The configured secret, or the one stored under `key`, generated (sealed) at first start;
    replicas starting together agree on the first one stored.

    A stored secret that cannot be read (its key left the ring, or one planted in clear in a
    sealed database: whoever chose it could sign pages or acknowledgement links) is replaced by
    a new one, logged, rather than keeping notify from starting: paging goes on, and receivers
    take the new secret (or the operator configures one)."""
    if configured:
        return configured
    ring, column, row = ring_of(session), sealed("settings"), {"key": key}
    value = column.seal(ring, row, secrets.token_hex(32))
    await session.execute(insert(Setting).values(key=key, value=value).on_conflict_do_nothing())
    # The column, not the entity: opened here, so a value that cannot be read is handled.
    current = select(Setting.value).where(Setting.key == key)
    stored = await session.scalar(current)
    try:
        secret: str = column.open(ring, row, stored)
        return secret
    except PhiUnreadable:
        log.error("the generated secret %s cannot be read: a new one replaces it", key)
    # Only if no other replica replaced it meanwhile; then every replica reads the same one.
    await session.execute(
        update(Setting).where(Setting.key == key, Setting.value == stored).values(value=value)
    )
    secret = column.open(ring, row, await session.scalar(current))
    return secret


async def _publish(session: AsyncSession, alert: Alert, what: str, **extra: object) -> None:
    await add_event(
        session,
        outbox,
        topic=ALERT_EVENTS,
        key=alert.screening_id,
        event=_event(alert, what, **extra),
    )


def _event(alert: Alert, what: str, **extra: object) -> Envelope:
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
        **extra,
    ).envelope(correlation_id=alert.correlation_id, event_type=f"alert.{what}")


async def plan_for(session: AsyncSession, alert: Alert, *, settings: NotifySettings) -> Plan:
    """The alert's policy as it stands now, or the contract's fallback plan."""
    if alert.policy_id is not None:
        policy = await session.get(Policy, alert.policy_id)
        if policy is not None:
            return plan_from_row(policy.id, policy.name, policy.levels, policy.repeats)
    return fallback_plan(settings.max_escalation_level)


def _step(alert: Alert) -> Step:
    return Step(alert.escalation_level, alert.repeat_round)


_ADD_DELIVERIES = """
    INSERT INTO notify.deliveries (id, alert_id, escalation_level, repeat_round, status, attempts,
                                   contact_method_id, channel, target, due_at, created_at)
    SELECT id, $2, $3, $4, 'pending', 0, contact_method_id, channel, target, due_at, created_at
      FROM unnest($1::uuid[], $5::uuid[], $6::text[], $7::text[], $8::timestamptz[],
                  $9::timestamptz[])
           AS d (id, contact_method_id, channel, target, due_at, created_at)
    ON CONFLICT DO NOTHING
"""


async def _add_deliveries(session: AsyncSession, alert: Alert, rows: list[dict]) -> None:
    """Plan pages of the alert's current step; the unique (alert, round, level, contact method)
    key makes a second start of a step a no-op. One statement straight to asyncpg: every alert
    passes here."""
    ids, ring, target = [uuid.uuid4() for _ in rows], ring_of(session), sealed("deliveries")
    await (await driver(session)).execute(
        _ADD_DELIVERIES,
        ids,
        alert.id,
        alert.escalation_level,
        alert.repeat_round,
        [row.get("contact_method_id") for row in rows],
        [row["channel"] for row in rows],
        [target.seal(ring, {"id": id_}, row["target"]) for id_, row in zip(ids, rows, strict=True)],
        [row["due_at"] for row in rows],
        [row["created_at"] for row in rows],
    )


async def start_step(
    session: AsyncSession, alert: Alert, *, plan: Plan, settings: NotifySettings, now: datetime
) -> None:
    """Plan the pages of the alert's current step, each due now plus its method's delay.

    A step nobody covers pages ONCALL_WEBHOOK_URL when it is set; otherwise the next step is
    tried at once. When no step has anyone, the page waits for a fallback target: never dropped.
    """
    while True:
        step = _step(alert)
        level = plan.levels[step.level] if step.level < len(plan.levels) else None
        targets = []
        if level is not None and not level.fallback:
            targets = await level_targets(session, level=level, at=now)
        if targets:
            await _add_deliveries(
                session,
                alert,
                [
                    {
                        "contact_method_id": t.contact_method_id,
                        "channel": t.channel,
                        "target": t.address,
                        "due_at": now + timedelta(seconds=t.delay_seconds),
                        "created_at": now,
                    }
                    for t in targets
                ],
            )
            return
        following = next_step(plan, step)
        if level is None or level.fallback or settings.oncall_webhook_url or following is None:
            fallback = {"channel": "webhook", "target": None, "due_at": now, "created_at": now}
            await _add_deliveries(session, alert, [fallback])
            return
        alert.escalation_level, alert.repeat_round = following.level, following.repeat
        alert.status = "escalated"
        alert.changed_at = now
        await _publish(session, alert, "escalated", failure="nobody on call")


#: The screening's one alert (the unique screening_id makes a redelivered assessment a no-op).
_OPEN_ALERT = """
    INSERT INTO notify.alerts (id, screening_id, assessment_id, risk_level, urgency, reasons,
                               status, escalation_level, repeat_round, ack_deadline_seconds,
                               created_at, changed_at, correlation_id, policy_id, assessed_at,
                               version, traceparent)
    VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, 0, $7, $8, $8, $9, $10, $11, 1, $12)
    ON CONFLICT (screening_id) DO NOTHING
    RETURNING id
"""
_MOVED_ON = """
    UPDATE notify.alerts SET status = $2, escalation_level = $3, repeat_round = $4, changed_at = $5,
                             version = $6
     WHERE id = $1
"""


async def open_alert(
    session: AsyncSession,
    *,
    assessed: RiskAssessed | DelayedAssessment,
    settings: NotifySettings,
    correlation_id: str,
) -> Alert | None:
    """Open the screening's one alert and its first pages, due now; None if it already exists.
    (A `DelayedAssessment`: the watchdog's, for a screening not assessed in time.)

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
    )
    if not await conn.fetchval(
        _OPEN_ALERT,
        alert.id,
        alert.screening_id,
        alert.assessment_id,
        alert.risk_level,
        alert.urgency,
        json.dumps(alert.reasons),
        deadline,
        now,
        correlation_id,
        alert.policy_id,
        alert.assessed_at,
        tracing.traceparent(),
    ):
        return None
    await _publish(session, alert, "created")
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
            _MOVED_ON,
            alert.id,
            alert.status,
            alert.escalation_level,
            alert.repeat_round,
            alert.changed_at,
            alert.version,
        )
    return alert


async def _stop_pages(session: AsyncSession, alert_id: uuid.UUID, now: datetime) -> None:
    """Cancel every page not yet sent, retries included; one on the wire is not retried."""
    await session.execute(
        update(Delivery)
        .where(Delivery.alert_id == alert_id, Delivery.status == "pending")
        .values(status="cancelled", finished_at=now)
    )


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
    await _stop_pages(session, alert_id, now)
    await _publish(session, alert, "acknowledged")
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
    await _stop_pages(session, alert_id, now)
    await _publish(session, alert, "resolved")
    await session.flush()
    return alert


def retry_delay(attempt: int, settings: NotifySettings, *, asked: float | None = None) -> float:
    """Backoff with jitter; a receiver's Retry-After is honoured up to RETRY_MAX_SECONDS."""
    delay = backoff_seconds(
        attempt, base=settings.retry_base_seconds, ceiling=settings.retry_max_seconds
    )
    if asked is not None:
        delay = max(delay, min(asked, settings.retry_max_seconds))
    return delay


async def escalate(
    session: AsyncSession,
    alert: Alert,
    *,
    plan: Plan,
    settings: NotifySettings,
    why: str,
    now: datetime,
) -> None:
    """Page the next step now (next level, or the first level of the next round).

    After the plan's last step the alert is reported `failed`, so the case view shows that
    nobody answered, but it is not given up: its last level is paged again every
    FINAL_REPAGE_SECONDS until someone acknowledges.
    """
    await _stop_pages(session, alert.id, now)
    alert.changed_at = now
    alert.escalate_at = None
    following = next_step(plan, _step(alert))
    if following is None:
        if alert.status != "failed":
            alert.status = "failed"
            await _publish(session, alert, "failed", failure=why)
        alert.repeat_round += 1  # a new round of the last level: new delivery rows
        later = now + timedelta(seconds=settings.final_repage_seconds)
        await start_step(session, alert, plan=plan, settings=settings, now=later)
        return
    alert.escalation_level, alert.repeat_round = following.level, following.repeat
    alert.status = "escalated"
    await _publish(session, alert, "escalated", failure=why)
    await start_step(session, alert, plan=plan, settings=settings, now=now)


@dataclass(frozen=True)
class Recorded:
    """What recording an attempt changed, for the metrics."""

    #: Seconds from the assessment to this, the alert's first delivered page.
    first_delivery_after: float | None = None
    escalated: bool = False


#: The alert's mapped columns by name (not `*`: a column added by a later migration must not
#: break building the Alert from the row during a rolling deploy).
_LOCK_ALERT = (
    f"SELECT {', '.join(column.name for column in Alert.__table__.columns)} "
    "FROM notify.alerts WHERE id = $1 FOR UPDATE"
)
_LOCK_DELIVERY = """
    SELECT status, escalation_level, repeat_round, attempts FROM notify.deliveries
     WHERE id = $1 AND alert_id = $2 FOR UPDATE
"""
_ADD_ATTEMPT = """
    INSERT INTO notify.delivery_attempts (delivery_id, attempt, target, started_at, finished_at,
                                          http_status, outcome, error, worker)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""
_DELIVERY_DONE = """
    UPDATE notify.deliveries SET status = $2, finished_at = $3, lease_until = NULL WHERE id = $1
"""
_DELIVERY_RETRY = "UPDATE notify.deliveries SET due_at = $2, lease_until = NULL WHERE id = $1"
#: The page delivered, its alert moved on and the alert.delivered event queued, in one statement.
_DELIVERED = f"""
    WITH delivery AS (
        UPDATE notify.deliveries SET status = 'delivered', finished_at = $2, lease_until = NULL
         WHERE id = $1
    ), alert AS (
        UPDATE notify.alerts SET status = $4, first_delivered_at = $5, escalate_at = $6,
                                 changed_at = $2, version = $7
         WHERE id = $3
        RETURNING id
    )
    {add_event_after(outbox, "alert", first_param=8)}
"""


async def record_outcome(
    session: AsyncSession,
    *,
    delivery_id: uuid.UUID,
    alert_id: uuid.UUID,
    attempt: DeliveryAttempt,
    outcome: Outcome,
    settings: NotifySettings,
) -> Recorded:
    """Apply one attempt's outcome under the alert's lock (taken first, as everywhere).

    Every page passes here, so the statements go straight to asyncpg (`shared.db.driver`);
    only an escalation, rare, loads the alert into the session for `escalate`.
    """
    conn = await driver(session)
    row = await conn.fetchrow(_LOCK_ALERT, alert_id)
    delivery = await conn.fetchrow(_LOCK_DELIVERY, delivery_id, alert_id)
    assert row is not None and delivery is not None
    await conn.execute(
        _ADD_ATTEMPT,
        delivery_id,
        attempt.attempt,
        sealed("delivery_attempts").seal(
            ring_of(session),
            {"delivery_id": delivery_id, "attempt": attempt.attempt},
            attempt.target,
        ),
        attempt.started_at,
        attempt.finished_at,
        attempt.http_status,
        attempt.outcome,
        attempt.error,
        attempt.worker,
    )
    now = utcnow()
    if delivery["status"] != "pending":  # cancelled by an ack, a resolve or an escalation in flight
        return Recorded()
    alert = Alert(**dict(row))  # not attached to the session
    current = Step(delivery["escalation_level"], delivery["repeat_round"]) == _step(alert)
    if outcome.outcome == "delivered":
        if not current or alert.status not in OPEN:
            await conn.execute(_DELIVERY_DONE, delivery_id, "delivered", now)
            return Recorded()
        first = alert.first_delivered_at is None
        alert.status = "delivered" if _step(alert) == Step(0, 0) else "escalated"
        alert.first_delivered_at = alert.first_delivered_at or now
        if alert.escalate_at is None:  # the step's first delivered page starts its deadline
            plan = await plan_for(session, alert, settings=settings)
            delay = level_delay(plan, _step(alert), default=alert.ack_deadline_seconds)
            alert.escalate_at = now + timedelta(seconds=delay)
        alert.changed_at = now
        event = _event(alert, "delivered", attempt=attempt.attempt)
        await conn.execute(
            _DELIVERED,
            delivery_id,
            now,
            alert.id,
            alert.status,
            alert.first_delivered_at,
            alert.escalate_at,
            alert.version,
            *event_row(topic=ALERT_EVENTS, key=alert.screening_id, event=event),
        )
        since = alert.assessed_at or alert.created_at
        return Recorded(first_delivery_after=(now - since).total_seconds() if first else None)
    if (
        outcome.outcome == "temporary_failure"
        and delivery["attempts"] < settings.delivery_max_attempts
    ):
        wait = retry_delay(delivery["attempts"], settings, asked=outcome.retry_after)
        await conn.execute(_DELIVERY_RETRY, delivery_id, now + timedelta(seconds=wait))
        return Recorded()
    await conn.execute(_DELIVERY_DONE, delivery_id, "failed", now)
    if (
        not current
        or alert.status not in OPEN
        or await _step_still_has_hope(
            session, alert_id=alert.id, delivery_id=delivery_id, step=_step(alert)
        )
    ):
        return Recorded()
    # Every page of this step failed for good: nobody was reached, so do not wait the deadline.
    loaded = await session.get(Alert, alert_id)  # locked above, in this transaction
    assert loaded is not None
    plan = await plan_for(session, loaded, settings=settings)
    await escalate(
        session, loaded, plan=plan, settings=settings, why=attempt.error or outcome.outcome, now=now
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


#: How soon an alert whose escalation failed (not an outage: the alert itself) is tried again.
ESCALATION_RETRY_SECONDS = 30.0


async def escalate_overdue(
    session: AsyncSession, *, settings: NotifySettings, limit: int = 50
) -> list[float]:
    """Escalate every alert whose acknowledgement deadline has passed.

    Returns, per escalation, how late it ran after the deadline (seconds).
    """
    due = utcnow()
    alerts = list(
        await session.scalars(
            select(Alert)
            .where(Alert.escalate_at <= due, Alert.status.in_(("delivered", "escalated")))
            .order_by(Alert.escalate_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    now = utcnow()  # under the alerts' locks: no change recorded meanwhile is later than this
    lags = []
    for alert in alerts:
        assert alert.escalate_at is not None
        lag = (now - alert.escalate_at).total_seconds()
        # One alert that cannot be escalated (a policy edited into nonsense, a bug) must not
        # stop the others: each is escalated in a savepoint of its own, and one that fails is
        # tried again a little later, loudly, while the rest go on.
        try:
            async with session.begin_nested():
                plan = await plan_for(session, alert, settings=settings)
                await escalate(
                    session,
                    alert,
                    plan=plan,
                    settings=settings,
                    why="not acknowledged in time",
                    now=now,
                )
        except Exception as exc:
            if is_transient(exc):
                raise
            log.exception(
                "alert %s could not be escalated (%s); trying again in %.0f s",
                alert.id,
                type(exc).__name__,
                ESCALATION_RETRY_SECONDS,
            )
            await (await driver(session)).execute(
                "UPDATE notify.alerts SET escalate_at = $2 WHERE id = $1",
                alert.id,
                now + timedelta(seconds=ESCALATION_RETRY_SECONDS),
            )
            continue
        lags.append(lag)
    await session.flush()
    return lags
