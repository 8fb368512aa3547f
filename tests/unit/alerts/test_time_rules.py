"""Rules judged as time passes, the lifecycle and model re-baselines — pure, on fixed clocks.

The scheduler calls :func:`decide.on_time` at ``next_evaluation``; these tests do the same by
hand, so each time rule is seen opening (or raising, or clearing) an alert with no new change.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec

from services.alerts import decide, rules, scheduler
from services.alerts.decide import AccountState, Decision, Health
from services.alerts.routing import Person, Team, TeamChannel
from services.alerts.store import Rollout
from shared.events import SILENCE_DAYS, Band, Signals
from tests.integration.alerts.support import T0, change, make_config

CONFIG = make_config()  # the bundled rules.toml
MARIA = Person("p_maria", "Maria", email="maria@example.com", slack_user_id="U1")
DAY = timedelta(days=1)


def state(**fields: Any) -> AccountState:
    base = AccountState(
        account_id="acme", name="Acme", team=Team(csm="p_maria"), people={"p_maria": MARIA}
    )
    return replace(base, **fields)


def health(
    score: float = 55,
    band: Band = "yellow",
    *,
    as_of: datetime = T0,
    model_version: str | None = "test",
    **signals: Any,
) -> Health:
    return Health(
        as_of=as_of,
        score=score,
        band=band,
        before_score=None,
        before_band=None,
        reasons=(),
        signals=Signals(**signals),
        model_version=model_version,
    )


def stored(decision: Decision) -> list[Any]:
    """The decision's alerts as the store would give them back (with ids)."""
    return [replace(a, id=i) for i, a in enumerate(decision.alerts, 1) if a.is_open]


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# renewal_at_risk: the 90-day window and the 30-day critical level


def test_a_renewal_entering_its_window_opens_the_alert_with_no_new_change() -> None:
    renewal = (T0 + 100 * DAY).date()
    account = state(health=health(renewal_date=renewal), renewal_date=renewal)
    quiet = decide.on_time(account, [], CONFIG, T0)
    assert quiet.alerts == []
    assert quiet.set_next
    assert quiet.next_evaluation == midnight(renewal - 90 * DAY)

    opens = quiet.next_evaluation
    assert decide.on_time(account, [], CONFIG, opens - timedelta(seconds=1)).alerts == []
    opened = decide.on_time(account, [], CONFIG, opens)
    [alert] = opened.alerts
    assert (alert.rule, alert.severity, alert.state) == ("renewal_at_risk", "warning", "firing")
    assert alert.summary.startswith("renewal in 90 days")
    assert opened.notifications  # no group wait in this config: sent at once
    # next: the renewal proximity window (60 days, raises adoption alerts), then the 30 days
    assert opened.next_evaluation == midnight(renewal - 60 * DAY)

    account = replace(account, alerts=stored(opened))
    steps = decide.on_time(account, [], CONFIG, opened.next_evaluation)
    assert steps.next_evaluation == midnight(renewal - 30 * DAY)
    account = replace(account, alerts=[replace(a, id=1) for a in steps.alerts] or account.alerts)
    raised = decide.on_time(account, [], CONFIG, steps.next_evaluation)
    [alert] = raised.alerts
    assert alert.severity == "critical"
    assert "alert" in [n.kind for n in raised.notifications]  # a rise is news
    assert raised.next_evaluation == midnight(renewal + DAY)  # it leaves the window then


def test_the_renewal_window_reads_the_account_record_when_the_signals_lack_it() -> None:
    renewal = (T0 + 20 * DAY).date()
    account = state(health=health(), renewal_date=renewal)
    [alert] = decide.on_time(account, [], CONFIG, T0).alerts
    assert (alert.rule, alert.severity) == ("renewal_at_risk", "critical")


def test_a_green_account_never_gets_a_renewal_alert_by_time() -> None:
    renewal = (T0 + 10 * DAY).date()
    account = state(health=health(80, "green", renewal_date=renewal), renewal_date=renewal)
    assert decide.on_time(account, [], CONFIG, T0).alerts == []


def test_a_renewal_alert_clears_the_day_after_the_renewal() -> None:
    renewal = (T0 + 5 * DAY).date()
    account = state(health=health(renewal_date=renewal), renewal_date=renewal)
    opened = decide.on_time(account, [], CONFIG, T0)
    assert [a.rule for a in opened.alerts] == ["renewal_at_risk"]
    after = midnight(renewal + DAY)
    assert opened.next_evaluation is not None
    assert opened.next_evaluation <= after
    cleared = decide.on_time(replace(account, alerts=stored(opened)), [], CONFIG, after)
    [alert] = cleared.alerts
    assert alert.resolves_at == after + 3 * DAY  # keep_firing_for_days = 3


