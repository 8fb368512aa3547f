"""Baseline of S1: a bare ASGI app on the same server stack as ingest.

    BARE_PORT=… KAFKA_BOOTSTRAP_SERVERS=… TOPIC_PREFIX=… python -m bench.baselines.bare_ingest

uvicorn with uvloop and httptools, as ``shared.runner`` runs the services. ``POST /v1/events``
reads the body, decodes it with the same decoder as ingest (msgspec, the native API's
``EventIn``), and sends each item's own bytes, keyed by its account, to the usage topic with a
raw aiokafka producer with the same settings (``shared.kafka.make_producer``: idempotent,
acks=all): grouped by partition (Kafka's murmur2), a pre-built batch per partition from 64
messages on (one at a time per partition, as aiokafka needs), ``send()`` below — then
answers 202 once Kafka acknowledged everything. No
authentication, no per-item checks beyond the decoder's, no contract structs, no metrics.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import msgspec
import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from services.ingest.native import EventIn
from shared.events import Topics
from shared.kafka import make_producer
from shared.settings import KafkaSettings

_many = msgspec.json.Decoder(list[msgspec.Raw])
_item = msgspec.json.Decoder(EventIn)
LARGE = 64


class App:
    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._topic = Topics(settings.topic_prefix).usage
        self._producer: AIOKafkaProducer | None = None
        self._partitions: list[int] = []
        # One pre-built batch at a time per partition: aiokafka holds one per partition and
        # its wait for the slot times out early under contention.
        self._locks: dict[int, asyncio.Lock] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["path"] == "/readyz":
            await self._answer(send, 200, b'{"ready":true}')
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        accepted = await self._publish(body)
        await self._answer(send, 202, b'{"accepted":%d,"rejected":[]}' % accepted)

    async def _publish(self, body: bytes) -> int:
        producer = self._producer
        assert producer is not None
        raws = _many.decode(body) if body.lstrip()[:1] == b"[" else [msgspec.Raw(body)]
        partitions = self._partitions
        groups: dict[int, list[tuple[bytes, bytes]]] = {}
        for raw in raws:
            item = _item.decode(raw)
            key = item.account_id.encode()
            partition = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
            groups.setdefault(partition, []).append((key, bytes(raw)))
        futures = []
        for partition, group in groups.items():
            if len(group) < LARGE:
                for key, value in group:
                    futures.append(
                        await producer.send(self._topic, value, key=key, partition=partition)
                    )
                continue
            async with self._locks.setdefault(partition, asyncio.Lock()):
                batch = producer.create_batch()
                for key, value in group:
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        futures.append(
                            await producer.send_batch(batch, self._topic, partition=partition)
                        )
                        batch = producer.create_batch()
                        batch.append(key=key, value=value, timestamp=None)
                batch.close()
                futures.append(await producer.send_batch(batch, self._topic, partition=partition))
        await asyncio.gather(*futures)
        return len(raws)

    async def _answer(self, send: Any, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._producer = make_producer(self._settings)
                await self._producer.start()
                self._partitions = sorted(await self._producer.partitions_for(self._topic))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._producer is not None:
                    await self._producer.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    settings = KafkaSettings()
    uvicorn.run(
        App(settings),
        host="127.0.0.1",
        port=int(os.environ["BARE_PORT"]),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_keep_alive=5,
        server_header=False,
    )


if __name__ == "__main__":
    main()
