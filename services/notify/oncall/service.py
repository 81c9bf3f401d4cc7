"""Who is on call, and who is paged now: the two look-ups on the paging path (which policy an
alert follows, whom one escalation level reaches), each a few indexed queries in the caller's
transaction, and the on-call and coverage views of the schedules.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.models import sealed
from services.notify.oncall import rotations as shifts
from services.notify.oncall.models import (
    Clinician,
    ContactMethod,
    OverrideRow,
    RotationRow,
    Schedule,
)
from services.notify.oncall.policies import Level, Plan, plan_from_row
from services.notify.oncall.schedules import override_of, rotation_of, schedule_on_call
from services.notify.oncall.schemas import (
    CoverageOut,
    CoverageSegment,
    OnCallEntry,
    OnCallOut,
    ScheduleCoverage,
)
from shared.db import driver
from shared.errors import NotFound
from shared.phi import PhiUnreadable, ring_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """One contact method to page for a step."""

    contact_method_id: uuid.UUID
    channel: str
    #: None: the method's address cannot be read (refused or undecryptable): the fallback's.
    address: str | None
    delay_seconds: int
    clinician_id: uuid.UUID | None = None


async def _schedules(session: AsyncSession, schedule_id: uuid.UUID | None) -> list[Schedule]:
    """Every schedule, oldest first, or the one asked for (404 when there is none such)."""
    query = select(Schedule).order_by(Schedule.created_at, Schedule.id)
    if schedule_id is not None:
        query = query.where(Schedule.id == schedule_id)
    found = list(await session.scalars(query))
    if schedule_id is not None and not found:
        raise NotFound(f"no schedule {schedule_id}")
    return found


async def on_call_at(
    session: AsyncSession, *, at: datetime, schedule_id: uuid.UUID | None = None
) -> OnCallOut:
    found = await _schedules(session, schedule_id)
    entries = []
    for schedule in found:
        who = await schedule_on_call(session, schedule_id=schedule.id, at=at)
        clinician = await session.get(Clinician, who.clinician) if who else None
        entries.append(
            OnCallEntry(
                schedule_id=schedule.id,
                schedule=schedule.name,
                clinician_id=who.clinician if who else None,
                clinician=clinician.name if clinician else None,
                source=who.source if who else None,
                start=who.start if who else None,
                end=who.end if who else None,
            )
        )
    return OnCallOut(at=at, oncall=entries)


async def coverage_between(
    session: AsyncSession, *, start: datetime, end: datetime, schedule_id: uuid.UUID | None = None
) -> CoverageOut:
    """Who covers each schedule over [start, end), as segments that tile it (gaps included).

    Four queries whatever the window or the number of schedules (the schedules, all their
    rotations, the overrides overlapping the window, the clinicians' names); the walk itself
    is `shifts.coverage`, in memory, on `on_call`'s rules."""
    found = await _schedules(session, schedule_id)
    ids = [s.id for s in found]
    rotations: dict[uuid.UUID, list[shifts.Rotation]] = {i: [] for i in ids}
    overrides: dict[uuid.UUID, list[shifts.Override]] = {i: [] for i in ids}
    if ids:
        for r in await session.scalars(select(RotationRow).where(RotationRow.schedule_id.in_(ids))):
            rotations[r.schedule_id].append(rotation_of(r))
        for o in await session.scalars(
            select(OverrideRow)
            .where(
                OverrideRow.schedule_id.in_(ids),
                OverrideRow.starts_at < end,
                OverrideRow.ends_at > start,
            )
            .order_by(OverrideRow.created_at)  # oldest first: on_call lets the newest win
        ):
            overrides[o.schedule_id].append(override_of(o))
    walked = {i: shifts.coverage(rotations[i], overrides[i], start, end) for i in ids}
    names = await _names(session, {s.clinician for w in walked.values() for s in w})
    return CoverageOut(
        start=start,
        end=end,
        schedules=[
            ScheduleCoverage(
                schedule_id=schedule.id,
                schedule=schedule.name,
                segments=[
                    CoverageSegment(
                        start=s.start,
                        end=s.end,
                        clinician_id=s.clinician,
                        clinician=names.get(s.clinician) if s.clinician else None,
                        source=s.source,
                    )
                    for s in walked[schedule.id]
                ],
            )
            for schedule in found
        ],
    )


async def _names(session: AsyncSession, ids: set[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(
        select(Clinician.id, Clinician.name).where(Clinician.id.in_(wanted))
    )
    return {row.id: row.name for row in rows}


_POLICY_FOR_RISK_LEVEL = """
    SELECT p.id, p.name, p.levels, p.repeats
      FROM notify.policies AS p JOIN notify.policy_risk_levels AS r ON r.policy_id = p.id
     WHERE r.risk_level = $1
     LIMIT 1
"""


async def plan_for_risk_level(session: AsyncSession, *, risk_level: str) -> Plan | None:
    """The escalation plan of the policy that claims `risk_level`, if one does.

    Asked for every flagged assessment, so sent straight to asyncpg (`shared.db.driver`).
    """
    row = await (await driver(session)).fetchrow(_POLICY_FOR_RISK_LEVEL, risk_level)
    if row is None:
        return None
    return plan_from_row(row["id"], row["name"], row["levels"], row["repeats"])


async def level_targets(session: AsyncSession, *, level: Level, at: datetime) -> list[Target]:
    """The contact methods one escalation level reaches at `at`: named clinicians, then on call."""
    clinicians = list(level.clinician_ids)
    if level.schedule_id is not None:
        who = await schedule_on_call(session, schedule_id=level.schedule_id, at=at)
        if who is not None:
            clinicians.append(who.clinician)
    return await clinician_targets(session, clinicians)


async def clinician_targets(session: AsyncSession, clinician_ids: list[uuid.UUID]) -> list[Target]:
    """The live contact methods of `clinician_ids`, clinician by clinician in their order."""
    clinicians = list(dict.fromkeys(clinician_ids))
    if not clinicians:
        return []
    rank = {c: i for i, c in enumerate(clinicians)}
    # Columns, not ContactMethods: each address is opened here, so one that cannot be read (its
    # key left the ring, or a value in clear planted in a sealed database) pages the fallback
    # instead of failing the whole step: paging never stops on one bad address.
    rows = await session.execute(
        select(
            ContactMethod.id,
            ContactMethod.clinician_id,
            ContactMethod.kind,
            ContactMethod.address,
            ContactMethod.delay_seconds,
        )
        .where(
            ContactMethod.clinician_id.in_(clinicians),
            ContactMethod.deleted_at.is_(None),
            # A phone that texted STOP is not texted: the clinician's other methods page.
            ContactMethod.opted_out_at.is_(None),
        )
        .order_by(ContactMethod.position, ContactMethod.created_at)
    )
    ring, column = ring_of(session), sealed("contact_methods")
    targets = []
    for m in sorted(rows, key=lambda m: rank[m.clinician_id]):
        try:
            address = column.open(ring, {"id": m.id}, m.address)
        except PhiUnreadable:
            log.error("contact method %s: its address cannot be read; paging the fallback", m.id)
            address = None
        targets.append(
            Target(
                contact_method_id=m.id,
                channel=m.kind if address is not None else "webhook",
                address=address,
                delay_seconds=m.delay_seconds,
                clinician_id=m.clinician_id,
            )
        )
    return targets
