"""Follow-up after the call, on the real stack: a flagged screening opens one, due 24 hours
later; attempts move it on; five unanswered ones make the person unreachable, leave the
supervisor a task and send them a notice; a follow-up past its due time reminds the team."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta

import asyncpg
import httpx

from tests.support.cases import HIGH_CSSRS, LOW_CSSRS, screening
from tests.support.keys import CLINICIAN, EHR, HOTLINE, HOTLINE2, SUPERVISOR
from tests.support.receiver import Receiver
from tests.support.waits import wait_case

NOTE = "Left a voicemail for Maria at 555-0199, her sister picked up"


async def wait_kind(receiver: Receiver, sid: str, kind: str, timeout: float = 10) -> list:
    """What the on-call receiver got of `kind` for the screening (its page comes too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [r for r in receiver.for_screening(sid) if r.json.get("kind") == kind]
        if got:
            await asyncio.sleep(0.3)  # and nothing more of it comes
            return [r for r in receiver.for_screening(sid) if r.json.get("kind") == kind]
        await asyncio.sleep(0.05)
    return []


async def open_follow_up(intake: httpx.AsyncClient) -> tuple[str, dict]:
    """A flagged screening by the hotline key; (screening id, its case view) once assessed."""
    response = await intake.post("/v1/screenings", json=screening(HIGH_CSSRS), headers=HOTLINE)
    assert response.status_code == 202, response.text
    sid = response.json()["id"]
    case = await wait_case(intake, sid, lambda c: c.get("follow_up") is not None)
    return sid, case


async def test_flagged_screening_opens_one_follow_up_due_a_day_later(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    sid, case = await open_follow_up(intake)
    follow_up = case["follow_up"]
    assessed_at = datetime.fromisoformat(case["risk"]["assessed_at"])
    assert datetime.fromisoformat(follow_up["due_at"]) - assessed_at == timedelta(hours=24)
    assert follow_up["status"] == "open" and follow_up["attempts"] == 0
    assert follow_up["overdue"] is False and follow_up["risk_level"] == "high"
    n = await db.fetchval(
        "SELECT count(*) FROM intake.follow_ups WHERE screening_id = $1", uuid.UUID(sid)
    )
    assert n == 1

    low = await intake.post("/v1/screenings", json=screening(LOW_CSSRS))
    low_case = await wait_case(intake, low.json()["id"], lambda c: c["status"] == "assessed")
    assert low_case["follow_up"] is None, "only a flagged screening is followed up"

    # The worklist, most overdue first: one made overdue comes before the fresh one.
    _, older = await open_follow_up(intake)
    await db.execute(
        "UPDATE intake.follow_ups SET due_at = now() - interval '2 hours' WHERE id = $1",
        uuid.UUID(older["follow_up"]["id"]),
    )
    listed = (await intake.get("/v1/follow-ups", params={"limit": 500}, headers=CLINICIAN)).json()
    ids = [row["id"] for row in listed]
    assert ids.index(older["follow_up"]["id"]) < ids.index(follow_up["id"])
    dues = [row["due_at"] for row in listed]
    assert dues == sorted(dues)
    assert next(r for r in listed if r["id"] == older["follow_up"]["id"])["overdue"] is True


async def test_scope_hotline_own_screenings_only_ehr_not_at_all(intake: httpx.AsyncClient) -> None:
    _, case = await open_follow_up(intake)
    url = f"/v1/follow-ups/{case['follow_up']['id']}"
    assert (await intake.get(url, headers=HOTLINE)).status_code == 200
    assert (await intake.get(url, headers=HOTLINE2)).status_code == 404
    assert (await intake.get(url, headers=EHR)).status_code == 403
    refused = await intake.post(f"{url}/attempts", json={"outcome": "no_answer"}, headers=EHR)
    assert refused.status_code == 403
    listed = (await intake.get("/v1/follow-ups", headers=HOTLINE2)).json()
    assert case["follow_up"]["id"] not in [r["id"] for r in listed]


async def test_bad_attempt_is_refused_without_echo(intake: httpx.AsyncClient) -> None:
    _, case = await open_follow_up(intake)
    url = f"/v1/follow-ups/{case['follow_up']['id']}/attempts"
    for body in (
        {"outcome": "maybe", "note": NOTE},
        {"note": NOTE},
        {"outcome": "reached", "x": 1},
    ):
        response = await intake.post(url, json=body, headers=CLINICIAN)
        assert response.status_code == 422, response.text
        assert "Maria" not in response.text
    got = (await intake.get(f"/v1/follow-ups/{case['follow_up']['id']}")).json()
    assert got["attempts"] == 0 and got["attempt_log"] == []


async def test_reached_closes_the_follow_up(intake: httpx.AsyncClient) -> None:
    _, case = await open_follow_up(intake)
    url = f"/v1/follow-ups/{case['follow_up']['id']}"
    response = await intake.post(
        f"{url}/attempts", json={"outcome": "reached", "note": NOTE}, headers=HOTLINE
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "completed"
    again = await intake.post(f"{url}/attempts", json={"outcome": "no_answer"}, headers=HOTLINE)
    assert again.status_code == 409


async def test_five_unanswered_attempts_make_it_unreachable_and_notify_the_supervisor(
    intake: httpx.AsyncClient, db: asyncpg.Pool, receiver: Receiver
) -> None:
    sid, case = await open_follow_up(intake)
    fid = case["follow_up"]["id"]
    url = f"/v1/follow-ups/{fid}"
    created = datetime.fromisoformat(case["risk"]["assessed_at"])
    for number in range(1, 5):
        response = await intake.post(
            f"{url}/attempts", json={"outcome": "no_answer", "note": NOTE}, headers=CLINICIAN
        )
        assert response.status_code == 201, response.text
        got = response.json()
        assert got["status"] == "open" and got["attempts"] == number
        # Spread over 48 hours: 24 h, then every 6 h (4 more slots up to 48 h).
        due = datetime.fromisoformat(got["due_at"]) - created
        assert due == timedelta(hours=24 + 6 * number), due
        assert got["tasks"] == []
    last = await intake.post(f"{url}/attempts", json={"outcome": "no_answer"}, headers=CLINICIAN)
    assert last.status_code == 201
    got = last.json()
    assert got["status"] == "unreachable" and got["attempts"] == 5
    assert [(t["kind"], t["for_role"], t["status"]) for t in got["tasks"]] == [
        ("unreachable", "supervisor", "open")
    ]
    assert [a["note"] for a in got["attempt_log"]] == [NOTE] * 4 + [None]
    assert (
        await intake.post(f"{url}/attempts", json={"outcome": "no_answer"}, headers=CLINICIAN)
    ).status_code == 409

    # The supervisor is told (notify's reminder, as for an overdue plan): ids only.
    notices = await wait_kind(receiver, sid, "follow_up_unreachable")
    assert len(notices) == 1
    assert notices[0].json["for"] == "supervisor"
    assert "Maria" not in notices[0].body.decode()

    # The supervisor's task list shows it, and it can be closed.
    tasks = (
        await intake.get(
            "/v1/follow-up-tasks",
            params={"for_role": "supervisor", "limit": 500},
            headers=SUPERVISOR,
        )
    ).json()
    task = next(t for t in tasks if t["follow_up_id"] == fid)
    done = await intake.post(f"/v1/follow-up-tasks/{task['id']}/done", headers=SUPERVISOR)
    assert done.status_code == 200 and done.json()["done_by"]

    # The note is encrypted at rest and never in the audit trail or an event.
    stored = await db.fetch(
        "SELECT note FROM intake.follow_up_attempts WHERE follow_up_id = $1 AND note IS NOT NULL",
        uuid.UUID(fid),
    )
    assert len(stored) == 4 and all(r["note"].startswith("phi1:") for r in stored)
    leaked = await db.fetchval(
        "SELECT count(*) FROM intake.audit_log a WHERE a::text LIKE '%Maria%'"
    )
    assert leaked == 0
    outbox = await db.fetchval(
        "SELECT count(*) FROM intake.outbox WHERE convert_from(value, 'UTF8') LIKE '%Maria%'"
    )
    assert outbox == 0
    # Every read of the notes is in the trail, naming the follow-up (appended through Kafka).
    read = await intake.get(url, headers=CLINICIAN)
    assert read.json()["attempt_log"][0]["note"] == NOTE
    deadline = time.monotonic() + 10
    audit: list = []
    while not audit and time.monotonic() < deadline:
        audit = (
            await intake.get(
                "/v1/audit", params={"resource": f"follow-up/{fid}", "action": "get_follow_up"}
            )
        ).json()
        await asyncio.sleep(0.1)
    assert audit, "reads of a follow-up's notes are audited"
    assert "Maria" not in str(audit)


async def test_overdue_follow_up_reminds_the_team(
    intake: httpx.AsyncClient, db: asyncpg.Pool, receiver: Receiver
) -> None:
    sid, case = await open_follow_up(intake)
    await db.execute(
        "UPDATE intake.follow_ups SET due_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(case["follow_up"]["id"]),
    )
    overdue = await wait_kind(receiver, sid, "follow_up_overdue")
    assert len(overdue) == 1
    assert overdue[0].json["for"] == "team"
    shown = await wait_case(intake, sid, lambda c: c["follow_up"]["overdue"])
    assert shown["follow_up"]["status"] == "open"
