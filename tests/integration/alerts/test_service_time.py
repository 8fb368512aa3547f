"""The alerts service run for real (Kafka, PostgreSQL, the Slack-compatible sink) on a scaled
clock: a renewal window opens while no new health change arrives, and the renewal alert is
delivered all the same — the scheduler judged the account's rules as time passed."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import msgspec

from devstack.sinks import SlackRequest, SlackSink
from tests.integration.alerts.support import account, change, person
from tests.integration.alerts.test_service import Stack, _alerts, metric, producer, stack
from tests.support import eventually

__all__ = ["producer", "stack"]  # the fixtures, imported for their names

SIM_START = datetime(2026, 11, 23, 23, 59, tzinfo=UTC)  # the simulated clock's origin
SPEED = 2.0  # simulated seconds per real second: midnight comes 30 real seconds in
MIDNIGHT = datetime(2026, 11, 24, tzinfo=UTC)


async def test_a_renewal_window_opening_with_no_new_change_is_delivered(
    stack: Stack, slack: SlackSink
) -> None:
    renewal = (MIDNIGHT + timedelta(days=90)).date()  # 91 days away until midnight
    quiet = msgspec.structs.replace(
        change("acme", SIM_START - timedelta(minutes=1), (62, "yellow"), (55, "yellow")),
        change_id="acme-quiet",
    )
    anchor = time.time()
    clock = {
        "CLOCK_SIM_START": SIM_START.isoformat(),
        "CLOCK_REAL_ANCHOR": str(anchor),
        "CLOCK_SPEED": str(SPEED),
        "ALERTS_TICK_SECONDS": "0.2",
    }
    async with stack.service(**clock) as alerts:
        await stack.publish(
            [person("p_maria", slack="U_MARIA"), account("acme", renewal=renewal), quiet]
        )
        evaluated = 'churnwatch_alerts_health_changes_total{outcome="evaluated"}'
        await eventually(lambda: metric(alerts.url, evaluated), what="the change consumed")
        simulated = SIM_START + timedelta(seconds=(time.time() - anchor) * SPEED)
        assert simulated < MIDNIGHT - timedelta(seconds=5), "the service took too long to start"
        assert slack.delivered() == []  # 91 days to the renewal: nothing yet
        assert await _alerts(alerts.url) == []

        [posted] = await eventually(
            lambda: _delivered(slack), timeout_s=60, what="the renewal alert, after midnight"
        )
        assert posted.channel == "U_MARIA"
        assert "renewal in 90 days" in json.dumps(posted.body, ensure_ascii=False)
        [alert] = await _alerts(alerts.url)
        assert alert["rule"] == "renewal_at_risk"
        assert datetime.fromisoformat(alert["started_at"]) >= MIDNIGHT
        assert await metric(alerts.url, evaluated) == 1.0  # still the one change: time did it
        opened = 'churnwatch_alerts_time_opened_total{rule="renewal_at_risk"}'
        assert await metric(alerts.url, opened) == 1.0
    assert "rules judged as time passed" in alerts.logs()


async def _delivered(slack: SlackSink) -> list[SlackRequest]:
    return slack.delivered()
