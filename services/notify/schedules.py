"""Who is on call at an instant: rotations layered under overrides. Pure functions, no I/O.

Shifts are counted in the rotation's own wall-clock time, the way clinicians read a roster: a
12-hour rotation starting 08:00 in America/New_York hands off at 08:00 and 20:00 local time every
day, so on the night clocks change the shift is 11 or 13 hours long rather than the handoff
drifting by an hour. A handoff that falls in a spring-forward gap happens at the instant the gap
begins (`fold=0`); one in the repeated fall-back hour happens at its first occurrence.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Rotation:
    """Clinicians taking turns of `shift` from `start` (wall-clock time in `time_zone`)."""

    clinicians: tuple[uuid.UUID, ...]
    shift: timedelta
    start: datetime  # naive, local to time_zone
    time_zone: str
    end: datetime | None = None  # naive, local to time_zone; open-ended when None
    layer: int = 0  # a higher layer wins where it covers


@dataclass(frozen=True)
class Override:
    """`clinician` covers the schedule from `start` to `end` (instants), above every rotation."""

    clinician: uuid.UUID
    start: datetime
    end: datetime


@dataclass(frozen=True)
class OnCall:
    clinician: uuid.UUID
    source: str  # "rotation" | "override"
    start: datetime  # the shift (or override) this answer belongs to, as UTC instants
    end: datetime | None


def local_instant(wall: datetime, time_zone: str) -> datetime:
    """The UTC instant of a wall-clock time in `time_zone` (gap and overlap resolved by fold=0)."""
    return wall.replace(tzinfo=ZoneInfo(time_zone), fold=0).astimezone(UTC)


def handoff(rotation: Rotation, n: int) -> datetime:
    """The instant shift `n` begins."""
    return local_instant(rotation.start + n * rotation.shift, rotation.time_zone)


def shift_index(rotation: Rotation, at: datetime) -> int | None:
    """Which shift covers `at`, or None before the rotation starts or after it ends."""
    if at < handoff(rotation, 0):
        return None
    if rotation.end is not None and at >= local_instant(rotation.end, rotation.time_zone):
        return None
    wall = at.astimezone(ZoneInfo(rotation.time_zone)).replace(tzinfo=None)
    n = max(0, (wall - rotation.start) // rotation.shift)
    # Wall-clock arithmetic is off by one around a clock change; settle on the real instants.
    while n > 0 and at < handoff(rotation, n):
        n -= 1
    while at >= handoff(rotation, n + 1):
        n += 1
    return n


def rotation_on_call(rotation: Rotation, at: datetime) -> OnCall | None:
    n = shift_index(rotation, at)
    if n is None or not rotation.clinicians:
        return None
    end = handoff(rotation, n + 1)
    if rotation.end is not None:
        end = min(end, local_instant(rotation.end, rotation.time_zone))
    return OnCall(
        clinician=rotation.clinicians[n % len(rotation.clinicians)],
        source="rotation",
        start=handoff(rotation, n),
        end=end,
    )


def on_call(
    rotations: Sequence[Rotation], overrides: Sequence[Override], at: datetime
) -> OnCall | None:
    """The clinician on call at `at`: the newest override covering it, else the highest layer."""
    if at.tzinfo is None:
        raise ValueError("`at` must carry a time zone")
    for o in reversed(overrides):  # given oldest first; the newest one wins
        if o.start <= at < o.end:
            return OnCall(clinician=o.clinician, source="override", start=o.start, end=o.end)
    for rotation in sorted(rotations, key=lambda r: r.layer, reverse=True):
        answer = rotation_on_call(rotation, at)
        if answer is not None:
            return answer
    return None
