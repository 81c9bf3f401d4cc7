"""Schedules: rotations (layers, wall-clock shifts in a time zone) and overrides, stored; who covers
one at an instant (the walk itself is rotations.py's, in memory). Functions here flush; the caller
commits.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.oncall import rotations as shifts
from services.notify.oncall.clinicians import require_clinicians
from services.notify.oncall.models import (
    OverrideRow,
    RotationRow,
    Schedule,
)
from services.notify.oncall.schemas import (
    OverrideIn,
    OverrideOut,
    RotationOut,
    ScheduleIn,
    ScheduleOut,
)
from shared.errors import NotFound, Unprocessable
from shared.events import utcnow
from shared.pagination import keyset_page


async def _schedule_out(session: AsyncSession, schedule: Schedule) -> ScheduleOut:
    rotations = await session.scalars(
        select(RotationRow)
        .where(RotationRow.schedule_id == schedule.id)
        .order_by(RotationRow.layer)
    )
    overrides = await session.scalars(
        select(OverrideRow)
        .where(OverrideRow.schedule_id == schedule.id)
        .order_by(OverrideRow.starts_at, OverrideRow.created_at)
    )
    return ScheduleOut(
        id=schedule.id,
        name=schedule.name,
        rotations=[
            RotationOut(
                layer=r.layer,
                clinician_ids=list(r.clinician_ids),
                shift_hours=r.shift_hours,
                start=r.starts_local,
                time_zone=r.time_zone,
                end=r.ends_local,
            )
            for r in rotations
        ],
        overrides=[
            OverrideOut(id=o.id, clinician_id=o.clinician_id, start=o.starts_at, end=o.ends_at)
            for o in overrides
        ],
    )


async def _put_rotations(session: AsyncSession, schedule_id: uuid.UUID, data: ScheduleIn) -> None:
    for i, rotation in enumerate(data.rotations):
        await require_clinicians(
            session, rotation.clinician_ids, field=f"rotations.{i}.clinician_ids"
        )
    layers = [r.layer if r.layer is not None else i for i, r in enumerate(data.rotations)]
    if len(set(layers)) != len(layers):
        raise Unprocessable(
            "two rotations share a layer",
            problems=[{"field": "rotations", "problem": "each rotation needs its own layer"}],
        )
    await session.execute(delete(RotationRow).where(RotationRow.schedule_id == schedule_id))
    session.add_all(
        RotationRow(
            id=uuid.uuid4(),
            schedule_id=schedule_id,
            layer=layer,
            clinician_ids=list(r.clinician_ids),
            shift_hours=r.shift_hours,
            starts_local=r.start,
            ends_local=r.end,
            time_zone=r.time_zone,
        )
        for layer, r in zip(layers, data.rotations, strict=True)
    )
    await session.flush()


async def create_schedule(session: AsyncSession, *, data: ScheduleIn) -> ScheduleOut:
    now = utcnow()
    schedule = Schedule(id=uuid.uuid4(), name=data.name, created_at=now, changed_at=now)
    session.add(schedule)
    await session.flush()
    await _put_rotations(session, schedule.id, data)
    return await _schedule_out(session, schedule)


async def replace_schedule(
    session: AsyncSession, *, schedule_id: uuid.UUID, data: ScheduleIn
) -> ScheduleOut:
    """New name and rotations; overrides stay (they are managed one by one)."""
    schedule = await session.get(Schedule, schedule_id, with_for_update=True)
    if schedule is None:
        raise NotFound(f"no schedule {schedule_id}")
    schedule.name = data.name
    schedule.changed_at = utcnow()
    await _put_rotations(session, schedule.id, data)
    return await _schedule_out(session, schedule)


async def get_schedule(session: AsyncSession, *, schedule_id: uuid.UUID) -> ScheduleOut:
    schedule = await session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFound(f"no schedule {schedule_id}")
    return await _schedule_out(session, schedule)


async def list_schedules(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> tuple[list[ScheduleOut], str | None]:
    found, following = await keyset_page(
        session, select(Schedule), Schedule, limit=limit, cursor=cursor
    )
    return [await _schedule_out(session, s) for s in found], following


async def add_override(
    session: AsyncSession, *, schedule_id: uuid.UUID, data: OverrideIn
) -> OverrideOut:
    if await session.get(Schedule, schedule_id) is None:
        raise NotFound(f"no schedule {schedule_id}")
    await require_clinicians(session, [data.clinician_id], field="clinician_id")
    row = OverrideRow(
        id=uuid.uuid4(),
        schedule_id=schedule_id,
        clinician_id=data.clinician_id,
        starts_at=data.start,
        ends_at=data.end,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return OverrideOut(
        id=row.id, clinician_id=row.clinician_id, start=row.starts_at, end=row.ends_at
    )


async def remove_override(
    session: AsyncSession, *, schedule_id: uuid.UUID, override_id: uuid.UUID
) -> None:
    result = await session.execute(
        delete(OverrideRow).where(
            OverrideRow.id == override_id, OverrideRow.schedule_id == schedule_id
        )
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"no override {override_id}")


def rotation_of(row: RotationRow) -> shifts.Rotation:
    return shifts.Rotation(
        clinicians=tuple(row.clinician_ids),
        shift=timedelta(hours=row.shift_hours),
        start=row.starts_local,
        time_zone=row.time_zone,
        end=row.ends_local,
        layer=row.layer,
    )


def override_of(row: OverrideRow) -> shifts.Override:
    return shifts.Override(row.clinician_id, row.starts_at, row.ends_at)


async def schedule_on_call(
    session: AsyncSession, *, schedule_id: uuid.UUID, at: datetime
) -> shifts.OnCall | None:
    """Who covers `schedule_id` at `at`: its rotations and the overrides covering `at`."""
    rotations = await session.scalars(
        select(RotationRow).where(RotationRow.schedule_id == schedule_id)
    )
    overrides = await session.scalars(
        select(OverrideRow)
        .where(
            OverrideRow.schedule_id == schedule_id,
            OverrideRow.starts_at <= at,
            OverrideRow.ends_at > at,
        )
        .order_by(OverrideRow.created_at)
    )
    return shifts.on_call(
        [rotation_of(r) for r in rotations], [override_of(o) for o in overrides], at
    )
