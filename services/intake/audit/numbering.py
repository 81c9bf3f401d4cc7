"""Each service's numbering of its audit entries, checked: a number missing is an entry lost.

A service's outbox numbers its audit entries 1, 2, 3, … at commit (shared/migrations/0006), and
the number travels in the entry, covered by its chain hash. An entry deleted from the outbox
before the relay sent it, or dropped by the consumer because its id was put in
`processed_events` first, never reaches the chain, so the chain alone cannot show it; its
number's absence can. Expected per service: every number after the highest one retention
removed (the signed pruning record's marks) up to the service's counter; a number still in the
service's outbox (or set aside there) is on its way, not missing. One that was sent but not yet
appended (a moment in transit) is given `grace` seconds before it is reported.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping

import asyncpg

from shared.migrate import SERVICES
from shared.topics import AUDIT_EVENTS

_TRAIL = """
    SELECT service, service_seq FROM intake.audit_log WHERE service_seq IS NOT NULL
"""
_QUEUED = """
    SELECT (convert_from(value, 'UTF8')::jsonb #>> '{{data,service_seq}}')::bigint
      FROM {table} WHERE topic = $1
"""


async def _queued(conn: asyncpg.Connection, service: str) -> set[int]:
    numbers: set[int] = set()
    for table in (f"{service}.outbox", f"{service}.outbox_set_aside"):
        numbers |= {
            int(n) for (n,) in await conn.fetch(_QUEUED.format(table=table), AUDIT_EVENTS) if n
        }
    return numbers


def _spans(numbers: list[int], most: int = 10) -> str:
    """`3, 7-9, 12` (the first `most` spans)."""
    spans: list[tuple[int, int]] = []
    for n in numbers:
        if spans and spans[-1][1] == n - 1:
            spans[-1] = (spans[-1][0], n)
        else:
            spans.append((n, n))
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans[:most])
    return text + (", …" if len(spans) > most else "")


async def _problems(conn: asyncpg.Connection, floors: Mapping[str, int]) -> dict[str, str]:
    trail: dict[str, Counter[int]] = {}
    for row in await conn.fetch(_TRAIL):
        trail.setdefault(row["service"], Counter())[int(row["service_seq"])] += 1
    found: dict[str, str] = {}
    for service in sorted({*SERVICES, *trail}):
        seen = trail.get(service, Counter())
        counter = 0
        if service in SERVICES:
            counter = int(await conn.fetchval(f"SELECT n FROM {service}.audit_counter") or 0)
        floor = floors.get(service, 0)
        twice = sorted(n for n, times in seen.items() if times > 1)
        if twice:
            found[service] = f"{service}: entry numbers {_spans(twice)} are in the trail twice"
            continue
        beyond = sorted(n for n in seen if n > counter) if service in SERVICES else []
        if beyond:
            found[service] = (
                f"{service}: entry numbers {_spans(beyond)} are past the service's counter"
                f" ({counter}: it was set back)"
            )
            continue
        expected = set(range(floor + 1, counter + 1))
        missing = sorted(expected - set(seen) - await _queued(conn, service))
        if missing:
            found[service] = (
                f"{service}: entry numbers {_spans(missing)} are missing from the trail"
                f" (of {floor + 1}-{counter}; deleted before they reached it)"
            )
    return found


async def numbering_failure(
    conn: asyncpg.Connection, floors: Mapping[str, int], *, grace: float = 3.0
) -> str | None:
    """Each service's numbering problems (gaps, duplicates), or None."""
    found = await _problems(conn, floors)
    if found and grace > 0:  # maybe only in transit: look again once
        await asyncio.sleep(grace)
        found = await _problems(conn, floors)
    return "; ".join(found[s] for s in sorted(found)) or None
