"""Time-driven behaviour against the real database, on a fixed clock: group wait through the
scheduler, escalation, re-routing on an owner change, resolved notices in the thread, and the
daily digest at 09:00 local."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from devstack.sinks import SlackSink, SmtpSink
from services.alerts.delivery import DeliveryWorker
from shared.clock import FixedClock
from tests.integration.alerts.support import (
    BAND_ONLY,
    T0,
    Harness,
    account,
    change,
    make_config,
    person,
)
from tests.support import eventually

MARIA = person("p_maria", slack="U_MARIA", email="maria@example.com", manager="p_grace")
GRACE = person("p_grace", slack="U_GRACE", email="grace@example.com")
JAMES = person("p_james", slack="U_JAMES")


async def outbox(harness: Harness) -> list[dict[str, Any]]:
    async with harness.engine.connect() as conn:
        rows = await conn.execute(text("SELECT * FROM alerts.outbox ORDER BY id"))
        return [dict(r) for r in rows.mappings()]


def rules_in(row: dict[str, Any]) -> list[str]:
    return [a["rule"] for a in row["payload"]["alerts"]]


async def test_alerts_of_one_account_within_group_wait_go_out_together_when_it_ends(
    harness: Harness,
) -> None:
    harness.band_only(group_wait=30)
    await harness.feed(MARIA, account("acme"), change("acme", T0, (80, "green"), (55, "yellow")))
    harness.clock.advance(timedelta(seconds=10))
    later = change(
        "acme", T0 + timedelta(seconds=10), (55, "yellow"), (50, "yellow"), days_since_activity=20
    )
    await harness.feed(later)
    scheduler = harness.scheduler()

    harness.clock.current = T0 + timedelta(seconds=29)
    await scheduler.flush_due(harness.clock.now())
    assert await outbox(harness) == []

    harness.clock.current = T0 + timedelta(seconds=30)
    await scheduler.flush_due(harness.clock.now())
    [row] = await outbox(harness)
    assert (row["channel"], row["address"]) == ("slack", "U_MARIA")
    assert rules_in(row) == ["band_worsened", "no_activity"]

    harness.clock.advance(timedelta(hours=1))
    await scheduler.flush_due(harness.clock.now())
    assert len(await outbox(harness)) == 1  # nothing repeats before the repeat interval


async def test_an_unacknowledged_critical_alert_escalates_once_to_the_manager(
    harness: Harness,
) -> None:
    harness.band_only()
    await harness.feed(
        MARIA, GRACE, account("acme"), change("acme", T0, (80, "green"), (30, "red"))
    )
    scheduler = harness.scheduler()
    harness.clock.current = T0 + timedelta(hours=3, minutes=59)
    await scheduler.flush_due(harness.clock.now())
    assert [r["kind"] for r in await outbox(harness)] == ["alert"]

    harness.clock.current = T0 + timedelta(hours=4)
    await scheduler.flush_due(harness.clock.now())
    harness.clock.current = T0 + timedelta(hours=9)
    await scheduler.flush_due(harness.clock.now())
    rows = await outbox(harness)
    assert [(r["kind"], r["address"]) for r in rows] == [
        ("alert", "U_MARIA"),
        ("escalation", "U_GRACE"),
    ]
    assert rows[1]["payload"]["escalation_path"] == ["escalate p_maria → manager p_grace"]


async def test_an_owner_change_reroutes_open_alerts_to_the_new_owner(harness: Harness) -> None:
    harness.band_only()
    await harness.feed(
        MARIA, JAMES, account("acme"), change("acme", T0, (80, "green"), (55, "yellow"))
    )
    harness.clock.advance(timedelta(minutes=5))
    await harness.feed(account("acme", csm="p_james"))

    rows = await outbox(harness)
    assert [(r["kind"], r["address"]) for r in rows] == [("alert", "U_MARIA"), ("alert", "U_JAMES")]
    assert rows[1]["payload"]["route_path"] == ["CSM → p_james (James)"]


async def test_a_resolved_notice_replies_in_the_thread_of_the_alert(
    harness: Harness, slack: SlackSink, http: httpx.AsyncClient
) -> None:
    harness.band_only()
    await harness.feed(MARIA, account("acme"), change("acme", T0, (80, "green"), (55, "yellow")))
    harness.clock.advance(timedelta(hours=2))
    await harness.feed(change("acme", T0 + timedelta(hours=2), (55, "yellow"), (80, "green")))
    assert [r["kind"] for r in await outbox(harness)] == ["alert", "resolved"]

    worker = harness.worker(http, slack, None)
    while await worker.run_once():
        pass
    first, second = slack.delivered()
    assert "thread_ts" not in first.body
    assert second.body["thread_ts"] == first.ts
    assert "Resolved" in second.text


async def test_the_digest_goes_out_at_nine_in_the_persons_time_zone_once_a_day(
    harness: Harness, smtp: SmtpSink, http: httpx.AsyncClient
) -> None:
    harness.band_only()
    harness.clock = FixedClock(datetime(2026, 11, 23, 6, 0, tzinfo=UTC))  # 07:00 in Madrid
    madrid = person("p_maria", email="maria@example.com", tz="Europe/Madrid")
    await harness.feed(
        madrid,
        account("acme"),
        account("globex", ae="p_maria"),
        change("acme", harness.clock.now(), (80, "green"), (30, "red")),
        change("globex", harness.clock.now(), None, (92, "green"), seat_utilisation=0.95),
    )
    scheduler = harness.scheduler()
    sent_before = len(await outbox(harness))

    harness.clock.current = datetime(2026, 11, 23, 7, 59, tzinfo=UTC)
    await scheduler.send_digests(harness.clock.now())
    assert len(await outbox(harness)) == sent_before

    harness.clock.current = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 09:00 in Madrid
    await scheduler.send_digests(harness.clock.now())
    harness.clock.current = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    await scheduler.send_digests(harness.clock.now())
    digests = [r for r in await outbox(harness) if r["kind"] == "digest"]
    assert [d["key"] for d in digests] == ["digest:p_maria:2026-11-23"]
    payload = digests[0]["payload"]
    assert [a["account_id"] for a in payload["red"]] == ["acme"]
    assert [(h["rule"], h["new"]) for h in payload["held"]] == [("expansion", True)]

    worker = harness.worker(http, None, smtp)
    await eventually(lambda: _drain(worker, smtp), what="the digest delivered")
    digest_mail = [m for m in smtp.accepted() if "portfolio" in str(m.message["Subject"])]
    assert [str(m.message["Subject"]) for m in digest_mail] == [
        "[churnwatch] Your portfolio on 2026-11-23"
    ]
    body = digest_mail[0].message.get_body(("plain",))
    assert body is not None
    assert "Acme Inc" in body.get_content()

    harness.clock.current = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # the next morning
    await scheduler.send_digests(harness.clock.now())
    keys = [r["key"] for r in await outbox(harness) if r["kind"] == "digest"]
    assert keys == ["digest:p_maria:2026-11-23", "digest:p_maria:2026-11-24"]


async def _drain(worker: DeliveryWorker, smtp: SmtpSink) -> bool:
    await worker.run_once()
    return any("portfolio" in str(m.message["Subject"]) for m in smtp.accepted())


async def test_a_flapping_band_is_one_alert_resolved_by_the_scheduler_once_kept_long_enough(
    harness: Harness,
) -> None:
    kept = BAND_ONLY.replace(
        'severity_when_red = "critical"\n',
        'severity_when_red = "critical"\nkeep_firing_for_days = 1\n',
    )
    harness.config = make_config(group_wait=0, rules_text=kept)
    await harness.feed(MARIA, account("acme"), change("acme", T0, (80, "green"), (55, "yellow")))
    harness.clock.current = T0 + timedelta(hours=2)
    await harness.feed(change("acme", harness.clock.current, (55, "yellow"), (75, "green")))
    harness.clock.current = T0 + timedelta(hours=4)
    await harness.feed(change("acme", harness.clock.current, (75, "green"), (58, "yellow")))
    harness.clock.current = T0 + timedelta(hours=6)
    await harness.feed(change("acme", harness.clock.current, (58, "yellow"), (76, "green")))
    assert [r["kind"] for r in await outbox(harness)] == ["alert"]  # one alert through the flap

    scheduler = harness.scheduler()
    harness.clock.current = T0 + timedelta(hours=6 + 23)
    await scheduler.flush_due(harness.clock.now())
    assert [r["kind"] for r in await outbox(harness)] == ["alert"]
    harness.clock.current = T0 + timedelta(hours=6 + 24)
    await scheduler.flush_due(harness.clock.now())
    assert [r["kind"] for r in await outbox(harness)] == ["alert", "resolved"]
    async with harness.engine.connect() as conn:
        states = (await conn.execute(text("SELECT state FROM alerts.alerts"))).scalars().all()
    assert states == ["resolved"]
