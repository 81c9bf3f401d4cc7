"""Every service exports its metrics; every metric an alert rule uses is one they export."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cases import HIGH_CSSRS, screening
from tests.support.services import ServiceProcesses
from tests.support.waits import wait_case

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "crisis-triage.json"
#: Names in a PromQL expression that are not metrics.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "and", "or", "unless", "rate",
    "increase", "delta", "deriv", "clamp_min", "min_over_time", "max_over_time", "on",
    "ignoring", "bool", "histogram_quantile", "le", "offset", "time", "vector", "absent",
}  # fmt: skip


async def _exported(services: ServiceProcesses) -> dict[str, str]:
    """Every sample name each service exports, with the service's name."""
    names: dict[str, str] = {}
    async with httpx.AsyncClient() as client:
        for service in ("intake", "risk", "notify"):
            response = await client.get(f"{services.url(service)}/metrics")
            assert response.status_code == 200, (service, response.text)
            for family in text_string_to_metric_families(response.text):
                for sample in family.samples:
                    names.setdefault(sample.name, service)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label names and values, durations and
    functions left out)."""
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"\d+[a-z]*|e", w)}


def rule_expressions() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES.read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def panel_expressions() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


async def test_each_service_counts_requests_by_route_template_and_its_pipeline(
    services: ServiceProcesses, intake: httpx.AsyncClient
) -> None:
    posted = await intake.post("/v1/screenings", json=screening(HIGH_CSSRS))
    assert posted.status_code == 202
    sid = posted.json()["id"]
    await wait_case(intake, sid, lambda c: c["status"] == "assessed" and c["alerts"], 30)
    text = (await intake.get("/metrics")).text
    for _ in range(50):  # a scrape on a loaded machine may not get every answer in time
        if 'triage_ready{check="database"} 1.0' in text:
            break
        await asyncio.sleep(0.2)
        text = (await intake.get("/metrics")).text
    assert re.search(
        r'triage_http_requests_total\{method="POST",route="/v1/screenings",status="202"\} [1-9]',
        text,
    ), "the POST is counted under its route"
    assert 'route="/v1/screenings/{screening_id}"' in text, "reads are counted by template"
    assert sid not in text, "no id in any label"
    assert (
        re.search(r"triage_outbox_published_total [1-9]", text)
        or "triage_outbox_relay_leading 0" in text
    )
    assert re.search(r'triage_consumer_messages_total\{outcome="applied"\} [1-9]', text)
    assert 'triage_ready{check="database"} 1.0' in text
    assert "triage_consumer_partitions" in text
    async with httpx.AsyncClient() as client:
        notify = (await client.get(f"{services.url('notify')}/metrics")).text
    assert 'notify_alerts_open{risk_level="high"}' in notify
    assert "notify_deliveries_total" in notify


async def test_every_metric_a_rule_or_a_panel_uses_is_exported(
    services: ServiceProcesses,
) -> None:
    exported = await _exported(services)
    # Some counters are exported once they count (a delivery, an escalation): the families
    # are declared, their samples appear with the first event.
    exported_families = {re.sub(r"_(total|created|bucket|sum|count)$", "", n) for n in exported}
    rules, panels = rule_expressions(), panel_expressions()
    assert len(rules) >= 10 and len(panels) >= 15
    for alert, expr in rules + panels:
        names = metric_names(expr) - {"up"}  # Prometheus's own, per scrape target
        assert names, f"{alert}: no metric found in its expression"
        for name in names:
            family = re.sub(r"_(total|bucket|sum|count)$", "", name)
            assert name in exported or family in exported_families, (
                f"{alert} uses {name}, which no service exports"
            )


def test_the_name_finder_reads_promql() -> None:
    expr = 'sum by (job) (rate(a_total{x="y"}[5m])) / clamp_min(sum(rate(b_total[5m])), 1e-9) > 0.5'
    assert metric_names(expr) == {"a_total", "b_total"}
