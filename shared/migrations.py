"""Alembic, one migration tree per service that owns tables.

``alembic.ini`` at the repository root has a section per service (``alembic -n scoring upgrade
head``); each tree's ``env.py`` is two lines that call :func:`run_env` with the service's schema
and table metadata. The version table lives in the service's own schema, so the services migrate
independently. ``python -m shared.migrations`` upgrades every service to head (used by
`make up` and by the Kubernetes migration Job); ``DATABASE_URL`` says where.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import DatabaseSettings

ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = ROOT / "alembic.ini"
SERVICES_WITH_TABLES = ("scoring", "alerts")


def config(service: str, database_url: str | None = None) -> Config:
    """The Alembic config of one service's tree; ``database_url`` overrides ``DATABASE_URL``."""
    cfg = Config(str(ALEMBIC_INI), ini_section=service)
    cfg.set_main_option("script_location", str(ROOT / "services" / service / "migrations"))
    if database_url:
        cfg.attributes["database_url"] = database_url
    return cfg


def services_with_migrations() -> list[str]:
    return [s for s in SERVICES_WITH_TABLES if (ROOT / "services" / s / "migrations").is_dir()]


def upgrade_all(database_url: str | None = None, revision: str = "head") -> None:
    for service in services_with_migrations():
        command.upgrade(config(service, database_url), revision)


def downgrade_all(database_url: str | None = None) -> None:
    for service in reversed(services_with_migrations()):
        command.downgrade(config(service, database_url), "base")


def run_env(*, schema: str, metadata: MetaData) -> None:
    """The body of every ``env.py``: migrate ``schema`` online, over asyncpg."""
    url = context.config.attributes.get("database_url") or (
        DatabaseSettings().database_url.get_secret_value()
    )

    def migrate(connection: Connection) -> None:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=lambda name, kind, _parents: kind != "schema" or name == schema,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(migrate)
        finally:
            await engine.dispose()

    asyncio.run(main())


if __name__ == "__main__":
    if sys.argv[1:] not in ([], ["upgrade"]):
        print("usage: python -m shared.migrations [upgrade]", file=sys.stderr)
        raise SystemExit(2)
    upgrade_all()
