"""`GET /v1/alerts` on the real stack: urgency order, filters, bad input, who was paged (never an
address), and the plans PostgreSQL makes for its statements (indexes, no sort of the table).

The order and filter tests store their alerts straight into `notify.alerts` (every risk level,
status and escalation level at chosen times, which the pipeline cannot produce on demand) and
delete them afterwards; `paged` is checked on alerts the pipeline really opened and paged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import httpx
import pytest

from services.notify.alerts.queries import PAGED, AlertFilter, list_query
from tests.support.cases import HIGH_CSSRS, IMMINENT_ASQ, screening
from tests.support.keys import CLINICIAN
from tests.support.pagers import Pagers
from tests.support.receiver import Receiver
from tests.support.roster import Roster, wait_until

_STORE = """
    INSERT INTO notify.alerts (id, screening_id, risk_level, urgency, reasons, status,
                               escalation_level, repeat_round, ack_deadline_seconds, created_at,
                               changed_at, correlation_id, version)
    VALUES ($1, $2, $3, 'urgent', '["stored by a test"]', $4, $5, $6, 300, $7, $8, 'test', 1)
"""


@dataclass(frozen=True)
class Stored:
    name: str
    risk_level: str
    status: str
    level: int = 0
    round: int = 0
    minutes_old: int = 0  # created this long before the test
    changed_hours_ago: float = 0  # 0: changed as the test stores it
    id: uuid.UUID | None = None  # given when stored


#: Listed most urgent first, as the answer must order them (the stale one aside).
URGENT_FIRST = [
    Stored("imminent, level 1, acknowledged", "imminent", "acknowledged", level=1, minutes_old=50),
    Stored("imminent, level 0", "imminent", "delivered", minutes_old=10),
    Stored("high, level 2, failed", "high", "failed", level=2, minutes_old=40),
    Stored("high, level 1, older", "high", "escalated", level=1, minutes_old=45),
    Stored("high, level 1, newer", "high", "escalated", level=1, minutes_old=30),
    Stored("high, level 0", "high", "pending", minutes_old=55),
    Stored("moderate, round 1, resolved", "moderate", "resolved", round=1, minutes_old=20),
    Stored("moderate, level 0", "moderate", "delivered", minutes_old=15),
    Stored("low", "low", "delivered", minutes_old=59),
]
#: Created long ago and last changed two hours ago; ranked above anything real (level 9), so
#: whenever `since` lets it in, it is first.
STALE = Stored("stale", "imminent", "delivered", level=9, minutes_old=180, changed_hours_ago=2)


@dataclass
class Seeded:
    alerts: dict[str, Stored]
    since: str  # just before they were stored, with an offset other than UTC's

    def names(self, answer: httpx.Response) -> list[str]:
        """Which of the stored alerts the answer lists, in its order."""
        assert answer.status_code == 200, answer.text
        by_id = {str(a.id): name for name, a in self.alerts.items()}
        return [by_id[item["id"]] for item in answer.json() if item["id"] in by_id]


@pytest.fixture
async def seeded(db: asyncpg.Pool) -> AsyncIterator[Seeded]:
    now = datetime.now(UTC)
    stored = {}
    for a in [*URGENT_FIRST, STALE]:
        row = replace(a, id=uuid.uuid4())
        created = now - timedelta(minutes=a.minutes_old)
        changed = now - timedelta(hours=a.changed_hours_ago) if a.changed_hours_ago else now
        await db.execute(
            _STORE,
            row.id,
            uuid.uuid4(),
            a.risk_level,
            a.status,
            a.level,
            a.round,
            created,
            changed,
        )
        stored[a.name] = row
    since = (now - timedelta(seconds=1)).astimezone(timezone(timedelta(hours=-5))).isoformat()
    yield Seeded(stored, since)
    await db.execute(
        "DELETE FROM notify.alerts WHERE id = ANY($1::uuid[])", [a.id for a in stored.values()]
    )


async def listed(notify: httpx.AsyncClient, seeded: Seeded, **params: Any) -> list[str]:
    answer = await notify.get("/v1/alerts", params={"since": seeded.since, "limit": 500, **params})
    return seeded.names(answer)


async def test_alerts_are_listed_most_urgent_first(
    notify: httpx.AsyncClient, seeded: Seeded
) -> None:
    assert await listed(notify, seeded) == [a.name for a in URGENT_FIRST]
    answer = await notify.get("/v1/alerts", params={"since": seeded.since, "limit": 500})
    item = next(i for i in answer.json() if i["id"] == str(seeded.alerts["high, level 0"].id))
    assert item["risk_level"] == "high" and item["reasons"] == ["stored by a test"]
    assert item["paged"] == [], "nobody was paged for a stored alert"
    assert {"screening_id", "urgency", "created_at", "acknowledged_at", "acknowledged_by"} <= set(
        item
    )
    clinician = await notify.get("/v1/alerts", params={"limit": 1}, headers=CLINICIAN)
    assert clinician.status_code == 200 and len(clinician.json()) == 1


async def test_alerts_are_filtered_by_open_status_escalation_and_since(
    notify: httpx.AsyncClient, seeded: Seeded
) -> None:
    names = [a.name for a in URGENT_FIRST]
    closed = ["imminent, level 1, acknowledged", "moderate, round 1, resolved"]
    assert await listed(notify, seeded, open="true") == [n for n in names if n not in closed]
    assert await listed(notify, seeded, open="false") == closed
    assert await listed(notify, seeded, status=["pending", "failed"]) == [
        "high, level 2, failed",
        "high, level 0",
    ]
    escalated = [n for n in names if "level 1" in n or "level 2" in n or "round 1" in n]
    assert await listed(notify, seeded, escalated="true") == escalated
    assert await listed(notify, seeded, escalated="false") == [
        n for n in names if n not in escalated
    ]
    assert await listed(notify, seeded, open="true", escalated="true", status="escalated") == [
        "high, level 1, older",
        "high, level 1, newer",
    ]
    earlier = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
    with_stale = await notify.get("/v1/alerts", params={"since": earlier, "limit": 500})
    assert seeded.names(with_stale)[0] == "stale", "changed two hours ago: since three hours ago"
    assert len((await notify.get("/v1/alerts", params={"limit": 1})).json()) == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": ["pending", "snoozed"]}, "status"),
        ({"since": "2026-06-01T08:00:00"}, "since"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),
        ({"since": "9999-12-31T23:00:00-05:00"}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"open": "perhaps"}, "open"),
        ({"escalated": "2"}, "escalated"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
    ],
)
async def test_bad_filters_are_422_naming_the_parameter(
    notify: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    answer = await notify.get("/v1/alerts", params=params)
    assert answer.status_code == 422, answer.text
    assert any(field in p["field"] for p in answer.json()["problems"]), answer.text
    assert "snoozed" not in answer.text, "the input is named, never echoed"


async def _item(notify: httpx.AsyncClient, alert_id: str, since: str) -> dict[str, Any] | None:
    answer = await notify.get("/v1/alerts", params={"since": since, "limit": 500})
    assert answer.status_code == 200, answer.text
    return next((i for i in answer.json() if i["id"] == alert_id), None)


async def test_paged_names_who_was_paged_on_which_channel_never_the_address(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, roster: Roster, pagers: Pagers
) -> None:
    since = datetime.now(UTC).isoformat()
    email = f"ana.{uuid.uuid4().hex[:8]}@clinic.example.org"
    ana = await roster.clinician("ana", email=email)  # no SMTP here: email fails
    ben = await roster.clinician("ben")
    await roster.policy(
        ["high"],
        [{"clinician_ids": [ana.id], "delay_seconds": 1}, {"clinician_ids": [ben.id]}],
    )
    sid = (await intake.post("/v1/screenings", json=screening(HIGH_CSSRS))).json()["id"]
    [page] = await pagers.wait_for(ben.pager, sid, timeout=10)  # after ana's deadline
    alert_id = page.json["alert_id"]

    async def ben_delivered() -> dict[str, Any] | None:
        item = await _item(notify, alert_id, since)
        done = item and any(p["clinician_id"] == ben.id for p in item["paged"])
        return item if done else None

    await wait_until(ben_delivered, what="ben's page recorded")
    acked = await notify.post(f"/v1/alerts/{alert_id}/ack", headers=CLINICIAN)
    assert acked.status_code == 200, acked.text

    answer = await notify.get("/v1/alerts", params={"since": since, "limit": 500})
    item = next(i for i in answer.json() if i["id"] == alert_id)
    assert (item["status"], item["escalation_level"]) == ("acknowledged", 1)
    assert item["acknowledged_by"] == "dr-lee"
    seen = [
        (p["clinician"], p["clinician_id"], p["channel"], p["escalation_level"], p["status"])
        for p in item["paged"]
    ]
    assert sorted(seen[:2]) == [
        ("ana", ana.id, "email", 0, "failed"),
        ("ana", ana.id, "webhook", 0, "delivered"),
    ]
    assert seen[2:] == [("ben", ben.id, "webhook", 1, "delivered")]
    ats = [datetime.fromisoformat(p["at"]) for p in item["paged"]]
    assert ats == sorted(ats) and all(at.tzinfo for at in ats)
    for address in (email, pagers.url(ana.pager), pagers.url(ben.pager), ana.pager, "/pager/"):
        assert address not in answer.text, "an address is sealed PHI: never listed"
    assert set(item["paged"][0]) == {
        "clinician_id",
        "clinician",
        "channel",
        "escalation_level",
        "status",
        "at",
    }


async def test_a_page_to_the_fallback_webhook_names_nobody(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, receiver: Receiver
) -> None:
    since = datetime.now(UTC).isoformat()
    sid = (await intake.post("/v1/screenings", json=screening(IMMINENT_ASQ))).json()["id"]
    [page] = await receiver.wait_for(sid, timeout=10)  # no policy covers imminent here
    alert_id = page.json["alert_id"]

    async def paged() -> list[dict[str, Any]] | None:
        item = await _item(notify, alert_id, since)
        return item["paged"] if item and item["paged"] else None

    try:
        [entry] = await wait_until(paged, what="the fallback page recorded")
        assert {k: entry[k] for k in entry if k != "at"} == {
            "clinician_id": None,
            "clinician": None,
            "channel": "webhook",
            "escalation_level": 0,
            "status": "delivered",
        }
        answer = await notify.get("/v1/alerts", params={"since": since, "open": "true"})
        assert receiver.url not in answer.text
    finally:
        await notify.post(f"/v1/alerts/{alert_id}/ack")


@pytest.mark.parametrize(
    "wanted",
    [
        AlertFilter(),
        AlertFilter(open=True),
        AlertFilter(open=False, escalated=True),
        AlertFilter(statuses=("failed",), since=datetime.now(UTC)),
    ],
)
async def test_the_list_is_read_through_indexes(db: asyncpg.Pool, wanted: AlertFilter) -> None:
    """Polled every few seconds over a table that is never pruned: no statement may read the
    whole table, and the unfiltered list reads its index in order and sorts nothing.

    The test table is small, so the planner is told to avoid sequential scans: what is checked
    is that an index applies (an expression that drifted from the migration's would not)."""
    sql, params = list_query(wanted)
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = json.dumps(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *params))
        paged = json.dumps(
            await conn.fetchval(
                f"EXPLAIN (FORMAT JSON) {PAGED}", [uuid.uuid4() for _ in range(100)]
            )
        )
    assert "Seq Scan" not in plan, plan
    assert "Seq Scan" not in paged, paged
    if wanted == AlertFilter():
        assert "alerts_urgency" in plan and '"Sort"' not in plan, plan
