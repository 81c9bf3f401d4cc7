"""The alerts' SQL: the list a console polls, and the statements of the paging path
(sent straight to asyncpg: every alert passes there).

Alerts, listed: the queue a console polls every few seconds, most urgent first, each alert
with who was paged for it.

Two statements whatever the number of alerts, sent straight to asyncpg (`shared.db.driver`):
the alerts, then the pages of all of them at once. Each is served by an index (migration
0008_alert_list.sql): the urgency order itself, so an unfiltered list reads `limit` index
entries and sorts nothing however many alerts were ever opened (alerts are kept); the open
alerts (`alerts_open`, 0006); `changed_at` for a console asking what changed since its last
poll. Addresses are sealed PHI columns (`SEALED` in models.py) and are never read here.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.alerts.models import Alert
from services.notify.alerts.schemas import AlertListItem, AlertOut
from services.notify.sql import Statement
from shared.db import driver

#: Most urgent first. The very same expression is indexed (`alerts_urgency`, migration 0008);
#: the planner uses the index only for an identical expression, so change both together
#: (tests/notify/alerts/test_alert_list_api.py checks that the plan uses it).
URGENCY = (
    "CASE risk_level WHEN 'imminent' THEN 0 WHEN 'high' THEN 1 WHEN 'moderate' THEN 2"
    " WHEN 'low' THEN 3 ELSE 4 END"
)
ORDER = f"{URGENCY}, escalation_level DESC, created_at, id"
#: Closed: someone took it, or it was closed. Everything else (pending, delivered, escalated,
#: failed) still needs a human. Written as a literal list, as in `alerts_open`'s predicate: the
#: planner proves the partial index applies only from the same constants, never a parameter.
_CLOSED = "('acknowledged', 'resolved')"
_COLUMNS = ", ".join(AlertOut.model_fields)


@dataclass(frozen=True)
class AlertFilter:
    """What `GET /v1/alerts` asked for; None: no condition."""

    open: bool | None = None
    statuses: tuple[str, ...] = ()
    #: Ever escalated: a later level, or a later round of the levels (a one-level policy
    #: escalates by starting again: level 0, round 1). Acknowledging keeps both.
    escalated: bool | None = None
    #: Created or changed at or after this: every change, creation included, sets changed_at.
    since: datetime | None = None
    limit: int = 100


def list_query(wanted: AlertFilter) -> tuple[str, list[Any]]:
    """The alerts statement and its parameters: only the caller's values are parameters."""
    where: list[str] = []
    params: list[Any] = []
    if wanted.open is not None:
        where.append(f"status {'NOT IN' if wanted.open else 'IN'} {_CLOSED}")
    if wanted.statuses:
        params.append(list(wanted.statuses))
        where.append(f"status = ANY(${len(params)}::text[])")
    if wanted.escalated is not None:
        where.append(
            "(escalation_level > 0 OR repeat_round > 0)"
            if wanted.escalated
            else "escalation_level = 0 AND repeat_round = 0"
        )
    if wanted.since is not None:
        params.append(wanted.since)
        where.append(f"changed_at >= ${len(params)}")
    params.append(wanted.limit)
    sql = f"SELECT {_COLUMNS} FROM notify.alerts"
    sql += (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {ORDER}"
    return sql + f" LIMIT ${len(params)}", params


#: Who was paged for each alert: one row per contact method (NULL: the fallback webhook) and
#: escalation level that a page was tried on, with the page's status and its latest try. Repeat
#: rounds of the same level collapse into the latest, so an alert re-paged every minute for a
#: day is still a few rows. A page never tried (a later contact method's delay had not run out
#: when someone acknowledged) reached nobody and is left out. `target` is not read.
PAGED = """
    SELECT DISTINCT ON (d.alert_id, d.escalation_level, d.contact_method_id)
           d.alert_id, m.clinician_id, c.name AS clinician, d.channel, d.escalation_level,
           d.status, tried.at
      FROM notify.deliveries AS d
     CROSS JOIN LATERAL (SELECT max(a.finished_at) AS at FROM notify.delivery_attempts AS a
                          WHERE a.delivery_id = d.id) AS tried
      LEFT JOIN notify.contact_methods AS m ON m.id = d.contact_method_id
      LEFT JOIN notify.clinicians AS c ON c.id = m.clinician_id
     WHERE d.alert_id = ANY($1::uuid[]) AND tried.at IS NOT NULL
     ORDER BY d.alert_id, d.escalation_level, d.contact_method_id, tried.at DESC
"""


async def list_alerts(session: AsyncSession, wanted: AlertFilter) -> list[dict[str, Any]]:
    """The alerts `wanted` asks for, most urgent first: risk level (imminent, high, moderate,
    low), then the higher escalation level, then the oldest; each with `paged`, oldest first.
    Rows as they come (`as_json` checks them against AlertListItem)."""
    conn = await driver(session, begin=False)  # two reads: no transaction to open and close
    sql, params = list_query(wanted)
    rows = await conn.fetch(sql, *params)
    paged: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    if rows:
        for page in await conn.fetch(PAGED, [r["id"] for r in rows]):
            paged[page["alert_id"]].append(dict(page))
    return [{**dict(row), "paged": sorted(paged[row["id"]], key=lambda p: p["at"])} for row in rows]


_ANSWER = TypeAdapter(list[AlertListItem])


def as_json(found: list[dict[str, Any]]) -> bytes:
    """The answer's body: validated against AlertListItem and serialized in one pass of
    pydantic-core. A model built per alert and then checked and dumped again by FastAPI cost
    three times as much CPU (500 alerts with three pages each: 57 against 18 ms, measured on
    the loaded 2-core machine): this list is polled every few seconds."""
    return _ANSWER.dump_json(_ANSWER.validate_python(found))


# The paging path's statements (services/notify/alerts/service.py, delivery/service.py).


#: The screening's one alert (the unique screening_id makes a redelivered assessment a no-op).
def _insert_alert(on_conflict: str) -> Statement:
    """An alert's row, opened once: `on_conflict` says what makes it a second opening."""
    return Statement(
        """
    INSERT INTO notify.alerts (id, screening_id, assessment_id, risk_level, urgency, reasons,
                               status, escalation_level, repeat_round, ack_deadline_seconds,
                               created_at, changed_at, correlation_id, policy_id, assessed_at,
                               version, traceparent, language, interpreter_needed, reply_id)
    VALUES (:id, :screening_id, :assessment_id, :risk_level, :urgency, :reasons,
            'pending', 0, 0, :ack_deadline_seconds, :now, :now, :correlation_id, :policy_id,
            :assessed_at, 1, :traceparent, :language, :interpreter_needed, :reply_id)
"""
        + on_conflict
    )


#: The screening's one alert (from its assessment, or the watchdog).
OPEN_ALERT = _insert_alert(
    "ON CONFLICT (screening_id) WHERE reply_id IS NULL DO NOTHING RETURNING id"
)
#: One alert per risky reply to a Caring Contact (intake's `follow_up.reply_risk`).
OPEN_REPLY_ALERT = _insert_alert("ON CONFLICT (reply_id) DO NOTHING RETURNING id")
MOVED_ON = Statement("""
    UPDATE notify.alerts SET status = :status, escalation_level = :escalation_level,
                             repeat_round = :repeat_round, changed_at = :changed_at,
                             version = :version
     WHERE id = :id
""")
#: The alert's mapped columns by name (not `*`: a column added by a later migration must not
#: break building the Alert from the row during a rolling deploy).
LOCK_ALERT = (
    f"SELECT {', '.join(column.name for column in Alert.__table__.columns)} "
    "FROM notify.alerts WHERE id = $1 FOR UPDATE"
)
#: An alert whose escalation failed (not an outage: the alert itself) is tried again later.
RETRY_ESCALATION = Statement("UPDATE notify.alerts SET escalate_at = :escalate_at WHERE id = :id")
