"""The example manifests for the engines that scale: valid against Strimzi's and CloudNativePG's
own CRDs (strictly: a misspelled field is an error), and creating exactly the topics the
services use. (`make deploy-check` does this and more with helm and promtool.)"""

from __future__ import annotations

import copy

import pytest

from deploy.check import EXAMPLES, VENDORED_CRDS, CheckFailed, crd_schemas, documents, validate
from shared.topics import TOPIC_CONFIGS, all_topics

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
