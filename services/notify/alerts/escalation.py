"""Escalation: an alert stands at one step (escalation level, round) of its plan; the step's
deliveries (one per contact method reached) are the durable timers of its pages, and
`alerts.escalate_at` is the durable timer of its next step.

A step is started (its pages planned), and when its deadline runs out, or every one of its pages
failed for good, the next step is (next level, or the first level of the next round). Every
change happens under the alert's row lock and queues its event in the same transaction.
Functions here flush; the caller commits.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.alerts.events import publish
from services.notify.alerts.models import Alert
from services.notify.alerts.queries import RETRY_ESCALATION
from services.notify.delivery import queries
from services.notify.delivery.models import Delivery
from services.notify.models import sealed
from services.notify.oncall import languages
from services.notify.oncall.models import Policy
from services.notify.oncall.policies import Plan, Step, fallback_plan, next_step, plan_from_row
from services.notify.oncall.service import Target, clinician_targets, level_targets
from services.notify.settings import NotifySettings
from shared.db import driver, is_transient
from shared.events import utcnow
from shared.phi import ring_of

log = logging.getLogger(__name__)


async def plan_for(session: AsyncSession, alert: Alert, *, settings: NotifySettings) -> Plan:
    """The alert's policy as it stands now, or the contract's fallback plan."""
    if alert.policy_id is not None:
        policy = await session.get(Policy, alert.policy_id)
        if policy is not None:
            return plan_from_row(policy.id, policy.name, policy.levels, policy.repeats)
    return fallback_plan(settings.max_escalation_level)


def step_of(alert: Alert) -> Step:
    """Where the alert stands in its plan."""
    return Step(alert.escalation_level, alert.repeat_round)


async def add_deliveries(session: AsyncSession, alert: Alert, rows: list[dict[str, Any]]) -> None:
    """Plan pages of the alert's current step; the unique (alert, round, level, contact method)
    key makes a second start of a step a no-op. One statement straight to asyncpg: every alert
    passes here."""
    ids, ring, target = [uuid.uuid4() for _ in rows], ring_of(session), sealed("deliveries")
    await (await driver(session)).execute(
        queries.ADD_DELIVERIES.sql,
        *queries.ADD_DELIVERIES.args(
            ids=ids,
            alert_id=alert.id,
            escalation_level=alert.escalation_level,
            repeat_round=alert.repeat_round,
            contact_method_ids=[row.get("contact_method_id") for row in rows],
            channels=[row["channel"] for row in rows],
            targets=[
                target.seal(ring, {"id": id_}, row["target"])
                for id_, row in zip(ids, rows, strict=True)
            ],
            due_ats=[row["due_at"] for row in rows],
            created_ats=[row["created_at"] for row in rows],
        ),
    )


async def start_step(
    session: AsyncSession, alert: Alert, *, plan: Plan, settings: NotifySettings, now: datetime
) -> None:
    """Plan the pages of the alert's current step, each due now plus its method's delay.

    A step nobody covers pages ONCALL_WEBHOOK_URL when it is set; otherwise the next step is
    tried at once. When no step has anyone, the page waits for a fallback target: never dropped.
    """
    while True:
        step = step_of(alert)
        level = plan.levels[step.level] if step.level < len(plan.levels) else None
        targets = []
        if level is not None and not level.fallback:
            targets = await level_targets(session, level=level, at=now)
        if targets and level is not None and level.prefer_language:
            targets += await _language_match(session, alert, targets, now)
        if targets:
            await add_deliveries(
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
            await add_deliveries(session, alert, [fallback])
            return
        alert.escalation_level, alert.repeat_round = following.level, following.repeat
        alert.status = "escalated"
        alert.changed_at = now
        await publish(session, alert, "escalated", failure="nobody on call")


async def _language_match(
    session: AsyncSession, alert: Alert, targets: list[Target], now: datetime
) -> list[Target]:
    """For a high or imminent alert in a language none of the step's clinicians speaks: the
    contact methods of one clinician on call who speaks it, paged in the same step at the same
    moment (never instead of, never after, the step's own pages)."""
    if alert.risk_level not in languages.PARALLEL_LEVELS:
        return []
    paged = {t.clinician_id for t in targets if t.clinician_id is not None}
    extra = await languages.speaker_to_add(session, language=alert.language, at=now, paged=paged)
    return await clinician_targets(session, [extra]) if extra is not None else []


async def stop_pages(session: AsyncSession, alert_id: uuid.UUID, now: datetime) -> None:
    """Cancel every page not yet sent, retries included; one on the wire is not retried."""
    await session.execute(
        update(Delivery)
        .where(Delivery.alert_id == alert_id, Delivery.status == "pending")
        .values(status="cancelled", finished_at=now)
    )


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
    await stop_pages(session, alert.id, now)
    alert.changed_at = now
    alert.escalate_at = None
    following = next_step(plan, step_of(alert))
    if following is None:
        if alert.status != "failed":
            alert.status = "failed"
            await publish(session, alert, "failed", failure=why)
        alert.repeat_round += 1  # a new round of the last level: new delivery rows
        later = now + timedelta(seconds=settings.final_repage_seconds)
        await start_step(session, alert, plan=plan, settings=settings, now=later)
        return
    alert.escalation_level, alert.repeat_round = following.level, following.repeat
    alert.status = "escalated"
    await publish(session, alert, "escalated", failure=why)
    await start_step(session, alert, plan=plan, settings=settings, now=now)


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
                RETRY_ESCALATION.sql,
                *RETRY_ESCALATION.args(
                    id=alert.id, escalate_at=now + timedelta(seconds=ESCALATION_RETRY_SECONDS)
                ),
            )
            continue
        lags.append(lag)
    await session.flush()
    return lags