# ---------------------------------------------------------------------------------------------
# no_activity: the warning at 14 days, the critical step at 30


def test_silence_reaches_no_activity_then_its_critical_step() -> None:
    account = state(health=health(days_since_activity=10.0))
    first = decide.on_time(account, [], CONFIG, T0)
    assert first.alerts == []
    assert first.next_evaluation == T0 + 4 * DAY

    warned = decide.on_time(account, [], CONFIG, T0 + 4 * DAY)
    [alert] = warned.alerts
    assert (alert.rule, alert.severity) == ("no_activity", "warning")
    assert alert.summary == "no activity for 14 days"
    assert warned.next_evaluation == T0 + 20 * DAY

    later = replace(account, alerts=stored(warned))
    assert decide.on_time(later, [], CONFIG, T0 + 20 * DAY - timedelta(seconds=1)).alerts[
        0
    ].severity == ("warning")
    raised = decide.on_time(later, [], CONFIG, T0 + 20 * DAY)
    [alert] = raised.alerts
    assert (alert.severity, alert.summary) == ("critical", "no activity for 30 days")
    assert raised.next_evaluation is None  # nothing left that time alone changes


def test_a_fractional_day_count_crosses_its_step_exactly_at_the_computed_second() -> None:
    account = state(health=health(days_since_activity=13.3))
    at = decide.on_time(account, [], CONFIG, T0).next_evaluation
    assert at is not None
    assert at == T0 + timedelta(seconds=round(0.7 * 86_400))
    assert [a.rule for a in decide.on_time(account, [], CONFIG, at).alerts] == ["no_activity"]


# ---------------------------------------------------------------------------------------------
# advocacy: green for 60 days with NPS ≥ 9


def test_advocacy_fires_once_green_long_enough_and_not_for_a_low_nps() -> None:
    account = state(health=health(85, "green", days_in_band=50.0, nps_latest=10))
    first = decide.on_time(account, [], CONFIG, T0)
    assert first.alerts == []
    assert first.next_evaluation == T0 + 10 * DAY
    [alert] = decide.on_time(account, [], CONFIG, T0 + 10 * DAY).alerts
    assert (alert.rule, alert.muted) == ("advocacy", "digest")
    low = state(health=health(85, "green", days_in_band=50.0, nps_latest=6))
    assert decide.on_time(low, [], CONFIG, T0 + 10 * DAY).alerts == []


# ---------------------------------------------------------------------------------------------
# score_dropped: against the score history, and its peak leaving the window


def test_a_slow_drift_published_in_small_steps_counts_against_the_history() -> None:
    account = state(health=health(70, "yellow", as_of=T0 - 6 * DAY))
    history: list[tuple[datetime, float]] = [(T0 - 12 * DAY, 82), (T0 - 6 * DAY, 70)]
    drift = change("acme", T0, (70, "yellow"), (64, "yellow"))  # 6 points: a small step
    decision = decide.on_changes(replace(account, history=history), [drift], [], CONFIG, T0)
    [alert] = decision.alerts
    assert (alert.rule, alert.summary) == (
        "score_dropped",
        "score dropped 18 points in 14 days (82 → 64)",
    )
    # the peak of 82 leaves the 14-day window two days later: that is the next look
    assert decision.next_evaluation == T0 + 2 * DAY


def test_score_dropped_clears_by_time_when_its_peak_leaves_the_window() -> None:
    now_health = health(64, "yellow")
    history = [(T0 - 12 * DAY, 82.0), (T0, 64.0)]
    account = state(health=now_health, history=history)
    opened = decide.on_time(account, [], CONFIG, T0)
    assert [a.rule for a in opened.alerts] == ["score_dropped"]
    later = replace(account, alerts=stored(opened), history=[(T0, 64.0)])
    [alert] = decide.on_time(later, [], CONFIG, T0 + 2 * DAY).alerts
    assert alert.resolves_at == T0 + 5 * DAY  # cleared; keep_firing_for_days = 3


# ---------------------------------------------------------------------------------------------
# What time does not do


def test_time_never_opens_a_band_alert_and_a_repeated_tick_changes_nothing() -> None:
    account = state(health=health(20, "red", days_since_activity=1.0))
    first = decide.on_time(account, [], CONFIG, T0)
    assert [a.rule for a in first.alerts] == []  # red, but no fall into red: sustain only
    again = replace(account, alerts=stored(first))
    assert decide.on_time(again, [], CONFIG, T0).alerts == []


