"""Every POST notify makes (a page, a reminder) goes through the one webhook channel: within its
deadline, all of it, reading at most a few KB of the answer, and through the SSRF guard unless
the address is the operator's own."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import asyncpg
import pytest

from services.notify.delivery.channels import Page, WebhookChannel
from services.notify.reminders.sender import Claimed, ReminderSender
from services.notify.settings import NotifySettings
from shared.db import SessionFactory, create_engine, create_session_factory
from shared.events import utcnow
from shared.outbound import OutboundPolicy
from shared.wakeup import Listener
from shared.webhooks import webhook_session
from tests.support.receiver import Receiver
from tests.support.slow import SlowServer

SECRETS = ["s" * 32]


@pytest.fixture
async def plain() -> AsyncIterator[aiohttp.ClientSession]:
    # The session's own timeout (aiohttp's default, 5 min) is far above the channel's deadline:
    # the deadline must be the channel's.
    async with webhook_session(limit=4) as session:
        yield session


def _page() -> Page:
    return Page(
        delivery_id=uuid.uuid4(),
        attempt=1,
        escalation_level=0,
        repeat_round=0,
        alert_id=uuid.uuid4(),
        screening_id=uuid.uuid4(),
        risk_level="imminent",
        urgency="immediate",
        reasons=["test"],
        created_at=utcnow(),
        channel="webhook",
        target=None,
    )


async def test_a_page_to_an_endless_answer_is_delivered_on_its_status_and_not_read_whole(
    plain: aiohttp.ClientSession, endless: SlowServer
) -> None:
    channel = WebhookChannel(http=plain, secrets=SECRETS, timeout=2, trusted=[endless.url])
    started = time.monotonic()
    outcome = await channel.send(_page(), endless.url, {"alert_id": "x"})
    assert (outcome.outcome, outcome.http_status) == ("delivered", 200), outcome
    assert time.monotonic() - started < 1.5
    for _ in range(50):
        if endless.written:
            break
        await asyncio.sleep(0.05)
    assert endless.written and endless.written[0] < endless.cap, "the sender hung up early"


async def test_a_page_to_a_dripping_answer_gives_up_at_the_deadline(
    plain: aiohttp.ClientSession, drip: SlowServer
) -> None:
    channel = WebhookChannel(http=plain, secrets=SECRETS, timeout=1.5, trusted=[drip.url])
    started = time.monotonic()
    outcome = await channel.send(_page(), drip.url, {"alert_id": "x"})
    assert outcome.outcome == "temporary_failure" and outcome.error == "no answer within 1.5 s"
    assert time.monotonic() - started < 2.5


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url, pool_size=1)
    yield create_session_factory(engine)
    await engine.dispose()


async def _reminder(db: asyncpg.Pool) -> Claimed:
    """A reminder row leased for an hour: no running sender claims it but the test's."""
    claimed = Claimed(
        id=uuid.uuid4(),
        attempt=1,
        plan_id=uuid.uuid4(),
        screening_id=uuid.uuid4(),
        risk_level="high",
        plan_due_at=utcnow(),
    )
    now = utcnow()
    await db.execute(
        "INSERT INTO notify.reminders (id, kind, plan_id, screening_id, risk_level, plan_due_at,"
        " status, attempts, due_at, lease_until, created_at, correlation_id)"
        " VALUES ($1, 'safety_plan_overdue', $2, $3, 'high', $4, 'pending', 1, $4, $5, $4, 't')",
        claimed.id,
        claimed.plan_id,
        claimed.screening_id,
        now,
        now + timedelta(hours=1),
    )
    return claimed


def _settings(database_url: str, target: str) -> NotifySettings:
    return NotifySettings(  # type: ignore[call-arg]
        DATABASE_URL=database_url,
        ONCALL_WEBHOOK_URL=target,
        DELIVERY_TIMEOUT_SECONDS=1.5,
        # The retry is due in an hour: no running sender sends it meanwhile.
        RETRY_BASE_SECONDS=7200,
        RETRY_MAX_SECONDS=7200,
    )


async def test_a_reminder_keeps_to_the_channels_deadline(
    sessions: SessionFactory,
    db: asyncpg.Pool,
    database_url: str,
    plain: aiohttp.ClientSession,
    drip: SlowServer,
) -> None:
    settings = _settings(database_url, drip.url)
    channel = WebhookChannel(http=plain, secrets=SECRETS, timeout=1.5, trusted=[drip.url])
    sender = ReminderSender(
        sessions=sessions, settings=settings, channel=channel, listener=Listener("unused")
    )
    reminder = await _reminder(db)
    try:
        started = time.monotonic()
        async with asyncio.timeout(10):
            await sender._send(reminder)
        assert time.monotonic() - started < 2.5
        row = await db.fetchrow("SELECT * FROM notify.reminders WHERE id = $1", reminder.id)
        assert row["status"] == "pending" and row["last_error"] == "no answer within 1.5 s"
        assert drip.connections == 1
    finally:
        await db.execute("DELETE FROM notify.reminders WHERE id = $1", reminder.id)


async def test_a_reminder_to_an_address_the_guard_refuses_is_not_sent(
    sessions: SessionFactory,
    db: asyncpg.Pool,
    database_url: str,
    plain: aiohttp.ClientSession,
    receiver: Receiver,
) -> None:
    """Not the operator's own address (not trusted): the guard refuses loopback."""
    settings = _settings(database_url, receiver.url)
    policy = OutboundPolicy(allow_http=True)  # no OUTBOUND_ALLOWED_NETWORKS: loopback refused
    async with webhook_session(limit=1, guard=policy) as guarded:
        channel = WebhookChannel(http=plain, guarded=guarded, secrets=SECRETS, timeout=1.5)
        sender = ReminderSender(
            sessions=sessions, settings=settings, channel=channel, listener=Listener("unused")
        )
        reminder = await _reminder(db)
        before = len(receiver.got)
        try:
            await sender._send(reminder)
            row = await db.fetchrow("SELECT * FROM notify.reminders WHERE id = $1", reminder.id)
            assert row["status"] == "pending" and row["last_error"] == (
                "refused: the URL's host is a loopback address"
            )
            assert len(receiver.got) == before, "nothing reached the refused address"
        finally:
            await db.execute("DELETE FROM notify.reminders WHERE id = $1", reminder.id)
