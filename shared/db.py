"""Database plumbing: the SQLAlchemy 2 async engine over asyncpg, sessions, a readiness ping.

Services write set-based statements through SQLAlchemy Core (``insert(...).on_conflict_do_update``
over many rows) or, on the hottest paths, through the raw asyncpg connection — never one ORM
round trip per event. Each service owns its tables in its own PostgreSQL schema (``scoring``,
``alerts``), created and changed only by its Alembic migrations (see ``shared.migrations``).
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from shared.settings import DatabaseSettings

DATABASE_GONE: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # asyncpg's own state errors on a connection PostgreSQL is cutting (a restart's fast
    # shutdown): "cannot switch to state 15; another operation is in progress".
    asyncpg.InternalClientError,
)
"""What a background loop on raw asyncpg catches to wait and try again: the database, or the
connection to it, failed — a later attempt may succeed."""


def create_engine(settings: DatabaseSettings, *, application_name: str) -> AsyncEngine:
    return create_engine_for_url(
        settings.database_url.get_secret_value(),
        application_name=application_name,
        pool_size=settings.database_pool_size,
    )


def create_engine_for_url(
    url: str, *, application_name: str = "churnwatch", pool_size: int = 5
) -> AsyncEngine:
    return _create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={
            "server_settings": {"application_name": application_name},
            "timeout": 10,
            "command_timeout": 60,
        },
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> bool:
    """A readiness check: one round trip to the database."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


_BAD_DATA = (asyncpg.exceptions.DataError, asyncpg.exceptions._base.DataError, sa_exc.DataError)


def is_bad_data(error: BaseException) -> bool:
    """Whether a failure came from the data a statement was given, not from the database being
    unavailable: a value the column type cannot hold (asyncpg refuses to encode it) or a data
    exception raised by PostgreSQL (SQLSTATE class 22). Retrying such a statement fails the
    same way forever; consumers isolate and dead-letter the record instead."""
    seen: BaseException | None = error
    for _ in range(10):  # the cause chain is short; bounded anyway
        if seen is None:
            return False
        if isinstance(seen, _BAD_DATA):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
