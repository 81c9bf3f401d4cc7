"""One benchmark run (or a ramp of them) against the bench stack, with its report and plot."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from bench.client import HttpClient
from bench.cpu import CpuMeter
from bench.floor import measure_floor
from bench.hops import hop_breakdown
from bench.loadgen import Progress, Sent, run_open_loop
from bench.plot import plot_report
from bench.reads import audit_trail, case_view_reads
from bench.receiver import Arrival, parse_results
from bench.report import RunReport, build_report, format_ramp, format_table
from bench.sms import PHONE, TextSource, page_by_text
from bench.stack import DEFAULT_DIR, BenchStack
from bench.workload import Screening, build_workload

TARGET_P99_MS = 250.0


class AlertSource(Protocol):
    """Where the pages of a run are read from: the bench receiver, or a test's receiver."""

    async def count(self) -> int: ...

    async def arrivals(self) -> list[Arrival]: ...


class ReceiverClient:
    """Reads the bench receiver process's records over HTTP."""

    def __init__(self, url: str) -> None:
        self._client = HttpClient(url, max_connections=1)

    async def count(self) -> int:
        status, body = await self._client.send(self._client.get_bytes("/count"))
        return int(body) if status == 200 else 0

    async def arrivals(self) -> list[Arrival]:
        status, body = await self._client.send(self._client.get_bytes("/results"))
        if status != 200:
            raise RuntimeError(f"the receiver answered {status}")
        return parse_results(body)

    async def aclose(self) -> None:
        await self._client.aclose()


async def wait_for_alerts(
    source: AlertSource,
    sents: Sequence[Sent],
    *,
    quiet_timeout: float = 15.0,
    settle: float = 1.0,
) -> list[Arrival]:
    """Every page once each flagged screening has paged (then `settle` more seconds, for late
    duplicates), or when no new page came for `quiet_timeout` seconds (the rest are lost)."""
    expected = {s.screening_id for s in sents if s.ok and s.flagged}
    last_count, last_change = -1, time.monotonic()
    while True:
        arrivals = await source.arrivals()
        seen = {a.screening_id for a in arrivals if a.escalation_level == 0}
        if expected <= seen:
            await asyncio.sleep(settle)
            return await source.arrivals()
        if len(arrivals) != last_count:
            last_count, last_change = len(arrivals), time.monotonic()
        elif time.monotonic() - last_change > quiet_timeout:
            return arrivals
        await asyncio.sleep(0.2)


async def _ticker(bar: tqdm, progress: Progress, source: AlertSource, total: int) -> None:
    while True:
        await asyncio.sleep(0.5)
        bar.n = progress.started
        with contextlib.suppress(Exception):
            bar.set_postfix(
                answered=progress.done,
                errors=progress.errors,
                late=progress.late,
                alerts=await source.count(),
                refresh=False,
            )
        bar.refresh()


async def measure(
    *,
    intake_url: str,
    screenings: Sequence[Screening],
    rate: float,
    source: AlertSource,
    show_progress: bool = True,
    label: str = "load",
    api_key: str | None = None,
) -> tuple[list[Sent], list[Arrival]]:
    """The load itself: open-loop POSTs, then the wait for the pages."""
    progress = Progress()
    bar = tqdm(
        total=len(screenings),
        desc=f"{label} {rate:.0f}/s",
        unit="req",
        disable=None if show_progress else True,  # None: shown on a terminal only
        leave=False,
    )
    ticker = asyncio.create_task(_ticker(bar, progress, source, len(screenings)))
    try:
        sents = await run_open_loop(
            intake_url, screenings, rate=rate, progress=progress, api_key=api_key
        )
        bar.set_description(f"{label}: waiting for the last pages")
        arrivals = await wait_for_alerts(source, sents)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        bar.close()
    return sents, arrivals


@dataclass
class Options:
    rate: float
    duration: float
    flagged: float
    seed: int
    floor: bool
    out: Path
    target_p99: float
    profile: bool


