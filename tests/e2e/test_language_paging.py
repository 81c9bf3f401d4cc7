"""Language-aware paging, end to end through real Kafka: a high or imminent screening in a
language the on-call clinician does not speak pages them at once AND, in the same step at the
same moment, a clinician on call who speaks it; when nobody on call speaks it, the case view
says `interpreter_needed`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from tests.support.cases import IMMINENT_ASQ, screening
from tests.support.roster import Clinician, Roster
from tests.support.waits import wait_case


async def on_call(notify: httpx.AsyncClient, who: Clinician, name: str) -> str:
    """A schedule `who` covers from an hour ago for the next few minutes only (schedules are
    global: later tests must not find this clinician on call)."""
    now = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    rotation = {
        "clinician_ids": [who.id],
        "shift_hours": 24,
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(minutes=3)).isoformat(),
        "time_zone": "UTC",
    }
    made = await notify.post(
        "/v1/schedules", json={"name": f"{name}-{uuid.uuid4().hex[:6]}", "rotations": [rotation]}
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def due_times(db: asyncpg.Pool, alert_id: str) -> list[tuple[int, datetime]]:
    rows = await db.fetch(
        "SELECT escalation_level, due_at FROM notify.deliveries WHERE alert_id = $1",
        uuid.UUID(alert_id),
    )
    return [(r["escalation_level"], r["due_at"]) for r in rows]


async def test_an_imminent_spanish_screening_pages_the_on_call_and_a_spanish_speaker_at_once(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, roster: Roster, db: asyncpg.Pool
) -> None:
    ana, sofia, ben = (
        await roster.clinician("ana"),
        await roster.clinician("sofia"),
        await roster.clinician("ben"),
    )
    spoken = await notify.put(f"/v1/clinicians/{sofia.id}/languages", json={"languages": ["es"]})
    assert spoken.status_code == 200, spoken.text
    assert spoken.json()["languages"] == ["es"]
    assert (await notify.get(f"/v1/clinicians/{sofia.id}")).json()["languages"] == ["es"]
    desk = await on_call(notify, ana, "desk")
    await on_call(notify, sofia, "spanish-desk")
    await roster.policy(
        ["imminent"], [{"schedule_id": desk, "prefer_language": True}, {"clinician_ids": [ben.id]}]
    )

    posted = await intake.post(
        "/v1/screenings", json=screening(IMMINENT_ASQ, language="es-MX", country="MX")
    )
    assert posted.status_code == 202, posted.text
    sid = posted.json()["id"]
    first = (await roster.pagers.wait_for(ana.pager, sid))[0]
    second = (await roster.pagers.wait_for(sofia.pager, sid))[0]
    alert_id = first.json["alert_id"]
    assert second.json["alert_id"] == alert_id
    # One step (level 0), one moment: the match is not a later step, nor after a wait.
    times = await due_times(db, alert_id)
    assert len(times) == 2 and {level for level, _ in times} == {0}
    assert times[0][1] == times[1][1]
    assert abs(first.at - second.at) < 1.0
    assert not roster.pagers.pages(ben.pager, sid), "the next level is not paged"
    case = await wait_case(intake, sid, lambda c: bool(c["alerts"]))
    assert case["language"] == "es-MX" and case["interpreter_needed"] is False
    assert case["alerts"][0]["interpreter_needed"] is False

    # In English nobody extra is paged (a clinician without languages speaks English).
    english = await intake.post("/v1/screenings", json=screening(IMMINENT_ASQ))
    eid = english.json()["id"]
    await roster.pagers.wait_for(ana.pager, eid)
    eng_alert = roster.pagers.pages(ana.pager, eid)[0].json["alert_id"]
    assert len(await due_times(db, eng_alert)) == 1
    assert not roster.pagers.pages(sofia.pager, eid)

    # Portuguese: nobody on call speaks it. The on-call clinician is paged all the same, and
    # the case says an interpreter is needed.
    portuguese = await intake.post("/v1/screenings", json=screening(IMMINENT_ASQ, language="pt"))
    pid = portuguese.json()["id"]
    await roster.pagers.wait_for(ana.pager, pid)
    assert not roster.pagers.pages(sofia.pager, pid)
    case = await wait_case(
        intake, pid, lambda c: bool(c["alerts"]) and c["interpreter_needed"] is True
    )
    assert case["language"] == "pt"


async def test_clinician_languages_are_checked_by_name(
    notify: httpx.AsyncClient, roster: Roster
) -> None:
    made = await notify.post(
        "/v1/clinicians", json={"name": "lu", "languages": ["ES-mx", "en", "en"]}
    )
    assert made.status_code == 201, made.text
    assert made.json()["languages"] == ["es-MX", "en"]
    bad = await notify.post("/v1/clinicians", json={"name": "lu", "languages": ["en", "klingon"]})
    assert bad.status_code == 422
    assert "klingon" not in bad.text
    assert any(p["field"] == "languages.1" for p in bad.json()["problems"]), bad.text
    nobody = await notify.put(f"/v1/clinicians/{uuid.uuid4()}/languages", json={"languages": []})
    assert nobody.status_code == 404
