"""Each service's numbering of its audit entries, checked: a number missing is an entry lost.

A service's outbox numbers its audit entries at commit (shared/migrations/0006) in 16 lanes,
each counting 1, 2, 3, … without gaps (number = count * 16 + lane), and the number travels in
the entry, covered by its chain hash. An entry deleted from the outbox before the relay sent it,
or dropped by the consumer because its id was put in `processed_events` first, never reaches the
chain, so the chain alone cannot show it; its number's absence can. Expected per service and
lane: every count after the highest one retention removed (the signed pruning record's marks,
keyed `service/lane`) up to the lane's counter; a number still in the service's outbox (or set
aside there) is on its way, not missing. One that was sent but not yet appended (a moment in
transit) is given `grace` seconds before it is reported.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping

import asyncpg

from shared.migrate import SERVICES
from shared.topics import AUDIT_EVENTS

#: The counters a service numbers its entries with (shared/migrations/0006).
LANES = 16

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


def _listed(numbers: list[int], most: int = 10) -> str:
    """`3, 19, 35` (the first `most`)."""
    return ", ".join(map(str, numbers[:most])) + (", …" if len(numbers) > most else "")


def mark_key(service: str, number: int) -> str:
    """The key of a retention record's marks for the lane of `number`."""
    return f"{service}/{number % LANES}"


async def _counters(conn: asyncpg.Connection, service: str) -> dict[int, int]:
    return {
        int(row["lane"]): int(row["n"])
        for row in await conn.fetch(f"SELECT lane, n FROM {service}.audit_counter")
    }


async def _problems(
    conn: asyncpg.Connection,
    floors: Mapping[str, int],
    before: Mapping[str, set[int]] | None = None,
) -> tuple[dict[str, str], dict[str, set[int]]]:
    """Each service's problem, and the numbers found missing. The trail grows while it is read:
    the counters are read first for what is expected (a number counted then is in the trail, in
    an outbox or in transit by the time the trail is read) and again after the trail for what
    is past them. With `before`, only numbers missing then too are missing: one in transit at
    the first look has arrived by the second, one deleted never does."""
    expected_of = {service: await _counters(conn, service) for service in SERVICES}
    trail: dict[str, Counter[int]] = {}
    for row in await conn.fetch(_TRAIL):
        trail.setdefault(row["service"], Counter())[int(row["service_seq"])] += 1
    found: dict[str, str] = {}
    missing_of: dict[str, set[int]] = {}
    for service in sorted({*SERVICES, *trail}):
        seen = trail.get(service, Counter())
        counters = await _counters(conn, service) if service in SERVICES else {}
        twice = sorted(n for n, times in seen.items() if times > 1)
        if twice:
            found[service] = f"{service}: entry numbers {_listed(twice)} are in the trail twice"
            continue
        beyond = sorted(n for n in seen if n // LANES > counters.get(n % LANES, 0))
        if beyond:
            found[service] = (
                f"{service}: entry numbers {_listed(beyond)} are past the service's counters"
                " (they were set back)"
            )
            continue
        expected = {
            count * LANES + lane
            for lane, top in expected_of.get(service, {}).items()
            for count in range(floors.get(f"{service}/{lane}", lane) // LANES + 1, top + 1)
        }
        missing = expected - set(seen) - await _queued(conn, service)
        if before is not None:
            missing &= before.get(service, set())
        if missing:
            missing_of[service] = missing
            found[service] = (
                f"{service}: entry numbers {_listed(sorted(missing))} are missing from the trail"
                " (deleted before they reached it)"
            )
    return found, missing_of


async def numbering_failure(
    conn: asyncpg.Connection, floors: Mapping[str, int], *, grace: float = 3.0
) -> str | None:
    """Each service's numbering problems (gaps, duplicates), or None."""
    found, missing = await _problems(conn, floors)
    if found and grace > 0:  # maybe only in transit: look again once
        await asyncio.sleep(grace)
        found, _ = await _problems(conn, floors, before=missing)
    return "; ".join(found[s] for s in sorted(found)) or None
