"""Notify's Prometheus metrics: what on-call reliability is judged by.

Registered in the app's registry (shared/metrics.py), beside what every service exports.
Labels are small closed sets (channel, kind, outcome, risk level): never an id, an address or
anything about a person.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from shared.metrics import Probe

#: Seconds, from sub-second pages to the 30-minute moderate deadline and beyond.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.deliveries = Counter(
            "notify_deliveries",
            "Page attempts by channel and outcome.",
            ("channel", "outcome"),
            registry=self.registry,
        )
        self.delivery_failures = Counter(
            "notify_delivery_failures",
            "Failed page attempts: temporary (retried) or permanent (escalated at once).",
            ("kind", "channel"),
            registry=self.registry,
        )
        self.escalations = Counter(
            "notify_escalations",
            "Alerts moved to their next escalation step, by why.",
            ("reason",),
            registry=self.registry,
        )
        self.assessment_to_first_delivery = Histogram(
            "notify_assessment_to_first_delivery_seconds",
            "From the risk assessment to the first page delivered for its alert.",
            ("risk_level",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.assessment_to_ack = Histogram(
            "notify_assessment_to_ack_seconds",
            "From the risk assessment to the alert's acknowledgement.",
            ("risk_level",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.escalation_lag = Histogram(
            "notify_escalation_lag_seconds",
            "From a missed acknowledgement deadline to the escalation that pages the next step.",
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )
        # Pre-declare the label sets that matter, so a dashboard sees zeros, not gaps.
        for channel in ("webhook", "email"):
            for kind in ("temporary", "permanent"):
                self.delivery_failures.labels(kind=kind, channel=channel)
            self.deliveries.labels(channel=channel, outcome="delivered")
        for reason in ("timeout", "failed"):
            self.escalations.labels(reason=reason)
        for level in ("moderate", "high", "imminent"):
            self.assessment_to_first_delivery.labels(risk_level=level)
            self.assessment_to_ack.labels(risk_level=level)


_OPEN = "status NOT IN ('acknowledged', 'resolved')"

#: Gauges asked of notify's database at each scrape (shared/metrics.py).
PROBES = (
    Probe(
        "notify_alerts_open",
        "Alerts nobody has acknowledged or resolved yet, by risk level.",
        "SELECT l, (SELECT count(*) FROM notify.alerts WHERE risk_level = l AND " + _OPEN + ")"
        " FROM unnest(ARRAY['moderate', 'high', 'imminent']) AS l",
        labels=("risk_level",),
    ),
    Probe(
        "notify_alerts_unacknowledged_past_deadline",
        "Open alerts whose acknowledgement deadline has passed.",
        "SELECT count(*) FROM notify.alerts WHERE " + _OPEN + " AND created_at"
        " + ack_deadline_seconds * interval '1 second' < now()",
    ),
    Probe(
        "notify_reminders_pending",
        "Safety-plan reminders not delivered yet.",
        "SELECT count(*) FROM notify.reminders WHERE status = 'pending'",
    ),
)
