"""The assessment watchdog: a screening accepted but not assessed in time is paged by hand.

A screening can stall before assessment without anyone hearing of it: its message dead-lettered
by a rule-set bug or a version mismatch in a rolling deploy, or risk down, and the case stays
"received". So notify reads the submissions too (ids and times only) and awaits each one's
assessment; one still unassessed ASSESSMENT_DEADLINE_SECONDS after submission opens
an alert at high risk, "assessment delayed, review by hand", paged by the high policy like any
other. A late assessment changes nothing then: the screening already has its one alert, and the
clinician who opens the case sees the assessment there.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.alerts.service import Unassessed, open_alert
from services.notify.settings import NotifySettings
from shared.db import SessionFactory, driver
from shared.events import (
    Envelope,
    RiskAssessed,
    ScreeningSubmitted,
)
from shared.wakeup import DueWatcher, Listener

log = logging.getLogger(__name__)

#: Where a poll's submissions say when the earliest of them comes due (`_SUBMITTED`).
CHANNEL = "notify_assessments_awaited"
#: A ceiling on the watchdog's sleep, for a notice lost while its LISTEN connection was down
#: (a reconnect makes a full pass at once, so this is a second net, not the first).
MAX_SLEEP_SECONDS = 60.0
#: Due yet not claimed by the pass just made: another replica holds the row mid-claim (and pages
#: it), it came due after the pass began, or the database's clock is behind this one's. Look
#: again after this long, not in a busy loop (`DueWatcher`).
BUSY_RETRY_SECONDS = 0.2

#: The reasons such an alert carries (no PHI: the screening's id is in the page itself).
WHY = (
    "assessment delayed: not assessed within {seconds:g} s of submission; review by hand",
    "the screening may have failed assessment (`triage dlq list` shows why), or risk is down",
)


#: A poll's submissions in one statement, not one each: the watchdog shares notify's poll with
#: the assessments, and reading the submissions made the median assessment-to-alert hop about
#: 15 ms longer at 100 screenings/s. One row per screening, in screening id order, so that two
#: polls' upserts lock their rows in one order. (A poll's assessments are upserted the same way,
#: `_ASSESSED`; but a poll with both takes them in two statements, so two replicas' polls can
#: still meet in the other order: the deadlock rolls one poll back, and its events are applied
#: one by one.)
#:
#: The statement also tells every replica's watchdog when the earliest of them comes due (a
#: NOTIFY on `CHANNEL`, sent at commit, in seconds since the epoch), so a watchdog with nothing
#: awaited sleeps until a submission comes instead of looking every two seconds. A watchdog
#: asleep until no later than that is not woken (`shared.wakeup`): under load the earliest
#: screening in flight is always due first. Sent from the statement, not from a trigger on the
#: table: the assessments' upserts, one a screening, need no notice and pay nothing for one.
_SUBMITTED = """
    WITH awaited AS (
        INSERT INTO notify.awaited_assessments (screening_id, due_at, correlation_id)
        SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[])
        ON CONFLICT (screening_id) DO UPDATE SET due_at = excluded.due_at,
                                                 correlation_id = excluded.correlation_id
         WHERE notify.awaited_assessments.due_at IS NULL
        RETURNING due_at, assessed_at
    )
    SELECT pg_notify($4, extract(epoch FROM min(due_at))::text)
      FROM awaited
     WHERE assessed_at IS NULL
    HAVING count(*) > 0
"""
_ASSESSED = """
    INSERT INTO notify.awaited_assessments (screening_id, assessed_at)
    SELECT * FROM unnest($1::uuid[], $2::timestamptz[])
    ON CONFLICT (screening_id) DO UPDATE SET assessed_at = excluded.assessed_at
     WHERE notify.awaited_assessments.assessed_at IS NULL
"""
#: An assessment alone in its poll that pages nobody: its upsert and its event id among those
#: applied (`triage dlq` asks there), one statement that commits on its own; the consumer does
#: not claim it (`shared.kafka.Batch`'s `alone`).
_ASSESSED_ALONE = """
    WITH applied AS (
        INSERT INTO notify.processed_events (event_id, topic) VALUES ($3, $4)
        ON CONFLICT DO NOTHING
    )
    INSERT INTO notify.awaited_assessments (screening_id, assessed_at) VALUES ($1, $2)
    ON CONFLICT (screening_id) DO UPDATE SET assessed_at = excluded.assessed_at
     WHERE notify.awaited_assessments.assessed_at IS NULL
