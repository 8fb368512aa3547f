"""The common package of the three services (see docs/architecture.md for the whole map).

- ``events``      the v1 event contract: messages, topics, encode/decode, examples, JSON Schema
- ``kafka``       idempotent (renewing) producer, topic creation, dead letters, the batch
                  consumer loop (exactly-once with the database), ``DecodeFailure``
- ``worker``      the background-loop idiom (``Worker``: run / stop / wake, ``Backoff``) and
                  the supervision policy (``Supervisor``: a dead task stops the process)
- ``db``          SQLAlchemy 2 async engine over asyncpg, the readiness ping, ``asyncpg_dsn``,
                  the error predicates ``database_gone`` and ``is_bad_data``
- ``migrations``  Alembic per service
- ``clock``       the one way to read the time (``Clock``: system, scaled for the demo, fixed)
- ``settings``    pydantic-settings mix-ins (Kafka, database, API keys, service basics)
- ``auth``        API keys with scopes (hashed, never logged); ``require(scope)`` dependency
- ``errors``      the error envelope of the HTTP APIs and its OpenAPI documentation
- ``mail``        sending email through SMTP (``SmtpSettings`` mix-in, ``send``)
- ``logs``        JSON logs; ``ops``: /healthz, /readyz, /metrics; ``runner``: serve with drain
"""