class _Profiler:
    """py-spy on each service process during the load (`--profile`): raw stacks and a top list."""

    def __init__(self, pids: dict[str, list[int]], out: Path) -> None:
        self._out = out
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(py_spy).exists():
            print("--profile: py-spy is not installed (pip install py-spy); not profiling")
            return
        out.mkdir(parents=True, exist_ok=True)
        for name in ("intake", "risk", "notify"):
            self._procs[name] = subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(pids[name][0]),
                    "--rate",
                    "97",
                    "--gil",  # samples while Python holds the GIL: CPU, not waiting
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(out / f"{name}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def stop(self) -> list[Path]:
        written = []
        for name, proc in self._procs.items():
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            raw = self._out / f"{name}.txt"
            if raw.exists():
                summary = self._out / f"{name}-top.txt"
                summary.write_text(summarise_stacks(raw.read_text()))
                written.append(summary)
        return written


def summarise_stacks(raw: str, top: int = 40) -> str:
    """py-spy's collapsed stacks as the functions with most samples, inclusive and own."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
    if not total:
        return "no samples\n"
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [
        f"{n / total:6.1%}  {f}" for f, n in sorted(inclusive.items(), key=lambda x: -x[1])[:top]
    ]
    lines += ["", "own:"]
    lines += [f"{n / total:6.1%}  {f}" for f, n in sorted(own.items(), key=lambda x: -x[1])[:top]]
    return "\n".join(lines) + "\n"


async def _warm_up(stack: BenchStack, source: AlertSource, seed: int) -> None:
    """Ten seconds of moderate load, so the first measured requests do not pay for connection
    setup, first-use caches and the broker's JIT: with two seconds at 30/s, the first step of a
    ramp measured a p99 twice that of the same rate a minute later."""
    screenings = build_workload(500, seed=seed + 1)
    await measure(
        intake_url=stack.url("intake"),
        api_key=stack.api_key,
        screenings=screenings,
        rate=50,
        source=source,
        show_progress=False,
    )


async def run_once(stack: BenchStack, source: AlertSource, opts: Options) -> RunReport:
    count = max(1, round(opts.rate * opts.duration))
    screenings = build_workload(count, flagged_share=opts.flagged, seed=opts.seed)
    meter = CpuMeter(lambda: {**stack.pids(), "bench": [__import__("os").getpid()]})
    profiler = _Profiler(stack.pids(), opts.out / "profile") if opts.profile else None
    meter.start()
    sents, arrivals = await measure(
        intake_url=stack.url("intake"),
        api_key=stack.api_key,
        screenings=screenings,
        rate=opts.rate,
        source=source,
    )
    cpu = meter.stop()
    hops = await hop_breakdown(stack.database_url, sents, arrivals)
    if profiler is not None:
        for path in profiler.stop():
            print(f"profile: {path}")
    case_view = await case_view_reads(stack.url("intake"), stack.api_key, sents)
    floor = None
    if opts.floor:
        print(f"floor: {count} messages at {opts.rate:.0f}/s through 2 Kafka hops + 1 commit …")
        floor = await measure_floor(
            bootstrap=stack.bootstrap_servers,
            database_url=stack.database_url,
            count=count,
            rate=opts.rate,
            partitions=stack.partitions,
        )
    report = build_report(
        rate=opts.rate, sents=sents, arrivals=arrivals, floor=floor, cpu=cpu, cpu_wall=meter.wall
    )
    report.hops = hops
    report.case_view = case_view
    return report


async def ramp(
    stack: BenchStack,
    source: AlertSource,
    opts: Options,
    rates: Sequence[float],
    *,
    refine: int = 2,
) -> list[tuple[float, RunReport, bool]]:
    """Raise the rate step by step until p99 POST-to-alert exceeds the target (or an alert is
    lost); then try `refine` rates between the last sustained and the first failed one."""
    steps: list[tuple[float, RunReport, bool]] = []

    async def step(rate: float) -> bool:
        report = await run_once(
            stack, source, Options(**{**opts.__dict__, "rate": rate, "floor": False})
        )
        ok = report.passed(opts.target_p99)
        steps.append((rate, report, ok))
        print(
            f"  {rate:.0f}/s: alert p50 {report.alert.p50 or 0:.1f} ms, p99 "
            f"{report.alert.p99 or 0:.1f} ms, lost {report.alerts.lost} → "
            f"{'sustained' if ok else 'not sustained'}"
        )
        return ok

    good, bad = 0.0, None
    for rate in rates:
        if await step(rate):
            good = rate
        else:
            bad = rate
            break
    for _ in range(refine if bad is not None else 0):
        middle = round((good + bad) / 2)  # type: ignore[operator]
        if middle in (good, bad):
            break
        if await step(middle):
            good = middle
        else:
            bad = middle
    return sorted(steps, key=lambda s: s[0])


def _write(report_json: dict, out: Path, stem: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}.json"
    path.write_text(json.dumps(report_json, indent=2) + "\n")
    return path


async def main_async(args: argparse.Namespace, say: Callable[[str], None] = print) -> int:
    opts = Options(
        rate=args.rate,
        duration=args.duration,
        flagged=args.flagged,
        seed=args.seed,
        floor=not args.no_floor,
        out=args.out,
        target_p99=args.target_p99,
        profile=args.profile,
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    stack = BenchStack(root=args.dir, trace=args.trace, sms=args.sms)
    await asyncio.to_thread(stack.start, say)
    source: ReceiverClient | TextSource = ReceiverClient(stack.receiver_url)
    if args.sms:
        await page_by_text(stack.url("notify"), stack.api_key)
        source = TextSource(stack.url("phones"), stack.database_url)
        say(f"pages by SMS to {PHONE} through the local Twilio stand-in")
    try:
        await _warm_up(stack, source, opts.seed)
        if args.ramp:
            rates = [args.ramp_start + i * args.ramp_step for i in range(args.ramp_steps)]
            say(
                f"ramp: {opts.duration:.0f} s per step from {rates[0]:.0f}/s, "
                f"target p99 POST-to-alert <= {opts.target_p99:.0f} ms"
            )
            steps = await ramp(stack, source, opts, rates)
            say(format_ramp(steps, opts.target_p99))
            path = _write(
                {
                    "target_p99_ms": opts.target_p99,
                    "step_seconds": opts.duration,
                    "highest_sustained": max((r for r, _, ok in steps if ok), default=None),
                    "steps": [{**rep.to_json(), "sustained": ok} for _, rep, ok in steps],
                },
                opts.out,
                f"ramp-{stamp}",
            )
            say(f"figures: {path}")
            return 0
        report = await run_once(stack, source, opts)
        report.audit = await audit_trail(stack.database_url, stack.audit_signing_key)
        say(format_table(report))
        path = _write(report.to_json(), opts.out, f"bench-{stamp}")
        png = plot_report(report, opts.out / f"bench-{stamp}.png", target_ms=opts.target_p99)
        say(f"figures: {path}\nplot:    {png}")
        return 0
    finally:
        await source.aclose()
        await asyncio.to_thread(stack.stop)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Open-loop benchmark of the alert path, with the Kafka+PostgreSQL floor.",
    )
    p.add_argument("--rate", type=float, default=300.0, help="screenings per second (300)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    p.add_argument("--flagged", type=float, default=0.3, help="share that must page (0.3)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--no-floor", action="store_true", help="skip the floor measurement")
    p.add_argument("--target-p99", type=float, default=TARGET_P99_MS, help="ms (250)")
    p.add_argument("--ramp", action="store_true", help="find the highest sustained rate")
    p.add_argument("--ramp-start", type=float, default=100.0)
    p.add_argument("--ramp-step", type=float, default=50.0)
    p.add_argument("--ramp-steps", type=int, default=10)
    p.add_argument("--profile", action="store_true", help="py-spy the services during the load")
    p.add_argument(
        "--trace", action="store_true", help="trace everything to an OTLP stand-in (its cost)"
    )
    p.add_argument(
        "--sms",
        action="store_true",
        help="page by SMS through the local Twilio stand-in: POST-to-first-text (try --rate 20)",
    )
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="stack data and logs")
    p.add_argument("--out", type=Path, default=DEFAULT_DIR / "results", help="JSON and PNG")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # aiokafka logs transient errors right after the floor creates its topics (no leader yet);
    # the floor's own accounting (messages lost) is what tells whether anything went wrong.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        import uvloop

        return uvloop.run(main_async(args))
    except KeyboardInterrupt:
        print("interrupted; the stack was stopped", file=sys.stderr)
        return 130
