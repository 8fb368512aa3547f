"""The real Segment Python library (segment-analytics-python), pointed at a running ingest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import pytest
import segment.analytics.request as segment_request  # type: ignore[import-untyped]
from segment.analytics import Client

from shared import events
from shared.events import Topics
from shared.settings import KafkaSettings
from tests.integration.ingest.support import KEYS, read_topic
from tests.support import ServiceProcess

DEVICE_CLOCK_AHEAD = timedelta(minutes=10)


class DeviceClock(datetime):
    """The library's idea of "now" on a device whose clock runs ten minutes fast."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> DeviceClock:
        return cls.fromtimestamp(datetime.now(UTC).timestamp() + DEVICE_CLOCK_AHEAD.seconds, tz)


def usage_events(records: list[Any]) -> dict[str, events.UsageEvent]:
    decoded = [events.decode_event(record.value) for record in records]
    return {event.event_id: event for event in decoded if isinstance(event, events.UsageEvent)}


async def test_library_calls_arrive_as_usage_events_with_the_device_clock_corrected(
    ingest: ServiceProcess,
    kafka_settings: KafkaSettings,
    topics: Topics,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(segment_request, "datetime", DeviceClock)  # stamps sentAt
    client = Client(KEYS["events"], host=ingest.url, sync_mode=True, max_retries=0)
    happened = datetime.now(UTC) - timedelta(minutes=5)
    on_device = happened + DEVICE_CLOCK_AHEAD  # what the device's clock said at the time

    def calls() -> None:
        client.group("u_seg", "acme-corp", traits={"name": "Acme"}, timestamp=on_device)
        client.track(
            "u_seg",
            "Report Exported",
            properties={"format": "csv"},
            context={"groupId": "acme-corp"},
            timestamp=on_device,
            message_id="seg-track",
        )
        # No account named: the group call above attached the user to acme-corp.
        client.track("u_seg", "Signed In", timestamp=on_device, message_id="seg-login")
        client.page(
            "u_seg",
            name="Dashboard",
            properties={"account_id": "globex"},
            timestamp=on_device,
            message_id="seg-page",
        )
        client.identify("u_seg", traits={"email": "jo@acme.example"}, timestamp=on_device)

    await asyncio.to_thread(calls)  # each call raises if ingest does not answer 2xx

    published = usage_events(await read_topic(kafka_settings, topics.usage, at_least=3))
    assert set(published) == {"seg-track", "seg-login", "seg-page"}
    track, login, page = published["seg-track"], published["seg-login"], published["seg-page"]
    assert (track.account_id, track.type, track.feature) == (
        "acme-corp",
        "feature_used",
        "Report Exported",
    )
    assert (login.account_id, login.type) == ("acme-corp", "login")
    assert (page.account_id, page.type, page.feature) == ("globex", "page_view", "Dashboard")
    for event in (track, login, page):
        assert event.source == "segment"
        assert event.user_id == "u_seg"
        # The device said `on_device`; corrected for its clock, the event time is the real one.
        assert abs(event.occurred_at - happened) < timedelta(seconds=5), event
    memberships = await read_topic(kafka_settings, topics.memberships, at_least=1)
    assert [
        (record.key, events.decode_membership(record.value).account_id) for record in memberships
    ] == [(b"u_seg", "acme-corp")]


async def test_the_librarys_threaded_batching_mode_with_gzip_delivers_every_call(
    ingest: ServiceProcess, kafka_settings: KafkaSettings, topics: Topics
) -> None:
    errors: list[Exception] = []
    client = Client(
        KEYS["events"],
        host=ingest.url,
        gzip=True,
        upload_size=25,
        upload_interval=0.05,
        on_error=lambda error, _batch: errors.append(error),
    )

    def calls() -> None:
        for number in range(60):
            client.track(
                f"u_{number % 7}",
                "Feature Used",
                context={"groupId": f"account-{number % 3}"},
                message_id=f"batched-{number}",
            )
        client.flush()
        client.join()

    await asyncio.to_thread(calls)
    assert errors == []
    published = usage_events(await read_topic(kafka_settings, topics.usage, at_least=60))
    assert set(published) == {f"batched-{number}" for number in range(60)}
    assert {event.account_id for event in published.values()} == {
        "account-0",
        "account-1",
        "account-2",
    }
