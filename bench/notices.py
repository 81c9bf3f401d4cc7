"""`python -m bench.notices`: PostgreSQL's CPU per NOTIFY, by the sessions that listen.

PostgreSQL signals every session of the database that listens on any channel at each NOTIFY's
commit, whatever the channel, and each wakes and reads the notification queue. This sends
`--notices` notices on a channel nobody listens on, one commit each, with 0, 3 and 9 other
sessions listening (rounds interleaved), and prints the CPU all PostgreSQL's processes spent per
notice: what one more listening session costs the database for every outbox row, page and plan
committed. The services' wake loops share one session per process (shared/wakeup.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import psutil

from bench.stack import DEFAULT_DIR
from deploy.localstack import LocalStack, free_port
from shared.db import asyncpg_dsn

#: The bench's sessions, as pg_stat_activity shows them.
APPLICATION_NAME = "bench.notices"


def _postgres_cpu(stack: LocalStack) -> float:
    """CPU seconds of the postmaster and every backend it has now."""
    (pid,) = [part.pid for part in stack.status() if part.name == "postgres"]
    assert pid is not None
    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


async def cost_per_notice(stack: LocalStack, listening: int, notices: int) -> float:
    """µs of PostgreSQL's CPU per notice with `listening` idle sessions listening elsewhere."""
    dsn = asyncpg_dsn(stack.database_url)
    named = {"application_name": APPLICATION_NAME}
    sender = await asyncpg.connect(dsn, server_settings=named)
    listeners = [await asyncpg.connect(dsn, server_settings=named) for _ in range(listening)]
    try:
        for n, conn in enumerate(listeners):
            await conn.add_listener(f"bench_elsewhere_{n}", lambda *_: None)
        await asyncio.sleep(1)
        before = _postgres_cpu(stack)
        for _ in range(notices):
            await sender.execute("SELECT pg_notify('bench_nobody', '')")
        await asyncio.sleep(0.5)  # the last signals handled
        return 1e6 * (_postgres_cpu(stack) - before) / notices
    finally:
        for conn in [sender, *listeners]:
            await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notices", description=__doc__)
    parser.add_argument("--notices", type=int, default=3000)
    parser.add_argument("--sessions", default="0,3,9", help="listening sessions, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR / "notices")
    args = parser.parse_args(argv)
    sessions = [int(n) for n in args.sessions.split(",")]
    stack = LocalStack(args.dir, kafka_port=free_port(), controller_port=free_port(), partitions=1)
    stack.start()
    try:
        print(f"PostgreSQL CPU per NOTIFY commit, µs ({args.notices} notices a round)")
        figures: dict[int, list[float]] = {n: [] for n in sessions}
        for _ in range(args.rounds):
            for n in sessions:
                figures[n].append(asyncio.run(cost_per_notice(stack, n, args.notices)))
                time.sleep(0.5)
        for n, runs in figures.items():
            print(f"  {n:3d} other sessions listening: " + " / ".join(f"{r:.0f}" for r in runs))
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
