"""Rules judged as time passes, the lifecycle and model rollouts, against the real database on
a fixed clock: the scheduler's tick opens a renewal alert with no new change (once, however
many replicas tick), a churned account's alerts resolve, and a model rollout is one message to
CS ops."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import text

from devstack.sinks import SlackSink
from services.alerts import scheduler as scheduler_module
from services.alerts.routing import TeamChannel
from tests.integration.alerts.support import (
    T0,
    Harness,
    account,
    change,
    make_config,
    person,
)

MARIA = person("p_maria", slack="U_MARIA", email="maria@example.com")
RENEWAL = (T0 + timedelta(days=93)).date()  # its 90-day window opens in 3 days, at 00:00 UTC
WINDOW_OPENS = datetime(2026, 11, 26, tzinfo=UTC)


async def rows(harness: Harness, query: str, **params: Any) -> list[dict[str, Any]]:
    async with harness.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(text(query), params)).mappings()]


async def alerts(harness: Harness) -> list[dict[str, Any]]:
    return await rows(harness, "SELECT * FROM alerts.alerts ORDER BY id")


async def outbox(harness: Harness) -> list[dict[str, Any]]:
    return await rows(harness, "SELECT * FROM alerts.outbox ORDER BY id")


async def about(harness: Harness, account_id: str) -> list[dict[str, Any]]:
    """The outbox rows about one account (not the digests)."""
    return await rows(
        harness, "SELECT * FROM alerts.outbox WHERE account_id = :a ORDER BY id", a=account_id
    )


async def next_eval(harness: Harness, account_id: str) -> datetime | None:
    [row] = await rows(
        harness,
        "SELECT next_eval_at FROM alerts.account_health WHERE account_id = :a",
        a=account_id,
    )
    return row["next_eval_at"]  # type: ignore[no-any-return]


def sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_renewal_window_opening_with_no_new_change_opens_the_alert_once_and_delivers(
    harness: Harness, slack: SlackSink, http: httpx.AsyncClient
) -> None:
    await harness.feed(
        MARIA,
        account("acme", renewal=RENEWAL),
        change("acme", T0, (62, "yellow"), (55, "yellow"), days_since_activity=1.0),
    )
    assert await alerts(harness) == []  # 93 days to the renewal: not yet
    assert await next_eval(harness, "acme") == WINDOW_OPENS

    replicas = [harness.scheduler(), harness.scheduler()]
    harness.clock.current = WINDOW_OPENS - timedelta(seconds=1)
    assert await replicas[0].evaluate_time(harness.clock.now()) == 0  # not due yet
    opened_before = sample("churnwatch_alerts_time_opened_total", rule="renewal_at_risk")

    harness.clock.current = WINDOW_OPENS
    await asyncio.gather(*(r.tick() for r in replicas))  # two replicas, one tick each
    await asyncio.gather(*(r.tick() for r in replicas))  # and the same tick again
    [alert] = await alerts(harness)
    assert (alert["rule"], alert["severity"], alert["state"]) == (
        "renewal_at_risk",
        "warning",
        "firing",
    )
    assert alert["started_at"] == WINDOW_OPENS
    assert sample("churnwatch_alerts_time_opened_total", rule="renewal_at_risk") == (
        opened_before + 1
    )
    # next: the proximity window (60 days), which raises adoption alerts
    assert await next_eval(harness, "acme") == datetime(2026, 12, 26, tzinfo=UTC)

    [row] = await outbox(harness)
    assert (row["kind"], row["address"]) == ("alert", "U_MARIA")
    worker = harness.worker(http, slack, None)
    while await worker.run_once():
        pass
    [posted] = slack.delivered()
    assert posted.channel == "U_MARIA"
    said = json.dumps(posted.body, ensure_ascii=False)
    assert "renewal in 90 days" in said


async def test_the_30_day_critical_level_and_no_activity_critical_step_come_by_time(
    harness: Harness,
) -> None:
    await harness.feed(
        MARIA,
        account("renews", renewal=(T0 + timedelta(days=40)).date()),  # Jan 2, 2027
        account("quiet"),
        change("renews", T0, (62, "yellow"), (55, "yellow"), days_since_activity=1.0),
        change("quiet", T0, (68, "yellow"), (65, "yellow"), days_since_activity=20.0),
    )
    assert {(a["account_id"], a["rule"], a["severity"]) for a in await alerts(harness)} == {
        ("renews", "renewal_at_risk", "warning"),
        ("quiet", "no_activity", "warning"),
    }
    scheduler = harness.scheduler()
    harness.clock.current = datetime(2026, 12, 3, tzinfo=UTC)  # 30 days to the renewal
    assert await scheduler.evaluate_time(harness.clock.now()) == 1
    harness.clock.current = T0 + timedelta(days=10)  # 30 days without activity
    assert await scheduler.evaluate_time(harness.clock.now()) == 1
    assert {(a["account_id"], a["rule"], a["severity"]) for a in await alerts(harness)} == {
        ("renews", "renewal_at_risk", "critical"),
        ("quiet", "no_activity", "critical"),
    }
    assert await next_eval(harness, "quiet") is None  # no step left


async def test_a_churned_account_resolves_its_alerts_at_once_and_alerts_no_more(
    harness: Harness,
) -> None:
    harness.config = make_config()
    await harness.feed(MARIA, account("acme"), change("acme", T0, (80, "green"), (30, "red")))
    assert {a["state"] for a in await alerts(harness)} == {"firing"}
    sent = len(await about(harness, "acme"))
    resolved_before = sample("churnwatch_alerts_lifecycle_resolved_total", rule="band_worsened")

    harness.clock.advance(timedelta(hours=1))
    churned = msgspec.structs.replace(
        account("acme"), lifecycle_stage="churned", updated_at=T0 + timedelta(hours=1)
    )
    await harness.feed(churned)
    assert {(a["state"], a["resolved_by"]) for a in await alerts(harness)} == {
        ("resolved", "lifecycle:churned")
    }
    assert len(await about(harness, "acme")) == sent  # no resolved notice: it stopped alerting
    assert sample("churnwatch_alerts_lifecycle_resolved_total", rule="band_worsened") == (
        resolved_before + 1
    )

    harness.clock.advance(timedelta(days=1))
    worse = change(
        "acme", T0 + timedelta(days=1), (30, "red"), (10, "red"), days_since_activity=40.0
    )
    await harness.feed(worse)
    await harness.scheduler().tick()
    assert all(a["state"] == "resolved" for a in await alerts(harness))
    assert len(await about(harness, "acme")) == sent
    assert await next_eval(harness, "acme") is None


async def test_a_model_rollout_rebaselines_every_account_and_sends_one_summary(
    harness: Harness, slack: SlackSink, http: httpx.AsyncClient
) -> None:
    harness.config = make_config(team=TeamChannel("C_TEAM", None))
    ids = ("a1", "a2", "a3")
    await harness.feed(
        MARIA,
        *(account(a) for a in ids),
        *(change(a, T0, (80, "green"), (75, "green")) for a in ids),
    )
    later = T0 + timedelta(hours=1)
    harness.clock.current = later

    def v2(account_id: str, after: tuple[float, Any]) -> Any:
        return msgspec.structs.replace(
            change(account_id, later, (75, "green"), after), model_version="v2"
        )

    await harness.feed(v2("a1", (30, "red")), v2("a2", (50, "yellow")), v2("a3", (90, "green")))
    assert await alerts(harness) == []  # the model moved them, not the customers
    scheduler = harness.scheduler()
    await scheduler.tick()
    assert await outbox(harness) == []  # counted; summarised after the wait (1 hour)

    harness.clock.current = later + timedelta(hours=1)
    await asyncio.gather(scheduler.tick(), harness.scheduler().tick())
    await scheduler.tick()
    [row] = await outbox(harness)
    assert (row["kind"], row["key"], row["address"]) == ("rollout", "rollout:v2", "C_TEAM")
    payload = row["payload"]
    assert (payload["accounts"], payload["worse"], payload["better"]) == (3, 2, 0)
    assert payload["title"] == "Health model v2 rolled out (replacing test)"
    [rollout] = await rows(harness, "SELECT * FROM alerts.model_rollouts")
    assert rollout["summarized_at"] == later + timedelta(hours=1)
    worker = harness.worker(http, slack, None)
    while await worker.run_once():
        pass
    [posted] = slack.delivered()
    assert posted.channel == "C_TEAM"
    said = json.dumps(posted.body, ensure_ascii=False)
    assert "Health model v2 rolled out (replacing test)" in said
    assert "3 account(s) re-scored so far: 2 moved to a worse band" in said

    harness.clock.advance(timedelta(hours=1))  # the new model's own moves alert again
    await harness.feed(
        msgspec.structs.replace(
            change("a3", harness.clock.now(), (90, "green"), (20, "red")), model_version="v2"
        )
    )
    assert {a["rule"] for a in await alerts(harness)} == {"band_worsened", "score_dropped"}
    assert sample("churnwatch_alerts_rebaselined_total", model_version="v2") >= 3


async def test_a_tick_judges_at_most_its_pages_and_leaves_the_rest_due(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler_module, "TIME_ACCOUNTS_PER_PASS", 2)
    monkeypatch.setattr(scheduler_module, "PASSES_PER_TICK", 2)  # 4 accounts a tick
    ids = [f"acct{i}" for i in range(5)]
    await harness.feed(
        MARIA,
        *(account(a, renewal=RENEWAL) for a in ids),
        *(change(a, T0, (62, "yellow"), (55, "yellow")) for a in ids),
    )
    scheduler = harness.scheduler()
    harness.clock.current = WINDOW_OPENS
    assert await scheduler.evaluate_time(harness.clock.now()) == 4  # the limit, exactly
    assert len(await alerts(harness)) == 4
    due = await rows(
        harness,
        "SELECT account_id FROM alerts.account_health WHERE next_eval_at <= :now",
        now=WINDOW_OPENS,
    )
    assert len(due) == 1  # still due: the next tick
    assert await scheduler.evaluate_time(harness.clock.now()) == 1
    assert {a["account_id"] for a in await alerts(harness)} == set(ids)
    assert await scheduler.evaluate_time(harness.clock.now()) == 0
