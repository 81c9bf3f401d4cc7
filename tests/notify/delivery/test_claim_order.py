"""A backlog of unanswered alerts, paged again and again, does not hold up a new alert's first
page: the deliverer claims the pages nobody has had yet first, and keeps slots for them.

The claim runs against the real database, on rows stored in a transaction that is rolled back:
the running notify never sees them (nor its wake-ups: NOTIFY is sent at commit only).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.notify.delivery.channels import Page
from services.notify.delivery.deliverer import Deliverer
from services.notify.delivery.queries import CLAIM
from services.notify.settings import NotifySettings
from shared.wakeup import Listener
from tests.support.services import ServiceProcesses

_ALERT = """
    INSERT INTO notify.alerts (id, screening_id, risk_level, urgency, reasons, status,
                               escalation_level, repeat_round, ack_deadline_seconds, created_at,
                               changed_at, correlation_id, version)
    VALUES ($1, $2, 'high', 'urgent', '["stored by a test"]', $3, 0, $4, 300, $5, $5, 'test', 1)
"""
_DELIVERY = """
    INSERT INTO notify.deliveries (id, alert_id, escalation_level, repeat_round, status, attempts,
                                   due_at, created_at)
    VALUES ($1, $2, 0, $3, 'pending', 0, $4, $4)
"""


class _Rollback(Exception):
    pass


async def _alert(conn: asyncpg.Connection, *, status: str, rounds: int, at: datetime) -> uuid.UUID:
    alert_id = uuid.uuid4()
    await conn.execute(_ALERT, alert_id, uuid.uuid4(), status, rounds, at)
    return alert_id


async def _page(
    conn: asyncpg.Connection, alert_id: uuid.UUID, rounds: int, due: datetime
) -> uuid.UUID:
    delivery_id = uuid.uuid4()
    await conn.execute(_DELIVERY, delivery_id, alert_id, rounds, due)
    return delivery_id


async def test_a_new_alerts_first_page_goes_before_a_backlog_of_repeats(
    services: ServiceProcesses, db: asyncpg.Pool
) -> None:
    # Long overdue: before any page another test left due, so each claim reaches these first.
    then = datetime(2000, 1, 1, tzinfo=UTC)
    with pytest.raises(_Rollback):
        async with db.acquire() as conn, conn.transaction():
            # Five alerts nobody answered, each due to be paged again an hour before the new one.
            repeats = []
            for n in range(5):
                old = await _alert(conn, status="escalated", rounds=3, at=then)
                repeats.append(await _page(conn, old, 3, then + timedelta(minutes=1, seconds=n)))
            new = await _alert(conn, status="pending", rounds=0, at=then + timedelta(hours=1))
            first = await _page(conn, new, 0, then + timedelta(hours=1))
            ours = {first, *repeats}

            async def claim(limit: int, repeat_limit: int) -> set[uuid.UUID]:
                savepoint = conn.transaction()  # each claim starts afresh
                await savepoint.start()
                rows = await conn.fetch(CLAIM, 15.0, limit, repeat_limit)
                await savepoint.rollback()
                return {r["id"] for r in rows} & ours

            # Two free slots, one of them open to repeats: the first page, and the oldest repeat
            # (due first) with the other. (By due time alone, two repeats would have gone.)
            assert await claim(2, 1) == {first, repeats[0]}
            # No slot open to repeats: the first page alone.
            assert await claim(3, 0) == {first}
            # Slots enough: everything due.
            assert await claim(10, 10) == ours
            raise _Rollback


@pytest.mark.parametrize(("slots", "repeats"), [(1, 1), (2, 1), (8, 7), (64, 56), (100, 88)])
def test_an_eighth_of_the_slots_at_least_one_is_kept_for_first_pages(
    slots: int, repeats: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELIVERY_CONCURRENCY", str(slots))
    assert NotifySettings().repeat_slots == repeats


def _deliverer(slots: int) -> Deliverer:
    settings = NotifySettings(DELIVERY_CONCURRENCY=slots)  # type: ignore[call-arg]
    return Deliverer(
        sessions=None,  # type: ignore[arg-type]  # (the sends here stop before any statement)
        channels={},
        settings=settings,
        ack_keys=[b"k" * 32],
        listener=Listener("postgresql://unused"),
        metrics=None,  # type: ignore[arg-type]
    )


def _repeat_page() -> Page:
    return Page(
        delivery_id=uuid.uuid4(),
        attempt=1,
        escalation_level=0,
        repeat_round=2,
        alert_id=uuid.uuid4(),
        screening_id=uuid.uuid4(),
        risk_level="high",
        urgency="urgent",
        reasons=[],
        created_at=datetime.now(UTC),
        channel="webhook",
        target=None,
    )


async def test_a_send_stopped_by_an_acknowledgement_frees_its_slot_and_wakes_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last repeat slot, held by a page whose alert was acknowledged meanwhile: the slot is
    free when the loop wakes, and it wakes (else a due page waits for the next timer)."""
    deliverer = _deliverer(slots=2)  # one slot for repeats, one kept for first pages
    assert NotifySettings(DELIVERY_CONCURRENCY=2).repeat_slots == 1  # type: ignore[call-arg]

    async def acknowledged(page: Page) -> bool:
        return False

    monkeypatch.setattr(deliverer, "_still_pending", acknowledged)
    send = asyncio.create_task(deliverer._send(_repeat_page()))
    deliverer._in_flight.add(send)
    deliverer._repeats_in_flight.add(send)
    woken = deliverer._loop._wake
    assert not woken.is_set()
    await send
    assert woken.is_set(), "the loop was not woken"
    assert not deliverer._in_flight and not deliverer._repeats_in_flight
