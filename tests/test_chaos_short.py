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


def _chaos(*args: str) -> str:
    """`make chaos CHAOS_ARGS=args`: its output, once it has said the history holds."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.chaos", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    assert "history holds" in done.stdout
    return done.stdout


def test_kill_notify_then_the_broker_under_load_and_the_history_holds() -> None:
    _chaos("--short")
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


def test_a_short_soak_samples_the_tables_and_checks_its_history(tmp_path: Path) -> None:
    """`make chaos CHAOS_ARGS="--soak N"` in small: no faults (the 200,000-screening soak once
    ran 78 minutes and then failed in its check on a run without fault windows)."""
    soak = ["--soak", "300", "--rate", "30", "--replicas", "1", "--soak-settle", "0"]
    out = _chaos(*soak, "--dir", str(tmp_path / "soak"))
    assert "RSS MiB then" in out, out[-3000:]
    report = json.loads(next((tmp_path / "soak" / "results").glob("chaos-*.json")).read_text())
    assert report["faults"] == [] and report["figures"]["accepted"] == 300, report["figures"]
    last = report["samples"][-1]
    assert last["rows"]["intake.screenings"] == 300
    assert set(last["rss_mib"]) >= {"intake-1", "risk-1", "notify-1"}, last["rss_mib"]
