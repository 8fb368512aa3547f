"""Prometheus metrics of the ingest service (``churnwatch_ingest_*``).

``source`` is where items came from: native, segment, zendesk, accounts, people.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ACCEPTED = Counter(
    "churnwatch_ingest_items_accepted_total",
    "Items published to Kafka and acknowledged, by source",
    ["source"],
)
REJECTED = Counter(
    "churnwatch_ingest_items_rejected_total",
    "Items refused (each one also dead-lettered), by source and reason code",
    ["source", "code"],
)
IGNORED = Counter(
    "churnwatch_ingest_items_ignored_total",
    "Items understood and deliberately not published (Segment identify/alias, Zendesk "
    "events that mean nothing to scoring), by source",
    ["source"],
)
REFUSED_REQUESTS = Counter(
    "churnwatch_ingest_requests_refused_total",
    "Whole requests refused (4xx/503), by reason code",
    ["code"],
)
REQUESTS = Counter(
    "churnwatch_ingest_requests_total",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "churnwatch_ingest_request_seconds",
    "Time to answer an HTTP request, by route template",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PRODUCE_SECONDS = Histogram(
    "churnwatch_ingest_produce_seconds",
    "Time from handing a request's messages to the producer to Kafka acknowledging all",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_ITEMS = Histogram(
    "churnwatch_ingest_batch_items",
    "Items per request, by source",
    ["source"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
KAFKA_UNAVAILABLE = Counter(
    "churnwatch_ingest_kafka_unavailable_total",
    "Requests answered 503 because Kafka did not acknowledge in time or was unreachable",
)
MEMBERSHIPS = Gauge(
    "churnwatch_ingest_memberships",
    "Users whose account this replica knows from Segment group calls",
)
