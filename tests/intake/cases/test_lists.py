"""The worklists on the real stack: `GET /v1/screenings` and `GET /v1/safety-plans` list exactly
what each credential may read (checked against the database), newest first (the overdue list
soonest due first), filtered, a page at a time; bad parameters are a 422 naming the parameter;
no contact, note or plan entry ever appears, and each page is a read in the audit trail.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import httpx
import pytest

from shared.events import utcnow
from tests.support.cases import HIGH_CSSRS, LOW_CSSRS, MODERATE_PHQ9, screening
from tests.support.keys import (
    CLINICIAN,
    EHR,
    EHR_SYSTEMS,
    HOTLINE,
    HOTLINE2,
    NAMES,
    SUPERVISOR,
)
from tests.support.safety_plans import fill_and_review, if_match, open_plan
from tests.support.waits import wait_case

Params = list[tuple[str, str | int | float | bool | None]]

SCREENING_FIELDS = {
    "id",
    "subject_id",
    "source",
    "instrument",
    "status",
    "created_at",
    "risk",
    "safety_plan",
}
RISK_FIELDS = {"level", "flagged", "reasons", "assessed_at"}
PLAN_REF_FIELDS = {"id", "status", "due_at"}
PLAN_FIELDS = {
    "id",
    "screening_id",
    "status",
    "version",
    "due_at",
    "created_at",
    "overdue",
    "reviewed",
    "risk_level",
}
CANARY = {"name": "Canary Listington", "phone": "+1 555 0142 9981"}
CANARY_NOTES = "canary list note: sleeps at her cousin's on Fridays"
CANARY_ENTRY = "Canary entry: call Aunt Rosalind on 555-0177"


async def walk(
    intake: httpx.AsyncClient, path: str, params: Params, who: dict[str, str]
) -> tuple[list[dict[str, Any]], int]:
    """Every item of a list, following `Link: rel="next"`; (items, pages read)."""
    response = await intake.get(path, params=params, headers=who)
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        pages += 1
        items += response.json()
        following = response.links.get("next", {}).get("url")
        if following is None:
            return items, pages
        response = await intake.get(following, headers=who)


async def listed(
    intake: httpx.AsyncClient, path: str, who: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    """Every item, 500 a page."""
    query: Params = [("limit", 500)]
    for name, value in params.items():
        values = value if isinstance(value, list) else [value]
        query += [(name, str(v).lower() if isinstance(v, bool) else v) for v in values]
    items, _ = await walk(intake, path, query, who)
    return items


async def submit(intake: httpx.AsyncClient, who: dict[str, str], **body: Any) -> str:
    response = await intake.post("/v1/screenings", json=body, headers=who)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def key_id(db: asyncpg.Pool, who: str) -> str:
    return str(await db.fetchval("SELECT id FROM intake.api_keys WHERE name = $1", NAMES[who]))


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


async def test_each_credential_lists_exactly_the_screenings_and_plans_it_may_read(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    since = utcnow() - timedelta(seconds=1)
    mine = await submit(intake, HOTLINE, **screening(HIGH_CSSRS))
    theirs = await submit(intake, HOTLINE2, **screening(HIGH_CSSRS))
    filed = await submit(intake, EHR, **screening(HIGH_CSSRS, source="ehr"))
    for sid in (mine, theirs, filed):
        await wait_case(intake, sid, lambda c: c["safety_plan"] is not None)
    # Scope, as the database has it: the submitting key, the EHR's systems, or everything.
    scopes = {
        "hotline": (HOTLINE, "submitted_by = $2", await key_id(db, "hotline")),
        "hotline2": (HOTLINE2, "submitted_by = $2", await key_id(db, "hotline2")),
        "ehr": (EHR, "filed_under = ANY($2::text[])", list(EHR_SYSTEMS)),
        "clinician": (CLINICIAN, "$2::text IS NULL", None),
    }
    seen: dict[str, set[str]] = {}
    for who, (headers, where, arg) in scopes.items():
        got = ids(await listed(intake, "/v1/screenings", headers, since=since.isoformat()))
        assert len(got) == len(set(got)), who
        rows = await db.fetch(
            f"SELECT id FROM intake.screenings WHERE received_at >= $1 AND {where}", since, arg
        )
        assert set(got) == {str(r["id"]) for r in rows}, who
        seen[who] = set(got)
        plans = ids(await listed(intake, "/v1/safety-plans", headers))
        rows = await db.fetch(
            "SELECT p.id FROM intake.safety_plans p JOIN intake.screenings s"
            f" ON s.id = p.screening_id WHERE {where.replace('$2', '$1')}",
            arg,
        )
        assert set(plans) == {str(r["id"]) for r in rows}, who
    assert mine in seen["hotline"] and {theirs, filed}.isdisjoint(seen["hotline"])
    assert theirs in seen["hotline2"] and {mine, filed}.isdisjoint(seen["hotline2"])
    assert filed in seen["ehr"] and {mine, theirs}.isdisjoint(seen["ehr"])
    assert {mine, theirs, filed} <= seen["clinician"]


async def test_no_contact_notes_or_plan_entries_in_either_list(
    intake: httpx.AsyncClient,
) -> None:
    since = utcnow() - timedelta(seconds=1)
    sid, plan = await open_plan(intake, contact=CANARY, notes=CANARY_NOTES)
    added = await intake.post(
        f"/v1/safety-plans/{plan['id']}/steps/warning_signs/entries",
        json={"text": CANARY_ENTRY},
        headers=if_match(plan["version"]),
    )
    assert added.status_code == 201, added.text
    for who in (HOTLINE, CLINICIAN, SUPERVISOR, {}):  # {}: the client's admin key
        response = await intake.get(
            "/v1/screenings", params={"since": since.isoformat()}, headers=who
        )
        [item] = [i for i in response.json() if i["id"] == sid]
        assert set(item) == SCREENING_FIELDS
        assert set(item["risk"]) == RISK_FIELDS and item["risk"]["level"] == "high"
        assert set(item["safety_plan"]) == PLAN_REF_FIELDS
        assert item["safety_plan"]["id"] == plan["id"]
        assert item["source"] == "hotline" and item["status"] == "assessed"
        plans = await intake.get("/v1/safety-plans", params={"screening_id": sid}, headers=who)
        [row] = plans.json()
        assert set(row) == PLAN_FIELDS
        assert row["version"] == plan["version"] + 1 and row["risk_level"] == "high"
        for text in (response.text, plans.text):
            for secret in (CANARY["name"], CANARY["phone"], CANARY_NOTES, CANARY_ENTRY):
                assert secret not in text


async def test_screenings_are_filtered_by_time_flag_level_and_status(
    intake: httpx.AsyncClient,
) -> None:
    since = utcnow() - timedelta(seconds=1)
    low = await submit(intake, HOTLINE2, **screening(LOW_CSSRS))
    moderate = await submit(intake, HOTLINE2, **screening(MODERATE_PHQ9))
    high = await submit(intake, HOTLINE2, **screening(HIGH_CSSRS))
    for sid in (low, moderate, high):
        await wait_case(intake, sid, lambda c: c["status"] == "assessed")

    async def found(**params: Any) -> list[dict[str, Any]]:
        return await listed(intake, "/v1/screenings", HOTLINE2, since=since.isoformat(), **params)

    everything = await found()
    assert ids(everything)[:3] == [high, moderate, low], "newest first"
    flagged = await found(flagged=True)
    assert {moderate, high} <= set(ids(flagged)) and low not in ids(flagged)
    assert all(i["risk"]["flagged"] for i in flagged)
    calm = await found(flagged=False)
    assert low in ids(calm) and {moderate, high}.isdisjoint(ids(calm))
    assert all(i["risk"] and not i["risk"]["flagged"] for i in calm)
    levels = await found(level=["low", "high"])
    assert {low, high} <= set(ids(levels)) and moderate not in ids(levels)
    assert {i["risk"]["level"] for i in levels} <= {"low", "high"}
    assert all(i["status"] == "assessed" for i in await found(status="assessed"))
    assert {low, moderate, high}.isdisjoint(ids(await found(status="received")))
    # `since` is inclusive, and any offset names the same moment.
    at = datetime.fromisoformat(next(i for i in everything if i["id"] == moderate)["created_at"])
    later = await listed(intake, "/v1/screenings", HOTLINE2, since=at.isoformat())
    assert {moderate, high} <= set(ids(later)) and low not in ids(later)
    elsewhere = at.astimezone(timezone(timedelta(hours=-5, minutes=-30))).isoformat()
    assert ids(await listed(intake, "/v1/screenings", HOTLINE2, since=elsewhere)) == ids(later)
    moderate_plan = next(i for i in everything if i["id"] == moderate)["safety_plan"]
    assert moderate_plan["status"] == "open"
    assert next(i for i in everything if i["id"] == low)["safety_plan"] is None


async def test_lists_page_newest_first_with_a_link_that_keeps_the_filters(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # From now on, not a second before: the same key's screenings of the test before would count.
    since = utcnow()
    posted = [await submit(intake, HOTLINE2, **screening(LOW_CSSRS)) for _ in range(5)]
    for sid in posted:
        await wait_case(intake, sid, lambda c: c["status"] == "assessed")
    query: Params = [
        ("level", "low"),
        ("level", "none"),
        ("since", since.isoformat()),
        ("limit", 2),
    ]
    first = await intake.get("/v1/screenings", params=query, headers=HOTLINE2)
    assert len(first.json()) == 2
    link = first.links["next"]["url"]
    assert link.count("level=") == 2 and "since=" in link and "limit=2" in link
    items, pages = await walk(intake, "/v1/screenings", query, HOTLINE2)
    assert ids(items) == posted[::-1] and pages == 3, "5 screenings, 2 a page, newest first"
    times = [datetime.fromisoformat(i["created_at"]) for i in items]
    assert times == sorted(times, reverse=True)

    plans: list[str] = []
    for _ in range(3):
        _, plan = await open_plan(intake)
        plans.append(plan["id"])
    first_page = await intake.get("/v1/safety-plans", params={"limit": 2}, headers=HOTLINE)
    second = await intake.get(first_page.links["next"]["url"], headers=HOTLINE)
    newest = ids(first_page.json()) + ids(second.json())
    assert newest[:3] == plans[::-1], "plans newest first, across pages"
    count = await db.fetchval(
        "SELECT count(*) FROM intake.safety_plans p JOIN intake.screenings s"
        " ON s.id = p.screening_id WHERE s.submitted_by = $1",
        await key_id(db, "hotline"),
    )
    assert len(await listed(intake, "/v1/safety-plans", HOTLINE)) == count


BAD_PARAMETERS = [
    # (name, path, params, the field the 422 names)
    ("naive since", "/v1/screenings", {"since": "2026-12-01T00:00:00"}, "since"),
    ("since not a time", "/v1/screenings", {"since": "last-tuesday-Jane"}, "since"),
    ("since without UTC", "/v1/screenings", {"since": "0001-01-01T00:00:00+01:00"}, "since"),
    ("flagged not a bool", "/v1/screenings", {"flagged": "perhaps-Jane"}, "flagged"),
    ("unknown level", "/v1/screenings", {"level": "severe-Jane"}, "level"),
    ("too many levels", "/v1/screenings", [("level", "low")] * 6, "level"),
    ("unknown status", "/v1/screenings", {"status": "closed-Jane"}, "status"),
    ("limit 0", "/v1/screenings", {"limit": 0}, "limit"),
    ("limit 501", "/v1/screenings", {"limit": 501}, "limit"),
    ("foreign cursor", "/v1/screenings", {"cursor": "Jane-Doe-555"}, "cursor"),
    ("id as cursor", "/v1/screenings", {"cursor": str(uuid.uuid4())}, "cursor"),
    (
        "cursor before year 1",
        "/v1/screenings",
        {"cursor": f"-99999999999999999.{'a' * 32}"},
        "cursor",
    ),
    ("cursor too long", "/v1/screenings", {"cursor": "9" * 101}, "cursor"),
    ("overdue not a bool", "/v1/safety-plans", {"overdue": "perhaps-Jane"}, "overdue"),
    ("plan status", "/v1/safety-plans", {"status": "closed-Jane"}, "status"),
    ("screening_id", "/v1/safety-plans", {"screening_id": "Jane-Doe"}, "screening_id"),
    ("plan limit", "/v1/safety-plans", {"limit": 501}, "limit"),
    ("plan cursor", "/v1/safety-plans", {"cursor": "Jane-Doe-555"}, "cursor"),
]


@pytest.mark.parametrize(
    ("name", "path", "params", "field"), BAD_PARAMETERS, ids=[b[0] for b in BAD_PARAMETERS]
)
async def test_bad_parameters_are_a_422_naming_them_never_echoing_them(
    name: str, path: str, params: Any, field: str, intake: httpx.AsyncClient
) -> None:
    response = await intake.get(path, params=params, headers=CLINICIAN)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid"
    assert any(field in p["field"] for p in body["problems"]), body
    assert "Jane" not in response.text


async def test_the_overdue_list_is_open_plans_past_due_longest_overdue_first(
    intake: httpx.AsyncClient,
) -> None:
    async def due_at_opening(plan: dict[str, Any]) -> dict[str, Any]:
        """A clinician moves the due time back to the plan's opening: overdue at once."""
        moved = await intake.put(
            f"/v1/safety-plans/{plan['id']}/due",
            json={"due_at": plan["created_at"]},
            headers=if_match(plan["version"], CLINICIAN),
        )
        assert moved.status_code == 200, moved.text
        return dict(moved.json())

    first_sid, first = await open_plan(intake)
    _, second = await open_plan(intake)
    _, done = await open_plan(intake)
    _, waiting = await open_plan(intake)  # due in hours: open, not overdue
    first, second = await due_at_opening(first), await due_at_opening(second)
    done = await fill_and_review(intake, await due_at_opening(done))
    completed = await intake.post(
        f"/v1/safety-plans/{done['id']}/complete", headers=if_match(done["version"])
    )
    assert completed.status_code == 200, completed.text

    overdue = await listed(intake, "/v1/safety-plans", CLINICIAN, overdue=True)
    order = ids(overdue)
    assert first["id"] in order and second["id"] in order
    assert order.index(first["id"]) < order.index(second["id"]), "longest overdue first"
    assert {done["id"], waiting["id"]}.isdisjoint(order)
    assert all(p["overdue"] and p["status"] == "open" for p in overdue)
    dues = [datetime.fromisoformat(p["due_at"]) for p in overdue]
    assert dues == sorted(dues) and max(dues) < utcnow()

    others = await listed(intake, "/v1/safety-plans", CLINICIAN, overdue=False)
    assert {done["id"], waiting["id"]} <= set(ids(others))
    assert {first["id"], second["id"]}.isdisjoint(ids(others))
    assert not any(p["overdue"] for p in others)

    complete = await listed(intake, "/v1/safety-plans", HOTLINE, status="complete")
    [row] = [p for p in complete if p["id"] == done["id"]]
    assert all(p["status"] == "complete" for p in complete)
    assert row["reviewed"]["by"] == NAMES["clinician"] and row["overdue"] is False
    assert row["version"] == done["version"] + 1
    [open_row] = await listed(intake, "/v1/safety-plans", HOTLINE, screening_id=first_sid)
    assert open_row["id"] == first["id"] and open_row["overdue"] is True
    assert open_row["reviewed"] is None
    assert datetime.fromisoformat(open_row["due_at"]) == datetime.fromisoformat(first["due_at"])
    outside = await listed(intake, "/v1/safety-plans", HOTLINE2, screening_id=first_sid)
    assert outside == [], "another hotline key's plan is not listed, even by its screening"

    newest = ids(await listed(intake, "/v1/safety-plans", HOTLINE))
    mine = [p["id"] for p in (first, second, done, waiting)]
    assert [p for p in newest if p in mine] == mine[::-1], "newest first without overdue=true"


async def test_each_page_is_a_read_in_the_audit_trail(intake: httpx.AsyncClient) -> None:
    correlation = f"list-{uuid.uuid4()}"
    headers = {**CLINICIAN, "X-Correlation-Id": correlation}
    assert (await intake.get("/v1/screenings", params={"limit": 1}, headers=headers)).is_success
    assert (await intake.get("/v1/safety-plans", headers=headers)).is_success
    deadline = time.monotonic() + 10
    entries: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        trail = await intake.get("/v1/audit", params={"actor": NAMES["clinician"], "limit": 50})
        entries = [e for e in trail.json() if e["correlation_id"] == correlation]
        if len(entries) == 2:
            break
        await asyncio.sleep(0.1)
    got = {(e["action"], e["resource"], e["outcome"]) for e in entries}
    assert got == {
        ("list_screenings", "screenings", "success"),
        ("list_safety_plans", "safety-plans", "success"),
    }
