"""The Strimzi KafkaTopics are exactly shared/events.py's TOPIC_SPECS: the same names, partition
counts and cleanup — the same configuration the local stack and the tests create."""

from __future__ import annotations

from typing import Any

from shared.events import Topics
from shared.kafka import _topic_config
from tests.deploy.conftest import Rendered, settings_config_map


def test_kafka_topics_match_topic_specs_exactly(overlay: Rendered) -> None:
    expected = Topics().all()  # the default TOPIC_PREFIX, as in the ConfigMap
    topics: dict[str, dict[str, Any]] = {
        doc["spec"]["topicName"]: doc["spec"] for doc in overlay.of_kind("KafkaTopic")
    }

    assert set(topics) == set(expected)
    for name, spec in expected.items():
        rendered = topics[name]
        assert rendered["partitions"] == spec.partitions, name
        config = {key: str(value) for key, value in rendered["config"].items()}
        assert {key: config.get(key) for key in _topic_config(spec)} == _topic_config(spec), name
        assert (config["cleanup.policy"] == "compact") is spec.compacted, name
        if not spec.compacted:
            assert config["retention.ms"] == str(spec.retention_ms), name


def test_topics_name_the_strimzi_cluster_and_live_in_its_namespace(overlay: Rendered) -> None:
    for doc in overlay.of_kind("KafkaTopic"):
        assert doc["metadata"]["labels"]["strimzi.io/cluster"]
        assert doc["metadata"]["namespace"] == "kafka"


def test_the_configured_brokers_are_the_strimzi_cluster_the_topics_name(overlay: Rendered) -> None:
    config = settings_config_map(overlay)["data"]
    for doc in overlay.of_kind("KafkaTopic"):
        cluster = doc["metadata"]["labels"]["strimzi.io/cluster"]
        namespace = doc["metadata"]["namespace"]
        # Strimzi's bootstrap Service is <cluster>-kafka-bootstrap in the cluster's namespace.
        assert config["KAFKA_BOOTSTRAP_SERVERS"].startswith(
            f"{cluster}-kafka-bootstrap.{namespace}.svc:"
        )
