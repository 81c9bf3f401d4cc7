"""`triage`: the operator's command line (installed by `make run` / `make test` into .venv/bin).

    triage audit verify     recompute the audit trail's hash chain; exit 1 at the first failure
    triage phi rotate       re-encrypt PHI under the current key of PHI_KEYS (resumable)
    triage dlq list         dead letters per topic, with counts and reasons; set-aside outbox rows
    triage dlq show         each dead letter: where from, why, its event's id, type and ids
    triage dlq replay       back onto the source topic (or outbox), idempotent by event id

The database is `DATABASE_URL`, else the local stack's (`make run`, which must be running); so is
the broker (`KAFKA_BOOTSTRAP_SERVERS`); the checkpoints' public key is `AUDIT_VERIFY_KEY`, else the
local stack's (.local/run/secrets, written by `make run`), else the one derived from
`AUDIT_SIGNING_KEY`: verifying needs no private key. `AUDIT_RETENTION_DAYS` (as intake's) is the
horizon before which a trail may start without a signed retention record (older prunings).
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


def bootstrap_servers() -> str:
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if servers:
        return servers
    return LocalStack(DEFAULT_DATA_DIR).bootstrap_servers


def local_secret(variable: str, file: str) -> str:
    """`variable` from the environment, else the local stack's secret file (`make run` keeps
    them in .local/run/secrets); set but empty means none, on purpose."""
    value = os.environ.get(variable)
    local = DEFAULT_DATA_DIR / "secrets" / file
    if value is None and local.exists():
        value = local.read_text().strip()
    return value or ""


def audit_public_key() -> Any:
    """The checkpoints' public key (AUDIT_VERIFY_KEY; else derived from AUDIT_SIGNING_KEY), or
    None."""
    from services.intake.audit.checkpoints import signing_key, verify_key

    public = local_secret("AUDIT_VERIFY_KEY", "audit-verify-key")
    if public:
        return verify_key(public)
    encoded = local_secret("AUDIT_SIGNING_KEY", "audit-signing-key")
    return signing_key(encoded).public_key() if encoded else None


async def audit_verify(url: str) -> int:
    from services.intake.audit.service import verify
    from services.intake.settings import IntakeSettings

    try:
        public = audit_public_key()
    except ValueError as exc:
        print(f"audit: {exc}")
        return 2
    if public is None:
        print("audit: no AUDIT_VERIFY_KEY: checking the chain without its checkpoints")
    days = IntakeSettings.model_fields["audit_retention_days"].default
    days = float(os.environ.get("AUDIT_RETENTION_DAYS") or days)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        verdict = await verify(conn, public, retention_days=days)
    finally:
        await conn.close()
    if verdict.failure is not None:
        print(f"audit: {verdict.failure}")
        return 1
    print(f"audit: {verdict.entries} entries verified")
    return 0


async def phi_rotate(url: str, batch: int) -> int:
    from services.intake.db import SEALED as INTAKE
    from services.notify.models import SEALED as NOTIFY
    from shared.phi import KeyRing, PhiUnreadable

    columns = (*INTAKE, *NOTIFY)

    ring = KeyRing.parse(local_secret("PHI_KEYS", "phi-keys"))
    if ring is None:
        print("phi: PHI_KEYS is not set: nothing to rotate to")
        return 2
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await _rotate(conn, ring, columns, batch)
    except PhiUnreadable:
        print("phi: stopped at a value that does not decrypt or is refused (the line above names")
        print("     its table, column and row); the batches before it are done")
        return 1
    finally:
        await conn.close()


async def _rotate(conn: asyncpg.Connection, ring: Any, columns: tuple[Any, ...], batch: int) -> int:
    from tqdm import tqdm

    from services.intake.screenings.digest import old_digests, rewrite_old_digests
    from shared.phi_rotation import remaining, rotate

    total = await remaining(conn, ring, columns)
    with tqdm(total=total, unit="row", desc=f"re-encrypting under {ring.current}") as bar:
        done = await rotate(conn, ring, columns, batch=batch, progress=bar.update)
    # Request digests made before they left PHI out (services/intake/screenings/digest.py).
    with tqdm(total=await old_digests(conn), unit="row", desc="request digests") as bar:
        digests = await rewrite_old_digests(conn, batch=batch, progress=bar.update)
    print(f"phi: {done} rows re-encrypted under {ring.current}")
    print(f"phi: {digests} request digests rewritten without PHI")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triage", description="crisis triage operations")
    groups = parser.add_subparsers(dest="group", required=True)
    audit = groups.add_parser("audit", help="the audit trail")
    commands = audit.add_subparsers(dest="command", required=True)
    commands.add_parser("verify", help="recompute the hash chain; name the first entry that fails")
    phi = groups.add_parser("phi", help="protected health information at rest")
    phi_commands = phi.add_subparsers(dest="command", required=True)
    rotate = phi_commands.add_parser("rotate", help="re-encrypt under the current key")
    rotate.add_argument("--batch", type=int, default=500, help="rows per transaction")
    dead = groups.add_parser("dlq", help="dead letters: list, show, replay")
    dlq_commands = dead.add_subparsers(dest="command", required=True)
    dlq_commands.add_parser("list", help="per topic, with counts and reasons")
    for name, what in (
        ("show", "each dead letter: where from, why, its event's ids"),
        ("replay", "back onto the source topic, idempotent by event id"),
    ):
        command = dlq_commands.add_parser(name, help=what)
        command.add_argument("--topic", help="the source topic (e.g. triage.risk.assessed.v1)")
        command.add_argument("--event-id", help="one event")
        if name == "show":
            command.add_argument("--full", action="store_true", help="the whole event too")
    args = parser.parse_args(argv)
    try:
        url = database_url()
    except LocalStackError as exc:
        print(f"triage: no database: {exc} (start `make run`, or set DATABASE_URL)")
        return 2
    if args.group == "phi":
        return asyncio.run(phi_rotate(url, args.batch))
    if args.group == "dlq":
        return dead_letters(args, asyncpg_dsn(url))
    return asyncio.run(audit_verify(url))


def dead_letters(args: argparse.Namespace, dsn: str) -> int:
    from deploy.cli import dlq

    try:
        bootstrap = bootstrap_servers()
    except LocalStackError as exc:
        print(f"triage: no broker: {exc} (start `make run`, or set KAFKA_BOOTSTRAP_SERVERS)")
        return 2
    if args.command == "list":
        return asyncio.run(dlq.dlq_list(dsn, bootstrap))
    if args.command == "show":
        return asyncio.run(dlq.dlq_show(dsn, bootstrap, args.topic, args.event_id, args.full))
    return asyncio.run(dlq.dlq_replay(dsn, bootstrap, args.topic, args.event_id))


if __name__ == "__main__":
    sys.exit(main())
