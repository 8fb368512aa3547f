"""The migration gate every Deployment's init container runs (``python -m shared.migrations
wait``): a new version of a service starts only once the migration Job brought the database to
the head its code expects."""

from __future__ import annotations

import asyncio

import asyncpg

from shared import migrations


def test_gate_holds_while_the_database_is_behind_and_opens_after_the_upgrade(
    database_url: str,
) -> None:
    assert migrations.pending(database_url), "a fresh database is behind every tree"
    assert not migrations.wait_for_head(database_url, timeout_seconds=0.3, interval_seconds=0.1)

    migrations.upgrade_all(database_url)

    assert migrations.pending(database_url) == {}
    assert migrations.wait_for_head(database_url, timeout_seconds=5, interval_seconds=0.1)


def test_gate_waits_rather_than_crashes_while_the_database_does_not_answer() -> None:
    unreachable = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    assert not migrations.wait_for_head(unreachable, timeout_seconds=0.3, interval_seconds=0.1)


def test_gate_lets_a_rolled_back_version_start_on_a_database_a_newer_release_migrated(
    database_url: str,
) -> None:
    migrations.upgrade_all(database_url)
    newer = "f00dfeed0001"  # a revision only a newer release's tree would know

    async def stamp_newer() -> None:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            for service in migrations.services_with_migrations():
                await conn.execute(
                    f'UPDATE "{service}".alembic_version SET version_num = $1',  # noqa: S608 - our own schema names
                    newer,
                )
        finally:
            await conn.close()

    asyncio.run(stamp_newer())

    assert migrations.pending(database_url) == {}
    assert migrations.wait_for_head(database_url, timeout_seconds=5, interval_seconds=0.1)
