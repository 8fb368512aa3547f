"""Connecting: the asyncpg pool every query in the store runs on."""

from __future__ import annotations

import asyncpg


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://…`` (SQLAlchemy's form, used in DATABASE_URL) → asyncpg's."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def create_pool(url: str, *, size: int, application_name: str) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        asyncpg_dsn(url),
        min_size=1,
        max_size=size,
        server_settings={"application_name": application_name},
        command_timeout=120,
    )
    return pool