def test_the_same_tick_twice_opens_one_alert() -> None:
    account = state(health=health(days_since_activity=20.0))
    first = decide.on_time(account, [], CONFIG, T0)
    assert [a.rule for a in first.alerts] == ["no_activity"]
    second = decide.on_time(replace(account, alerts=stored(first)), [], CONFIG, T0)
    assert second.alerts == []
    assert second.notifications == []


def test_an_account_warming_up_gets_no_risk_alert_by_time() -> None:
    warming = replace(health(days_since_activity=40.0), warming_up=True)
    decision = decide.on_time(state(health=warming), [], CONFIG, T0)
    assert decision.alerts == []
    assert decision.next_evaluation is None


def test_an_account_without_health_is_judged_by_nothing() -> None:
    decision = decide.on_time(state(), [], CONFIG, T0)
    assert decision.alerts == []
    assert decision.next_evaluation is None


def test_a_change_sets_the_next_evaluation_from_its_own_time_so_a_late_batch_loses_none() -> None:
    old = change("acme", T0 - 10 * DAY, (60, "yellow"), (58, "yellow"), days_since_activity=5.0)
    decision = decide.on_changes(state(), [old], [], CONFIG, T0)
    assert decision.set_next
    assert decision.next_evaluation == T0 - 10 * DAY + 9 * DAY  # already past: due at once


# ---------------------------------------------------------------------------------------------
# Lifecycle: a churned account


def test_a_churned_account_resolves_its_open_alerts_without_a_notice_and_stops_alerting() -> None:
    fell = decide.on_changes(
        state(), [change("acme", T0, (80, "green"), (30, "red"))], [], CONFIG, T0
    )
    alerts = [replace(a, notified_at=T0, notified_severity=a.severity) for a in stored(fell)]
    assert {a.rule for a in alerts} == {"band_worsened", "score_dropped"}
    churned = state(alerts=alerts, lifecycle_stage="churned", health=health(30, "red"))
    later = T0 + DAY
    ended = decide.on_changes(churned, [], [], CONFIG, later, ownership_changed=True)
    assert {(a.state, a.resolved_by) for a in ended.alerts} == {("resolved", "lifecycle:churned")}
    assert len(ended.alerts) == 2
    assert ended.notifications == []  # no resolved notice either

    gone = replace(churned, alerts=[])
    worse = change("acme", later, (30, "red"), (5, "red"), days_since_activity=60.0)
    quiet = decide.on_changes(gone, [worse], [], CONFIG, later)
    assert (quiet.alerts, quiet.notifications) == ([], [])
    assert quiet.health is not None  # the health is still kept
    assert quiet.next_evaluation is None
    assert decide.on_time(gone, [], CONFIG, later + 30 * DAY).alerts == []


def test_the_scheduler_resolves_the_alerts_of_an_account_that_churned() -> None:
    opened = decide.on_time(state(health=health(days_since_activity=20.0)), [], CONFIG, T0)
    churned = state(alerts=stored(opened), lifecycle_stage="churned", health=health())
    decision = decide.on_time(churned, [], CONFIG, T0 + DAY)
    assert [(a.rule, a.state) for a in decision.alerts] == [("no_activity", "resolved")]
    assert (decision.set_next, decision.next_evaluation) == (True, None)


# ---------------------------------------------------------------------------------------------
# Model versions: a re-baseline


def rebased(before: Band, after: Band, score: float, *, version: str = "v2") -> Any:
    c = change("acme", T0, (60, before), (score, after))
    return msgspec.structs.replace(c, model_version=version)


def test_a_change_across_a_model_version_fires_no_band_or_score_rule() -> None:
    account = state(health=health(60, "yellow", model_version="v1"), history=[(T0 - DAY, 75.0)])
    decision = decide.on_changes(account, [rebased("yellow", "red", 20)], [], CONFIG, T0)
    assert decision.alerts == []
    assert decision.rebaselines == [decide.Rebaseline("v2", "v1", "yellow", "red")]
    assert decision.history_reset == T0
    assert decision.history == [(T0, 20)]
    assert decision.health is not None
    assert decision.health.model_version == "v2"


def test_after_the_rebaseline_the_new_model_alerts_on_its_own_moves() -> None:
    account = state(health=health(60, "yellow", model_version="v2"))
    decision = decide.on_changes(account, [rebased("yellow", "red", 20)], [], CONFIG, T0)
    assert [a.rule for a in decision.alerts] == ["band_worsened", "score_dropped"]
    assert decision.rebaselines == []


