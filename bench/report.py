"""The figures of a run: percentiles, alert accounting, the floor ratio, the table and JSON."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.floor import FloorResult
from bench.loadgen import LATE_AFTER, Sent
from bench.receiver import Arrival

QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("p99.9", 0.999))


@dataclass(frozen=True)
class Distribution:
    """Latency percentiles in milliseconds (nearest-rank, so every figure was observed)."""

    n: int
    p50: float | None
    p95: float | None
    p99: float | None
    p999: float | None
    max: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Distribution:
        values = sorted(seconds)
        if not values:
            return cls(0, None, None, None, None, None)

        def rank(q: float) -> float:
            return values[max(0, math.ceil(q * len(values)) - 1)] * 1000

        p50, p95, p99, p999 = (rank(q) for _, q in QUANTILES)
        return cls(len(values), p50, p95, p99, p999, values[-1] * 1000)

    def figures(self) -> list[float | None]:
        return [self.p50, self.p95, self.p99, self.p999, self.max]


@dataclass(frozen=True)
class AlertAccount:
    """Did every flagged screening page exactly once, and nothing else page?"""

    expected: int  # flagged screenings that intake accepted
    alerted: int  # of those, how many paged at least once
    lost: int  # flagged, accepted, never paged
    duplicates: int  # first-level pages beyond the first, for one screening
    unexpected: int  # pages for screenings that are not flagged
    escalations: int  # pages of a later escalation level (none expected in a run)
    bad_signatures: int
    foreign: int  # pages for screenings this run did not send (other runs, other tests)


def account(sents: Sequence[Sent], arrivals: Sequence[Arrival]) -> AlertAccount:
    ours = {s.screening_id: s for s in sents if s.ok}
    first_level: Counter[str] = Counter()
    escalations = bad = foreign = unexpected = 0
    for a in arrivals:
        sent = ours.get(a.screening_id)
        if sent is None:
            foreign += 1
            continue
        bad += not a.signature_ok
        if a.escalation_level > 0:
            escalations += 1
        elif sent.flagged:
            first_level[a.screening_id] += 1
        else:
            unexpected += 1
    expected = sum(1 for s in ours.values() if s.flagged)
    return AlertAccount(
        expected=expected,
        alerted=len(first_level),
        lost=expected - len(first_level),
        duplicates=sum(n - 1 for n in first_level.values()),
        unexpected=unexpected,
        escalations=escalations,
        bad_signatures=bad,
        foreign=foreign,
    )


def alert_latencies(sents: Sequence[Sent], arrivals: Sequence[Arrival]) -> dict[str, float]:
    """Seconds from each flagged screening's scheduled send to its first page."""
    scheduled = {s.screening_id: s.scheduled for s in sents if s.ok and s.flagged}
    first: dict[str, float] = {}
    for a in arrivals:
        if a.escalation_level == 0 and a.screening_id in scheduled:
            first[a.screening_id] = min(first.get(a.screening_id, math.inf), a.at)
    return {sid: at - scheduled[sid] for sid, at in first.items()}


@dataclass
class RunReport:
    rate_offered: float
    rate_achieved: float
    duration: float
    sent: int
    ok: int
    errors: dict[str, int]
    late_sends: int
    max_send_lag_ms: float
    post: Distribution
    alert: Distribution
    alerts: AlertAccount
    floor: Distribution | None = None
    floor_lost: int = 0
    ratio: dict[str, float | None] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core, per process group
    cpu_ms_per_screening: dict[str, float] = field(default_factory=dict)
    #: POST-to-alert split into its hops (bench/hops.py), for the flagged screenings
    hops: dict[str, Distribution] = field(default_factory=dict)
    #: The case view with contact, read one at a time after the load (bench/reads.py).
    case_view: Distribution | None = None
    #: The audit trail the run left: entries, bytes, per 10,000 screenings, verify's verdict.
    audit: dict[str, Any] = field(default_factory=dict)
    #: (seconds since start, POST ms, POST-to-alert ms or None) per screening, for the plot.
    series: list[tuple[float, float | None, float | None]] = field(default_factory=list)
    floor_series: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("series")
        data.pop("floor_series")
        return data

    def passed(self, p99_ms: float) -> bool:
        """Sustained: everything accepted, every alert once, p99 POST-to-alert within bound."""
        a = self.alerts
        return (
            not self.errors
            and a.lost == a.duplicates == a.unexpected == 0
            and self.alert.p99 is not None
            and self.alert.p99 <= p99_ms
            and self.rate_achieved >= 0.95 * self.rate_offered
        )


