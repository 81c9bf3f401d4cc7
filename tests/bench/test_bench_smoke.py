"""A short run of the benchmark machinery against the session stack: the report has its shape
and, at a low rate, every flagged screening paged exactly once and nothing else paged.

No latency is asserted here: performance is shown by `make bench`, not by timed tests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.floor import measure_floor
from bench.hops import HOPS, hop_breakdown
from bench.plot import plot_report
from bench.receiver import Arrival, signature_ok
from bench.report import build_report, format_table
from bench.run import measure
from bench.workload import build_workload
from deploy.localstack import LocalStack
from tests.conftest import WEBHOOK_SECRET
from tests.support.keys import KEYS
from tests.support.receiver import Receiver
from tests.support.services import ServiceProcesses


class SessionReceiver:
    """The bench's view of the session's webhook receiver (which stamps wall-clock time)."""

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._offset = time.time() - time.monotonic()

    async def count(self) -> int:
        return len(self._receiver.got)

    async def arrivals(self) -> list[Arrival]:
        out = []
        for page in list(self._receiver.got):
            headers = {k.lower().encode(): v.encode() for k, v in page.headers.items()}
            body = page.json
            out.append(
                Arrival(
                    screening_id=str(body.get("screening_id")),
                    at=page.at - self._offset,
                    escalation_level=int(body.get("escalation_level", 0)),
                    signature_ok=signature_ok(WEBHOOK_SECRET.encode(), headers, page.body),
                    event_id=page.headers.get("x-triage-event-id", ""),
                )
            )
        return out


async def test_a_short_bench_run_accounts_for_every_alert(
    stack: LocalStack,
    database_url: str,
    services: ServiceProcesses,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    screenings = build_workload(40, flagged_share=0.3, seed=7)
    assert sum(s.flagged for s in screenings) == 12
    assert {s.instrument for s in screenings} == {"cssrs_screener", "phq9", "asq"}

    sents, arrivals = await measure(
        intake_url=services.url("intake"),
        api_key=KEYS["admin"],
        screenings=screenings,
        rate=20,
        source=SessionReceiver(receiver),
        show_progress=False,
    )
    floor = await measure_floor(
        bootstrap=stack.bootstrap_servers,
        database_url=database_url,
        count=40,
        rate=20,
        partitions=3,
    )
    report = build_report(rate=20, sents=sents, arrivals=arrivals, floor=floor)
    report.hops = await hop_breakdown(database_url, sents, arrivals)

    assert report.sent == report.ok == 40
    assert report.errors == {}
    alerts = report.alerts
    assert alerts.expected == alerts.alerted == 12
    assert alerts.lost == alerts.duplicates == alerts.unexpected == 0
    assert alerts.bad_signatures == 0
    assert report.post.n == 40 and report.alert.n == 12
    assert report.floor is not None and report.floor.n == 40 and report.floor_lost == 0
    assert set(report.ratio) == {"p50", "p95", "p99", "p99.9"}
    for dist in (report.post, report.alert, report.floor):
        figures = [v for v in dist.figures() if v is not None]
        assert figures == sorted(figures) and len(figures) == 5

    assert list(report.hops) == [name for name, _, _ in HOPS], "every hop, read back"
    assert all(dist.n == 12 for dist in report.hops.values())

    data = json.loads(json.dumps(report.to_json()))
    assert {"rate_offered", "rate_achieved", "post", "alert", "alerts", "floor", "ratio"} <= set(
        data
    )
    assert set(data["alert"]) == {"n", "p50", "p95", "p99", "p999", "max"}
    table = format_table(report)
    for row in ("POST (ms)", "POST-to-alert (ms)", "floor: 2 hops + commit", "lost 0", "by hop"):
        assert row in table
    png = plot_report(report, tmp_path / "bench.png")
    assert png.read_bytes().startswith(b"\x89PNG")
