"""A plan that passes its due time open is announced once, and the on-call clinician is reminded.

intake's watcher (woken by the due-time change, sleeping until the due time) → outbox →
triage.safety-plan.events.v1 → notify → one reminder per plan → signed POST to the receiver.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from datetime import datetime, timedelta

import asyncpg
import httpx

from deploy.localstack import LocalStack
from services.intake.safety_plans.overdue import claim_overdue
from shared.db import create_engine, create_session_factory, transaction
from shared.events import utcnow
from shared.phi import RING, KeyRing
from tests.conftest import WEBHOOK_SECRET
from tests.support.keys import PHI_KEYS
from tests.support.receiver import Received, Receiver
from tests.support.safety_plans import (
    CLINICIAN,
    fill_and_review,
    if_match,
    of_type,
    open_plan,
    plan_events,
)

REMINDER_FIELDS = {"kind", "plan_id", "screening_id", "risk_level", "due_at"}


def signed(received: Received) -> bool:
    ts = received.headers["x-triage-timestamp"]
    want = hmac.new(WEBHOOK_SECRET.encode(), f"{ts}.".encode() + received.body, hashlib.sha256)
    given = [s.strip()[3:] for s in received.headers["x-triage-signature"].split(",")]
    return any(hmac.compare_digest(want.hexdigest(), g) for g in given)


def reminders(receiver: Receiver, sid: str) -> list[Received]:
    return [r for r in receiver.for_screening(sid) if r.json.get("kind") == "safety_plan_overdue"]


async def wait_reminders(
    receiver: Receiver, sid: str, *, count: int = 1, timeout: float = 10
) -> list[Received]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = reminders(receiver, sid)
        if len(got) >= count:
            return got
        await asyncio.sleep(0.02)
    return reminders(receiver, sid)


async def due_in(intake: httpx.AsyncClient, plan: dict, seconds: float) -> dict:
    """A clinician moves the plan's due time to `seconds` from now (a revision)."""
    due = (utcnow() + timedelta(seconds=seconds)).isoformat()
    response = await intake.put(
        f"/v1/safety-plans/{plan['id']}/due",
        json={"due_at": due},
        headers=if_match(plan["version"], CLINICIAN),
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_overdue_plan_is_announced_once_and_reminds_the_on_call_clinician(
    intake: httpx.AsyncClient, receiver: Receiver, stack: LocalStack, db: asyncpg.Pool
) -> None:
    sid, plan = await open_plan(intake, contact={"name": "Jo Caller", "phone": "+1 555 0100"})
    done_sid, done = await open_plan(intake)
    # The completed plan is due at the same time; it must never be announced.
    done = await due_in(intake, done, 1.5)
    done = await fill_and_review(intake, done)
    completed = await intake.post(
        f"/v1/safety-plans/{done['id']}/complete", headers=if_match(done["version"])
    )
    assert completed.status_code == 200, completed.text
    plan = await due_in(intake, plan, 1.5)
    due_at = plan["due_at"]
    assert plan["overdue"] is False

    [reminder] = await wait_reminders(receiver, sid)
    late = reminder.at - datetime.fromisoformat(due_at).timestamp()
    assert 0 <= late < 2, f"the reminder arrives at the due time, not {late:.3f} s after"
    assert signed(reminder)
    assert set(reminder.json) == REMINDER_FIELDS
    assert reminder.json == {
        "kind": "safety_plan_overdue",
        "plan_id": plan["id"],
        "screening_id": sid,
        "risk_level": "high",
        "due_at": reminder.json["due_at"],
    }
    assert reminder.json["due_at"][:19] == due_at[:19]
    assert "Jo Caller" not in reminder.body.decode() and "555 0100" not in reminder.body.decode()

    events = await plan_events(
        stack.bootstrap_servers,
        plan["id"],
        until=lambda es: bool(of_type(es, "safety_plan.overdue")),
    )
    [overdue] = of_type(events, "safety_plan.overdue")
    assert overdue.data["status"] == "open" and overdue.data["risk_level"] == "high"
    assert set(overdue.data) <= {
        "plan_id",
        "screening_id",
        "status",
        "risk_level",
        "due_at",
        "changed_at",
        "version",
        "action",
    }
    done_events = await plan_events(
        stack.bootstrap_servers,
        done["id"],
        until=lambda es: bool(of_type(es, "safety_plan.completed")),
    )
    assert of_type(done_events, "safety_plan.overdue") == [], "a completed plan is never overdue"

    case = (await intake.get(f"/v1/screenings/{sid}")).json()
    assert case["safety_plan"]["overdue"] is True
    document = (await intake.get(f"/v1/safety-plans/{plan['id']}")).json()
    assert document["overdue_notified_at"] is not None
    assert document["version"] == plan["version"], "being overdue is not a revision"
    row = await db.fetchrow(
        "SELECT status, attempts FROM notify.reminders WHERE plan_id = $1", uuid.UUID(plan["id"])
    )
    assert row is not None and row["status"] == "delivered" and row["attempts"] == 1

    await asyncio.sleep(1.0)
    assert len(reminders(receiver, sid)) == 1, "exactly one reminder"
    assert reminders(receiver, done_sid) == []


async def test_a_failed_reminder_is_retried_with_the_same_event_id(
    intake: httpx.AsyncClient, receiver: Receiver, db: asyncpg.Pool
) -> None:
    sid, plan = await open_plan(intake)
    assert await receiver.wait_for(sid), "the alert page went out first"
    receiver.fail_next(503)
    await due_in(intake, plan, 0.5)
    got = await wait_reminders(receiver, sid, count=2)
    assert len(got) == 2
    assert got[0].headers["x-triage-event-id"] == got[1].headers["x-triage-event-id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        row = await db.fetchrow(
            "SELECT status, attempts, last_http_status FROM notify.reminders WHERE plan_id = $1",
            uuid.UUID(plan["id"]),
        )
        if row is not None and row["status"] == "delivered":
            break
        await asyncio.sleep(0.05)
    assert row is not None and (row["status"], row["attempts"]) == ("delivered", 2)


async def test_overdue_is_claimed_once_however_many_replicas_race(
    intake: httpx.AsyncClient, database_url: str, stack: LocalStack, db: asyncpg.Pool
) -> None:
    """The service's watcher and four more claimers race for the same due plans."""
    plans = [(await open_plan(intake))[1] for _ in range(4)]
    due = utcnow() + timedelta(seconds=1.0)
    for plan in plans:
        response = await intake.put(
            f"/v1/safety-plans/{plan['id']}/due",
            json={"due_at": due.isoformat()},
            headers=if_match(plan["version"], CLINICIAN),
        )
        assert response.status_code == 200, response.text

    engine = create_engine(database_url, pool_size=4)
    # With the key ring, as the services have it: a plan's sealed fields load decrypted.
    sessions = create_session_factory(engine, info={RING: KeyRing.parse(PHI_KEYS)})

    async def claimer() -> list[str]:
        await asyncio.sleep(max(0.0, (due - utcnow()).total_seconds()))
        mine: list[str] = []
        for _ in range(20):
            async with transaction(sessions) as session:
                mine += [str(p.id) for p in await claim_overdue(session)]
            await asyncio.sleep(0.005)
        return mine

    try:
        claimed = [
            pid for batch in await asyncio.gather(*(claimer() for _ in range(4))) for pid in batch
        ]
    finally:
        await engine.dispose()

    ids = [p["id"] for p in plans]
    assert len(claimed) == len(set(claimed)), "no plan claimed twice by the racing claimers"
    for plan_id in ids:
        events = await plan_events(
            stack.bootstrap_servers,
            plan_id,
            until=lambda es: bool(of_type(es, "safety_plan.overdue")),
        )
        assert len(of_type(events, "safety_plan.overdue")) == 1, plan_id
    marked = await db.fetchval(
        "SELECT count(*) FROM intake.safety_plans"
        " WHERE id = ANY($1::uuid[]) AND overdue_notified_at IS NOT NULL",
        [uuid.UUID(i) for i in ids],
    )
    assert marked == len(ids)


async def test_a_reminder_is_never_given_up_while_the_gateway_keeps_failing(
    intake: httpx.AsyncClient, receiver: Receiver, db: asyncpg.Pool
) -> None:
    """Past DELIVERY_MAX_ATTEMPTS (6) of 503s the reminder used to be marked failed for good: a
    short gateway outage during a deploy lost it. Now it is retried with backoff until it is
    delivered."""
    sid, plan = await open_plan(intake)
    assert await receiver.wait_for(sid), "the alert page went out first"
    receiver.fail_next(*[503] * 7)
    await due_in(intake, plan, 0.5)
    got = await wait_reminders(receiver, sid, count=8, timeout=40)
    assert len(got) == 8
    assert len({r.headers["x-triage-event-id"] for r in got}) == 1, "one reminder, retried"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        row = await db.fetchrow(
            "SELECT status, attempts FROM notify.reminders WHERE plan_id = $1",
            uuid.UUID(plan["id"]),
        )
        if row is not None and row["status"] == "delivered":
            break
        await asyncio.sleep(0.05)
    assert row is not None and (row["status"], row["attempts"]) == ("delivered", 8)
