"""A message dead-lettered while a handler is broken is replayed after the fix and applied once.

The broken handler: intake's, for risk.assessed, made to fail for one screening by a trigger
(as a bug in recording the assessment would). Intake retries, then dead-letters the event; the
case stays "received" while notify, which consumed the same event, pages once. After the fix
(the trigger dropped), `triage dlq replay` puts the event back on its topic: intake applies it,
notify drops it by event id, and a second replay changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx

from deploy.localstack import LocalStack
from shared.topics import RISK_ASSESSED, dlq
from tests.support.cases import HIGH_CSSRS, screening
from tests.support.kafka import read_all
from tests.support.receiver import Receiver
from tests.support.services import ServiceProcesses
from tests.support.waits import wait_case

TRIAGE = Path(sys.executable).with_name("triage")


def _triage(services: ServiceProcesses, *args: str) -> str:
    done = subprocess.run(
        [str(TRIAGE), "dlq", *args],
        env=services.env_for(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def _dead_letter_of(stack: LocalStack, sid: str) -> dict:
    for _ in range(60):
        for record in await read_all(stack.bootstrap_servers, dlq(RISK_ASSESSED), timeout=1):
            envelope = json.loads(record.value)
            if envelope["data"]["screening_id"] == sid:
                return envelope
    raise AssertionError("the assessment was never dead-lettered")


async def test_a_dead_letter_is_replayed_after_the_fix_and_applied_once(
    intake: httpx.AsyncClient,
    services: ServiceProcesses,
    stack: LocalStack,
    db: asyncpg.Pool,
    receiver: Receiver,
) -> None:
    subject = f"dlq-replay-{uuid.uuid4().hex[:8]}"
    await db.execute(
        f"""
        CREATE FUNCTION public.broken_handler() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.subject_id = '{subject}' AND NEW.status = 'assessed' THEN
                RAISE EXCEPTION 'injected bug in recording the assessment';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER broken_handler BEFORE UPDATE ON intake.screenings
            FOR EACH ROW EXECUTE FUNCTION public.broken_handler();
        """
    )
    try:
        body = screening(HIGH_CSSRS, subject_id=subject)
        sid = (await intake.post("/v1/screenings", json=body)).json()["id"]
        envelope = await _dead_letter_of(stack, sid)
        assert await receiver.wait_for(sid), "notify paged from the same event"
        case = (await intake.get(f"/v1/screenings/{sid}")).json()
        assert case["status"] == "received"
    finally:
        await db.execute(
            "DROP TRIGGER broken_handler ON intake.screenings;"
            " DROP FUNCTION public.broken_handler()"
        )

    listed = _triage(services, "list")
    assert dlq(RISK_ASSESSED) in listed and "handler failed" in listed, listed
    shown = _triage(services, "show", "--event-id", envelope["event_id"])
    [letter] = [json.loads(line) for line in shown.splitlines() if line.startswith("{")]
    assert letter["group"] == "intake" and letter["type"] == "risk.assessed"
    assert letter["ids"]["screening_id"] == sid
    assert "answers" not in shown and "reasons" not in shown, "ids and reason only"

    replayed = _triage(
        services, "replay", "--topic", RISK_ASSESSED, "--event-id", envelope["event_id"]
    )
    assert "1 replayed" in replayed, replayed
    case = await wait_case(intake, sid, lambda c: c["status"] == "assessed", timeout=20)
    assert case["risk"]["level"] == "high"

    again = _triage(
        services, "replay", "--topic", RISK_ASSESSED, "--event-id", envelope["event_id"]
    )
    assert "0 replayed" in again and "1 skipped" in again, again
    await asyncio.sleep(1)
    event_id = uuid.UUID(envelope["event_id"])
    for group in ("intake", "notify"):
        assert (
            await db.fetchval(
                f"SELECT count(*) FROM {group}.processed_events WHERE event_id = $1", event_id
            )
            == 1
        )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM notify.alerts WHERE screening_id = $1", uuid.UUID(sid)
        )
        == 1
    )
    assert len(receiver.for_screening(sid)) == 1, "paged once, replay or not"
    plans = await db.fetchval(
        "SELECT count(*) FROM intake.safety_plans WHERE screening_id = $1", uuid.UUID(sid)
    )
    assert plans == 1, "the replayed assessment opened the case's safety plan, once"
