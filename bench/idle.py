"""`python -m bench.idle`: what an idle stack costs, per part, in % of one core.

Starts the bench's own stack (`bench.stack.BenchStack`: PostgreSQL, Kafka, the three services
and the pager receiver, on free ports, in its own directory), lets it settle, then measures each
part's CPU seconds over a fixed window, with nothing sent to it, and prints them with the
*other* load on the machine meanwhile (another test suite, say), which the figures do not
include but which makes them noisier. Repeat it, interleaved with the tree you compare with.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.cpu import CpuMeter
from bench.stack import DEFAULT_DIR, BenchStack
from deploy.localstack import LocalStack, free_port

PARTS = ("intake", "risk", "notify", "kafka", "postgres", "receiver")


def measure(
    settle: float, window: float, root: Path, *, bare: bool, say: Callable[[str], None] = print
) -> dict[str, float]:
    stack = BenchStack(root=root)
    if bare:  # PostgreSQL and Kafka with no client: what they cost on their own
        stack.local = LocalStack(
            stack.stack_dir,
            kafka_port=free_port(),
            controller_port=free_port(),
            partitions=stack.partitions,
        )
        stack.local.stop()
        shutil.rmtree(stack.stack_dir, ignore_errors=True)
        stack.local.start()
    else:
        stack.start(say)
    try:
        say(f"settling for {settle:.0f} s …")
        time.sleep(settle)
        meter = CpuMeter(stack.pids)
        meter.start()
        say(f"measuring for {window:.0f} s …")
        time.sleep(window)
        return meter.stop()
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    p.add_argument("--settle", type=float, default=20.0, help="seconds before measuring (20)")
    p.add_argument("--window", type=float, default=30.0, help="seconds measured (30)")
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR.parent / "idle", help="stack data")
    p.add_argument("--bare", action="store_true", help="PostgreSQL and Kafka alone, no service")
    p.add_argument("--json", action="store_true", help="print one JSON line, not a table")
    args = p.parse_args(argv)
    used = measure(
        args.settle, args.window, args.dir, bare=args.bare, say=lambda s: print(s, file=sys.stderr)
    )
    parts = [name for name in PARTS if name in used] + [
        name for name in used if name not in PARTS and name != "other"
    ]
    total = sum(used[name] for name in parts)
    if args.json:
        print(
            json.dumps(
                {
                    **{n: round(used[n], 2) for n in parts},
                    "total": round(total, 2),
                    "other": round(used["other"], 2),
                }
            )
        )
        return 0
    print(f"idle, % of one core over {args.window:.0f} s (after {args.settle:.0f} s settling):")
    for name in parts:
        print(f"  {name:<10} {used[name]:6.2f}")
    print(f"  {'total':<10} {total:6.2f}")
    print(f"  {'other load':<10} {used['other']:6.2f}  (the rest of the machine, not counted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
