"""The load generator's idle connections: one the server closed, or idle near the server's
keep-alive timeout, is not reused (a request written into it got no answer: S3's 599). The
tests are coroutines: a StreamReader needs the running loop (outside one, the suite's earlier
async tests have left none to take)."""

from __future__ import annotations

import asyncio

from bench.loadgen import REUSE_IDLE_SECONDS, SERVER_KEEP_ALIVE_SECONDS, Connection, take


async def test_a_connection_the_server_closed_is_not_reused() -> None:
    conn = Connection("127.0.0.1", 9)
    conn._reader = asyncio.StreamReader()
    assert take([conn], "127.0.0.1", 9, now=conn.idle_since) is conn
    conn._reader.feed_eof()  # what asyncio does when the server's FIN arrives
    assert conn.stale(conn.idle_since)  # closed, though idle for no time at all
    assert take([conn], "127.0.0.1", 9, now=conn.idle_since) is not conn


async def test_an_idle_connection_is_reused_up_to_the_limit_and_not_past_it() -> None:
    assert REUSE_IDLE_SECONDS < SERVER_KEEP_ALIVE_SECONDS
    conn = Connection("127.0.0.1", 9)
    conn._reader = asyncio.StreamReader()  # open, nothing received
    at_limit = conn.idle_since + REUSE_IDLE_SECONDS
    assert take([conn], "127.0.0.1", 9, now=at_limit) is conn
    other = take([conn], "127.0.0.1", 9, now=at_limit + 0.001)
    assert other is not conn
    assert conn._reader is None  # closed


def test_the_keep_alive_is_the_services_own() -> None:
    import inspect

    import shared.runner

    # the generator's limit is derived from the services' server setting
    assert f"timeout_keep_alive={SERVER_KEEP_ALIVE_SECONDS:g}" in inspect.getsource(shared.runner)
