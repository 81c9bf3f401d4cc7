"""Two notify replicas on one database never both fire the same step.

A second notify process joins the session's one (same database, same consumer group). Both are
woken by every timer change and both race to claim the same pages and escalations; the row locks
(`FOR UPDATE SKIP LOCKED`, leases, one delivery per step) must leave exactly one page per
clinician per alert.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from tests.support.cases import HIGH_CSSRS, screening
from tests.support.keys import ADMIN
from tests.support.pagers import Pagers
from tests.support.receiver import Receiver
from tests.support.roster import Roster, probe_pipeline
from tests.support.services import ServiceProcesses
from tests.support.solo import SoloNotify

ALERTS = 8


@pytest.fixture(scope="module")
async def replica(
    services: ServiceProcesses, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SoloNotify]:
    second = SoloNotify(base_env=services.env, log_dir=tmp_path_factory.mktemp("replica"))
    await second.start(wait_for="/readyz")
    try:
        yield second
    finally:
        await second.stop()
        async with (
            httpx.AsyncClient(base_url=services.url("intake"), timeout=10, headers=ADMIN) as intake,
            httpx.AsyncClient(base_url=services.url("notify"), timeout=10, headers=ADMIN) as notify,
        ):
            await probe_pipeline(intake, notify, receiver)


async def test_two_replicas_page_each_step_exactly_once(
    intake: httpx.AsyncClient,
    replica: SoloNotify,
    roster: Roster,
    pagers: Pagers,
    db: asyncpg.Pool,
) -> None:
    staff = [await roster.clinician(n) for n in ("ana", "ben", "cam")]
    policy_id = await roster.policy(
        ["high"], [{"clinician_ids": [c.id], "delay_seconds": 1} for c in staff]
    )
    posts = [intake.post("/v1/screenings", json=screening(HIGH_CSSRS)) for _ in range(ALERTS)]
    sids = [r.json()["id"] for r in await asyncio.gather(*posts)]

    for sid in sids:
        await pagers.wait_for(staff[-1].pager, sid, timeout=30)
    await asyncio.sleep(1.5)  # after the last level: any duplicate would have been sent by now
    # One page per step: a step is a level in a round. The last level is paged again every
    # FINAL_REPAGE_SECONDS (a new round) until acknowledged; on a slow machine the first alerts
    # get there before the last one reaches it, and those pages are new steps, not duplicates.
    steps = {
        c.pager: [
            [(p.json["escalation_level"], p.json["repeat"]) for p in pagers.pages(c.pager, sid)]
            for sid in sids
        ]
        for c in staff
    }
    for pager, per_alert in steps.items():
        for got in per_alert:
            assert len(got) == len(set(got)), f"{pager} got a step twice: {got}"
            assert sum(1 for _, repeat in got if repeat == 0) == 1, f"{pager}: {got}"

    workers = await db.fetch(
        "SELECT DISTINCT a.worker FROM notify.delivery_attempts a"
        " JOIN notify.deliveries d ON d.id = a.delivery_id"
        " JOIN notify.alerts al ON al.id = d.alert_id WHERE al.policy_id = $1",
        uuid.UUID(policy_id),
    )
    assert len(workers) == 2, "both replicas sent pages"
