"""Who is on call: shift boundaries, layers, overrides and daylight-saving changes, at an instant
and over a window (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.notify.oncall.rotations import Override, Rotation, Segment, coverage, handoff, on_call

A, B, C, D = (uuid.UUID(int=i) for i in range(1, 5))
NY = "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def who(rotations: list[Rotation], at: datetime, overrides: list[Override] | None = None):
    answer = on_call(rotations, overrides or [], at)
    return answer.clinician if answer else None


def test_shifts_hand_off_exactly_at_the_boundary() -> None:
    weekly = Rotation((A, B), timedelta(days=7), datetime(2026, 1, 5, 9, 0), "Europe/Berlin")
    first_handoff = utc(2026, 1, 12, 8, 0)  # 09:00 CET
    assert who([weekly], first_handoff - timedelta(microseconds=1)) == A
    assert who([weekly], first_handoff) == B
    assert who([weekly], first_handoff + timedelta(days=7)) == A, "turns wrap around"
    assert who([weekly], utc(2026, 1, 5, 7, 59)) is None, "nobody before the rotation starts"


def test_daily_handoff_keeps_local_time_across_spring_forward() -> None:
    # New York springs forward on 2026-03-08 at 02:00: 08:00 is 13:00Z before and 12:00Z after.
    daily = Rotation((A, B, C), timedelta(hours=24), datetime(2026, 3, 1, 8, 0), NY)
    assert who([daily], utc(2026, 3, 7, 13, 0)) == A
    assert who([daily], utc(2026, 3, 8, 11, 59, 59)) == A
    assert who([daily], utc(2026, 3, 8, 12, 0)) == B, "handoff at 08:00 EDT, not 24 h later"
    answer = on_call([daily], [], utc(2026, 3, 8, 3, 0))
    assert answer is not None and answer.end is not None
    assert answer.end - answer.start == timedelta(hours=23), "the night clocks change is shorter"


def test_twelve_hour_shifts_across_fall_back() -> None:
    # New York falls back on 2026-11-01 at 02:00: the 20:00 -> 08:00 night shift lasts 13 hours.
    shifts = Rotation((A, B), timedelta(hours=12), datetime(2026, 10, 30, 20, 0), NY)
    night = on_call([shifts], [], utc(2026, 11, 1, 5, 30))  # 01:30 EDT, first pass
    assert night is not None and night.clinician == A
    assert night.end is not None and night.end - night.start == timedelta(hours=13)
    assert who([shifts], utc(2026, 11, 1, 6, 30)) == A, "01:30 EST, the repeated hour"
    assert who([shifts], utc(2026, 11, 1, 12, 30)) == A, "07:30 EST: still the night shift"
    assert who([shifts], utc(2026, 11, 1, 13, 0)) == B, "08:00 EST: the day shift"
    assert who([shifts], utc(2026, 11, 2, 1, 0)) == A, "20:00 EST: the next night"


def test_a_handoff_inside_the_spring_gap_happens_when_the_gap_begins() -> None:
    at_0230 = Rotation((A, B), timedelta(days=1), datetime(2026, 3, 5, 2, 30), NY)
    # 02:30 does not exist on 2026-03-08; it is read with the offset before the change (EST).
    assert handoff(at_0230, 3) == utc(2026, 3, 8, 7, 30)
    assert who([at_0230], utc(2026, 3, 8, 7, 29)) == A
    assert who([at_0230], utc(2026, 3, 8, 7, 30)) == B
    assert handoff(at_0230, 4) == utc(2026, 3, 9, 6, 30), "02:30 EDT the day after"


def test_an_override_covers_its_window_and_the_newest_wins() -> None:
    daily = Rotation((A, B), timedelta(days=1), datetime(2026, 6, 1, 8, 0), "UTC")
    cover = Override(C, utc(2026, 6, 1, 12, 0), utc(2026, 6, 1, 14, 0))
    newer = Override(D, utc(2026, 6, 1, 13, 0), utc(2026, 6, 1, 13, 30))
    assert who([daily], utc(2026, 6, 1, 11, 59), [cover, newer]) == A
    assert who([daily], utc(2026, 6, 1, 12, 0), [cover, newer]) == C
    assert who([daily], utc(2026, 6, 1, 13, 10), [cover, newer]) == D
    assert who([daily], utc(2026, 6, 1, 13, 30), [cover, newer]) == C
    assert who([daily], utc(2026, 6, 1, 14, 0), [cover, newer]) == A, "the end is exclusive"
    answer = on_call([daily], [cover], utc(2026, 6, 1, 12, 30))
    assert answer is not None and answer.source == "override"


def test_a_higher_layer_wins_while_it_runs() -> None:
    base = Rotation((A, B), timedelta(days=1), datetime(2026, 6, 1, 8, 0), "UTC", layer=0)
    holiday = Rotation(
        (C,),
        timedelta(days=1),
        datetime(2026, 6, 3, 0, 0),
        "UTC",
        end=datetime(2026, 6, 5),
        layer=1,
    )
    assert who([holiday, base], utc(2026, 6, 2, 12, 0)) == B
    assert who([holiday, base], utc(2026, 6, 3, 12, 0)) == C
    assert who([holiday, base], utc(2026, 6, 5, 0, 0)) == B, "the holiday layer ended"


def test_an_instant_without_a_zone_is_refused() -> None:
    daily = Rotation((A,), timedelta(days=1), datetime(2026, 6, 1), "UTC")
    with pytest.raises(ValueError, match="time zone"):
        on_call([daily], [], datetime(2026, 6, 2))


def tiles(segments: list[Segment], start: datetime, end: datetime) -> bool:
    """Consecutive segments from `start` to `end`, no overlap, no hole, none empty."""
    edges = [start] + [s.end for s in segments]
    return (
        bool(segments)
        and [s.start for s in segments] == edges[:-1]
        and edges[-1] == end
        and all(s.start < s.end for s in segments)
    )


def test_coverage_tiles_the_window_with_shifts_gaps_and_overrides() -> None:
    # Day shifts only (08:00-20:00 UTC, A then B): every night is a gap.
    days = Rotation(
        (A, B), timedelta(hours=12), datetime(2026, 6, 1, 8, 0), "UTC", end=datetime(2026, 6, 3)
    )
    start, end = utc(2026, 6, 1, 0, 0), utc(2026, 6, 2, 12, 0)
    plain = coverage([days], [], start, end)
    assert tiles(plain, start, end)
    assert [(s.start.hour, s.clinician, s.source) for s in plain] == [
        (0, None, None),  # before the rotation starts
        (8, A, "rotation"),
        (20, B, "rotation"),  # the "night" shift of a 12-hour rotation: it alternates
        (8, A, "rotation"),
    ]
    cover = Override(C, utc(2026, 6, 1, 10, 0), utc(2026, 6, 1, 11, 0))
    covered = coverage([days], [cover], start, end)
    assert tiles(covered, start, end)
    assert [(s.start.hour, s.end.hour, s.clinician, s.source) for s in covered][1:4] == [
        (8, 10, A, "rotation"),
        (10, 11, C, "override"),
        (11, 20, A, "rotation"),
    ]


def test_coverage_merges_equal_neighbours_and_shows_a_gap_after_the_end() -> None:
    alone = Rotation(
        (A,), timedelta(hours=8), datetime(2026, 6, 1), "UTC", end=datetime(2026, 6, 3)
    )
    start, end = utc(2026, 6, 1), utc(2026, 6, 4)
    segments = coverage([alone], [], start, end)
    assert tiles(segments, start, end)
    assert segments == [
        Segment(start, utc(2026, 6, 3), A, "rotation"),  # six shifts, one clinician: one segment
        Segment(utc(2026, 6, 3), end, None, None),
    ]
    own_override = Override(A, utc(2026, 6, 1, 4), utc(2026, 6, 1, 5))
    split = coverage([alone], [own_override], start, end)
    assert [s.source for s in split] == ["rotation", "override", "rotation", None], (
        "the same clinician by another source is another segment"
    )


def test_coverage_follows_layers_the_newest_override_and_dst() -> None:
    base = Rotation((A, B), timedelta(hours=24), datetime(2026, 3, 7, 8, 0), NY)
    holiday = Rotation(
        (C,),
        timedelta(hours=24),
        datetime(2026, 3, 8, 20, 0),
        NY,
        end=datetime(2026, 3, 9, 8),
        layer=1,
    )
    older = Override(D, utc(2026, 3, 9, 14), utc(2026, 3, 9, 18))
    newer = Override(B, utc(2026, 3, 9, 15), utc(2026, 3, 9, 16))
    start, end = utc(2026, 3, 8, 0), utc(2026, 3, 10, 0)
    segments = coverage([base, holiday], [older, newer], start, end)
    assert tiles(segments, start, end)
    assert [(s.start, s.clinician) for s in segments] == [
        (start, A),
        (utc(2026, 3, 8, 12), B),  # 08:00 EDT: the spring-forward day's handoff is at 12:00Z
        (utc(2026, 3, 9, 0), C),  # 20:00 EDT: the higher layer starts
        (utc(2026, 3, 9, 12), A),  # 08:00 EDT: it ends, the base rotation's next turn
        (utc(2026, 3, 9, 14), D),
        (utc(2026, 3, 9, 15), B),  # the newer override wins inside the older one
        (utc(2026, 3, 9, 16), D),
        (utc(2026, 3, 9, 18), A),
    ]
    for at in (s.start for s in segments):
        answer = on_call([base, holiday], [older, newer], at)
        assert answer is not None and answer.clinician == next(
            s.clinician for s in segments if s.start <= at < s.end
        ), "coverage agrees with on_call"


def test_coverage_of_nothing_is_one_gap_and_a_naive_window_is_refused() -> None:
    start, end = utc(2026, 6, 1), utc(2026, 6, 8)
    assert coverage([], [], start, end) == [Segment(start, end, None, None)]
    with pytest.raises(ValueError, match="time zone"):
        coverage([], [], datetime(2026, 6, 1), end)
