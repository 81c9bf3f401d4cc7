"""The check of a chaos run: the whole history, against what the database and the pager saw.

- every screening the client saw accepted is stored, assessed exactly once, and has exactly one
  alert if it was flagged (and none otherwise, watchdog alerts apart, counted);
- every alert was paged;
- no page was sent after its acknowledgement (an attempt started after it);
- every alert not acknowledged escalated, deadlines inside fault windows included (late by how
  much);
- counted: duplicate deliveries (one `X-Triage-Event-Id` twice: at-least-once allows them),
  client retries, screenings given up.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from bench.chaos.faults import Window
from bench.chaos.load import ACK_SHARE, Sent, acknowledges
from bench.receiver import Arrival, parse_results
from shared.db import asyncpg_dsn

#: After the load stops, how long the system may take to catch up before the check.
CATCH_UP = 120.0
#: Pages counted as "after" a fault within this many seconds of its start.
AROUND = 10.0


@dataclass
class Verdict:
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    series: list[tuple[float, float]] = field(default_factory=list)  # (sent at, POST-to-page s)

    @property
    def ok(self) -> bool:
        return not self.failures


async def _pages(receiver_url: str) -> list[Arrival]:
    async with httpx.AsyncClient(timeout=10) as http:
        return parse_results((await http.get(f"{receiver_url}/results")).content)


async def _state(conn: asyncpg.Connection, ids: list[str]) -> dict[str, Any]:
    rows = await conn.fetch(
        "SELECT id::text, status FROM intake.screenings WHERE id = ANY($1::uuid[])", ids
    )
    assessed = await conn.fetch(
        "SELECT screening_id::text, count(*) AS n FROM risk.assessments"
        " WHERE screening_id = ANY($1::uuid[]) GROUP BY screening_id",
        ids,
    )
    alerts = await conn.fetch(
        "SELECT screening_id::text, count(*) AS n, bool_or(assessment_id IS NULL) AS watchdog,"
        " max(escalation_level) AS level"
        " FROM notify.alerts WHERE screening_id = ANY($1::uuid[]) GROUP BY screening_id",
        ids,
    )
    return {
        "status": {r["id"]: r["status"] for r in rows},
        "assessments": {r["screening_id"]: r["n"] for r in assessed},
        "alerts": {r["screening_id"]: r["n"] for r in alerts},
        "watchdog": {r["screening_id"] for r in alerts if r["watchdog"]},
        "levels": {r["screening_id"]: r["level"] for r in alerts},
    }


#: The acknowledgement deadline of the chaos stack (bench/chaos/stack.py, ACK_DEADLINES).
DEADLINE = 20.0


def owed_escalations(
    sent: list[Sent], pages: list[Arrival], load_end: float, ack_share: float = ACK_SHARE
) -> list[str]:
    """Alerts nobody acknowledges whose first deadline ran out before the load ended: each
    must have escalated (a level-1 page), however many faults fell on the way."""
    first: dict[str, float] = {}
    for page in sorted(pages, key=lambda p: p.at):
        if page.escalation_level == 0:
            first.setdefault(page.screening_id, page.at)
    return [
        s.screening_id
        for s in sent
        if s.flagged
        and s.screening_id in first
        and not acknowledges(s.screening_id, ack_share)
        and first[s.screening_id] + DEADLINE < load_end
    ]


async def settle(
    database_url: str,
    receiver_url: str,
    sent: list[Sent],
    load_end: float,
    ack_share: float = ACK_SHARE,
) -> None:
    """Wait until every accepted screening is assessed, every flagged one paged and every owed
    escalation fired (or give up after CATCH_UP: the check then says what is missing)."""
    accepted = [s for s in sent if s.screening_id]
    ids = [s.screening_id for s in accepted if s.screening_id]
    flagged = {s.screening_id for s in accepted if s.flagged}
    deadline = time.monotonic() + CATCH_UP
    while time.monotonic() < deadline:
        try:
            conn = await asyncpg.connect(asyncpg_dsn(database_url), timeout=5)
            try:
                state = await _state(conn, ids)
            finally:
                await conn.close()
            pages = await _pages(receiver_url)
        except (OSError, asyncpg.PostgresError, httpx.HTTPError):
            await asyncio.sleep(1)
            continue
        paged = {p.screening_id for p in pages}
        escalated = {i for i, level in state["levels"].items() if level >= 1}
        owed = set(owed_escalations(sent, pages, load_end, ack_share))
        if (
            all(state["status"].get(i) == "assessed" for i in ids)
            and flagged <= paged
            and owed <= escalated
        ):
            return
        await asyncio.sleep(1)


async def check(
    database_url: str,
    receiver_url: str,
    sent: list[Sent],
    windows: list[Window],
    acked: dict[str, float],
    t0: float,
    load_end: float,
    ack_share: float = ACK_SHARE,
) -> Verdict:
    verdict = Verdict()
    accepted = [s for s in sent if s.screening_id]
    ids = [s.screening_id for s in accepted if s.screening_id]
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        state = await _state(conn, ids)
        after_ack_sample = await conn.fetch(
            "SELECT a.screening_id::text, t.started_at::text, a.acknowledged_at::text, t.worker"
            " FROM notify.delivery_attempts t"
            " JOIN notify.deliveries d ON d.id = t.delivery_id"
            " JOIN notify.alerts a ON a.id = d.alert_id"
            " WHERE a.acknowledged_at IS NOT NULL AND t.started_at > a.acknowledged_at LIMIT 5"
        )
        after_ack = await conn.fetchval(
            "SELECT count(*) FROM notify.delivery_attempts t"
            " JOIN notify.deliveries d ON d.id = t.delivery_id"
            " JOIN notify.alerts a ON a.id = d.alert_id"
            " WHERE a.acknowledged_at IS NOT NULL AND t.started_at > a.acknowledged_at"
        )
    finally:
        await conn.close()
    pages = await _pages(receiver_url)
    first_page: dict[str, float] = {}
    by_level: dict[tuple[str, int], float] = {}
    for page in sorted(pages, key=lambda p: p.at):
        first_page.setdefault(page.screening_id, page.at)
        by_level.setdefault((page.screening_id, page.escalation_level), page.at)
    event_ids = Counter(p.event_id for p in pages)

    lost = [i for i in ids if i not in state["status"]]
    unassessed = [i for i in ids if state["status"].get(i) != "assessed"]
    twice_assessed = [i for i in ids if state["assessments"].get(i, 0) > 1]
    flagged = [s for s in accepted if s.flagged]
    double_alerts = [i for i in ids if state["alerts"].get(i, 0) > 1]
    no_alert = [s.screening_id for s in flagged if not state["alerts"].get(s.screening_id or "")]
    unpaged = [s.screening_id for s in flagged if s.screening_id not in first_page]
    # Unacknowledged alerts whose first deadline ran out during the load must have escalated.
    # Fired: the alert moved on (its level-1 page may have failed on a failing gateway, which
    # escalates further: never silently dropped).
    owed = owed_escalations(sent, pages, load_end, ack_share)
    escalated_late = [
        by_level[(i, 1)] - by_level[(i, 0)] - DEADLINE for i in owed if (i, 1) in by_level
    ]
    not_escalated = [i for i in owed if state["levels"].get(i, 0) < 1]
    if not_escalated:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            verdict.figures["escalations_missing_sample"] = [
                dict(r)
                for r in await conn.fetch(
                    "SELECT screening_id::text, status, escalation_level, version,"
                    " escalate_at::text, acknowledged_at::text, assessment_id IS NULL AS watchdog"
                    " FROM notify.alerts WHERE screening_id = ANY($1::uuid[]) LIMIT 5",
                    not_escalated,
                )
            ]
        finally:
            await conn.close()
    gave_up = [s for s in sent if s.gave_up]
    retried = [s for s in sent if s.attempts > 1]

    verdict.figures |= {
        "sent": len(sent),
        "accepted": len(accepted),
        "flagged": len(flagged),
        "lost": len(lost),
        "unassessed": len(unassessed),
        "assessed_twice": len(twice_assessed),
        "double_alerts": len(double_alerts),
        "flagged_without_alert": len(no_alert),
        "alerts_not_paged": len(unpaged),
        "pages": len(pages),
        "duplicate_deliveries": sum(n - 1 for n in event_ids.values() if n > 1),
        "acknowledged": len(acked),
        "pages_after_ack": int(after_ack),
        "escalations_owed": len(owed),
        "escalations_missing": len(not_escalated),
        "escalation_late_max_s": round(max(escalated_late, default=0.0), 2),
        "watchdog_alerts": len(state["watchdog"]),
        "client_retries": sum(s.attempts - 1 for s in sent),
        "requests_retried": len(retried),
        "given_up": len(gave_up),
    }
    for name, bad in (
        ("lost", lost),
        ("unassessed", unassessed),
        ("assessed twice", twice_assessed),
        ("double alerts", double_alerts),
        ("flagged without an alert", no_alert),
        ("alerts never paged", unpaged),
        ("escalations that never fired", not_escalated),
        ("given up", gave_up),
    ):
        if bad:
            verdict.failures.append(f"{len(bad)} {name}")
    if after_ack:
        verdict.failures.append(f"{after_ack} pages sent after their acknowledgement")
        verdict.figures["pages_after_ack_sample"] = [dict(r) for r in after_ack_sample]

    sent_flagged = sorted(
        (s.first_at, first_page[s.screening_id]) for s in flagged if s.screening_id in first_page
    )
    verdict.series = [(at - t0, page - at) for at, page in sent_flagged]
    level0 = sorted(p.at for p in pages if p.escalation_level == 0)
    # Each fault with the one after it (none after the last; a soak has no faults at all).
    for window, following in itertools.zip_longest(windows, windows[1:]):
        after = [at for at in level0 if at > window.back]
        near = [
            page - at for at, page in sent_flagged if window.start <= at < window.start + AROUND
        ]
        # Attempts that failed from the fault until AROUND after it ended, and before the next
        # fault began (what the next one costs is its own).
        until = window.back + AROUND
        if following is not None:
            until = min(until, following.start)
        failures = [
            (s, status)
            for s in sent
            for status, at in zip(s.statuses, s.failed_at, strict=True)
            if window.start <= at < until
        ]
        verdict.faults.append(
            {
                **window.json(t0),
                "down_s": round(window.back - window.start, 1),
                "first_page_after_back_s": round(after[0] - window.back, 2) if after else None,
                "worst_post_to_page_s": round(max(near), 2) if near else None,
                "requests_retried": len({id(s) for s, _ in failures}),
                # What the client was answered before a retry: the why of the column above.
                "retried_on": dict(Counter(status for _, status in failures)),
            }
        )
    return verdict
