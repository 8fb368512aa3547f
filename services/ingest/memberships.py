"""Which account a product user belongs to, as Segment ``group`` calls said.

Ingest keeps no state of its own: a ``group`` call is published as a ``MembershipRecord`` to the
compacted memberships topic (keyed by user id), and every replica reads that topic from the
beginning into a dictionary (user id → account id) and keeps following it. A replica is ready
only once it has read up to the end of the topic as it was at start-up. A group call answered
by this replica is remembered at once (after Kafka acknowledged it); other replicas learn it
within moments — a track call that reaches one of them in between, with no account of its own,
is refused as ``account_unresolved`` and dead-lettered (replayable).

Memory: about 150 bytes per user per replica.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Protocol

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.ingest.metrics import MEMBERSHIPS
from shared.events import decode_membership
from shared.worker import Backoff, Worker

log = logging.getLogger(__name__)


class Memberships(Protocol):
    def lookup(self, user_id: str) -> str | None: ...

    def remember(self, learned: Mapping[str, str]) -> None: ...

    async def ready(self) -> bool: ...


class InMemoryMemberships:
    """Memberships without a topic behind them (unit tests, or a single replica's own calls)."""

    def __init__(self, accounts: Mapping[str, str] | None = None) -> None:
        self.accounts: dict[str, str] = dict(accounts or {})

    def lookup(self, user_id: str) -> str | None:
        return self.accounts.get(user_id)

    def remember(self, learned: Mapping[str, str]) -> None:
        self.accounts.update(learned)

    async def ready(self) -> bool:
        return True


class MembershipTable(InMemoryMemberships, Worker):
    """The memberships topic, followed into memory (a worker: ``run`` until ``stop``)."""

    name = "memberships"

    def __init__(self, make_consumer: Callable[[], AIOKafkaConsumer], topic: str) -> None:
        InMemoryMemberships.__init__(self)
        Worker.__init__(self, backoff=Backoff(0.25, 5.0))
        self._make_consumer = make_consumer
        self._topic = topic
        self.caught_up = False

    async def ready(self) -> bool:
        return self.caught_up

    def remember(self, learned: Mapping[str, str]) -> None:
        super().remember(learned)
        MEMBERSHIPS.set(len(self.accounts))

    async def step(self) -> float:
        """Follow the topic until stopped; a Kafka failure ends the pass (and is retried)."""
        consumer = self._make_consumer()
        try:
            await consumer.start()
            await self._follow(consumer)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
        return 0

    def transient(self, error: Exception) -> bool:
        return isinstance(error, KafkaError | OSError)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        # Without a group, a subscription is assigned every partition of the topic and starts
        # from the earliest offset: the whole table.
        consumer.subscribe([self._topic])
        ends: dict[TopicPartition, int] | None = None
        while not self.stopping:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    self._apply(record.key, record.value)
            if batches:
                MEMBERSHIPS.set(len(self.accounts))
            if self.caught_up:
                continue
            assignment = consumer.assignment()
            if not assignment:
                continue  # metadata not there yet
            if ends is None:
                ends = await consumer.end_offsets(list(assignment))
            if all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                self.caught_up = True
                MEMBERSHIPS.set(len(self.accounts))
                log.info("memberships read", extra={"users": len(self.accounts)})

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:  # a tombstone: the user left
            if key is not None:
                self.accounts.pop(key.decode(errors="replace"), None)
            return
        try:
            membership = decode_membership(value)
        except (msgspec.DecodeError, ValueError) as exc:
            log.warning("skipping an undecodable membership", extra={"error": str(exc)[:300]})
            return
        self.accounts[membership.user_id] = membership.account_id
