"""The Caring Contacts schedule, with a frozen clock: each message on the person's calendar, at a
random time inside 09:00-20:00 in their own time zone, right across a DST change."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from services.intake.follow_ups.schedule import (
    DEFAULT_SCHEDULE,
    BadSchedule,
    Window,
    parse_schedule,
    send_times,
)
from services.intake.follow_ups.texts import LANGUAGES, TEXTS, text_for

OFFSETS = parse_schedule(DEFAULT_SCHEDULE)


@pytest.mark.parametrize(
    ("zone", "consented", "days"),
    [
        # Consent on 20 October 2026 in Los Angeles, 19:30 local (02:30 UTC the next day): the
        # US leaves daylight time on 1 November, between week 1 and week 2.
        (
            "America/Los_Angeles",
            datetime(2026, 10, 21, 2, 30, tzinfo=UTC),
            [date(2026, 10, 21), date(2026, 10, 27), date(2026, 11, 3), date(2026, 11, 10)],
        ),
        # Consent on 20 March 2026 in Madrid, 23:30 local (22:30 UTC): Europe enters summer time
        # on 29 March, between week 1 and week 2.
        (
            "Europe/Madrid",
            datetime(2026, 3, 20, 22, 30, tzinfo=UTC),
            [date(2026, 3, 21), date(2026, 3, 27), date(2026, 4, 3), date(2026, 4, 10)],
        ),
    ],
)
def test_send_times_are_inside_the_window_across_dst(
    zone: str, consented: datetime, days: list[date]
) -> None:
    for seed in range(50):
        times = send_times(consented, zone, OFFSETS, rng=random.Random(seed))
        assert len(times) == len(OFFSETS) == 12
        local = [t.astimezone(ZoneInfo(zone)) for t in times]
        assert [d.date() for d in local[:4]] == days, "on the person's own calendar"
        assert all(time(9, 0) <= d.time() < time(20, 0) for d in local), local
        assert times == sorted(times) and all(t.tzinfo is not None for t in times)
        # Both sides of the change are in the schedule: the offsets differ.
        assert len({d.utcoffset() for d in local}) == 2
    # Months are calendar months: month 2 of a consent on 21 October is 21 December.
    la = send_times(
        datetime(2026, 10, 21, 2, 30, tzinfo=UTC),
        "America/Los_Angeles",
        OFFSETS,
        rng=random.Random(1),
    )
    assert la[5].astimezone(ZoneInfo("America/Los_Angeles")).date() == date(2026, 12, 20)


def test_a_time_skipped_by_the_clock_change_moves_forward() -> None:
    # 8 March 2026, US: 02:00-03:00 does not exist in Los Angeles.
    consented = datetime(2026, 3, 7, 20, 0, tzinfo=UTC)  # 7 March, 12:00 local
    (at,) = send_times(
        consented,
        "America/Los_Angeles",
        parse_schedule("1d"),
        window=Window(time(2, 0), time(2, 59)),
        rng=random.Random(3),
    )
    local = at.astimezone(ZoneInfo("America/Los_Angeles"))
    assert local.date() == date(2026, 3, 8) and local.hour == 3


def test_random_times_spread_over_the_window() -> None:
    consented = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    hours = {
        t.astimezone(ZoneInfo("Europe/Madrid")).hour
        for seed in range(40)
        for t in send_times(consented, "Europe/Madrid", OFFSETS, rng=random.Random(seed))
    }
    assert hours == set(range(9, 20))


@pytest.mark.parametrize("spec", ["", "1x", "0d", "1d,,2d", "1d;2d", "1000d"])
def test_bad_schedules_are_refused(spec: str) -> None:
    with pytest.raises(BadSchedule):
        parse_schedule(spec)


def test_texts_are_short_and_in_each_language() -> None:
    assert set(LANGUAGES) == {"en", "es"}
    for language, texts in TEXTS.items():
        assert all(len(t) <= 320 for t in texts), "two SMS segments at most"
        assert text_for(language, 1) == texts[0]
        assert text_for(language, len(texts) + 1) == texts[0]
    assert "STOP" in text_for("en", 2) and "ALTO" in text_for("es", 2)
