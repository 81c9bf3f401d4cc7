"""Text that PostgreSQL can store and a person can read: for every free-text field of the API."""

from __future__ import annotations

from pydantic import StringConstraints

#: Printable text: a NUL or other control character would otherwise fail deep in the database
#: (a 500); refusing it up front keeps it a 422 that names the field.
NO_CONTROL = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


def printable(max_length: int, *, min_length: int = 1) -> StringConstraints:
    """`Annotated[str, printable(200)]`: at most `max_length` printable characters."""
    return StringConstraints(min_length=min_length, max_length=max_length, pattern=NO_CONTROL)
