"""The common package of the three services.

- ``events``     the v1 event contract: messages, topics, encode/decode, examples, JSON Schema
- ``kafka``      idempotent producer, topic creation, dead letters, the batch consumer loop
- ``db``         SQLAlchemy 2 async engine over asyncpg; ``migrations``: Alembic per service
- ``settings``   pydantic-settings mix-ins (Kafka, database, API keys, service basics)
- ``auth``       API keys with scopes (hashed, never logged)
- ``logs``       JSON logs; ``ops``: /healthz, /readyz, /metrics
"""
