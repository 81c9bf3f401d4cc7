"""`make chaos`: the run, its table, its JSON and its picture.

    make chaos                     two replicas of each service, 30 screenings/s, every fault
    make chaos CHAOS_ARGS=--short  one replica, kill notify then the broker (as `make test` does)

Exit status 0 when the history holds (nothing lost, unassessed, alerted twice, unpaged, paged
after its acknowledgement, or given up), 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.chaos.check import Verdict, check, settle
from bench.chaos.faults import Faults, Window, schedule
from bench.chaos.load import ACK_SHARE, Clinician, Hotline
from bench.chaos.soak import SOAK_SETTINGS, Sampler
from bench.chaos.soak import report as soak_report
from bench.chaos.stack import DEFAULT_DIR, ChaosStack
from bench.workload import build_workload
from shared.db import asyncpg_dsn


def table(verdict: Verdict) -> str:
    head = (
        f"{'fault':<48} {'down':>7} {'1st page after':>15} {'worst POST→page':>16} {'retried':>8}"
    )
    lines = [head, "-" * len(head)]
    for f in verdict.faults:
        first = f["first_page_after_back_s"]
        worst = f["worst_post_to_page_s"]
        lines.append(
            f"{f['fault'][:48]:<48} {f['down_s']:>6.1f}s"
            f" {'-' if first is None else f'{first:.2f} s':>15}"
            f" {'-' if worst is None else f'{worst:.2f} s':>16} {f['requests_retried']:>8}"
        )
        if f.get("retried_on"):
            why = ", ".join(f"{status} ({n})" for status, n in sorted(f["retried_on"].items()))
            lines.append(f"    retried on: {why}")
    lines.append("-" * len(head))
    lines.append(", ".join(f"{k} {v}" for k, v in verdict.figures.items()))
    lines.append(
        "history holds" if verdict.ok else "HISTORY BROKEN: " + "; ".join(verdict.failures)
    )
    return "\n".join(lines)


def plot(verdict: Verdict, windows: list[Window], t0: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 5), constrained_layout=True)
    if verdict.series:
        xs, ys = zip(*verdict.series, strict=True)
        ax.scatter(xs, ys, s=4, alpha=0.5, label="POST to first page")
    for i, window in enumerate(windows):
        ax.axvspan(window.start - t0, window.back - t0, color="tab:red", alpha=0.15)
        ax.text(
            window.start - t0,
            1.0 - 0.06 * (i % 6),
            window.name,
            transform=ax.get_xaxis_transform(),
            fontsize=7,
            va="top",
        )
    ax.set_yscale("log")
    ax.set_xlabel("seconds into the run (when the screening was first sent)")
    ax.set_ylabel("seconds until its first page")
    ax.set_title("make chaos: POST-to-page latency, fault windows shaded")
    ax.legend(loc="lower right")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


async def main_async(args: argparse.Namespace, say: Callable[[str], None] = print) -> int:
    # The short run has a folder of its own: `make test` may run while a `make chaos` does.
    root = args.dir or (DEFAULT_DIR.with_name("chaos-short") if args.short else DEFAULT_DIR)
    stack = ChaosStack(
        root=root,
        replicas=1 if args.short else args.replicas,
        brokers=args.brokers,
        extra_env=SOAK_SETTINGS if args.soak else {},
    )
    await asyncio.to_thread(stack.start, say)
    try:
        screenings = build_workload(2000, flagged_share=args.flagged)
        ack_share = 1.0 if args.soak else ACK_SHARE
        hotline = Hotline([stack.url(r) for r in stack.replicas_of("intake")], stack.api_key)
        clinician = Clinician(
            receiver_url=stack.url("receiver"),
            notify_urls=[stack.url(r) for r in stack.replicas_of("notify")],
            api_key=stack.api_key,
            database_url=asyncpg_dsn(stack.database_url),
            share=ack_share,
        )
        faults = Faults(
            stack, [] if args.soak else schedule(stack, short=args.short), settle=args.settle
        )
        sampler = Sampler(stack)
        load_done, acks_done = asyncio.Event(), asyncio.Event()
        rss_start = stack.rss()
        t0 = time.monotonic()
        load = asyncio.create_task(
            hotline.run(screenings, args.rate, load_done, limit=args.soak or None)
        )
        acks = asyncio.create_task(clinician.run(acks_done))
        sampling = asyncio.create_task(sampler.run(t0, acks_done))
        if args.soak:
            say(f"soak: {args.soak} screenings at {args.rate:g}/s, no faults")
            await load
        else:
            say(f"load: {args.rate:g} screenings/s, {args.flagged:.0%} flagged, faults follow")
            await faults.run(say)
            load_done.set()
            await load
        load_end = time.monotonic()
        say(f"load stopped after {load_end - t0:.0f} s; waiting for the system to catch up")
        await settle(stack.database_url, stack.url("receiver"), hotline.sent, load_end, ack_share)
        if args.soak:  # retention catches up with the last minutes of load
            await asyncio.sleep(args.soak_settle)
        acks_done.set()
        await asyncio.gather(acks, sampling)
        await sampler.sample(t0)
        if args.soak:  # first: it is what the soak is for
            say(soak_report(sampler.samples))
        verdict = await check(
            stack.database_url,
            stack.url("receiver"),
            hotline.sent,
            faults.windows,
            clinician.acked,
            t0,
            load_end,
            ack_share,
        )
        verdict.figures["rss_mib_start_end"] = {
            name: [round(rss_start.get(name, 0) / 2**20), round(rss / 2**20)]
            for name, rss in stack.rss().items()
        }
        await hotline.aclose()
    finally:
        await asyncio.to_thread(stack.stop)
    say(table(verdict))
    if not verdict.ok:  # what the services said about it (CI keeps nothing else)
        for name, process in sorted(stack.processes.items()):
            say(f"--- {name}: its last warnings and errors ---\n{troubles(process.log)}")
    out = stack.root / "results"
    out.mkdir(parents=True, exist_ok=True)
    stem = f"chaos-{time.strftime('%Y%m%d-%H%M%S')}"
    report = {
        "args": vars(args),
        "figures": verdict.figures,
        "faults": verdict.faults,
        "failures": verdict.failures,
        "windows": [w.json(t0) for w in faults.windows],
        "samples": sampler.samples,
    }
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str))
    say(f"figures: {out / (stem + '.json')}")
    say(f"plot:    {plot(verdict, faults.windows, t0, out / (stem + '.png'))}")
    return 0 if verdict.ok else 1


def troubles(log: Path, lines: int = 25) -> str:
    """The last `lines` warnings and errors of a service's JSON log."""
    if not log.exists():
        return "(no log)"
    marks = ('"level": "WARNING"', '"level": "ERROR"', '"level": "CRITICAL"', "Traceback")
    found = [
        line[:600]
        for line in log.read_text(errors="replace").splitlines()
        if any(m in line for m in marks)
    ]
    return "\n".join(found[-lines:]) or "(none)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="make chaos", description=__doc__)
    p.add_argument("--rate", type=float, default=30.0, help="screenings per second")
    p.add_argument("--flagged", type=float, default=0.3, help="share that pages")
    p.add_argument("--replicas", type=int, default=2, help="of each service")
    p.add_argument("--settle", type=float, default=8.0, help="seconds between faults")
    p.add_argument("--short", action="store_true", help="one replica, two faults (make test)")
    p.add_argument("--soak", type=int, default=0, help="N screenings, no faults, tables sampled")
    p.add_argument(
        "--soak-settle",
        type=float,
        default=180.0,
        help="seconds the soak waits after the load for retention to catch up (180)",
    )
    p.add_argument("--dir", type=Path, default=None, help="stack data, logs and results")
    p.add_argument(
        "--brokers", type=int, choices=(1, 3), default=1, help="Kafka nodes (3: RF 3, min ISR 2)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    say = functools.partial(print, flush=True)
    if args.short:
        args.rate = min(args.rate, 10.0)
        args.settle = min(args.settle, 4.0)
    return asyncio.run(main_async(args, say))
