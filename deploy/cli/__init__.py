"""`triage`: the operator's command line (installed by `make run` / `make test` into .venv/bin).

    triage audit verify     recompute the audit trail's hash chain; exit 1 at the first failure

The database is `DATABASE_URL`, else the local stack's (`make run`, which must be running); the
checkpoints' key is `AUDIT_SIGNING_KEY`, else the local stack's (.local/run/secrets).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

import asyncpg

from deploy.localstack import DEFAULT_DATA_DIR, LocalStack, LocalStackError
from shared.db import asyncpg_dsn


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return LocalStack(DEFAULT_DATA_DIR).database_url


def audit_public_key() -> Any:
    """The checkpoints' public key, from AUDIT_SIGNING_KEY or the local stack's secret file."""
    from services.intake.audit.checkpoints import signing_key

    encoded = os.environ.get("AUDIT_SIGNING_KEY")
    local = DEFAULT_DATA_DIR / "secrets" / "audit-signing-key"
    if encoded is None and local.exists():  # set but empty: no key, on purpose
        encoded = local.read_text().strip()
    return signing_key(encoded).public_key() if encoded else None


async def audit_verify(url: str) -> int:
    from services.intake.audit.service import verify

    public = audit_public_key()
    if public is None:
        print("audit: no AUDIT_SIGNING_KEY: checking the chain without its checkpoints")
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        verdict = await verify(conn, public)
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
