"""Helpers for the ingest integration tests: keys, the service's environment, reading topics."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from shared.auth import digest
from shared.kafka import client_options
from shared.settings import KafkaSettings
from tests.support import ServiceProcess, eventually

KEYS = {
    "events": "cw_it_events_key",
    "accounts": "cw_it_accounts_key",
    "webhooks": "cw_it_webhooks_key",
}
ZENDESK_SECRET = "it-zendesk-signing-secret"
ZENDESK_ORGANIZATIONS = {"3601": "acme-corp"}


def bearer(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[scope]}"}


def ingest_env(settings: KafkaSettings, **extra: str) -> dict[str, str]:
    keys = [
        {"name": f"{scope}-source", "sha256": digest(key), "scopes": [scope]}
        for scope, key in KEYS.items()
    ]
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "TOPIC_PREFIX": settings.topic_prefix,
        "API_KEYS": json.dumps(keys),
        "INGEST_RATE_LIMIT_PER_SECOND": "0",
        "INGEST_ZENDESK_SIGNING_SECRET": ZENDESK_SECRET,
        "INGEST_ZENDESK_ORGANIZATIONS": json.dumps(ZENDESK_ORGANIZATIONS),
        "INGEST_SHUTDOWN_DRAIN_SECONDS": "0",
        **extra,
    }


def ingest_process(settings: KafkaSettings, log_dir: Path, **extra: str) -> ServiceProcess:
    return ServiceProcess("ingest", ingest_env(settings, **extra), log_dir)


async def read_topic(
    settings: KafkaSettings, topic: str, *, at_least: int = 0, timeout_s: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on ``topic`` up to its end, waiting until there are ``at_least``."""
    consumer = AIOKafkaConsumer(
        topic, **client_options(settings), auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:

        async def read_to_the_end() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                records.extend(messages)
            assignment = list(consumer.assignment())
            if not assignment:
                return False
            ends = await consumer.end_offsets(assignment)
            at_end = all([await consumer.position(tp) >= end for tp, end in ends.items()])
            return at_end and len(records) >= at_least

        await eventually(
            read_to_the_end, timeout_s=timeout_s, what=f"{at_least}+ records on {topic}"
        )
    finally:
        await consumer.stop()
    return records


def values(records: list[ConsumerRecord[bytes, bytes]]) -> list[dict[str, Any]]:
    return [json.loads(record.value or b"null") for record in records]


def headers(record: ConsumerRecord[bytes, bytes]) -> Mapping[str, str]:
    return {name: value.decode() for name, value in record.headers}
