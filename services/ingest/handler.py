"""Carrying out one request's decision: publish, dead-letter, count, remember memberships.

The routes gather (authenticate, rate-limit, read the body within the limits), the pure core
decides (``native``, ``segment``, ``zendesk``), and :meth:`Handler.apply` applies: nothing is
answered 2xx before Kafka acknowledged every accepted message and every dead letter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import msgspec

from services.ingest.decisions import Decision
from services.ingest.memberships import Memberships
from services.ingest.metrics import ACCEPTED, BATCH_ITEMS, IGNORED, KAFKA_UNAVAILABLE, REJECTED
from services.ingest.publisher import KafkaUnavailable, Publisher
from shared.logs import request_id

log = logging.getLogger(__name__)


class Rejected(msgspec.Struct):
    """One refused item: its index in the request, a machine code and why."""

    index: int
    code: str
    message: str


@dataclass(frozen=True)
class Applied:
    accepted: int
    ignored: int
    rejected: list[Rejected]


class Handler:
    def __init__(self, publisher: Publisher, memberships: Memberships) -> None:
        self._publisher = publisher
        self._memberships = memberships

    async def apply(self, decision: Decision, *, source: str, route: str, caller: str) -> Applied:
        """Publish the decision; raises :class:`KafkaUnavailable` when Kafka did not take it."""
        refused = decision.refused
        BATCH_ITEMS.labels(source).observe(decision.accepted + decision.ignored + len(refused))
        try:
            await self._publisher.publish(
                decision.messages,
                refused,
                origin=f"http {route}",
                headers={
                    "dlq.source": source,
                    "dlq.caller": caller,
                    "dlq.request_id": request_id.get() or "",
                },
            )
        except KafkaUnavailable as exc:
            KAFKA_UNAVAILABLE.inc()
            log.warning(
                "Kafka unavailable; answering 503",
                extra={"source": source, "messages": len(decision.messages), "error": str(exc)},
            )
            raise
        if decision.learned:
            self._memberships.remember(decision.learned)
        if decision.accepted:
            ACCEPTED.labels(source).inc(decision.accepted)
        if decision.ignored:
            IGNORED.labels(source).inc(decision.ignored)
        for item in refused:
            REJECTED.labels(source, item.code).inc()
        if refused:
            log.info(
                "items refused and dead-lettered",
                extra={
                    "source": source,
                    "caller": caller,
                    "accepted": decision.accepted,
                    "refused": len(refused),
                    "codes": sorted({item.code for item in refused}),
                },
            )
        return Applied(
            decision.accepted,
            decision.ignored,
            [Rejected(item.index, item.code, item.message) for item in refused],
        )