def build_report(
    *,
    rate: float,
    sents: Sequence[Sent],
    arrivals: Sequence[Arrival],
    floor: FloorResult | None = None,
    cpu: Mapping[str, float] | None = None,
    cpu_wall: float = 0.0,
) -> RunReport:
    ok = [s for s in sents if s.ok]
    errors: Counter[str] = Counter(s.error or "no id" for s in sents if not s.ok)
    start = min(s.scheduled for s in sents)
    # achieved: accepted screenings per second, from the first scheduled send to the last
    # answer, so a backlog that drains after the schedule ends lowers it
    span = max(s.finished for s in sents) - start
    lags = [s.started - s.scheduled for s in sents]
    by_id = alert_latencies(sents, arrivals)
    post = Distribution.of([s.finished - s.scheduled for s in ok])
    alert = Distribution.of(list(by_id.values()))
    report = RunReport(
        rate_offered=rate,
        rate_achieved=len(ok) / span if span > 0 else 0.0,
        duration=len(sents) / rate,
        sent=len(sents),
        ok=len(ok),
        errors=dict(errors),
        late_sends=sum(1 for lag in lags if lag > LATE_AFTER),
        max_send_lag_ms=max(lags) * 1000,
        post=post,
        alert=alert,
        alerts=account(sents, arrivals),
        cpu=dict(cpu or {}),
        cpu_ms_per_screening={
            k: 10 * v * cpu_wall / len(ok) for k, v in (cpu or {}).items() if ok and k != "other"
        },
        series=[
            (
                s.scheduled - start,
                (s.finished - s.scheduled) * 1000 if s.ok else None,
                by_id[s.screening_id] * 1000 if s.screening_id in by_id else None,
            )
            for s in sents
        ],
    )
    if floor is not None:
        done = [x for x in floor.latencies if x is not None]
        report.floor = Distribution.of(done)
        report.floor_lost = floor.lost
        report.floor_series = [x * 1000 for x in done]
        report.ratio = {
            name: (a / f if a is not None and f else None)
            for (name, _), a, f in zip(
                QUANTILES, alert.figures(), report.floor.figures(), strict=False
            )
        }
    return report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_table(report: RunReport) -> str:
    """The run as a plain-text table, for the terminal and the closing note of an issue."""
    head = f"{'':<28}{'n':>7}{'p50':>9}{'p95':>9}{'p99':>9}{'p99.9':>9}{'max':>9}"
    lines = [
        f"rate offered {report.rate_offered:.1f}/s, achieved {report.rate_achieved:.1f}/s "
        f"over {report.duration:.0f} s ({report.ok}/{report.sent} accepted)",
        head,
        "-" * len(head),
    ]
    rows: list[tuple[str, Distribution]] = [
        ("POST (ms)", report.post),
        ("POST-to-alert (ms)", report.alert),
    ]
    if report.floor is not None:
        rows.append(("floor: 2 hops + commit (ms)", report.floor))
    if report.case_view is not None:
        rows.append(("case view, with contact (ms)", report.case_view))
    for name, dist in rows:
        lines.append(f"{name:<28}{dist.n:>7}" + "".join(f"{_ms(v):>9}" for v in dist.figures()))
    if report.ratio:
        lines.append(
            f"{'alert / floor (x)':<28}{'':>7}"
            + "".join(f"{_ms(report.ratio.get(name)):>9}" for name, _ in QUANTILES)
        )
    if report.hops:
        lines.append("POST-to-alert by hop (ms):")
        for name, dist in report.hops.items():
            lines.append(
                f"  {name:<32}{dist.n:>5}" + "".join(f"{_ms(v):>9}" for v in dist.figures())
            )
    a = report.alerts
    lines += [
        "-" * len(head),
        f"alerts: {a.expected} expected, {a.alerted} paged, lost {a.lost}, duplicates "
        f"{a.duplicates}, unexpected {a.unexpected}, escalations {a.escalations}, bad "
        f"signatures {a.bad_signatures}",
        f"sends late by > {LATE_AFTER * 1000:.0f} ms: {report.late_sends} "
        f"(max lag {report.max_send_lag_ms:.1f} ms); errors: {report.errors or 'none'}"
        + (f"; floor lost {report.floor_lost}" if report.floor is not None else ""),
    ]
    if report.cpu:
        ours = sorted(report.cpu_ms_per_screening.items(), key=lambda kv: -kv[1])
        lines.append(
            "CPU per accepted screening (ms): "
            + ", ".join(f"{k} {v:.2f}" for k, v in ours)
            + f"; total {sum(v for _, v in ours):.2f}"
        )
        lines.append(
            f"other load on the machine during the run: {report.cpu.get('other', 0):.0f} % of "
            "one core (the latencies above are only as good as this is small)"
        )
    if report.audit:
        t = report.audit
        lines.append(
            f"audit trail: {t['entries']} entries, {t['bytes'] / 2**20:.1f} MiB for "
            f"{t['screenings']} screenings ({t['entries_per_10k_screenings']} entries, "
            f"{t['mib_per_10k_screenings']} MiB per 10,000); verify: " + " ".join(t["verify"])
        )
    return "\n".join(lines)


def format_ramp(steps: Sequence[tuple[float, RunReport, bool]], p99_ms: float) -> str:
    head = f"{'rate/s':>8}{'achieved':>10}{'POST p99':>10}{'alert p50':>11}{'alert p99':>11}"
    lines = [head + f"{'lost':>6}{'dup':>5}{'late':>6}  verdict", "-" * (len(head) + 26)]
    for rate, r, ok in steps:
        lines.append(
            f"{rate:>8.0f}{r.rate_achieved:>10.1f}{_ms(r.post.p99):>10}{_ms(r.alert.p50):>11}"
            f"{_ms(r.alert.p99):>11}{r.alerts.lost:>6}{r.alerts.duplicates:>5}{r.late_sends:>6}"
            f"  {'sustained' if ok else f'not sustained (p99 alert > {p99_ms:.0f} ms or loss)'}"
        )
    best = max((rate for rate, _, ok in steps if ok), default=None)
    lines.append(
        f"highest sustained rate: {best:.0f} screenings/s"
        if best is not None
        else "no rate was sustained"
    )
    return "\n".join(lines)
