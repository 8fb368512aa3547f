"""The scoring service's tables (schema ``scoring``) and its queries."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, MetaData, Table, Text, func

metadata = MetaData(schema="scoring")

processed_events = Table(
    "processed_events",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
