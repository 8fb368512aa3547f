"""Database plumbing: the SQLAlchemy 2 async engine over asyncpg, a readiness ping, and the two
predicates every service classifies database errors with.

The rule for database access (docs/architecture.md, "Database access"): every statement of a
service lives in its store (``services/<name>/store/``); the rest of the service calls store
functions with typed rows. Statements are set-based — one per table per batch — never one ORM
round trip per event. A store uses SQLAlchemy Core on an ``AsyncConnection`` (alerts) or raw
asyncpg on a pool (scoring, whose hot path needs ``COPY`` and prepared statements); both are
PostgreSQL over asyncpg, and both raise errors :func:`database_gone` and :func:`is_bad_data`
classify. Each service owns its tables in its own PostgreSQL schema (``scoring``, ``alerts``),
created and changed only by its Alembic migrations (see ``shared.migrations``).
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from shared.settings import DatabaseSettings

DATABASE_GONE: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # asyncpg's own state errors on a connection PostgreSQL is cutting (a restart's fast
    # shutdown): "cannot switch to state 15; another operation is in progress".
    asyncpg.InternalClientError,
    # SQLAlchemy wraps the driver's errors (its DBAPIError family) and has its own pool timeout.
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
)


def database_gone(error: BaseException) -> bool:
    """Whether a failure is the database, or the connection to it, failing — so a later
    attempt may succeed and a background worker waits and tries again. The same answer for raw
    asyncpg and for SQLAlchemy (which wraps asyncpg's errors); the cause chain is searched."""
    return _in_chain(error, DATABASE_GONE)


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://…`` (SQLAlchemy's form, used in DATABASE_URL) → asyncpg's."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


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
    return _in_chain(error, _BAD_DATA)


def _in_chain(error: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    seen: BaseException | None = error
    for _ in range(10):  # the cause chain is short; bounded anyway
        if seen is None:
            return False
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
