"""`triage phi rotate`: re-encrypt every sealed column under the current key of PHI_KEYS.

Table by table, in batches each committed on its own, touching only values not yet under the
current key (or stored before encryption), so it can be stopped and run again: it resumes where
it was. Safety-plan revisions are append-only; the trigger lets this transaction, and only it,
rewrite their sealed columns (`triage.phi_rotation`), the content unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import asyncpg

from shared.phi import PREFIX, KeyRing, Sealed, is_sealed, seal


@dataclass(frozen=True)
class _Table:
    name: str
    key: tuple[str, ...]
    columns: tuple[Sealed, ...]

    @property
    def not_current(self) -> str:
        return " OR ".join(
            f"({c.column} IS NOT NULL AND {c.column} NOT LIKE '{PREFIX}' || $1 || ':%')"
            for c in self.columns
        )

    def count(self) -> str:
        return f"SELECT count(*) FROM {self.name} WHERE {self.not_current}"

    def batch(self) -> str:
        selected = ", ".join((*self.key, *(c.column for c in self.columns)))
        return (
            f"SELECT {selected} FROM {self.name} WHERE {self.not_current} "
            "LIMIT $2 FOR UPDATE SKIP LOCKED"
        )

    def update(self) -> str:
        n = len(self.key)
        sets = ", ".join(f"{c.column} = ${n + i}" for i, c in enumerate(self.columns, start=1))
        where = " AND ".join(f"{k} = ${i}" for i, k in enumerate(self.key, start=1))
        return f"UPDATE {self.name} SET {sets} WHERE {where}"


def _tables(columns: Iterable[Sealed]) -> list[_Table]:
    grouped: dict[str, list[Sealed]] = {}
    for c in columns:
        grouped.setdefault(c.table, []).append(c)
    return [_Table(name, cols[0].key, tuple(cols)) for name, cols in grouped.items()]


async def remaining(conn: asyncpg.Connection, ring: KeyRing, columns: Iterable[Sealed]) -> int:
    """How many rows hold a value not under the current key."""
    total = 0
    for table in _tables(columns):
        total += int(await conn.fetchval(table.count(), ring.current))
    return total


async def rotate(
    conn: asyncpg.Connection,
    ring: KeyRing,
    columns: Iterable[Sealed],
    *,
    batch: int = 500,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Re-encrypt every value not under `ring.current`; how many rows were rewritten.

    A value that does not decrypt (PhiUnreadable, naming its row) stops the run: nothing is
    rewritten blindly, and the batches before it stay done. Values in clear are encrypted as
    stored before encryption, unless the schema is sealed already: then one is refused as any
    reader refuses it (it was planted; encrypting it would launder it). Once every value is
    encrypted, each schema is sealed (shared/phi.py `seal`).
    """
    columns = list(columns)
    schemas = list(dict.fromkeys(c.table.split(".", 1)[0] for c in columns))
    sealed = {schema for schema in schemas if await is_sealed(conn, schema)}
    done = 0
    for table in _tables(columns):
        ring.state.sealed = table.name.split(".", 1)[0] in sealed
        while True:
            async with conn.transaction():
                await conn.execute("SET LOCAL triage.phi_rotation = 'on'")
                rows = await conn.fetch(table.batch(), ring.current, batch)
                for row in rows:
                    values = []
                    for column in table.columns:
                        # At the text level: a JSON column's text is sealed again as it is.
                        plain = column.open_text(ring, row, row[column.column])
                        values.append(
                            None if plain is None else ring.encrypt(plain, aad=column.aad(row))
                        )
                    await conn.execute(table.update(), *(row[k] for k in table.key), *values)
            if not rows:
                break
            done += len(rows)
            progress(len(rows))
    for schema in schemas:
        await seal(conn, schema)
    return done
