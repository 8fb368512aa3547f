"""The shared database plumbing and every service's migrations, against the real PostgreSQL."""

import asyncio
import importlib

from sqlalchemy import Column, Integer, MetaData, Table, Text, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared import migrations
from shared.db import create_engine, ping
from shared.settings import DatabaseSettings


async def test_round_trip_through_sqlalchemy_async_and_asyncpg(
    database_settings: DatabaseSettings,
) -> None:
    engine = create_engine(database_settings, application_name="test")
    notes = Table(
        "notes",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("body", Text, nullable=False),
    )
    try:
        assert await ping(engine)
        async with engine.begin() as conn:
            await conn.run_sync(notes.metadata.create_all)
            await conn.execute(insert(notes), [{"id": i, "body": f"note {i}"} for i in range(3)])
        async with engine.connect() as conn:
            rows = (await conn.execute(select(notes.c.body).order_by(notes.c.id))).scalars()
            assert list(rows) == ["note 0", "note 1", "note 2"]
    finally:
        await engine.dispose()


async def _tables(conn: AsyncConnection, schema: str) -> set[str]:
    return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names(schema=schema)))


async def test_migrations_upgrade_from_empty_to_head_and_downgrade_back(
    database_settings: DatabaseSettings, database_url: str
) -> None:
    services = migrations.services_with_migrations()
    assert "scoring" in services
    await asyncio.to_thread(migrations.upgrade_all, database_url)

    engine = create_engine(database_settings, application_name="test")
    try:
        for service in services:
            store = importlib.import_module(f"services.{service}.store")
            declared = {table.name for table in store.metadata.sorted_tables}
            assert declared, f"{service} declares no tables"
            async with engine.connect() as conn:
                assert await _tables(conn, service) == declared | {"alembic_version"}

        await asyncio.to_thread(migrations.downgrade_all, database_url)
        for service in services:
            async with engine.connect() as conn:
                assert await _tables(conn, service) == {"alembic_version"}

        # And up again: the downgrade really left a state head can be reached from.
        await asyncio.to_thread(migrations.upgrade_all, database_url)
    finally:
        await engine.dispose()
