"""The trail read a page at a time, newest first (straight to asyncpg, like its appends)."""

from __future__ import annotations

from typing import Any

from services.intake.audit.schemas import AuditEntryOut
from shared.db import driver
from shared.errors import Unprocessable
from shared.pagination import Paging

_SELECT = """
    SELECT seq, at, service, actor, role, credential_id, action, resource, outcome,
           correlation_id, hash, prev_hash, client, reason
      FROM intake.audit_log
"""


def _before(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 18):
        raise Unprocessable(
            "cursor is not one this API gave out",
            problems=[{"field": "cursor", "problem": "not a cursor"}],
        )
    return int(cursor)


async def entries_page(
    session: Any, page: Paging, where: list[str], params: list[Any]
) -> list[AuditEntryOut]:
    """Newest first; the cursor is the last seq of the previous page."""
    before = _before(page.cursor)
    if before is not None:
        params.append(before)
        where.append(f"seq < ${len(params)}")
    params.append(page.limit + 1)
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
    sql += f" ORDER BY seq DESC LIMIT ${len(params)}"
    rows = await (await driver(session, begin=False)).fetch(sql, *params)
    more = len(rows) > page.limit
    items = [AuditEntryOut(**dict(r)) for r in rows[: page.limit]]
    return page.answer(items, str(items[-1].seq) if more and items else None)
