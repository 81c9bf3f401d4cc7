"""On-call configuration in PostgreSQL: clinicians, contact methods, schedules, policies.

Also the two look-ups on the paging path, each a few indexed queries in the caller's
transaction: which policy an alert follows, and whom one escalation level reaches now.
Functions here flush; the caller commits.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.alerts.schemas import (
    ClinicianIn,
    ClinicianOut,
    ContactMethodIn,
    ContactMethodOut,
    CoverageOut,
    CoverageSegment,
    OnCallEntry,
    OnCallOut,
    OverrideIn,
    OverrideOut,
    PolicyIn,
    PolicyOut,
    RotationOut,
    ScheduleCoverage,
    ScheduleIn,
    ScheduleOut,
)
from services.notify.models import (
    Clinician,
    ContactMethod,
    OverrideRow,
    Policy,
    PolicyRiskLevel,
    RotationRow,
    Schedule,
    sealed,
)
from services.notify.oncall import rotations as schedules
from services.notify.oncall.policies import Level, Plan, plan_from_row
from shared.db import driver
from shared.errors import Conflict, NotFound, Unprocessable
from shared.events import utcnow
from shared.pagination import keyset_page
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


# Clinicians and contact methods.


async def _methods(
    session: AsyncSession, clinician_ids: Sequence[uuid.UUID]
) -> list[ContactMethod]:
    return list(
        await session.scalars(
            select(ContactMethod)
            .where(
                ContactMethod.clinician_id.in_(clinician_ids), ContactMethod.deleted_at.is_(None)
            )
            .order_by(ContactMethod.position, ContactMethod.created_at)
        )
    )


def _clinician_out(clinician: Clinician, methods: Iterable[ContactMethod]) -> ClinicianOut:
    return ClinicianOut(
        id=clinician.id,
        name=clinician.name,
        created_at=clinician.created_at,
        contact_methods=[
            ContactMethodOut.model_validate(m) for m in methods if m.clinician_id == clinician.id
        ],
    )


def _new_method(clinician_id: uuid.UUID, data: ContactMethodIn, position: int) -> ContactMethod:
    return ContactMethod(
        id=uuid.uuid4(),
        clinician_id=clinician_id,
        kind=data.kind,
        address=data.address,
        position=data.position if data.position is not None else position,
        delay_seconds=data.delay_seconds,
        created_at=utcnow(),
    )


async def create_clinician(session: AsyncSession, *, data: ClinicianIn) -> ClinicianOut:
    clinician = Clinician(id=uuid.uuid4(), name=data.name, created_at=utcnow())
    session.add(clinician)
    await session.flush()
    methods = [_new_method(clinician.id, m, i) for i, m in enumerate(data.contact_methods)]
    session.add_all(methods)
    await session.flush()
    return _clinician_out(clinician, methods)


async def get_clinician(session: AsyncSession, *, clinician_id: uuid.UUID) -> ClinicianOut:
    clinician = await session.get(Clinician, clinician_id)
    if clinician is None:
        raise NotFound(f"no clinician {clinician_id}")
    return _clinician_out(clinician, await _methods(session, [clinician.id]))


async def list_clinicians(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> tuple[list[ClinicianOut], str | None]:
    clinicians, following = await keyset_page(
        session, select(Clinician), Clinician, limit=limit, cursor=cursor
    )
    methods = await _methods(session, [c.id for c in clinicians])
    return [_clinician_out(c, methods) for c in clinicians], following


async def add_contact_method(
    session: AsyncSession, *, clinician_id: uuid.UUID, data: ContactMethodIn
) -> ContactMethodOut:
    if await session.get(Clinician, clinician_id) is None:
        raise NotFound(f"no clinician {clinician_id}")
    existing = await _methods(session, [clinician_id])
    position = max((m.position for m in existing), default=-1) + 1
    method = _new_method(clinician_id, data, position)
    session.add(method)
    await session.flush()
    return ContactMethodOut.model_validate(method)


async def remove_contact_method(
    session: AsyncSession, *, clinician_id: uuid.UUID, method_id: uuid.UUID
) -> None:
    """Stops future pages to the method; the row stays for the deliveries that name it."""
    method = await session.get(ContactMethod, method_id)
    if method is None or method.clinician_id != clinician_id or method.deleted_at is not None:
        raise NotFound(f"no contact method {method_id}")
    method.deleted_at = utcnow()
    await session.flush()


async def _require_clinicians(
    session: AsyncSession, ids: Iterable[uuid.UUID], *, field: str
) -> None:
    wanted = set(ids)
    if not wanted:
        return
    found = set(await session.scalars(select(Clinician.id).where(Clinician.id.in_(wanted))))
    if wanted - found:
        raise Unprocessable(
            "unknown clinician", problems=[{"field": field, "problem": "unknown clinician id"}]
        )


# Schedules: rotations (layers) and overrides.


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
        await _require_clinicians(
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
    await _require_clinicians(session, [data.clinician_id], field="clinician_id")
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


def _rotation(row: RotationRow) -> schedules.Rotation:
    return schedules.Rotation(
        clinicians=tuple(row.clinician_ids),
        shift=timedelta(hours=row.shift_hours),
        start=row.starts_local,
        time_zone=row.time_zone,
        end=row.ends_local,
        layer=row.layer,
    )


def _override(row: OverrideRow) -> schedules.Override:
    return schedules.Override(row.clinician_id, row.starts_at, row.ends_at)


async def schedule_on_call(
    session: AsyncSession, *, schedule_id: uuid.UUID, at: datetime
) -> schedules.OnCall | None:
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
    return schedules.on_call(
        [_rotation(r) for r in rotations], [_override(o) for o in overrides], at
    )


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
    is `schedules.coverage`, in memory, on `on_call`'s rules."""
    found = await _schedules(session, schedule_id)
    ids = [s.id for s in found]
    rotations: dict[uuid.UUID, list[schedules.Rotation]] = {i: [] for i in ids}
    overrides: dict[uuid.UUID, list[schedules.Override]] = {i: [] for i in ids}
    if ids:
        for r in await session.scalars(select(RotationRow).where(RotationRow.schedule_id.in_(ids))):
            rotations[r.schedule_id].append(_rotation(r))
        for o in await session.scalars(
            select(OverrideRow)
            .where(
                OverrideRow.schedule_id.in_(ids),
                OverrideRow.starts_at < end,
                OverrideRow.ends_at > start,
            )
            .order_by(OverrideRow.created_at)  # oldest first: on_call lets the newest win
        ):
            overrides[o.schedule_id].append(_override(o))
    walked = {i: schedules.coverage(rotations[i], overrides[i], start, end) for i in ids}
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


