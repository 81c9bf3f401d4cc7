"""Escalation policies on the real stack: level by level, repeats, retries, and acknowledgement.

Each test binds its own policy to `high` through notify's API, pages clinicians' pagers (one local
server, one path each), and unbinds the policy afterwards, resolving its alerts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import httpx

from deploy.localstack import LocalStack
from shared.topics import ALERT_EVENTS
from tests.conftest import WEBHOOK_SECRET
from tests.support.cases import HIGH_CSSRS, screening
from tests.support.kafka import read_all
from tests.support.pagers import Got, Pagers, Reply
from tests.support.roster import Roster, delivered_at, wait_until
from tests.support.waits import wait_case


def signed(page: Got) -> bool:
    ts = page.headers["x-triage-timestamp"]
    want = hmac.new(WEBHOOK_SECRET.encode(), f"{ts}.".encode() + page.body, hashlib.sha256)
    given = [s.strip()[3:] for s in page.headers["x-triage-signature"].split(",")]
    return any(hmac.compare_digest(want.hexdigest(), g) for g in given)


async def submit_high(intake: httpx.AsyncClient, **extra: object) -> str:
    response = await intake.post("/v1/screenings", json=screening(HIGH_CSSRS, **extra))
    assert response.status_code == 202
    return response.json()["id"]


async def attempts(db: asyncpg.Pool, alert_id: str) -> list[str]:
    rows = await db.fetch(
        "SELECT a.outcome FROM notify.delivery_attempts a"
        " JOIN notify.deliveries d ON d.id = a.delivery_id WHERE d.alert_id = $1 ORDER BY a.id",
        uuid.UUID(alert_id),
    )
    return [r["outcome"] for r in rows]


async def test_level_two_is_paged_when_level_one_does_not_acknowledge_in_time(
    intake: httpx.AsyncClient,
    roster: Roster,
    pagers: Pagers,
    db: asyncpg.Pool,
    stack: LocalStack,
) -> None:
    ana, ben = await roster.clinician("ana"), await roster.clinician("ben")
    await roster.policy(
        ["high"],
        [{"clinician_ids": [ana.id], "delay_seconds": 1}, {"clinician_ids": [ben.id]}],
    )
    sid = await submit_high(intake)
    [first] = await pagers.wait_for(ana.pager, sid, timeout=5)
    alert_id = first.json["alert_id"]
    deadline = await delivered_at(db, alert_id, 0) + 1
    [second] = await pagers.wait_for(ben.pager, sid, timeout=5)

    lateness = second.at - deadline
    escalated = await db.fetchval(
        "SELECT extract(epoch FROM created_at) FROM notify.deliveries"
        " WHERE alert_id = $1 AND escalation_level = 1",
        uuid.UUID(alert_id),
    )
    print(
        f"\nmissed ack deadline -> escalation {(float(escalated) - deadline) * 1000:.1f} ms"
        f" -> level 2 page received {lateness * 1000:.1f} ms"
    )
    assert -0.05 < lateness < 0.5, "level 2 is paged when level 1's deadline passes, not later"
    assert (first.json["escalation_level"], second.json["escalation_level"]) == (0, 1)
    assert second.json["alert_id"] == alert_id and signed(second)
    assert second.event_id != first.event_id, "a new page, not a retry of the first"
    assert len(pagers.pages(ana.pager, sid)) == 1

    case = await wait_case(
        intake,
        sid,
        lambda c: bool(c["alerts"]) and c["alerts"][0]["escalation_level"] == 1,
    )
    assert case["alerts"][0]["status"] == "escalated"
    records = await read_all(stack.bootstrap_servers, ALERT_EVENTS, timeout=3)
    events = [json.loads(r.value) for r in records if r.key == sid.encode()]
    types = [e["type"] for e in events]
    assert types[:4] == ["alert.created", "alert.delivered", "alert.escalated", "alert.delivered"]
    assert [e["data"]["version"] for e in events[:4]] == [1, 2, 3, 4], "one version per change"

    async def same_version() -> bool:
        return await db.fetchval(
            "SELECT i.version = n.version FROM intake.alerts i JOIN notify.alerts n USING (id)"
            " WHERE id = $1",
            uuid.UUID(alert_id),
        )

    await wait_until(same_version, what="the case view holding notify's latest version")


async def test_the_policy_repeats_until_someone_acknowledges(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, roster: Roster, pagers: Pagers
) -> None:
    ana, ben = await roster.clinician("ana"), await roster.clinician("ben")
    await roster.policy(
        ["high"],
        [
            {"clinician_ids": [ana.id], "delay_seconds": 1},
            {"clinician_ids": [ben.id], "delay_seconds": 1},
        ],
        repeats=5,
    )
    sid = await submit_high(intake)
    again = (await pagers.wait_for(ana.pager, sid, count=2, timeout=6))[-1]
    link = urlsplit(again.json["ack_url"])
    acked = await notify.post(f"{link.path}?{link.query}")
    assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "ack_link"

    await asyncio.sleep(2.5)  # two more deadlines would have passed
    assert [p.json["repeat"] for p in pagers.pages(ana.pager, sid)] == [0, 1]
    assert [p.json["repeat"] for p in pagers.pages(ben.pager, sid)] == [0]
    assert acked.json()["repeat_round"] == 1 and acked.json()["escalation_level"] == 0


async def test_acknowledging_cancels_a_scheduled_retry(
    intake: httpx.AsyncClient,
    notify: httpx.AsyncClient,
    roster: Roster,
    pagers: Pagers,
    db: asyncpg.Pool,
) -> None:
    ana = await roster.clinician("ana")
    await roster.policy(["high"], [{"clinician_ids": [ana.id], "delay_seconds": 60}])
    pagers.script(ana.pager, Reply(429, headers={"Retry-After": "2"}))
    sid = await submit_high(intake)
    [first] = await pagers.wait_for(ana.pager, sid)
    alert_id = first.json["alert_id"]
    await wait_until(lambda: attempts(db, alert_id), what="the first attempt recorded")

    assert (await notify.post(f"/v1/alerts/{alert_id}/ack", json={})).status_code == 200
    await asyncio.sleep(2.5)  # the retry was due 2 s after the first attempt
    assert len(pagers.pages(ana.pager, sid)) == 1, "no page after the acknowledgement"
    status = await db.fetchval(
        "SELECT status FROM notify.deliveries WHERE alert_id = $1", uuid.UUID(alert_id)
    )
    assert status == "cancelled"


async def test_a_page_on_the_wire_at_ack_time_is_not_retried_nor_escalated(
    intake: httpx.AsyncClient,
    notify: httpx.AsyncClient,
    roster: Roster,
    pagers: Pagers,
    db: asyncpg.Pool,
) -> None:
    ana, ben = await roster.clinician("ana"), await roster.clinician("ben")
    await roster.policy(
        ["high"],
        [
            {"clinician_ids": [ana.id], "delay_seconds": 1},
            {"clinician_ids": [ben.id], "delay_seconds": 1},
        ],
    )
    pagers.script(ana.pager, Reply(503, delay=1.5))
    sid = await submit_high(intake)
    [first] = await pagers.wait_for(ana.pager, sid)
    assert pagers.holding[ana.pager] == 1, "the page is still on the wire"
    ack = await notify.post(f"/v1/alerts/{first.json['alert_id']}/ack", json={})
    assert ack.status_code == 200

    await wait_until(lambda: attempts(db, first.json["alert_id"]), what="the 503 recorded")
    await asyncio.sleep(1.5)  # a retry (0.05-0.1 s) or an escalation (1 s) would be out by now
    assert len(pagers.pages(ana.pager, sid)) == 1
    assert pagers.pages(ben.pager, sid) == []
    assert await attempts(db, first.json["alert_id"]) == ["temporary_failure"]


async def test_a_receiver_answering_500_then_200_gets_the_page(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, roster: Roster, pagers: Pagers
) -> None:
    ana = await roster.clinician("ana")
    await roster.policy(["high"], [{"clinician_ids": [ana.id], "delay_seconds": 60}])
    pagers.script(ana.pager, 500)
    sid = await submit_high(intake)
    pages = await pagers.wait_for(ana.pager, sid, count=2)
    assert len({p.event_id for p in pages}) == 1, "one event id across retries"
    assert all(signed(p) for p in pages)
    alert = await wait_until(
        lambda: _alert_if(notify, pages[0].json["alert_id"], "delivered"), what="delivered"
    )
    assert [a["outcome"] for a in alert["attempts"]] == ["temporary_failure", "delivered"]


async def test_a_410_escalates_at_once_without_retrying(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, roster: Roster, pagers: Pagers
) -> None:
    ana, ben = await roster.clinician("ana"), await roster.clinician("ben")
    await roster.policy(
        ["high"],
        [
            {"clinician_ids": [ana.id], "delay_seconds": 60},
            {"clinician_ids": [ben.id], "delay_seconds": 60},
        ],
    )
    pagers.script(ana.pager, 410)
    sid = await submit_high(intake)
    [gone] = await pagers.wait_for(ana.pager, sid)
    [escalated] = await pagers.wait_for(ben.pager, sid, timeout=3)
    assert escalated.at - gone.at < 1.0, "a permanent failure does not wait the 60 s deadline"
    assert escalated.json["escalation_level"] == 1
    await asyncio.sleep(0.5)
    assert len(pagers.pages(ana.pager, sid)) == 1, "a 410 is not retried"

    metrics = (await notify.get("/metrics")).text
    assert (
        _sample(metrics, "notify_delivery_failures_total", kind="permanent", channel="webhook") >= 1
    )
    assert (
        _sample(metrics, "notify_assessment_to_first_delivery_seconds_count", risk_level="high")
        >= 1
    )
    uuid_like = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")
    assert not uuid_like.search(metrics), "no ids in metric labels"


async def test_an_alert_nobody_could_be_paged_for_is_failed_but_never_given_up(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, roster: Roster, pagers: Pagers
) -> None:
    """After the policy's last step the alert shows `failed`, and its last level is paged again
    (FINAL_REPAGE_SECONDS, 1 s in tests) until a page gets through and someone acknowledges."""
    ana = await roster.clinician("ana")
    await roster.policy(["high"], [{"clinician_ids": [ana.id], "delay_seconds": 60}])
    pagers.script(ana.pager, 404, 410)
    sid = await submit_high(intake)
    [refused] = await pagers.wait_for(ana.pager, sid)
    await wait_case(intake, sid, lambda c: c["alerts"] and c["alerts"][0]["status"] == "failed")

    pages = await pagers.wait_for(ana.pager, sid, count=3, timeout=10)
    assert [p.json["escalation_level"] for p in pages] == [0, 0, 0]
    assert pages[2].at - refused.at >= 1.5, "re-paged at FINAL_REPAGE_SECONDS, not in a loop"
    alert_id = pages[2].json["alert_id"]
    await wait_until(lambda: _alert_if(notify, alert_id, "escalated"), what="delivered again")

    assert (await notify.post(f"/v1/alerts/{alert_id}/ack")).status_code == 200
    await asyncio.sleep(2.5)
    assert len(pagers.pages(ana.pager, sid)) == 3, "nothing after the acknowledgement"


async def test_the_clinician_on_call_in_the_schedule_is_paged(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, roster: Roster, pagers: Pagers
) -> None:
    ana, ben = await roster.clinician("ana"), await roster.clinician("ben")
    now = datetime.now(UTC)
    rotation = {
        "clinician_ids": [ana.id, ben.id],
        "shift_hours": 24,
        "start": (now - timedelta(hours=1)).isoformat(),
        "time_zone": "Europe/Berlin",
    }
    made = await notify.post("/v1/schedules", json={"name": "crisis team", "rotations": [rotation]})
    assert made.status_code == 201, made.text
    schedule_id = made.json()["id"]
    cover = {
        "clinician_id": ben.id,
        "start": (now - timedelta(minutes=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
    }
    assert (
        await notify.post(f"/v1/schedules/{schedule_id}/overrides", json=cover)
    ).status_code == 201
    await roster.policy(["high"], [{"schedule_id": schedule_id, "delay_seconds": 60}])

    sid = await submit_high(intake)
    await pagers.wait_for(ben.pager, sid)
    assert pagers.pages(ana.pager, sid) == [], "the override, not the rotation, is on call"
    later = (now + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    who = (await notify.get("/v1/oncall", params={"at": later, "schedule_id": schedule_id})).json()
    assert who["oncall"][0]["clinician_id"] == ana.id and who["oncall"][0]["source"] == "rotation"


async def _alert_if(notify: httpx.AsyncClient, alert_id: str, status: str) -> dict | None:
    alert = (await notify.get(f"/v1/alerts/{alert_id}")).json()
    return alert if alert["status"] == status else None


def _sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of Prometheus text output, whatever the label order."""
    for line in metrics.splitlines():
        found = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if found is None or found[1] != name:
            continue
        if dict(re.findall(r'(\w+)="([^"]*)"', found[2] or "")) == labels:
            return float(found[3])
    return 0.0


