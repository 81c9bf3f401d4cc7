"""A screening accepted but never assessed is not silent: ASSESSMENT_DEADLINE_SECONDS after its
submission an alert "assessment delayed, review by hand" is paged like any other. Here risk is
stopped, as a rule-set bug or a rolling deploy's version mismatch would stop the assessment;
when it comes back the late assessment lands on the case and pages nobody a second time.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.cases import LOW_CSSRS, screening
from tests.support.receiver import Receiver
from tests.support.services import ServiceProcesses
from tests.support.solo import SoloNotify, session_notify_stopped
from tests.support.waits import wait_case

DEADLINE = 2


@pytest.fixture(scope="module")
async def solo(
    services: ServiceProcesses, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SoloNotify]:
    async with session_notify_stopped(services, receiver):
        notify = SoloNotify(
            base_env=services.env,
            log_dir=tmp_path_factory.mktemp("watchdog-notify"),
            extra_env={"ASSESSMENT_DEADLINE_SECONDS": str(DEADLINE)},
        )
        await notify.start(wait_for="/readyz")
        try:
            yield notify
        finally:
            await notify.stop()


async def test_a_screening_not_assessed_in_time_is_paged_for_review_by_hand(
    intake: httpx.AsyncClient, solo: SoloNotify, services: ServiceProcesses, receiver: Receiver
) -> None:
    services.kill("risk", signal.SIGTERM)
    try:
        response = await intake.post("/v1/screenings", json=screening(LOW_CSSRS))
        assert response.status_code == 202
        sid = response.json()["id"]
        [page] = await receiver.wait_for(sid, timeout=DEADLINE + 10)
        assert page.json["risk_level"] == "high" and page.json["urgency"] == "urgent"
        assert any("assessment delayed" in r for r in page.json["reasons"]), page.json
        assert any("review by hand" in r for r in page.json["reasons"])
        case = (await intake.get(f"/v1/screenings/{sid}")).json()
        assert case["status"] == "received", "still unassessed when paged"
    finally:
        await asyncio.to_thread(services.start, "risk")

    case = await wait_case(intake, sid, lambda c: c["status"] == "assessed", timeout=30)
    assert case["risk"]["level"] == "low"
    await asyncio.sleep(1)
    assert len(receiver.for_screening(sid)) == 1, "the late assessment pages nobody again"
    assert len(case["alerts"]) == 1