# Escalation policies.


async def _policy_out(session: AsyncSession, policy: Policy) -> PolicyOut:
    levels = await session.scalars(
        select(PolicyRiskLevel.risk_level)
        .where(PolicyRiskLevel.policy_id == policy.id)
        .order_by(PolicyRiskLevel.risk_level)
    )
    return PolicyOut(
        id=policy.id,
        name=policy.name,
        risk_levels=list(levels),
        levels=policy.levels,
        repeats=policy.repeats,
        created_at=policy.created_at,
        changed_at=policy.changed_at,
    )


async def _put_policy(session: AsyncSession, policy: Policy, data: PolicyIn) -> None:
    for i, level in enumerate(data.levels):
        await _require_clinicians(session, level.clinician_ids, field=f"levels.{i}.clinician_ids")
        if level.schedule_id is not None and await session.get(Schedule, level.schedule_id) is None:
            raise Unprocessable(
                "unknown schedule",
                problems=[{"field": f"levels.{i}.schedule_id", "problem": "unknown schedule id"}],
            )
    taken = await session.scalars(
        select(PolicyRiskLevel.risk_level).where(
            PolicyRiskLevel.risk_level.in_(data.risk_levels), PolicyRiskLevel.policy_id != policy.id
        )
    )
    if clash := sorted(taken):
        raise Conflict(f"another policy already covers risk level(s) {', '.join(clash)}")
    policy.name = data.name
    policy.repeats = data.repeats
    policy.levels = [lv.model_dump(mode="json") for lv in data.levels]
    policy.changed_at = utcnow()
    await session.flush()
    await session.execute(delete(PolicyRiskLevel).where(PolicyRiskLevel.policy_id == policy.id))
    session.add_all(
        PolicyRiskLevel(risk_level=r, policy_id=policy.id) for r in set(data.risk_levels)
    )
    await session.flush()


async def create_policy(session: AsyncSession, *, data: PolicyIn) -> PolicyOut:
    now = utcnow()
    policy = Policy(
        id=uuid.uuid4(), name=data.name, levels=[], repeats=0, created_at=now, changed_at=now
    )
    session.add(policy)
    await session.flush()
    await _put_policy(session, policy, data)
    return await _policy_out(session, policy)


async def _live_policy(session: AsyncSession, policy_id: uuid.UUID) -> Policy:
    policy = await session.get(Policy, policy_id, with_for_update=True)
    if policy is None or policy.deleted_at is not None:
        raise NotFound(f"no policy {policy_id}")
    return policy


async def replace_policy(
    session: AsyncSession, *, policy_id: uuid.UUID, data: PolicyIn
) -> PolicyOut:
    """Open alerts follow the new levels from their next step on."""
    policy = await _live_policy(session, policy_id)
    await _put_policy(session, policy, data)
    return await _policy_out(session, policy)


async def delete_policy(session: AsyncSession, *, policy_id: uuid.UUID) -> None:
    """New alerts of its risk levels fall back; open alerts that follow it finish with it."""
    policy = await _live_policy(session, policy_id)
    await session.execute(delete(PolicyRiskLevel).where(PolicyRiskLevel.policy_id == policy.id))
    policy.deleted_at = utcnow()
    await session.flush()


async def get_policy(session: AsyncSession, *, policy_id: uuid.UUID) -> PolicyOut:
    policy = await session.get(Policy, policy_id)
    if policy is None or policy.deleted_at is not None:
        raise NotFound(f"no policy {policy_id}")
    return await _policy_out(session, policy)


async def list_policies(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> tuple[list[PolicyOut], str | None]:
    live = select(Policy).where(Policy.deleted_at.is_(None))
    found, following = await keyset_page(session, live, Policy, limit=limit, cursor=cursor)
    return [await _policy_out(session, p) for p in found], following


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
    clinicians = list(dict.fromkeys(clinicians))
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
        .where(ContactMethod.clinician_id.in_(clinicians), ContactMethod.deleted_at.is_(None))
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
            )
        )
    return targets
