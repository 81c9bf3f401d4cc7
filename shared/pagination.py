"""Keyset pagination for list routes: `limit` (at most `MAX_PAGE`) and an opaque `cursor`.

A list answers a JSON array, oldest first; when more follow, a `Link: <…>; rel="next"` header
(RFC 8288, as GitHub's API does) carries the URL of the next page: the body stays a plain
array, so a client that ignores paging still reads it.

Lists in another order (newest first, soonest due first) page on a position: `position_page`
orders by a (time, id) pair and its cursor holds the last row's pair itself, not its id.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Response
from sqlalchemy import ColumnElement, Row, Select, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from shared.errors import ErrorBody, Unprocessable

MAX_PAGE = 500
T = TypeVar("T")
#: A query of columns, any number of them (a list's rows).
Columns = Select[*tuple[Any, ...]]
OrderColumn = QueryableAttribute[T] | ColumnElement[T]

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="items per page")]
Cursor = Annotated[
    str | None,
    Query(max_length=100, description="from the previous page's Link: rel=next"),
]
#: What a list route answers to a bad filter, limit or cursor, for its OpenAPI (`responses=`).
LIST_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "a filter, limit or cursor that is not valid"}
}


async def keyset_page(
    session: AsyncSession, query: Select[Any], model: Any, *, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One page of `query` over `model` (its `created_at`, `id`), and the next page's cursor."""
    if cursor is not None:
        try:
            after = uuid.UUID(cursor)
        except ValueError:
            raise Unprocessable(
                "cursor is not one this API gave out",
                problems=[{"field": "cursor", "problem": "not a cursor"}],
            ) from None
        anchor = select(model.created_at).where(model.id == after).scalar_subquery()
        query = query.where(tuple_(model.created_at, model.id) > tuple_(anchor, after))
    rows = list(await session.scalars(query.order_by(model.created_at, model.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, str(rows[-1].id) if more else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_POSITION = re.compile(r"^(-?[0-9]{1,17})\.([0-9a-f]{32})$")


def position_cursor(at: datetime, ident: uuid.UUID) -> str:
    """A row's place in a (time, id) order, as a cursor: microseconds since the epoch and the id.

    The position itself, not a row to look up: the next page needs no extra read, and a cursor
    naming a row the caller may not see tells them nothing (there is nothing to find)."""
    return f"{(at - _EPOCH) // _MICROSECOND}.{ident.hex}"


def cursor_position(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (time, id) a `position_cursor` holds; 422 for anything else (never echoed)."""
    match = _POSITION.fullmatch(cursor)
    try:
        if match is None:
            raise ValueError(cursor)
        return _EPOCH + int(match.group(1)) * _MICROSECOND, uuid.UUID(hex=match.group(2))
    except (ValueError, OverflowError):
        raise Unprocessable(
            "cursor is not one this API gave out",
            problems=[{"field": "cursor", "problem": "not a cursor"}],
        ) from None


async def position_page(
    session: AsyncSession,
    query: Columns,
    at: OrderColumn[datetime],
    ident: OrderColumn[uuid.UUID],
    *,
    page: Page,
    descending: bool,
) -> list[Row[Any]]:
    """One page of `query` ordered by (`at`, `ident`), newest first when `descending`; sets the
    `Link` header when more follow. Both columns must be among the query's columns.

    With an index on (`at`, `id`) (after any equality the query's WHERE starts with), a page
    is one index range read in order, however deep the client has paged."""
    if page.cursor is not None:
        when, which = cursor_position(page.cursor)
        after = tuple_(literal(when, at.type), literal(which, ident.type))
        here = tuple_(at, ident)
        query = query.where(here < after if descending else here > after)
    order = (at.desc(), ident.desc()) if descending else (at.asc(), ident.asc())
    rows: Sequence[Row[Any]] = (
        await session.execute(query.order_by(*order).limit(page.limit + 1))
    ).all()
    following = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        final = rows[-1]._mapping
        following = position_cursor(final[at], final[ident])
    return page.answer(list(rows), following)


@dataclass(frozen=True)
class Page:
    """A list route's paging: what was asked, and where the answer's `Link` header goes."""

    limit: int
    cursor: str | None
    request: Request
    response: Response

    def answer(self, items: list[T], following: str | None) -> list[T]:
        """`items`, with `Link: rel="next"` set when a next page follows."""
        if following is not None:
            url = self.request.url.include_query_params(cursor=following, limit=self.limit)
            self.response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
        return items


async def _page(
    request: Request, response: Response, limit: Limit = 100, cursor: Cursor = None
) -> Page:
    return Page(limit, cursor, request, response)


#: A list route's `limit` and `cursor` parameters, and its answer with the `Link` header.
Paging = Annotated[Page, Depends(_page)]
