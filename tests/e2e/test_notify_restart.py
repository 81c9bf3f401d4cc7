"""A notify process killed with SIGKILL resumes every pending escalation on restart, on time,
without duplicates; a page that was on the wire when it died goes out again, never lost.

The session's notify is stopped for this module, so the notify processes here are the only
ones claiming pages.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from tests.support.cases import HIGH_CSSRS, screening
from tests.support.keys import ADMIN
from tests.support.pagers import Pagers, Reply
from tests.support.receiver import Receiver
from tests.support.roster import Roster, delivered_at, wait_until
from tests.support.services import ServiceProcesses
from tests.support.solo import SoloNotify, session_notify_stopped

#: Long enough for a killed notify to be restarted before the deadline it must keep.
DELAY = 8


@pytest.fixture(scope="module")
async def solo(
    services: ServiceProcesses, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SoloNotify]:
    async with session_notify_stopped(services, receiver):
        notify = SoloNotify(
            base_env=services.env,
            log_dir=tmp_path_factory.mktemp("solo-notify"),
            extra_env={"DELIVERY_LEASE_SECONDS": "2"},
        )
        await notify.start(wait_for="/readyz")
        try:
            yield notify
        finally:
            await notify.stop()


@pytest.fixture
async def roster(solo: SoloNotify, pagers: Pagers, db: asyncpg.Pool) -> AsyncIterator[Roster]:
    async with httpx.AsyncClient(base_url=solo.url, timeout=10, headers=ADMIN) as client:
        on_call = Roster(client, pagers, db)
        yield on_call
        await on_call.cleanup()


async def _alert_status(db: asyncpg.Pool, alert_id: str) -> str:
    return await db.fetchval("SELECT status FROM notify.alerts WHERE id = $1", uuid.UUID(alert_id))


async def test_sigkill_mid_escalation_resumes_each_pending_step_once_and_on_time(
    intake: httpx.AsyncClient, solo: SoloNotify, roster: Roster, pagers: Pagers, db: asyncpg.Pool
) -> None:
    staff = [await roster.clinician(n) for n in ("ana", "ben", "cam")]
    await roster.policy(
        ["high"],
        [{"clinician_ids": [c.id], "delay_seconds": DELAY} for c in staff],
    )
    sid = (await intake.post("/v1/screenings", json=screening(HIGH_CSSRS))).json()["id"]
    [first] = await pagers.wait_for(staff[0].pager, sid, timeout=30)
    alert_id = first.json["alert_id"]

    lateness = []
    for level in (1, 2):
        deadline = await delivered_at(db, alert_id, level - 1) + DELAY
        solo.kill()  # SIGKILL: no shutdown, no draining, nothing recorded on the way out
        restart = await solo.start()
        up = time.time()
        [page] = await pagers.wait_for(staff[level].pager, sid, timeout=DELAY + 30)
        lateness.append(page.at - deadline)
        escalated = await db.fetchval(
            "SELECT extract(epoch FROM created_at) FROM notify.deliveries"
            " WHERE alert_id = $1 AND escalation_level = $2",
            uuid.UUID(alert_id),
            level,
        )
        print(
            f"\nlevel {level + 1}: notify back up in {restart:.2f} s; missed ack deadline ->"
            f" escalation {(float(escalated) - deadline) * 1000:.1f} ms"
            f" -> page received {lateness[-1] * 1000:.1f} ms"
        )
        assert page.json["escalation_level"] == level
        if up < deadline:  # back in time: the page goes out at the deadline
            assert -0.05 < lateness[-1] < 0.5
        else:  # a slow machine: the page goes out as soon as notify is back
            assert page.at - up < 2.0

    await asyncio.sleep(1.0)
    assert [len(pagers.pages(c.pager, sid)) for c in staff] == [1, 1, 1], "each step exactly once"
    assert await _alert_status(db, alert_id) == "escalated"


async def test_a_page_on_the_wire_when_notify_dies_goes_out_again_after_its_lease(
    intake: httpx.AsyncClient, solo: SoloNotify, roster: Roster, pagers: Pagers, db: asyncpg.Pool
) -> None:
    ana = await roster.clinician("ana")
    await roster.policy(["high"], [{"clinician_ids": [ana.id], "delay_seconds": 60}])
    pagers.script(ana.pager, Reply(200, delay=3))  # the answer never reaches the dead process
    sid = (await intake.post("/v1/screenings", json=screening(HIGH_CSSRS))).json()["id"]
    [first] = await pagers.wait_for(ana.pager, sid, timeout=30)
    solo.kill()
    restart = await solo.start()

    pages = await pagers.wait_for(ana.pager, sid, count=2, timeout=10)
    assert pages[1].event_id == pages[0].event_id, "the same page, for the receiver to dedupe"
    resent_after = pages[1].at - first.at
    print(f"\npage on the wire at SIGKILL resent after {resent_after:.2f} s (lease 2 s)")
    assert resent_after < max(2.0, restart) + 1.0, "sent again once the 2 s lease ran out"
    alert_id = first.json["alert_id"]
    await wait_until(
        lambda: _is(db, alert_id, "delivered"), what="the resent page recorded as delivered"
    )
    await asyncio.sleep(0.5)
    assert len(pagers.pages(ana.pager, sid)) == 2


async def _is(db: asyncpg.Pool, alert_id: str, status: str) -> bool:
    return await _alert_status(db, alert_id) == status
