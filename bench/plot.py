"""The run as a picture: latency over time (does it drift, stall, recover?) and its distribution
as a percentile curve (the tail a table of five numbers hides), with the floor for comparison."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.report import RunReport


def _percentile_curve(values_ms: Sequence[float]) -> tuple[list[float], list[float]]:
    """x: 1/(1-q), so p50, p90, p99, p99.9 are evenly spaced on a log axis; y: latency."""
    values = sorted(values_ms)
    n = len(values)
    xs = [1.0 / (1.0 - (i + 0.5) / n) for i in range(n)]
    return xs, values


def plot_report(report: RunReport, path: Path, *, target_ms: float = 250.0) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (over_time, dist) = plt.subplots(2, 1, figsize=(11, 9), constrained_layout=True)
    post = [(t, v) for t, v, _ in report.series if v is not None]
    alert = [(t, v) for t, _, v in report.series if v is not None]
    if post:
        over_time.scatter(*zip(*post, strict=True), s=2, alpha=0.35, label="POST", color="tab:blue")
    if alert:
        over_time.scatter(
            *zip(*alert, strict=True), s=3, alpha=0.6, label="POST-to-alert", color="tab:red"
        )
    over_time.axhline(target_ms, color="black", linestyle="--", linewidth=1, label="target p99")
    over_time.set_yscale("log")
    over_time.set_xlabel("scheduled send time (s since start)")
    over_time.set_ylabel("latency (ms, from scheduled send)")
    over_time.set_title(
        f"{report.rate_offered:.0f} screenings/s offered, {report.rate_achieved:.1f}/s achieved, "
        f"{report.alerts.expected} flagged, lost {report.alerts.lost}, "
        f"duplicates {report.alerts.duplicates}"
    )
    over_time.legend(loc="upper left", markerscale=4)
    over_time.grid(True, which="both", alpha=0.3)

    curves = [
        ("POST", [v for _, v in post], "tab:blue"),
        ("POST-to-alert", [v for _, v in alert], "tab:red"),
        ("floor: 2 Kafka hops + 1 commit", report.floor_series, "tab:green"),
    ]
    for label, values, color in curves:
        if values:
            dist.plot(*_percentile_curve(values), label=label, color=color)
    dist.axhline(target_ms, color="black", linestyle="--", linewidth=1)
    dist.set_xscale("log")
    dist.set_yscale("log")
    ticks = [2, 10, 100, 1000]
    dist.set_xticks(ticks, ["p50", "p90", "p99", "p99.9"])
    dist.set_xlabel("percentile")
    dist.set_ylabel("latency (ms)")
    dist.set_title("latency distribution")
    dist.legend(loc="upper left")
    dist.grid(True, which="both", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
