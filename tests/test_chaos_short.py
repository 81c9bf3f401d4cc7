"""The short chaos run (`make chaos CHAOS_ARGS=--short`), so a regression fails CI: under load,
kill notify, then the broker, each started again a second later, then check the whole history
(nothing lost, unassessed, alerted twice, unpaged, paged after its acknowledgement, given up).
It runs on a stack of its own, as `make chaos` does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_kill_notify_then_the_broker_under_load_and_the_history_holds() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--short"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    assert "history holds" in done.stdout
    figures = sorted((ROOT / ".local" / "chaos-short" / "results").glob("chaos-*.json"))[-1]
    report = json.loads(figures.read_text())
    counts = report["figures"]
    assert counts["accepted"] > 100 and counts["flagged"] > 20, counts
    for name in ("lost", "unassessed", "double_alerts", "alerts_not_paged", "given_up"):
        assert counts[name] == 0, (name, counts)
    assert [f["fault"] for f in report["faults"]] == ["SIGKILL notify-1", "SIGKILL kafka"]
    for fault in report["faults"]:
        assert fault["first_page_after_back_s"] is not None
        assert fault["first_page_after_back_s"] < 10, fault
