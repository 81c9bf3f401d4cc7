"""Kafka topic names: the contract's public surface (README, "Architecture"), in one place."""

from __future__ import annotations

SCREENING_SUBMITTED = "triage.screening.submitted.v1"
RISK_ASSESSED = "triage.risk.assessed.v1"
ALERT_EVENTS = "triage.alert.events.v1"
SAFETY_PLAN_EVENTS = "triage.safety-plan.events.v1"
#: Follow-ups after the call: overdue, unreachable, a reply that needs a clinician (ids only).
FOLLOW_UP_EVENTS = "triage.follow-up.events.v1"
#: API keys issued and revoked: compacted, keyed by the key's id, read whole by every replica.
ACCESS_EVENTS = "triage.access.events.v1"
#: The audit trail's entries from every service, appended to the one chained trail by intake.
AUDIT_EVENTS = "triage.audit.v1"
#: Topic settings other than the defaults, for whoever creates the topics.
TOPIC_CONFIGS: dict[str, dict[str, str]] = {ACCESS_EVENTS: {"cleanup.policy": "compact"}}

#: Topics that some service consumes; each gets a dead-letter twin.
CONSUMED = (
    SCREENING_SUBMITTED,
    RISK_ASSESSED,
    ALERT_EVENTS,
    SAFETY_PLAN_EVENTS,
    FOLLOW_UP_EVENTS,
    AUDIT_EVENTS,
)


def dlq(topic: str) -> str:
    """The dead-letter topic for a consumed topic."""
    return f"{topic}.dlq"


def all_topics() -> list[str]:
    """Every topic the system needs, dead-letter topics included, for the stack to create."""
    return [*CONSUMED, *(dlq(t) for t in CONSUMED), ACCESS_EVENTS]
