"""The process as it runs: state rebuilt from Kafka after a restart, a graceful SIGTERM."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from shared import events
from shared.events import Topics
from shared.settings import KafkaSettings
from tests.integration.ingest.support import bearer, ingest_process, read_topic


async def test_a_restarted_replica_knows_memberships_from_group_calls_made_before(
    kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    group = {"userId": "u_77", "groupId": "acme-corp", "messageId": "g-77"}
    track = {"userId": "u_77", "event": "Report Exported", "messageId": "t-77"}
    first = ingest_process(kafka_settings, tmp_path)
    async with first, httpx.AsyncClient(base_url=first.url) as http:
        answer = await http.post("/v1/group", json=group, headers=bearer("events"))
        assert answer.json()["accepted"] == 1

    # A new process, nothing in memory: the memberships topic tells it (it is ready only once
    # it has read the topic to its end).
    second = ingest_process(kafka_settings, tmp_path)
    async with second, httpx.AsyncClient(base_url=second.url) as http:
        answer = await http.post("/v1/track", json=track, headers=bearer("events"))
        assert answer.json() == {"success": True, "accepted": 1, "ignored": 0, "rejected": []}

    [record] = await read_topic(kafka_settings, topics.usage, at_least=1)
    event = events.decode_event(record.value)
    assert (event.event_id, event.account_id) == ("t-77", "acme-corp")


async def test_sigterm_stops_cleanly_after_answering(
    kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    service = await ingest_process(kafka_settings, tmp_path).start()
    async with httpx.AsyncClient(base_url=service.url) as http:
        answer = await http.post(
            "/v1/events",
            json={
                "event_type": "usage",
                "event_id": "last-one",
                "account_id": "acme-corp",
                "occurred_at": "2026-11-20T10:00:00Z",
                "user_id": "u_1",
                "type": "login",
            },
            headers=bearer("events"),
        )
        assert answer.status_code == 202
    assert await service.stop() == 0  # a clean shutdown exits 0
    lines = [json.loads(line) for line in service.logs().splitlines() if line.startswith("{")]
    assert "Kafka producer flushed and stopped" in [line["msg"] for line in lines]
    # (aiokafka may log an error while a just-created topic elects its leaders: not ours.)
    assert [
        line for line in lines if line["level"] == "error" and line["logger"].startswith("services")
    ] == []
    [record] = await read_topic(kafka_settings, topics.usage, at_least=1)
    assert events.decode_event(record.value).event_id == "last-one"
