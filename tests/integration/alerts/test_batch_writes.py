"""The consumer batch's writes (one statement per table, one array per column) against the real
database: new change ids are told from seen ones, the latest health wins and reads back whole
(JSON columns, nulls), a score point already stored is kept."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts import store
from services.alerts.decide import Health
from services.alerts.messages import Move
from shared.events import Signals
from tests.integration.alerts.support import T0


def health(minutes: int, score: float, **fields: object) -> Health:
    given: dict[str, object] = {
        "before_score": None,
        "before_band": None,
        "reasons": (),
        "change_id": f"c{minutes}",
    }
    return Health(
        as_of=T0 + timedelta(minutes=minutes),
        score=score,
        band="red" if score < 40 else "green",
        **(given | fields),  # type: ignore[arg-type]
    )


async def test_claimed_changes_are_new_once(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        first = await store.claim_changes(conn, [("c1", "a1"), ("c2", "a2")])
        again = await store.claim_changes(conn, [("c2", "a2"), ("c3", "a1")])
        none = await store.claim_changes(conn, [])
    assert (first, again, none) == ({"c1", "c2"}, {"c3"}, set())


async def test_the_latest_health_wins_and_reads_back_whole(engine: AsyncEngine) -> None:
    rich = health(
        10,
        12.5,
        before_score=55.0,
        before_band="green",
        reasons=("4 urgent tickets", 'a "quoted" reason'),
        days_since_activity=3.5,
        moved_by=(Move("tickets", -10.0, ("opened 0 → 4",)),),
        signals=Signals(high_urgent_opened_7d=4),
        warming_up=True,
        model_version="v2",
    )
    async with engine.begin() as conn:
        await store.upsert_health(conn, [("a1", rich), ("a2", health(5, 80.0))])
        # older than what is stored: kept as it was; newer: replaces, nulls included
        await store.upsert_health(conn, [("a1", health(9, 99.0)), ("a2", health(6, 30.0))])
        got = await store.load_health(conn, ["a1", "a2", "a3"])
    assert got["a1"] == rich
    assert got["a2"] == health(6, 30.0)
    assert "a3" not in got


async def test_a_stored_score_point_is_kept(engine: AsyncEngine) -> None:
    at = T0 + timedelta(hours=1)
    async with engine.begin() as conn:
        await store.insert_history(conn, [("a1", at, 50.0), ("a1", T0, 70.0)])
        await store.insert_history(conn, [("a1", at, 10.0), ("a2", at, 20.0)])
        await store.insert_history(conn, [])
        rows = await conn.execute(
            text("SELECT account_id, as_of, score FROM alerts.score_history ORDER BY 1, 2")
        )
        got = [tuple(r) for r in rows]
    assert got == [("a1", T0, 70.0), ("a1", at, 50.0), ("a2", at, 20.0)]
