"""People's hours and attention against the real database, the Slack-compatible sink and a
real SMTP server, on an injected clock: a non-critical alert at night waits for the morning
(a critical one does not), a digest-only person gets no direct message, an alert past the
daily budget lands in the digest with a count, and the retention purge removes old rows in
bounded batches and counts them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
from prometheus_client import REGISTRY
from sqlalchemy import text

from devstack.sinks import SlackSink, SmtpSink
from services.alerts import retention
from services.alerts.delivery import DeliveryWorker
from shared.clock import FixedClock
from shared.events import PersonRecord, WorkingHours
from tests.integration.alerts.support import (
    Harness,
    account,
    change,
    person,
)

NIGHT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # Tuesday, 04:00 in Madrid
MORNING = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # 09:00 in Madrid
OFFICE = WorkingHours(days=["mon", "tue", "wed", "thu", "fri"], start="09:00", end="18:00")


def maria(**settings: Any) -> PersonRecord:
    record = person("p_maria", slack="U_MARIA", email="maria@example.com", tz="Europe/Madrid")
    return msgspec.structs.replace(record, working_hours=OFFICE, **settings)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def outbox(harness: Harness) -> list[dict[str, Any]]:
    async with harness.engine.connect() as conn:
        rows = await conn.execute(text("SELECT * FROM alerts.outbox ORDER BY id"))
        return [dict(r) for r in rows.mappings()]


async def drain(worker: DeliveryWorker) -> None:
    while await worker.run_once():
        pass


def worker_for(
    harness: Harness, http: httpx.AsyncClient, slack: SlackSink, smtp: SmtpSink
) -> DeliveryWorker:
    return harness.worker(http, slack, smtp, service_clock=True)


async def test_a_warning_at_night_waits_for_working_hours_and_a_critical_one_goes_now(
    harness: Harness, slack: SlackSink, smtp: SmtpSink, http: httpx.AsyncClient
) -> None:
    harness.band_only()
    harness.clock = FixedClock(NIGHT)
    deferred = metric("churnwatch_alerts_deferred_total", reason="working_hours")
    await harness.feed(
        maria(),
        account("acme"),
        account("globex"),
        change("acme", NIGHT, (80, "green"), (55, "yellow")),  # warning
        change("globex", NIGHT, (80, "green"), (30, "red")),  # critical
    )
    rows = {r["account_id"]: r for r in await outbox(harness)}
    assert rows["acme"]["not_before"] == MORNING
    assert rows["globex"]["not_before"] is None
    assert metric("churnwatch_alerts_deferred_total", reason="working_hours") == deferred + 1

    worker = worker_for(harness, http, slack, smtp)
    await drain(worker)
    assert [r.key.split(":")[1] for r in slack.delivered() if r.key] == ["globex"]

    harness.clock.current = MORNING - timedelta(seconds=1)
    await drain(worker)
    assert len(slack.delivered()) == 1

    harness.clock.current = MORNING
    await drain(worker)
    assert [r.key.split(":")[1] for r in slack.delivered() if r.key] == ["globex", "acme"]


async def test_a_digest_only_person_gets_no_direct_message_but_the_alert_in_the_digest(
    harness: Harness, slack: SlackSink, smtp: SmtpSink, http: httpx.AsyncClient
) -> None:
    harness.band_only()
    harness.clock = FixedClock(NIGHT)
    await harness.feed(
        maria(alert_channel="digest"),
        account("acme"),
        change("acme", NIGHT, (80, "green"), (30, "red")),  # critical: still only the digest
    )
    assert await outbox(harness) == []

    harness.clock.current = MORNING  # 09:00 in Madrid: the digest
    await harness.scheduler().send_digests(harness.clock.now())
    [row] = await outbox(harness)
    assert row["kind"] == "digest"
    assert [(h["account_id"], h["rule"]) for h in row["payload"]["held"]] == [
        ("acme", "band_worsened")
    ]
    await drain(worker_for(harness, http, slack, smtp))
    assert slack.delivered() == []
    [mail] = smtp.accepted()
    assert "portfolio" in str(mail.message["Subject"])
    assert "Acme Inc" in mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_past_the_daily_budget_alerts_go_to_the_digest_with_a_count(
    harness: Harness, slack: SlackSink, smtp: SmtpSink, http: httpx.AsyncClient
) -> None:
    harness.band_only()
    at = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # 11:00 in Madrid: working hours
    harness.clock = FixedClock(at)
    over = metric("churnwatch_alerts_to_digest_total", reason="over_budget")
    accounts = ["acme", "globex", "initech", "umbrella"]
    await harness.feed(maria(daily_alert_budget=2), *(account(a) for a in accounts))
    for minute, name in enumerate(accounts):
        harness.clock.current = at + timedelta(minutes=minute)
        await harness.feed(change(name, harness.clock.now(), (80, "green"), (55, "yellow")))
    direct = [r["account_id"] for r in await outbox(harness)]
    assert direct == ["acme", "globex"]  # the budget, exactly
    assert metric("churnwatch_alerts_to_digest_total", reason="over_budget") == over + 2

    harness.clock.current = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)  # 09:00 next day
    await harness.scheduler().send_digests(harness.clock.now())
    [digest] = [r for r in await outbox(harness) if r["kind"] == "digest"]
    assert digest["payload"]["over_budget"] == 2
    assert sorted(h["account_id"] for h in digest["payload"]["held"]) == ["initech", "umbrella"]
    await drain(worker_for(harness, http, slack, smtp))
    [mail] = [m for m in smtp.accepted() if "portfolio" in str(m.message["Subject"])]
    body = mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "and 2 more risk alerts past your daily budget" in body

    # Shown once: the next digest does not list them again.
    harness.clock.current = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    await harness.scheduler().send_digests(harness.clock.now())
    digests = [r for r in await outbox(harness) if r["kind"] == "digest"]
    assert [d["payload"].get("over_budget") for d in digests[1:]] in ([], [None])


async def test_the_purge_removes_old_rows_in_bounded_batches_and_counts_them(
    harness: Harness,
) -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    policy = retention.Retention(
        resolved_alerts=timedelta(days=90),
        outbox=timedelta(days=30),
        used_links=timedelta(days=1),
        history=timedelta(days=30),
        batch_size=2,
        max_batches=1,
    )
    async with harness.engine.begin() as conn:
        for i, resolved_at in enumerate([now - timedelta(days=d) for d in (91, 92, 93, 89)]):
            await conn.execute(
                text(
                    "INSERT INTO alerts.alerts (account_id, rule, motion, severity, state, "
                    "summary, delivery, send_resolved, route, started_at, updated_at, "
                    "notified_to, resolve_notice_due, escalation_path, resolved_at) VALUES "
                    "(:a, 'band_worsened', 'adoption', 'warning', 'resolved', '', 'immediate', "
                    "true, '{}', :t, :t, '[]', false, '[]', :t)"
                ),
                {"a": f"acct{i}", "t": resolved_at},
            )
        await conn.execute(  # an open alert, however old, stays
            text(
                "INSERT INTO alerts.alerts (account_id, rule, motion, severity, state, summary, "
                "delivery, send_resolved, route, started_at, updated_at, notified_to, "
                "resolve_notice_due, escalation_path) VALUES ('open', 'band_worsened', "
                "'adoption', 'warning', 'firing', '', 'immediate', true, '{}', :t, :t, '[]', "
                "false, '[]')"
            ),
            {"t": now - timedelta(days=400)},
        )
        for key, state, age in [
            ("old-sent", "sent", 31),
            ("new-sent", "sent", 29),
            ("old-pending", "pending", 60),
        ]:
            await conn.execute(
                text(
                    "INSERT INTO alerts.outbox (key, kind, channel, address, fallbacks, payload, "
                    "message_id, state, next_attempt_at, created_at) VALUES (:k, 'alert', "
                    "'slack', 'U1', '[]', '{}', :k, :s, :t, :t)"
                ),
                {"k": key, "s": state, "t": now - timedelta(days=age)},
            )
        await conn.execute(
            text(
                "INSERT INTO alerts.used_links (digest, used_at, expires_at) VALUES "
                "('\\x01', :old, :expired), ('\\x02', :old, :valid)"
            ),
            {"old": now - timedelta(days=9), "expired": now - timedelta(days=2), "valid": now},
        )
    purged_before = metric("churnwatch_alerts_purged_rows_total", table="alerts")

    first = await retention.purge(harness.engine, policy, now=now, real_now=now)
    assert first["alerts"] == 2  # bounded: one batch of two this pass
    assert first["outbox"] == 1
    assert first["used_links"] == 1
    second = await retention.purge(harness.engine, policy, now=now, real_now=now)
    assert second["alerts"] == 1
    assert sum(second.values()) == 1
    assert metric("churnwatch_alerts_purged_rows_total", table="alerts") == purged_before + 3

    async with harness.engine.connect() as conn:
        left = await conn.execute(text("SELECT account_id FROM alerts.alerts ORDER BY 1"))
        assert [r[0] for r in left] == ["acct3", "open"]
        keys = await conn.execute(text("SELECT key FROM alerts.outbox ORDER BY 1"))
        assert [r[0] for r in keys] == ["new-sent", "old-pending"]
        links = await conn.execute(text("SELECT count(*) FROM alerts.used_links"))
        assert links.scalar() == 1
