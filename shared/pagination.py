"""Keyset pagination for list routes: `limit` (at most `MAX_PAGE`) and an opaque `cursor`.

A list answers a JSON array, oldest first; when more follow, a `Link: <…>; rel="next"` header
(RFC 8288, as GitHub's API does) carries the URL of the next page, so clients that read the
array as before keep working.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Response
from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import Unprocessable

MAX_PAGE = 500
T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="items per page")]
Cursor = Annotated[
    str | None,
    Query(max_length=100, description="from the previous page's Link: rel=next"),
]


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