async def _status(db: asyncpg.Pool, alert_id: uuid.UUID) -> bool:
    return await db.fetchval("SELECT status FROM notify.alerts WHERE id = $1", alert_id) == (
        "delivered"
    )


async def test_an_alert_that_cannot_be_escalated_does_not_stop_the_others(
    intake: httpx.AsyncClient, roster: Roster, pagers: Pagers, db: asyncpg.Pool
) -> None:
    """The escalation pass takes many overdue alerts at once; one that raises (here its policy
    was edited into nonsense in the database) is tried again later, and the others escalate on
    time: it used to roll the whole pass back, on every replica, every time."""
    ana, ben = await roster.clinician("ana"), await roster.clinician("ben")
    await roster.policy(
        ["high"],
        [{"clinician_ids": [ana.id], "delay_seconds": 2}, {"clinician_ids": [ben.id]}],
    )
    broken = await roster.policy([], [{"clinician_ids": [ana.id]}])
    await db.execute(
        """UPDATE notify.policies SET levels = '[{"clinician_ids": ["not-a-uuid"]}]'"""
        " WHERE id = $1",
        uuid.UUID(broken),
    )
    bad_sid = await submit_high(intake)
    [bad_page] = await pagers.wait_for(ana.pager, bad_sid, timeout=5)
    bad_alert = uuid.UUID(bad_page.json["alert_id"])
    await wait_until(lambda: _status(db, bad_alert), what="the first page recorded")
    await db.execute(
        "UPDATE notify.alerts SET policy_id = $2 WHERE id = $1", bad_alert, uuid.UUID(broken)
    )
    good_sid = await submit_high(intake)
    await pagers.wait_for(ana.pager, good_sid, timeout=5)

    # Due a moment after the broken one, in the same pass: escalated all the same.
    [escalated] = await pagers.wait_for(ben.pager, good_sid, timeout=10)
    assert escalated.json["escalation_level"] == 1
    bad = await db.fetchrow(
        "SELECT status, escalation_level, escalate_at > now() + interval '20 seconds' AS later"
        " FROM notify.alerts WHERE id = $1",
        bad_alert,
    )
    assert (bad["status"], bad["escalation_level"], bad["later"]) == ("delivered", 0, True)
    assert not pagers.pages(ben.pager, bad_sid)
