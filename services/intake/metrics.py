"""Intake's gauges, asked of its database at each scrape (shared/metrics.py `Probe`)."""

from __future__ import annotations

from shared.metrics import Probe

PROBES = (
    Probe(
        "triage_screenings_unassessed",
        "Screenings accepted and not assessed yet.",
        "SELECT count(*) FROM intake.screenings WHERE status = 'received'",
    ),
    Probe(
        "triage_screenings_unassessed_oldest_seconds",
        "Age of the oldest screening not assessed yet (0 when none waits).",
        "SELECT coalesce(extract(epoch FROM now() - min(received_at)), 0)"
        " FROM intake.screenings WHERE status = 'received'",
    ),
    Probe(
        "triage_safety_plans_overdue",
        "Open safety plans past their due time.",
        "SELECT count(*) FROM intake.safety_plans WHERE status = 'open' AND due_at < now()",
    ),
    Probe(
        "triage_fhir_pushes",
        "FHIR rest-hook pushes waiting to be sent (pending) or given up on (failed).",
        "SELECT s, (SELECT count(*) FROM intake.fhir_pushes WHERE status = s)"
        " FROM unnest(ARRAY['pending', 'failed']) AS s",
        labels=("status",),
    ),
)
