"""The example manifests for the engines that scale: valid against Strimzi's and CloudNativePG's
own CRDs (strictly: a misspelled field is an error), and creating exactly the topics the
services use. (`make deploy-check` does this and more with helm and promtool.)"""

from __future__ import annotations

import copy

import pytest

from deploy.check import EXAMPLES, VENDORED_CRDS, CheckFailed, crd_schemas, documents, validate
from services.intake.consumer import handlers as intake_handlers
from services.intake.settings import IntakeSettings
from services.notify.consumer import handlers as notify_handlers
from services.notify.settings import NotifySettings
from services.risk.consumer import handlers as risk_handlers
from services.risk.rules import load_ruleset
from shared.topics import (
    ACCESS_EVENTS,
    ALERT_EVENTS,
    AUDIT_EVENTS,
    FOLLOW_UP_EVENTS,
    RISK_ASSESSED,
    SAFETY_PLAN_EVENTS,
    SCREENING_SUBMITTED,
    TOPIC_CONFIGS,
    all_topics,
    dlq,
)

CRDS = crd_schemas(sorted(VENDORED_CRDS.glob("*.yaml")))


@pytest.mark.parametrize("example", ["strimzi-kafka.yaml", "cloudnative-pg-cluster.yaml"])
def test_the_examples_are_valid_custom_resources(example: str) -> None:
    docs = list(documents((EXAMPLES / example).read_text()))
    assert docs
    for doc in docs:
        assert (doc["apiVersion"], doc["kind"]) in CRDS, "validated against its CRD"
        validate(doc, CRDS, example)


def test_a_misspelled_or_mistyped_field_is_refused() -> None:
    [cluster] = documents((EXAMPLES / "cloudnative-pg-cluster.yaml").read_text())
    misspelled = copy.deepcopy(cluster)
    misspelled["spec"]["instancez"] = 2
    with pytest.raises(CheckFailed, match="instancez"):
        validate(misspelled, CRDS, "test")
    kafka = next(
        d for d in documents((EXAMPLES / "strimzi-kafka.yaml").read_text()) if d["kind"] == "Kafka"
    )
    kafka["spec"]["kafka"]["listeners"][0]["tls"] = "no"
    with pytest.raises(CheckFailed, match="boolean"):
        validate(kafka, CRDS, "test")


def test_strimzi_creates_every_topic_with_rf_3_and_min_isr_2() -> None:
    topics = {
        d["spec"]["topicName"]: d["spec"]
        for d in documents((EXAMPLES / "strimzi-kafka.yaml").read_text())
        if d["kind"] == "KafkaTopic"
    }
    assert set(topics) == set(all_topics())
    for name, spec in topics.items():
        assert spec["replicas"] == 3 and spec["config"]["min.insync.replicas"] == 2
        for key, value in TOPIC_CONFIGS.get(name, {}).items():
            assert spec["config"][key] == value


#: What each service publishes through its outbox, besides the dead letters of what it consumes.
PUBLISHES = {
    "intake": {
        SCREENING_SUBMITTED,
        SAFETY_PLAN_EVENTS,
        FOLLOW_UP_EVENTS,
        ACCESS_EVENTS,
        AUDIT_EVENTS,
    },
    "risk": {RISK_ASSESSED, AUDIT_EVENTS},
    "notify": {ALERT_EVENTS, AUDIT_EVENTS},
}


def _consumed() -> dict[str, set[str]]:
    """The topics each service's consumer has handlers for (its group is the service's name)."""
    return {
        "intake": set(intake_handlers(IntakeSettings())),
        "risk": set(risk_handlers(ruleset=load_ruleset(None))),
        "notify": set(
            notify_handlers(NotifySettings(ONCALL_WEBHOOK_URL="https://pager.example/h"))
        ),
    }


def test_each_service_has_a_kafka_user_allowed_only_what_it_does() -> None:
    """Whoever can write to the access topic could announce keys (each record is signed too):
    intake alone may; each service writes what it publishes and its dead letters, and reads what
    it consumes, the access topic and its group's offsets: nothing else, by name."""
    docs = list(documents((EXAMPLES / "strimzi-kafka.yaml").read_text()))
    [kafka] = [d for d in docs if d["kind"] == "Kafka"]
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    for listener in kafka["spec"]["kafka"]["listeners"]:
        assert listener["authentication"]["type"] == "scram-sha-512", listener["name"]
    assert "userOperator" in kafka["spec"]["entityOperator"]
    users = {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaUser"}
    assert set(users) == {f"triage-{service}" for service in PUBLISHES}
    writers = set()
    for service, consumed in _consumed().items():
        spec = users[f"triage-{service}"]["spec"]
        assert spec["authentication"]["type"] == "scram-sha-512"
        granted = set()
        for acl in spec["authorization"]["acls"]:
            assert acl.get("type", "allow") == "allow" and acl.get("host", "*") == "*"
            assert acl["resource"]["patternType"] == "literal"
            for op in acl["operations"]:
                granted.add((acl["resource"]["type"], acl["resource"]["name"], op))
        reads = consumed | {ACCESS_EVENTS}
        writes = PUBLISHES[service] | {dlq(topic) for topic in consumed}
        assert granted == {
            *(("topic", topic, op) for topic in reads for op in ("Read", "Describe")),
            *(("topic", topic, op) for topic in writes for op in ("Write", "Describe")),
            ("group", service, "Read"),
            ("group", service, "Describe"),
        }, service
        if ("topic", ACCESS_EVENTS, "Write") in granted:
            writers.add(service)
    assert writers == {"intake"}
