"""The safety-plan workflow on the real stack: opened once, edited as revisions, guarded by
versions, reviewed by a clinician, completed only when nothing is outstanding, and printable."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timedelta

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy.localstack import LocalStack
from shared.events import LevelResponseData, RiskAssessed, utcnow
from shared.topics import RISK_ASSESSED
from tests.support.cases import HIGH_CSSRS, IMMINENT_ASQ, LOW_CSSRS, MODERATE_PHQ9, screening
from tests.support.keys import ADMIN, EHR, HOTLINE2
from tests.support.safety_plans import (
    CLINICIAN,
    HOTLINE,
    REQUIRED_STEPS,
    fill_and_review,
    if_match,
    of_type,
    open_plan,
    plan_events,
)
from tests.support.waits import wait_case

STEP_KEYS = [*REQUIRED_STEPS, "reason_for_living"]
PHI_WORDS = "Call my sister Maria on 555-0199 when the voices start"


async def test_flagged_screening_opens_one_plan_with_six_empty_steps(
    intake: httpx.AsyncClient, db: asyncpg.Pool, stack: LocalStack
) -> None:
    sid, plan = await open_plan(intake, HIGH_CSSRS)
    response = await intake.get(f"/v1/safety-plans/{plan['id']}")
    assert response.headers["etag"] == '"1"'
    assert response.headers["cache-control"] == "no-store"
    assert plan["status"] == "open" and plan["version"] == 1 and plan["risk_level"] == "high"
    assert [s["key"] for s in plan["steps"]] == STEP_KEYS
    assert all(s["entries"] == [] and s["not_applicable_reason"] is None for s in plan["steps"])
    assert [s["required"] for s in plan["steps"]] == [True] * 6 + [False]
    assert plan["emergency_task"] is None, "only imminent plans start with emergency coordination"
    case = (await intake.get(f"/v1/screenings/{sid}")).json()
    assessed_at = datetime.fromisoformat(case["risk"]["assessed_at"])
    due = datetime.fromisoformat(plan["due_at"]) - assessed_at
    assert due == timedelta(minutes=240), "SAFETY_PLAN_DUE_MINUTES default for high"
    shown = datetime.fromisoformat(case["safety_plan"]["due_at"])
    assert shown == datetime.fromisoformat(plan["due_at"]), "the case view shows the due time"

    # The same assessment redelivered under new event ids opens nothing more.
    redelivered = [
        RiskAssessed(
            assessment_id=uuid.uuid4(),
            screening_id=uuid.UUID(sid),
            instrument="cssrs_screener",
            level="high",
            flagged=True,
            reasons=["test redelivery"],
            rules_version="test",
            assessed_at=utcnow(),
            response=LevelResponseData(
                alert=True,
                urgency="urgent",
                safety_plan=True,
                emergency_task=False,
                ack_deadline_seconds=300,
            ),
        ).envelope(correlation_id="redelivery-test")
        for _ in range(2)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    await producer.start()
    try:
        for envelope in redelivered:
            await producer.send_and_wait(RISK_ASSESSED, envelope.encode(), key=sid.encode())
    finally:
        await producer.stop()
    ids = [e.event_id for e in redelivered]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        n = await db.fetchval(
            "SELECT count(*) FROM intake.processed_events WHERE event_id = ANY($1::uuid[])", ids
        )
        if n == 2:
            break
        await asyncio.sleep(0.05)
    assert n == 2, "intake processed both redeliveries"
    sid_uuid = uuid.UUID(sid)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM intake.safety_plans WHERE screening_id = $1", sid_uuid
        )
        == 1
    )
    revisions = (await intake.get(f"/v1/safety-plans/{plan['id']}/revisions")).json()
    assert [(r["version"], r["action"], r["actor"]) for r in revisions] == [(1, "opened", "system")]


@pytest.mark.parametrize(
    ("case", "level"),
    [(LOW_CSSRS, "low"), ({"instrument": "phq9", "answers": {"items": [1] * 8 + [0]}}, "none")],
    ids=["low", "none"],
)
async def test_low_and_none_open_no_plan(
    case: dict, level: str, intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    sid = (await intake.post("/v1/screenings", json=screening(case))).json()["id"]
    case_view = await wait_case(intake, sid, lambda c: c["status"] == "assessed")
    assert case_view["risk"]["level"] == level
    assert case_view["safety_plan"] is None
    n = await db.fetchval(
        "SELECT count(*) FROM intake.safety_plans WHERE screening_id = $1", uuid.UUID(sid)
    )
    assert n == 0


async def test_moderate_plan_is_due_per_its_level(intake: httpx.AsyncClient) -> None:
    sid, plan = await open_plan(intake, MODERATE_PHQ9)
    case = (await intake.get(f"/v1/screenings/{sid}")).json()
    due = datetime.fromisoformat(plan["due_at"]) - datetime.fromisoformat(
        case["risk"]["assessed_at"]
    )
    assert plan["risk_level"] == "moderate" and due == timedelta(minutes=1440)


async def test_imminent_plan_cannot_be_completed_while_emergency_coordination_is_open(
    intake: httpx.AsyncClient, stack: LocalStack
) -> None:
    sid, plan = await open_plan(intake, IMMINENT_ASQ)
    assert "emergency" in json.dumps(plan).lower()
    assert plan["emergency_task"]["status"] == "open"
    # No hard-wired number: the person's country's lines come with the plan.
    assert "988" not in plan["emergency_task"]["description"]
    assert {"988", "911"} <= {r["contact"] for r in plan["crisis_resources"]}
    base = f"/v1/safety-plans/{plan['id']}"

    plan = await fill_and_review(intake, plan)
    assert plan["reviewed_by"] == "dr-lee"
    assert [p["field"] for p in plan["outstanding"]] == ["emergency_task"]
    refused = await intake.post(f"{base}/complete", headers=if_match(plan["version"]))
    assert refused.status_code == 409
    assert refused.json()["error"] == "plan_incomplete"
    assert [p["field"] for p in refused.json()["problems"]] == ["emergency_task"]

    no_reason = await intake.put(
        f"{base}/emergency-task", json={"status": "declined"}, headers=if_match(plan["version"])
    )
    assert no_reason.status_code == 422
    assert no_reason.json()["problems"][0]["field"] == "reason"
    declined = await intake.put(
        f"{base}/emergency-task",
        json={"status": "declined", "reason": "caller safe with a family member; declined 988"},
        headers=if_match(plan["version"]),
    )
    assert declined.status_code == 200, declined.text
    plan = declined.json()
    assert plan["emergency_task"]["status"] == "declined"
    assert plan["emergency_task"]["closed_by"] == "jsmith"
    assert plan["reviewed_at"] is None, "a change after the review voids it"
    assert [p["field"] for p in plan["outstanding"]] == ["review"]

    reviewed = await intake.post(f"{base}/review", headers=if_match(plan["version"], CLINICIAN))
    done = await intake.post(f"{base}/complete", headers=if_match(reviewed.json()["version"]))
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "complete" and done.json()["completed_by"] == "jsmith"
    case = (await intake.get(f"/v1/screenings/{sid}")).json()
    assert case["safety_plan"]["status"] == "complete"
    assert case["safety_plan"]["emergency_task_status"] == "declined"
    assert case["safety_plan"]["overdue"] is False

    late = await intake.post(
        f"{base}/steps/warning_signs/entries",
        json={"text": "more"},
        headers=if_match(done.json()["version"]),
    )
    assert late.status_code == 409 and late.json()["error"] == "plan_complete"

    events = await plan_events(
        stack.bootstrap_servers,
        plan["id"],
        until=lambda es: bool(of_type(es, "safety_plan.completed")),
    )
    assert len(of_type(events, "safety_plan.opened")) == 1
    assert len(of_type(events, "safety_plan.completed")) == 1
    assert [e.data["version"] for e in of_type(events, "safety_plan.revised")] == list(
        range(2, done.json()["version"])
    )
    raw = json.dumps([e.data for e in events])
    assert "my words" not in raw and "declined 988" not in raw, "no entries or reasons in events"


async def test_entries_are_added_edited_reordered_removed_and_every_revision_kept(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    _, plan = await open_plan(intake)
    base = f"/v1/safety-plans/{plan['id']}"
    step = f"{base}/steps/help_contacts"
    ids = []
    version = plan["version"]
    for text in ("my sister", PHI_WORDS, "my neighbour <Tom>"):
        added = await intake.post(f"{step}/entries", json={"text": text}, headers=if_match(version))
        assert added.status_code == 201, added.text
        ids.append(added.headers["location"].rsplit("/", 1)[1])
        version = added.json()["version"]
        assert added.headers["etag"] == f'"{version}"'
    edited = await intake.put(
        f"{step}/entries/{ids[0]}", json={"text": "my sister Ana"}, headers=if_match(version)
    )
    assert edited.status_code == 200, edited.text
    new_order = [ids[2], ids[0], ids[1]]
    reordered = await intake.put(
        f"{step}/order",
        json={"entry_ids": new_order, "version": edited.json()["version"]},
        headers=CLINICIAN,
    )
    assert reordered.status_code == 200, reordered.text
    removed = await intake.delete(
        f"{step}/entries/{ids[1]}", headers=if_match(reordered.json()["version"])
    )
    assert removed.status_code == 200, removed.text
    na = await intake.put(
        f"{base}/steps/environment_safety/not-applicable",
        json={"reason": "no firearms or stored medication"},
        headers=if_match(removed.json()["version"]),
    )
    assert na.status_code == 200, na.text
    cleared = await intake.delete(
        f"{base}/steps/environment_safety/not-applicable", headers=if_match(na.json()["version"])
    )
    assert cleared.status_code == 200

    final = (await intake.get(base)).json()
    help_step = next(s for s in final["steps"] if s["key"] == "help_contacts")
    assert [e["text"] for e in help_step["entries"]] == ["my neighbour <Tom>", "my sister Ana"]
    assert final["version"] == 9

    revisions = (await intake.get(f"{base}/revisions")).json()
    assert [r["action"] for r in revisions] == [
        "opened",
        "entry_added",
        "entry_added",
        "entry_added",
        "entry_edited",
        "entries_reordered",
        "entry_removed",
        "step_not_applicable",
        "step_not_applicable_cleared",
    ]
    assert [r["version"] for r in revisions] == list(range(1, 10))
    assert revisions[5]["actor"] == "dr-lee" and revisions[5]["role"] == "clinician"
    assert revisions[1]["actor"] == "jsmith" and revisions[1]["role"] == "hotline"
    assert revisions[4]["diff"] == {
        "step": "help_contacts",
        "entry_id": ids[0],
        "from": "my sister",
        "to": "my sister Ana",
    }
    assert all(datetime.fromisoformat(r["at"]) for r in revisions)

    # Earlier revisions stay readable, whole, as they were.
    third = (await intake.get(f"{base}/revisions/3")).json()
    third_help = next(s for s in third["snapshot"]["steps"] if s["key"] == "help_contacts")
    assert [e["text"] for e in third_help["entries"]] == ["my sister", PHI_WORDS]
    assert third["snapshot"]["version"] == 3
    assert (await intake.get(f"{base}/revisions/99")).status_code == 404

    # And they cannot be overwritten, even from inside the database.
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.execute(
            "UPDATE intake.safety_plan_revisions SET diff = '{}' WHERE plan_id = $1",
            uuid.UUID(plan["id"]),
        )
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.execute(
            "DELETE FROM intake.safety_plan_revisions WHERE plan_id = $1", uuid.UUID(plan["id"])
        )


async def test_stale_write_is_409_and_concurrent_edits_lose_nothing(
    intake: httpx.AsyncClient,
) -> None:
    _, plan = await open_plan(intake)
    base = f"/v1/safety-plans/{plan['id']}"
    step = f"{base}/steps/internal_coping/entries"

    first, second = await asyncio.gather(
        intake.post(step, json={"text": "go for a walk"}, headers=if_match(1)),
        intake.post(step, json={"text": "listen to music"}, headers=if_match(1)),
    )
    assert sorted([first.status_code, second.status_code]) == [201, 409]
    loser = first if first.status_code == 409 else second
    assert loser.json()["error"] == "stale_version"
    assert loser.json()["problems"] == [{"field": "version", "problem": "current version is 2"}]
    assert "version 2" in loser.json()["detail"]

    # The loser reloads and applies its change again: both survive.
    current = await intake.get(base)
    retried = await intake.post(
        step,
        json={"text": json.loads(loser.request.content)["text"]},
        headers=if_match(int(current.headers["etag"].strip('"'))),
    )
    assert retried.status_code == 201
    texts = [
        e["text"]
        for e in next(s for s in retried.json()["steps"] if s["key"] == "internal_coping")[
            "entries"
        ]
    ]
    assert sorted(texts) == ["go for a walk", "listen to music"]

    stale = await intake.post(step, json={"text": "x", "version": 1}, headers=HOTLINE)
    assert stale.status_code == 409 and stale.json()["error"] == "stale_version"
    missing = await intake.post(step, json={"text": "x"}, headers=HOTLINE)
    assert missing.status_code == 428 and missing.json()["error"] == "precondition_required"
    disagree = await intake.post(step, json={"text": "x", "version": 3}, headers=if_match(2))
    assert disagree.status_code == 422
    weak = await intake.post(
        step, json={"text": "weak etag"}, headers={**HOTLINE, "If-Match": 'W/"3"'}
    )
    assert weak.status_code == 201


async def test_review_is_a_clinicians_and_a_later_change_voids_it(
    intake: httpx.AsyncClient,
) -> None:
    _, plan = await open_plan(intake)
    base = f"/v1/safety-plans/{plan['id']}"
    by_hotline = await intake.post(f"{base}/review", headers=if_match(1))
    assert by_hotline.status_code == 403 and by_hotline.json()["error"] == "forbidden"
    reviewed = await intake.post(
        f"{base}/review",
        json={"note": "plan discussed with caller"},
        headers=if_match(1, CLINICIAN),
    )
    assert reviewed.status_code == 200
    assert reviewed.json()["reviewed_by"] == "dr-lee"
    changed = await intake.post(
        f"{base}/steps/warning_signs/entries",
        json={"text": "can't sleep"},
        headers=if_match(2, ADMIN),
    )
    assert changed.status_code == 201
    assert changed.json()["reviewed_by"] is None
    last = (await intake.get(f"{base}/revisions")).json()[-1]
    assert last["diff"]["review_cleared"]["by"] == "dr-lee"
    incomplete = await intake.post(f"{base}/complete", json={"version": 3}, headers=HOTLINE)
    assert incomplete.status_code == 409
    fields = {p["field"] for p in incomplete.json()["problems"]}
    assert fields == {f"steps.{k}" for k in REQUIRED_STEPS[1:]} | {"review"}


async def test_a_clinician_moves_the_due_time_within_bounds(intake: httpx.AsyncClient) -> None:
    sid, plan = await open_plan(intake)
    base = f"/v1/safety-plans/{plan['id']}"
    soon = (utcnow() + timedelta(hours=1)).isoformat()
    assert (
        await intake.put(f"{base}/due", json={"due_at": soon}, headers=if_match(1))
    ).status_code == 403
    too_early = (datetime.fromisoformat(plan["created_at"]) - timedelta(minutes=1)).isoformat()
    early = await intake.put(
        f"{base}/due", json={"due_at": too_early}, headers=if_match(1, CLINICIAN)
    )
    assert early.status_code == 422 and early.json()["problems"][0]["field"] == "due_at"
    naive = await intake.put(
        f"{base}/due", json={"due_at": "2030-01-01T00:00:00"}, headers=if_match(1, CLINICIAN)
    )
    assert naive.status_code == 422
    moved = await intake.put(f"{base}/due", json={"due_at": soon}, headers=if_match(1, CLINICIAN))
    assert moved.status_code == 200
    assert datetime.fromisoformat(moved.json()["due_at"]) == datetime.fromisoformat(soon)
    case = (await intake.get(f"/v1/screenings/{sid}")).json()
    assert datetime.fromisoformat(case["safety_plan"]["due_at"]) == datetime.fromisoformat(soon)


INVALID_EDITS = [
    # (name, method, path under the plan, body, headers, status, error, field)
    (
        "no credential",
        "POST",
        "/steps/warning_signs/entries",
        {"text": "x", "version": 1},
        {"Authorization": ""},
        401,
        "unauthenticated",
        None,
    ),
    (
        "another hotline's plan",
        "POST",
        "/steps/warning_signs/entries",
        {"text": "x", "version": 1},
        HOTLINE2,
        404,
        "not_found",
        None,
    ),
    (
        "an ehr credential edits",
        "POST",
        "/steps/warning_signs/entries",
        {"text": "x", "version": 1},
        EHR,
        403,
        "forbidden",
        None,
    ),
    ("hotline reviews", "POST", "/review", None, if_match(1), 403, "forbidden", None),
    (
        "unknown step",
        "POST",
        "/steps/hopes/entries",
        {"text": "x"},
        if_match(1),
        404,
        "not_found",
        "step",
    ),
    (
        "empty text",
        "POST",
        "/steps/warning_signs/entries",
        {"text": "   "},
        if_match(1),
        422,
        "invalid",
        "text",
    ),
    (
        "text too long",
        "POST",
        "/steps/warning_signs/entries",
        {"text": PHI_WORDS * 30},
        if_match(1),
        422,
        "invalid",
        "text",
    ),
    (
        "control characters",
        "POST",
        "/steps/warning_signs/entries",
        {"text": "a\x00b"},
        if_match(1),
        422,
        "invalid",
        "text",
    ),
    (
        "unknown field",
        "POST",
        "/steps/warning_signs/entries",
        {"text": "x", "txet": PHI_WORDS},
        if_match(1),
        422,
        "invalid",
        "txet",
    ),
    (
        "unknown entry",
        "PUT",
        "/steps/warning_signs/entries/0123456789ab",
        {"text": "x"},
        if_match(1),
        404,
        "not_found",
        "entry_id",
    ),
    (
        "reorder not a permutation",
        "PUT",
        "/steps/warning_signs/order",
        {"entry_ids": ["0123456789ab"]},
        if_match(1),
        422,
        "invalid",
        "entry_ids",
    ),
    (
        "not applicable without reason",
        "PUT",
        "/steps/warning_signs/not-applicable",
        {},
        if_match(1),
        422,
        "invalid",
        "reason",
    ),
    (
        "clear a reason never given",
        "DELETE",
        "/steps/warning_signs/not-applicable",
        None,
        if_match(1),
        422,
        "invalid",
        "step",
    ),
    (
        "emergency task on a high plan",
        "PUT",
        "/emergency-task",
        {"status": "completed", "outcome": "988 called"},
        if_match(1),
        409,
        "conflict",
        None,
    ),
    (
        "emergency task unknown status",
        "PUT",
        "/emergency-task",
        {"status": "done"},
        if_match(1),
        422,
        "invalid",
        "status",
    ),
    (
        "If-Match not a version",
        "POST",
        "/steps/warning_signs/entries",
        {"text": "x"},
        {**HOTLINE, "If-Match": "abc"},
        422,
        "invalid",
        "If-Match",
    ),
    ("incomplete plan", "POST", "/complete", None, if_match(1), 409, "plan_incomplete", "review"),
]


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "headers", "status", "error", "field"),
    INVALID_EDITS,
    ids=[e[0] for e in INVALID_EDITS],
)
async def test_invalid_edits_get_a_clear_4xx_and_change_nothing(
    name: str,
    method: str,
    path: str,
    body: dict | None,
    headers: dict,
    status: int,
    error: str,
    field: str | None,
    intake: httpx.AsyncClient,
    db: asyncpg.Pool,
) -> None:
    _, plan = await open_plan(intake)
    base = f"/v1/safety-plans/{plan['id']}"
    response = await intake.request(method, base + path, json=body, headers=headers)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["error"] == error and answer["detail"]
    if field is not None:
        assert any(field in p["field"] for p in answer["problems"]), answer
    assert PHI_WORDS not in response.text, "the person's words are never echoed in an error"
    n = await db.fetchval(
        "SELECT count(*) FROM intake.safety_plan_revisions WHERE plan_id = $1",
        uuid.UUID(plan["id"]),
    )
    assert n == 1 and (await intake.get(base)).json()["version"] == 1


async def test_a_step_with_entries_is_not_marked_not_applicable(intake: httpx.AsyncClient) -> None:
    _, plan = await open_plan(intake)
    step = f"/v1/safety-plans/{plan['id']}/steps/social_distraction"
    added = await intake.post(f"{step}/entries", json={"text": "the library"}, headers=if_match(1))
    refused = await intake.put(
        f"{step}/not-applicable", json={"reason": "none"}, headers=if_match(added.json()["version"])
    )
    assert refused.status_code == 422 and refused.json()["problems"][0]["problem"] == "has entries"
    assert (await intake.get(f"/v1/safety-plans/{uuid.uuid4()}")).status_code == 404


async def test_printable_copy_as_html_and_pdf(intake: httpx.AsyncClient) -> None:
    _, plan = await open_plan(intake, contact={"name": "Jo Caller", "phone": "+1 555 0100"})
    base = f"/v1/safety-plans/{plan['id']}"
    words = "<script>alert('x')</script> when I feel \"trapped\" & alone"
    added = await intake.post(
        f"{base}/steps/warning_signs/entries", json={"text": words}, headers=if_match(1)
    )
    assert added.status_code == 201

    html = await intake.get(base, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert html.headers["cache-control"] == "no-store"
    body = html.text
    assert "<script>" not in body, "the person's words are escaped"
    assert (
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; when I feel &#34;trapped&#34; &amp; alone"
        in body
    )
    assert "988" in body and "911" in body
    assert "Warning signs that a crisis may be developing" in body
    assert "Jo Caller" not in body and "555 0100" not in body, "no contact details on the copy"

    pdf = await intake.get(base, headers={"Accept": "application/pdf"})
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and pdf.content.rstrip().endswith(b"%%EOF")

    default = await intake.get(base, headers={"Accept": "*/*"})
    assert default.headers["content-type"] == "application/json"
    assert default.json()["id"] == plan["id"]
    preferred = await intake.get(base, headers={"Accept": "text/html;q=0.5, application/json"})
    assert preferred.headers["content-type"] == "application/json"
    refused = await intake.get(base, headers={"Accept": "image/png"})
    assert refused.status_code == 406 and refused.json()["error"] == "not_acceptable"
