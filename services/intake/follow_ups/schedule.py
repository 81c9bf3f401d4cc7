"""When each caring message is sent: a schedule of offsets from the day of consent (by default
day 1, weeks 1-4, months 2, 3, 4, 6, 8, 10 and 12), each at a random time inside a daytime window
(09:00-20:00) in the person's own time zone.

The wall-clock time is chosen first, on the person's calendar, and only then converted to UTC
with zoneinfo, so a message due "at 10:17 on day 30" is at 10:17 local whether or not a DST change
lies between consent and then. A wall-clock time that does not exist (skipped by a spring-forward
change) moves forward by the gap; one that exists twice is the first.
"""

from __future__ import annotations

import calendar
import random
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

#: Day 1, weeks 1-4, months 2, 3, 4, 6, 8, 10, 12 (Comtois et al. 2019; Motto & Bostrom 2001).
DEFAULT_SCHEDULE = "1d,1w,2w,3w,4w,2m,3m,4m,6m,8m,10m,12m"
_OFFSET = re.compile(r"^([1-9][0-9]{0,2})([dwm])$")


class BadSchedule(ValueError):
    pass


@dataclass(frozen=True)
class Offset:
    count: int
    unit: str  # d, w or m

    def on(self, start: date) -> date:
        if self.unit == "d":
            return start + timedelta(days=self.count)
        if self.unit == "w":
            return start + timedelta(weeks=self.count)
        month = start.month - 1 + self.count
        year, month = start.year + month // 12, month % 12 + 1
        return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def parse_schedule(spec: str) -> list[Offset]:
    """`"1d,1w,2m"`: days, weeks or calendar months after the day of consent, in order."""
    offsets: list[Offset] = []
    for part in (p.strip() for p in spec.split(",")):
        match = _OFFSET.fullmatch(part)
        if match is None:
            raise BadSchedule(f"a schedule entry is <n>d, <n>w or <n>m, not {part!r}")
        offsets.append(Offset(int(match.group(1)), match.group(2)))
    if not offsets or len(offsets) > 60:
        raise BadSchedule("a schedule has 1 to 60 entries")
    return offsets


def known_time_zone(name: str) -> bool:
    """An IANA time zone name zoneinfo knows (`Europe/Madrid`), not an abbreviation."""
    if name not in available_timezones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Window:
    """The local hours a message may be sent in: [start, end)."""

    start: time = time(9, 0)
    end: time = time(20, 0)

    def minutes(self) -> int:
        return (self.end.hour * 60 + self.end.minute) - (self.start.hour * 60 + self.start.minute)


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """`day` at the wall-clock time `at` in `zone`, as an aware UTC datetime (see the module)."""
    # fold=0: the first of a repeated hour; a skipped one is read with the offset before the
    # change, which is the instant the gap's length later on the clock (PEP 495).
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def send_times(
    consented_at: datetime,
    time_zone: str,
    offsets: list[Offset],
    *,
    window: Window = Window(),
    rng: random.Random | None = None,
) -> list[datetime]:
    """The UTC instant of each message: on the person's calendar, day of consent + offset, at a
    random minute inside the window."""
    zone = ZoneInfo(time_zone)
    pick = rng or random.SystemRandom()
    start = consented_at.astimezone(zone).date()
    out = []
    for offset in offsets:
        minute = pick.randrange(window.minutes())
        base = window.start.hour * 60 + window.start.minute + minute
        at = time(base // 60, base % 60, pick.randrange(60))
        out.append(local_instant(offset.on(start), at, zone))
    return out
