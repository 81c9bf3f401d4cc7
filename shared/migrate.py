"""Schema migrations: ordered SQL files per service schema, applied once each.

`python -m shared.migrate` (DATABASE_URL from the environment) brings every service schema up to
date; `make run`, the tests and the compose `migrate` job all run it. Each schema keeps its own
history table, so a service can later move to its own database with its history. An advisory lock
makes concurrent runs (several replicas starting at once) safe.

Files: shared/migrations/*.sql (plumbing, `{schema}` substituted), then
services/<name>/migrations/*.sql.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import asyncpg

from shared.db import asyncpg_dsn
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("intake", "risk", "notify")
_LOCK_ID = 0x7472_6961_6765  # "triage"


def migration_files(service: str) -> list[tuple[str, str]]:
    """(name, sql) in the order they apply to `service`'s schema."""
    plumbing = sorted((ROOT / "shared" / "migrations").glob("*.sql"))
    own = sorted((ROOT / "services" / service / "migrations").glob("*.sql"))
    files = [(f"shared/{p.name}", p) for p in plumbing] + [(p.name, p) for p in own]
    return [(name, path.read_text().replace("{schema}", service)) for name, path in files]


async def migrate(database_url: str, services: tuple[str, ...] = SERVICES) -> list[str]:
    """Apply what is missing; returns the names applied (empty when up to date)."""
    applied: list[str] = []
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        for service in services:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {service}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {service}.schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                r["name"] for r in await conn.fetch(f"SELECT name FROM {service}.schema_migrations")
            }
            for name, sql in migration_files(service):
                if name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        f"INSERT INTO {service}.schema_migrations (name) VALUES ($1)", name
                    )
                applied.append(f"{service}/{name}")
    finally:
        await conn.close()
    return applied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="default: DATABASE_URL")
    args = parser.parse_args(argv)
    url = args.database_url or ServiceSettings().database_url
    applied = asyncio.run(migrate(url))
    print("migrations applied: " + (", ".join(applied) if applied else "none (up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