def test_a_rebaseline_keeps_an_open_band_alert_open_and_level_rules_still_apply() -> None:
    fell = decide.on_changes(
        state(health=health(60, "yellow", model_version="v1")),
        [
            msgspec.structs.replace(
                change("acme", T0 - DAY, (60, "yellow"), (20, "red")), model_version="v1"
            )
        ],
        [],
        CONFIG,
        T0 - DAY,
    )
    account = state(
        alerts=stored(fell), health=health(20, "red", model_version="v1", as_of=T0 - DAY)
    )
    red = rebased("red", "red", 15)
    silent = msgspec.structs.replace(
        red, after=msgspec.structs.replace(red.after, signals=Signals(days_since_activity=20.0))
    )
    decision = decide.on_changes(account, [silent], [], CONFIG, T0)
    assert "no_activity" in [a.rule for a in decision.alerts]  # a level: not a comparison
    assert all(a.is_open for a in decision.alerts)
    assert len(decision.rebaselines) == 1


def test_the_first_health_of_an_account_is_no_rebaseline() -> None:
    decision = decide.on_changes(state(), [rebased("yellow", "red", 20)], [], CONFIG, T0)
    assert decision.rebaselines == []
    assert [a.rule for a in decision.alerts] == ["band_worsened", "score_dropped"]


def test_a_rollout_is_one_message_to_cs_ops_with_the_counts() -> None:
    rollout = Rollout("v2", "v1", T0, accounts=120, worse=7, better=3)
    entry = scheduler.plan_rollout(
        rollout, TeamChannel("C_OPS", "ops@example.com"), CONFIG, real_now=T0
    )
    assert entry is not None
    assert (entry.key, entry.kind, entry.account_id) == ("rollout:v2", "rollout", None)
    assert (entry.channel, entry.address) == ("slack", "C_OPS")
    assert [f["address"] for f in entry.fallbacks] == ["ops@example.com"]
    assert entry.payload["title"] == "Health model v2 rolled out (replacing v1)"
    counts = "120 account(s) re-scored so far: 7 moved to a worse band, 3 to a better one"
    assert f"{counts}, 110 kept their band." in entry.payload["lines"]
    assert scheduler.plan_rollout(rollout, TeamChannel(), CONFIG, real_now=T0) is None


# ---------------------------------------------------------------------------------------------
# The pure pieces


def test_later_advances_the_day_counters_only() -> None:
    snap = health(days_since_activity=3.5, days_in_band=1.0, active_users_7d=3).snapshot()
    moved = rules.later(snap, T0, T0 + timedelta(hours=36))
    assert (moved.signals.days_since_activity, moved.signals.days_in_band) == (5.0, 2.5)
    assert (moved.score, moved.band, moved.signals.active_users_7d) == (55, "yellow", 3)
    assert rules.later(snap, T0, T0 - DAY).signals.days_since_activity == 3.5  # never backwards


def test_an_account_last_shown_active_is_never_counted_silent_by_time() -> None:
    """Scoring publishes a silence once it reaches SILENCE_DAYS (3) and the activity that ends
    it; an account shown active (2.9 days) may have been active every day since, unpublished."""
    assert SILENCE_DAYS == 3.0
    shown = health(days_since_activity=2.9)
    active = state(health=shown)
    assert rules.later(shown.snapshot(), T0, T0 + 40 * DAY).signals.days_since_activity == 2.9
    decision = decide.on_time(active, [], CONFIG, T0 + 40 * DAY)
    assert decision.alerts == []
    assert decision.next_evaluation is None
    silent = state(health=health(days_since_activity=3.0))
    assert decide.on_time(silent, [], CONFIG, T0).next_evaluation == T0 + 11 * DAY


def test_next_evaluation_is_none_when_no_rule_reads_time() -> None:
    only_band = make_config(
        rules_text='version = 1\n[[rule]]\nname = "b"\nkind = "band_worsened"\n'
        'motion = "adoption"\nseverity = "warning"\n'
    )
    snap = health(days_since_activity=3.0, days_in_band=4.0).snapshot()
    assert rules.next_evaluation(only_band.ruleset, snap, T0, rules.Context(), T0) is None
    # with a renewal, the proximity window raises the band rule's severity: a crossing
    renewing = rules.Context(renewal_date=(T0 + 200 * DAY).date())
    assert rules.next_evaluation(only_band.ruleset, snap, T0, renewing, T0) == midnight(
        (T0 + 140 * DAY).date()
    )
