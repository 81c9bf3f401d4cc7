"""`triage`: the operator's command line (installed by `make run` / `make test` into .venv/bin).

    triage audit verify     recompute the audit trail's hash chain; exit 1 at the first failure

The database is `DATABASE_URL`, else the local stack's (`make run`, which must be running).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

import asyncpg

from deploy.localstack import DEFAULT_DATA_DIR, LocalStack, LocalStackError
from shared.db import asyncpg_dsn


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return LocalStack(DEFAULT_DATA_DIR).database_url


async def audit_verify(url: str) -> int:
    from services.intake.audit.service import verify

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        verdict = await verify(conn)
    finally:
        await conn.close()
    if verdict.failure is not None:
        print(f"audit: {verdict.failure}")
        return 1
    print(f"audit: {verdict.entries} entries verified")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triage", description="crisis triage operations")
    groups = parser.add_subparsers(dest="group", required=True)
    audit = groups.add_parser("audit", help="the audit trail")
    commands = audit.add_subparsers(dest="command", required=True)
    commands.add_parser("verify", help="recompute the hash chain; name the first entry that fails")
    parser.parse_args(argv)
    try:
        url = database_url()
    except LocalStackError as exc:
        print(f"triage: no database: {exc} (start `make run`, or set DATABASE_URL)")
        return 2
    return asyncio.run(audit_verify(url))


if __name__ == "__main__":
    sys.exit(main())
