"""`GET /v1/oncall/coverage` on the real stack: segments that tile the window, gaps, an override
changing who covers, the default window and the 31-day limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.pagers import Pagers
from tests.support.roster import Roster


@pytest.fixture
async def roster(notify: httpx.AsyncClient, db: asyncpg.Pool) -> AsyncIterator[Roster]:
    on_call = Roster(notify, Pagers(port=9), db)  # no pages go out: nothing is bound to a level
    yield on_call
    await on_call.cleanup()


@pytest.fixture
async def day_shifts(notify: httpx.AsyncClient, roster: Roster) -> dict[str, str]:
    """12-hour shifts from 2026-07-01 08:00 UTC (ana, then ben) until 2026-07-03 08:00."""
    ids = {name: (await roster.clinician(name)).id for name in ("ana", "ben", "cat")}
    made = await notify.post(
        "/v1/schedules",
        json={
            "name": "coverage",
            "rotations": [
                {
                    "clinician_ids": [ids["ana"], ids["ben"]],
                    "shift_hours": 12,
                    "start": "2026-07-01T08:00:00",
                    "end": "2026-07-03T08:00:00",
                    "time_zone": "UTC",
                }
            ],
        },
    )
    assert made.status_code == 201, made.text
    return {**ids, "schedule": made.json()["id"]}


async def coverage(notify: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await notify.get("/v1/oncall/coverage", params=params)


def rows(schedule: dict[str, Any], names: dict[str, str]) -> list[tuple[str, str, str | None]]:
    """(start, end, who) per segment, times as UTC hh:mm on the day, who by name or source."""
    who = {v: k for k, v in names.items()}

    def hhmm(at: str) -> str:
        return datetime.fromisoformat(at).strftime("%d %H:%M")

    return [
        (
            hhmm(s["start"]),
            hhmm(s["end"]),
            who.get(s["clinician_id"]) if s["clinician_id"] else None,
        )
        for s in schedule["segments"]
    ]


def tiles(answer: dict[str, Any]) -> bool:
    for schedule in answer["schedules"]:
        edges = [answer["from"]] + [s["end"] for s in schedule["segments"]]
        starts = [s["start"] for s in schedule["segments"]]
        parsed = [datetime.fromisoformat(e) for e in edges]
        if [datetime.fromisoformat(s) for s in starts] != parsed[:-1]:
            return False
        if parsed[-1] != datetime.fromisoformat(answer["to"]):
            return False
    return True


async def test_coverage_tiles_the_window_with_gaps_and_an_override(
    notify: httpx.AsyncClient, day_shifts: dict[str, str]
) -> None:
    window = {"from": "2026-06-30T20:00:00-04:00", "to": "2026-07-03T12:00:00Z"}
    answer = await coverage(notify, schedule_id=day_shifts["schedule"], **window)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert datetime.fromisoformat(body["from"]) == datetime.fromisoformat("2026-07-01T00:00:00Z")
    assert tiles(body)
    [schedule] = body["schedules"]
    assert (schedule["schedule_id"], schedule["schedule"]) == (day_shifts["schedule"], "coverage")
    assert rows(schedule, day_shifts) == [
        ("01 00:00", "01 08:00", None),  # before the rotation starts: a gap
        ("01 08:00", "01 20:00", "ana"),
        ("01 20:00", "02 08:00", "ben"),
        ("02 08:00", "02 20:00", "ana"),
        ("02 20:00", "03 08:00", "ben"),
        ("03 08:00", "03 12:00", None),  # after it ends
    ]
    gap = schedule["segments"][0]
    assert gap["clinician"] is None and gap["source"] is None
    assert schedule["segments"][1]["clinician"] == "ana"
    assert schedule["segments"][1]["source"] == "rotation"

    cover = {
        "clinician_id": day_shifts["cat"],
        "start": "2026-07-02T10:00:00Z",
        "end": "2026-07-02T12:00:00Z",
    }
    added = await notify.post(f"/v1/schedules/{day_shifts['schedule']}/overrides", json=cover)
    assert added.status_code == 201, added.text
    after = (await coverage(notify, schedule_id=day_shifts["schedule"], **window)).json()
    assert tiles(after)
    [schedule] = after["schedules"]
    assert rows(schedule, day_shifts)[3:6] == [
        ("02 08:00", "02 10:00", "ana"),
        ("02 10:00", "02 12:00", "cat"),
        ("02 12:00", "02 20:00", "ana"),
    ]
    assert schedule["segments"][4]["source"] == "override"
    assert schedule["segments"][4]["clinician"] == "cat"


async def test_every_schedule_and_the_default_window(
    notify: httpx.AsyncClient, day_shifts: dict[str, str]
) -> None:
    answer = await coverage(notify)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    window = datetime.fromisoformat(body["to"]) - datetime.fromisoformat(body["from"])
    assert window == timedelta(days=7)
    assert day_shifts["schedule"] in {s["schedule_id"] for s in body["schedules"]}
    assert tiles(body)
    mine = next(s for s in body["schedules"] if s["schedule_id"] == day_shifts["schedule"])
    assert mine["segments"] == [
        {
            "start": mine["segments"][0]["start"],
            "end": mine["segments"][0]["end"],
            "clinician_id": None,
            "clinician": None,
            "source": None,
        }
    ], "the rotation ended in 2026: nobody covers the coming week"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-07-01T00:00:00Z", "to": "2026-07-01T00:00:00Z"}, "to"),
        ({"from": "2026-07-02T00:00:00Z", "to": "2026-07-01T00:00:00Z"}, "to"),
        ({"from": "2026-07-01T00:00:00Z", "to": "2026-08-01T00:00:01Z"}, "to"),
        ({"from": "2026-07-01T00:00:00"}, "from"),
        ({"from": "2026-07-01T00:00:00Z", "to": "2026-07-02T00:00:00"}, "to"),
        ({"from": "1969-12-31T00:00:00Z"}, "from"),
        ({"from": "8999-12-31T23:00:00-05:00"}, "from"),
        ({"from": "0001-01-01T00:00:00+01:00"}, "from"),
        ({"to": "2020-01-01T00:00:00Z"}, "to"),  # `from` defaults to now: before it
        ({"schedule_id": "not-a-uuid"}, "schedule_id"),
    ],
)
async def test_bad_windows_are_422_naming_the_field(
    notify: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    answer = await coverage(notify, **params)
    assert answer.status_code == 422, answer.text
    assert [p["field"].removeprefix("query.") for p in answer.json()["problems"]] == [field]


async def test_a_window_of_31_days_is_the_longest_and_an_unknown_schedule_is_404(
    notify: httpx.AsyncClient, day_shifts: dict[str, str]
) -> None:
    month = {"from": "2026-07-01T00:00:00Z", "to": "2026-08-01T00:00:00Z"}
    answer = await coverage(notify, schedule_id=day_shifts["schedule"], **month)
    assert answer.status_code == 200, answer.text
    assert tiles(answer.json())
    missing = await coverage(notify, schedule_id="00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
