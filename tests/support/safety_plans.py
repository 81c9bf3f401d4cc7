"""Safety-plan helpers: who is acting, opening a plan through the pipeline, filling it, and
reading the plan's events from Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from shared.events import Envelope
from shared.topics import SAFETY_PLAN_EVENTS
from tests.support.cases import HIGH_CSSRS, screening
from tests.support.keys import CLINICIAN, HOTLINE
from tests.support.waits import wait_case

REQUIRED_STEPS = (
    "warning_signs",
    "internal_coping",
    "social_distraction",
    "help_contacts",
    "professional_contacts",
    "environment_safety",
)


def if_match(version: int, who: dict[str, str] = HOTLINE) -> dict[str, str]:
    return {**who, "If-Match": f'"{version}"'}


async def open_plan(
    intake: httpx.AsyncClient, case: dict[str, Any] = HIGH_CSSRS, **extra: Any
) -> tuple[str, dict[str, Any]]:
    """Submit a flagged screening; (screening id, its plan document) once the plan is open."""
    # Submitted by the hotline key, whose plans hotline staff may then build.
    response = await intake.post("/v1/screenings", json=screening(case, **extra), headers=HOTLINE)
    assert response.status_code == 202, response.text
    sid = response.json()["id"]
    case_view = await wait_case(intake, sid, lambda c: c["safety_plan"] is not None)
    plan = await intake.get(f"/v1/safety-plans/{case_view['safety_plan']['id']}")
    assert plan.status_code == 200, plan.text
    return sid, plan.json()


async def fill_and_review(intake: httpx.AsyncClient, plan: dict[str, Any]) -> dict[str, Any]:
    """Answer every required step (one as not applicable) and have a clinician review it."""
    base = f"/v1/safety-plans/{plan['id']}"
    version = plan["version"]
    for step in REQUIRED_STEPS[:-1]:
        response = await intake.post(
            f"{base}/steps/{step}/entries",
            json={"text": f"my words for {step}"},
            headers=if_match(version),
        )
        assert response.status_code == 201, response.text
        version = response.json()["version"]
    response = await intake.put(
        f"{base}/steps/{REQUIRED_STEPS[-1]}/not-applicable",
        json={"reason": "no means at home, confirmed with the caller"},
        headers=if_match(version),
    )
    assert response.status_code == 200, response.text
    response = await intake.post(
        f"{base}/review", headers=if_match(response.json()["version"], CLINICIAN)
    )
    assert response.status_code == 200, response.text
    return response.json()


async def plan_events(
    bootstrap: str,
    plan_id: str,
    *,
    until: Callable[[list[Envelope]], bool],
    timeout: float = 10.0,
) -> list[Envelope]:
    """The plan's events on triage.safety-plan.events.v1, read from the start until `until`
    holds and everything published by then has been read (so "exactly one" can be asserted)."""
    consumer = AIOKafkaConsumer(
        SAFETY_PLAN_EVENTS,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: list[Envelope] = []
    try:
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    envelope = Envelope.decode(record.value)
                    if envelope.data.get("plan_id") == plan_id:
                        seen.append(envelope)
            if until(seen) and await _at_end(consumer):
                break
        return seen
    finally:
        await consumer.stop()


async def _at_end(consumer: AIOKafkaConsumer) -> bool:
    assigned = consumer.assignment()
    if not assigned:
        return False
    ends = await consumer.end_offsets(list(assigned))
    return all([await consumer.position(tp) >= end for tp, end in ends.items()])


def of_type(events: list[Envelope], event_type: str) -> list[Envelope]:
    return [e for e in events if e.type == event_type]
