"""`python -m deploy.localstack up|down|status`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import deploy.localstack
from deploy.localstack import DEFAULT_DATA_DIR, LocalStack, LocalStackError

# CLI


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m deploy.localstack up|down|status`: a stack that outlives the command."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.localstack",
        description=deploy.localstack.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--kafka-port", type=int, default=9092)
    parser.add_argument("--controller-port", type=int, default=9093)
    parser.add_argument("--pg-port", type=int, default=None)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="localstack: %(message)s", stream=sys.stderr)
    options: dict[str, Any] = {
        "kafka_port": args.kafka_port,
        "controller_port": args.controller_port,
        "pg_port": args.pg_port,
        "partitions": args.partitions,
    }
    if args.command == "up":
        # Environment switches apply to `up` only: `down` must stop what runs in the data dir.
        stack = LocalStack.from_env(args.data_dir, **options)
        # SIGTERM too (and SIGINT even in a background job) unwinds through start()'s cleanup
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        t0 = time.monotonic()
        try:
            stack.start()
        except LocalStackError as exc:
            print(f"localstack: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:  # start() already stopped what it had started
            print("localstack: interrupted", file=sys.stderr)
            return 130
        print(f"localstack: up in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        print(f"export DATABASE_URL={stack.database_url}")
        print(f"export KAFKA_BOOTSTRAP_SERVERS={stack.bootstrap_servers}")
        return 0
    stack = LocalStack(args.data_dir, **options)
    if args.command == "down":
        stack.stop()
        print("localstack: down", file=sys.stderr)
        return 0
    for part in stack.status():
        memory = f" rss={part.rss_bytes // 2**20} MiB" if part.rss_bytes else ""
        pid = f" pid={part.pid}" if part.pid else ""
        state = "running" if part.running else "stopped"
        print(f"{part.name:9} {state:8} {part.address}{pid}{memory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
