"""The times notify takes, and a query parameter's instant (both routers' 422s)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.errors import ErrorBody, Unprocessable

#: The times notify takes (rotations, overrides, the list and coverage windows): any roster's,
#: and narrow enough that shift arithmetic (a wall-clock time in a zone as an instant, a shift or
#: a month added) stays inside Python's datetime range. A rotation starting in year 1 east of
#: UTC was stored and then failed every on-call look-up, pages included, with OverflowError.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
OUT_OF_RANGE = "must be between 1970 and 9000"


def in_range(value: datetime) -> bool:
    """Whether `value` is within EARLIEST..LATEST: an aware value as an instant, a naive one
    (a wall-clock time) as written."""
    if value.tzinfo is None:
        return EARLIEST.replace(tzinfo=None) <= value < LATEST.replace(tzinfo=None)
    try:
        return EARLIEST <= value.astimezone(UTC) < LATEST
    except OverflowError:  # year 1 at +01:00, year 9999 at -05:00
        return False


def invalid(field: str, problem: str) -> Unprocessable:
    return Unprocessable(f"`{field}`: {problem}", problems=[{"field": field, "problem": problem}])


def instant(value: datetime | None, *, field: str) -> datetime | None:
    """`value` as a UTC instant; 422 naming `field` when it has no offset or is out of range."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise invalid(field, "add a time zone offset such as Z or -05:00")
    if not in_range(value):
        raise invalid(field, OUT_OF_RANGE)
    return value.astimezone(UTC)


def problems(description: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entry of a route's 422."""
    return {422: {"model": ErrorBody, "description": description}}
