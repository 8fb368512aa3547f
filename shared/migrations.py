"""Alembic, one migration tree per service that owns tables.

``alembic.ini`` at the repository root has a section per service (``alembic -n scoring upgrade
head``); each tree's ``env.py`` is two lines that call :func:`run_env` with the service's schema
and table metadata. The version table lives in the service's own schema, so the services migrate
independently. ``python -m shared.migrations`` upgrades every service to head (used by
`make up` and by the Kubernetes migration Job); ``DATABASE_URL`` says where.

``python -m shared.migrations wait`` only waits (up to ``--timeout-seconds``) until every tree
is at the head this code expects, and fails otherwise: the init container that keeps a new
version of a service from starting before the migration Job has upgraded the database.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from alembic import command, context, op
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
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


def pending(database_url: str | None = None) -> dict[str, tuple[set[str], set[str]]]:
    """The services whose database is behind the head of their tree: ``(current, head)``.

    A database at a revision this tree does not know is *ahead* — a newer release migrated it —
    and counts as done: migrations are expand-then-contract, so this code still works on it
    (that is what lets a rollback start).
    """
    url = database_url or DatabaseSettings().database_url.get_secret_value()
    scripts = {
        service: ScriptDirectory.from_config(config(service))
        for service in services_with_migrations()
    }

    def current(connection: Connection) -> dict[str, set[str]]:
        return {
            service: set(
                MigrationContext.configure(
                    connection, opts={"version_table_schema": service}
                ).get_current_heads()
            )
            for service in scripts
        }

    async def read() -> dict[str, set[str]]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(current)
        finally:
            await engine.dispose()

    found = asyncio.run(read())
    behind = {}
    for service, script in scripts.items():
        heads = set(script.get_heads())
        known = {revision.revision for revision in script.walk_revisions()}
        ahead = bool(found[service]) and not (found[service] & known)
        if found[service] != heads and not ahead:
            behind[service] = (found[service], heads)
    return behind


def wait_for_head(
    database_url: str | None = None,
    *,
    timeout_seconds: float = 600.0,
    interval_seconds: float = 2.0,
) -> bool:
    """Poll until every tree is at head; ``False`` when ``timeout_seconds`` passed first."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            behind = pending(database_url)
        except Exception as exc:  # the database may not answer yet: that is waiting too
            behind = {"database": ({repr(exc)[:200]}, set())}
        if not behind:
            return True
        if time.monotonic() >= deadline:
            print(f"migrations not at head: {behind}", file=sys.stderr)
            return False
        time.sleep(interval_seconds)


def run_script(script: str) -> None:
    """Run a migration's SQL script (statements ending in ``;`` and a newline), one statement
    at a time: the driver prepares each, and a prepared statement holds one."""
    bind = op.get_bind()
    for statement in script.split(";\n"):
        if statement.strip():
            bind.exec_driver_sql(statement)


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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.migrations")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("upgrade", help="upgrade every service's tree to head (the default)")
    wait = sub.add_parser("wait", help="wait until every tree is at head; exit 1 on timeout")
    wait.add_argument("--timeout-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.command == "wait":
        return 0 if wait_for_head(timeout_seconds=args.timeout_seconds) else 1
    upgrade_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
