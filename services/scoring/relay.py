"""The outbox relay: health changes committed in PostgreSQL → the health-changes topic.

Why an outbox: publishing after the database commit could lose a change if the process died
in between; publishing before could announce a change whose transaction then rolled back.
So the rescoring transaction writes the change to ``scoring.outbox`` next to the score it
describes, and this relay publishes what is committed:

1. in a transaction holding an advisory lock (one relay at a time across instances, so
   changes leave in commit order per account), read the oldest pending changes;
2. send them all (keyed by ``account_id``; idempotent producer, ``acks=all``) and wait for
   every acknowledgement;
3. delete them from the outbox and commit.

A crash between 2 and 3 sends those changes again on restart — with the same ``change_id``,
which consumers deduplicate on (the topic is compacted per account, too). Nothing committed
is lost; nothing uncommitted is ever published.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.scoring import metrics
from services.scoring.store import outbox
from shared.db import database_gone
from shared.worker import Backoff, Worker

log = logging.getLogger(__name__)


class Relay(Worker):
    name = "relay"

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        topic: str,
        *,
        batch_size: int = 500,
        poll_seconds: float = 1.0,
    ) -> None:
        super().__init__(backoff=Backoff(0.5, 30.0))
        self._pool = pool
        self._producer = producer
        self._topic = topic
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds

    async def publish_pending(self) -> int:
        """Publish every pending change; returns how many were published by this call."""
        published = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                if not await outbox.try_relay_lock(conn):
                    return published  # another instance is relaying
                pending = await outbox.pending_changes(conn, self._batch_size)
                if pending:
                    futures = [
                        await self._producer.send(
                            self._topic, value=p.payload, key=p.account_id.encode()
                        )
                        for p in pending
                    ]
                    await asyncio.gather(*futures)
                    await outbox.forget_published(conn, [p.seq for p in pending])
            published += len(pending)
            metrics.OUTBOX_PUBLISHED.inc(len(pending))
            if len(pending) < self._batch_size:
                async with self._pool.acquire() as conn:
                    metrics.OUTBOX_PENDING.set(await outbox.outbox_size(conn))
                return published

    async def step(self) -> float:
        """Publish what is pending; rest until woken (new changes committed) or the poll."""
        await self.publish_pending()
        return self._poll_seconds

    def transient(self, error: Exception) -> bool:
        return isinstance(error, KafkaError) or database_gone(error)
