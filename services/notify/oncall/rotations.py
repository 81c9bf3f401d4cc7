"""Who is on call at an instant, and over a window: rotations layered under overrides. Pure
functions, no I/O.

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


@dataclass(frozen=True)
class Segment:
    """Who covers [start, end): one clinician (from a rotation or an override), or nobody."""

    start: datetime
    end: datetime
    clinician: uuid.UUID | None
    source: str | None  # "rotation" | "override"; None: nobody covers it (a gap)


def next_handoff(rotation: Rotation, at: datetime) -> datetime | None:
    """The first instant after `at` at which `rotation` changes hands: its start, the end of
    the shift covering `at`, or its own end. None once it has ended."""
    first = handoff(rotation, 0)
    if at < first:
        return first
    ends = local_instant(rotation.end, rotation.time_zone) if rotation.end is not None else None
    if ends is not None and at >= ends:
        return None
    n = shift_index(rotation, at)
    assert n is not None  # started and not ended
    following = handoff(rotation, n + 1)
    return min(following, ends) if ends is not None else following


def next_boundary(
    rotations: Sequence[Rotation], overrides: Sequence[Override], at: datetime
) -> datetime | None:
    """The first instant after `at` at which `on_call`'s answer may change.

    Its answer is made of overrides covering the instant and each rotation's shift, so it can
    only change where an override starts or ends or a rotation changes hands."""
    candidates = [t for o in overrides for t in (o.start, o.end) if t > at]
    candidates += [t for r in rotations if (t := next_handoff(r, at)) is not None]
    return min(candidates, default=None)


def coverage(
    rotations: Sequence[Rotation], overrides: Sequence[Override], start: datetime, end: datetime
) -> list[Segment]:
    """Who covers each stretch of [start, end): segments that tile it exactly, oldest first.

    Walks from one boundary (`next_boundary`) to the next and asks `on_call` at each, so the
    answer is `on_call`'s own, overrides and layers included, without sampling: a 31-day window
    of 12-hour shifts is about 60 steps. A gap is a segment with nobody; neighbours with the
    same clinician from the same source are merged (a one-person rotation is one segment).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("`start` and `end` must carry a time zone")
    segments: list[Segment] = []
    at = start
    while at < end:
        who = on_call(rotations, overrides, at)
        until = min(next_boundary(rotations, overrides, at) or end, end)
        segment = Segment(at, until, who.clinician if who else None, who.source if who else None)
        last = segments[-1] if segments else None
        if last is not None and (last.clinician, last.source) == (
            segment.clinician,
            segment.source,
        ):
            segments[-1] = Segment(last.start, until, last.clinician, last.source)
        else:
            segments.append(segment)
        at = until
    return segments
