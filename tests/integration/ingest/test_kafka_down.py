"""With its broker stopped, ingest answers 503 and publishes nothing of the request — ever.

Uses a broker of its own (not the session's shared one), stopped and started again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.kafka import KafkaBroker
from devstack.process import free_port
from shared.events import Topics
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings
from tests.integration.ingest.support import bearer, ingest_process, read_topic, values
from tests.support import eventually

ACCOUNTS = [f"account-{number}" for number in range(12)]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    own = KafkaBroker(
        tmp_path / "kafka", port=free_port(), controller_port=free_port(), tied_to_parent=True
    )
    own.start()
    try:
        own.wait_ready()
        yield own
    finally:
        own.stop()


def batch(prefix: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "event_type": "usage",
            "event_id": f"{prefix}-{account}",
            "account_id": account,
            "occurred_at": now,
            "user_id": "u_1",
            "type": "login",
        }
        for account in ACCOUNTS
    ]


async def test_with_the_broker_stopped_the_answer_is_503_and_nothing_partial_is_published(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    settings = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers, TOPIC_PREFIX="d.")
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.all())
    process = ingest_process(settings, tmp_path, INGEST_PRODUCE_TIMEOUT_SECONDS="3")
    async with process as ingest, httpx.AsyncClient(base_url=ingest.url, timeout=30) as http:

        async def post(items: list[dict[str, Any]]) -> httpx.Response:
            return await http.post(
                "/v1/events",
                content=json.dumps(items),
                headers={"content-type": "application/json", **bearer("events")},
            )

        assert (await post(batch("before"))).status_code == 202

        await asyncio.to_thread(broker.stop)
        down = await post(batch("during"))
        assert down.status_code == 503
        assert down.json()["code"] == "kafka_unavailable"
        assert int(down.headers["retry-after"]) > 0
        assert "accepted" not in down.json()
        assert (await http.get("/readyz")).status_code == 503

        await asyncio.to_thread(broker.start)
        await asyncio.to_thread(broker.wait_ready)

        async def accepted_again() -> bool:
            return (await post(batch("after"))).status_code == 202

        await eventually(accepted_again, timeout_s=60, interval_s=0.5, what="ingest to recover")

    # The "after" batch went to the same partitions (same accounts) after the "during" one:
    # had anything of "during" been queued, it would be on the topic before "after".
    published = values(await read_topic(settings, topics.usage, at_least=2 * len(ACCOUNTS)))
    ids = {value["event_id"] for value in published}
    assert {f"before-{account}" for account in ACCOUNTS} <= ids
    assert {f"after-{account}" for account in ACCOUNTS} <= ids
    assert not any(event_id.startswith("during-") for event_id in ids)
