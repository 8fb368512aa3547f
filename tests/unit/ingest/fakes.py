"""Test doubles for the ingest service's ports, and an app wired with them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

from services.ingest.app import create_app, intake_from
from services.ingest.decisions import Message, Refused
from services.ingest.memberships import InMemoryMemberships
from services.ingest.publisher import KafkaUnavailable
from services.ingest.settings import IngestSettings
from shared.auth import digest
from shared.clock import FixedClock

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)

KEYS = {
    "events": "cw_events_key",
    "accounts": "cw_accounts_key",
    "webhooks": "cw_webhooks_key",
    "read": "cw_read_key",
}


def api_keys_json() -> str:
    return json.dumps(
        [
            {"name": f"{scope}-caller", "sha256": digest(key), "scopes": [scope]}
            for scope, key in KEYS.items()
        ]
    )


def bearer(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[scope]}"}


@dataclass
class Published:
    messages: list[Message]
    refused: list[Refused]
    origin: str
    headers: dict[str, str]


@dataclass
class RecordingPublisher:
    """Records what would have gone to Kafka; ``unavailable`` makes it refuse like Kafka down."""

    calls: list[Published] = field(default_factory=list)
    unavailable: bool = False

    async def publish(
        self,
        messages: Sequence[Message],
        refused: Sequence[Refused],
        *,
        origin: str,
        headers: Mapping[str, str],
    ) -> None:
        if self.unavailable:
            raise KafkaUnavailable("broker unreachable (test)")
        self.calls.append(Published(list(messages), list(refused), origin, dict(headers)))

    async def ready(self) -> bool:
        return not self.unavailable

    @property
    def messages(self) -> list[Message]:
        return [message for call in self.calls for message in call.messages]

    @property
    def refused(self) -> list[Refused]:
        return [item for call in self.calls for item in call.refused]


@dataclass
class Clock:
    """A wall clock and a monotonic clock that only move when told."""

    wall: FixedClock = field(default_factory=lambda: FixedClock(NOW))
    monotonic_now: float = 1000.0

    def monotonic(self) -> float:
        return self.monotonic_now


def settings(**overrides: Any) -> IngestSettings:
    """Settings as the environment would give them; ``overrides`` by field name."""
    values: dict[str, Any] = {
        "API_KEYS": api_keys_json(),
        "TOPIC_PREFIX": "t.",
        "rate_limit_per_second": 0,
        "zendesk_signing_secret": "zendesk-secret",
        "zendesk_organizations": {"3601": "acme-corp"},
    }
    values.update(overrides)
    return IngestSettings(**values)


def app(
    publisher: RecordingPublisher,
    *,
    clock: Clock | None = None,
    memberships: InMemoryMemberships | None = None,
    **overrides: Any,
) -> FastAPI:
    clock = clock or Clock()
    memberships = memberships if memberships is not None else InMemoryMemberships()
    configured = settings(**overrides)
    return create_app(
        intake_from(
            configured,
            publisher=publisher,
            memberships=memberships,
            clock=clock.wall,
            monotonic=clock.monotonic,
        ),
        checks={"kafka": publisher.ready},
        retry_after_seconds=configured.retry_after_seconds,
    )