"""
_OVERDUE = """
    UPDATE notify.awaited_assessments SET alerted_at = now()
     WHERE screening_id IN (
           SELECT screening_id FROM notify.awaited_assessments
            WHERE assessed_at IS NULL AND alerted_at IS NULL AND due_at <= now()
            ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
    RETURNING screening_id, due_at, correlation_id
"""
_NEXT_DUE = """
    SELECT min(due_at) FROM notify.awaited_assessments
     WHERE assessed_at IS NULL AND alerted_at IS NULL
"""


async def on_submitted(
    session: AsyncSession, envelopes: list[Envelope], *, deadline: float
) -> None:
    """Await the assessment of each submission of a poll (a `Batch` handler)."""
    due: dict[uuid.UUID, tuple[datetime, str]] = {}
    for envelope in envelopes:
        submitted = ScreeningSubmitted.model_validate(envelope.data)
        due.setdefault(
            submitted.screening_id,
            (submitted.submitted_at + timedelta(seconds=deadline), envelope.correlation_id),
        )
    ids = sorted(due)
    await (await driver(session)).execute(
        _SUBMITTED, ids, [due[i][0] for i in ids], [due[i][1] for i in ids], CHANNEL
    )


async def on_assessed(session: AsyncSession, assessments: list[RiskAssessed]) -> None:
    """A poll's assessments are no longer awaited (one statement; the first of a screening's
    assessments is the one that counts)."""
    first: dict[uuid.UUID, datetime] = {}
    for assessed in assessments:
        first.setdefault(assessed.screening_id, assessed.assessed_at)
    ids = sorted(first)
    await (await driver(session)).execute(_ASSESSED, ids, [first[i] for i in ids])


async def on_assessed_alone(
    session: AsyncSession, assessed: RiskAssessed, *, event_id: uuid.UUID, topic: str
) -> None:
    """`on_assessed` for one assessment, with its event recorded as applied, in one statement
    that commits on its own when no transaction is open."""
    await (await driver(session, begin=False)).execute(
        _ASSESSED_ALONE, assessed.screening_id, assessed.assessed_at, event_id, topic
    )


class AssessmentWatchdog:
    """Opens the alert of each screening whose assessment is overdue: a `DueWatcher`, so
    replicas share the work (`FOR UPDATE SKIP LOCKED`), the claim and the alert commit together,
    and between passes it sleeps until the earliest awaited screening is due, or until a
    submission's notice says one is due sooner (`CHANNEL`)."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        settings: NotifySettings,
        listener: Listener,
        batch_size: int = 50,
    ) -> None:
        self._settings = settings
        self._watcher = DueWatcher(
            name="assessment watchdog",
            what="screening(s) not assessed in time",
            sessions=sessions,
            listener=listener,
            channel=CHANNEL,
            claim=self._claim,
            next_due=_next_due,
            batch_size=batch_size,
            max_sleep_seconds=MAX_SLEEP_SECONDS,
            busy_retry_seconds=BUSY_RETRY_SECONDS,
        )

    @property
    def alerted(self) -> int:
        return self._watcher.announced

    async def run(self) -> None:
        await self._watcher.run()

    async def run_due(self) -> None:
        await self._watcher.run_due()

    async def _claim(self, session: AsyncSession, limit: int) -> list[asyncpg.Record]:
        seconds = self._settings.assessment_deadline_seconds
        rows: list[asyncpg.Record] = await (await driver(session)).fetch(_OVERDUE, limit)
        for row in rows:
            delayed = Unassessed(
                screening_id=row["screening_id"],
                reasons=[WHY[0].format(seconds=seconds), WHY[1]],
            )
            await open_alert(
                session,
                assessed=delayed,
                settings=self._settings,
                correlation_id=row["correlation_id"] or str(uuid.uuid4()),
            )
            log.error(
                "screening %s not assessed %g s after submission; paged for review by hand",
                row["screening_id"],
                seconds,
            )
        return rows


async def _next_due(session: AsyncSession) -> datetime | None:
    due: datetime | None = await (await driver(session, begin=False)).fetchval(_NEXT_DUE)
    return due
