"""ingest: authenticated, validated, durable event intake over HTTP → Kafka.

Stateless. Every request is one batch: read and check the body once (``http``), decide what
to publish and what to refuse with pure functions (``native``, ``segment``, ``zendesk``), then
publish everything and wait for Kafka's acknowledgement (``publisher``). Wiring is in ``app``.
"""
