"""Timing semantics of alerts, with a fixed clock: group wait, repeat interval, severity rise,
inhibition, silences, snooze, escalation and resolved notices."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.alerts import lifecycle
from services.alerts.lifecycle import Alert, Matcher, Plan, Silence, Timing
from services.alerts.routing import Recipient, Route
from services.alerts.rules import Severity

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
TIMING = Timing(
    group_wait=timedelta(seconds=30),
    repeat_interval=timedelta(hours=24),
    escalate_after=timedelta(hours=4),
)
MARIA = Recipient(name="Maria", person_id="p_maria", slack="U1", email="maria@example.com")
GRACE = Recipient(name="Grace", person_id="p_grace", slack="U2", email="grace@example.com")
TO_MARIA = Route((MARIA,), ("CSM → p_maria (Maria)",))
ESCALATION = Route((GRACE,), ("escalate p_maria → manager p_grace",))


def new_alert(
    rule: str = "score_dropped",
    severity: Severity = "warning",
    at: datetime = T0,
    alert_id: int = 1,
    account: str = "acme",
) -> Alert:
    return Alert(
        id=alert_id,
        account_id=account,
        rule=rule,
        motion="adoption",
        severity=severity,
        state="firing",
        summary="",
        started_at=at,
        updated_at=at,
        route=TO_MARIA,
        pending_since=at,
    )


def plan_at(alerts: list[Alert], now: datetime, silences: list[Silence] | None = None) -> Plan:
    return lifecycle.plan(alerts, silences or [], TIMING, now, lambda _a: ESCALATION)


def kinds(result: Plan) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(n.kind, n.recipient.key, n.rules) for n in result.notifications]


# -- group wait ----------------------------------------------------------------------------------


def test_a_new_alert_waits_group_wait_before_it_is_sent() -> None:
    result = plan_at([new_alert()], T0 + timedelta(seconds=29))
    assert result.notifications == []
    assert result.alerts[0].wake_at == T0 + timedelta(seconds=30)


def test_alerts_of_one_account_within_group_wait_go_out_as_one_message() -> None:
    first = new_alert("score_dropped", at=T0, alert_id=1)
    second = new_alert("ticket_surge", at=T0 + timedelta(seconds=20), alert_id=2)
    assert plan_at([first, second], T0 + timedelta(seconds=25)).notifications == []
    result = plan_at([first, second], T0 + timedelta(seconds=30))
    assert kinds(result) == [("alert", "p_maria", ("score_dropped", "ticket_surge"))]
    assert all(a.notified_at == T0 + timedelta(seconds=30) for a in result.alerts)


def test_with_no_group_wait_an_alert_is_sent_at_once() -> None:
    result = lifecycle.plan([new_alert()], [], replace(TIMING, group_wait=timedelta(0)), T0, None)  # type: ignore[arg-type]
    assert kinds(result) == [("alert", "p_maria", ("score_dropped",))]


# -- repeat interval and severity rise -------------------------------------------------------


def notified(alert: Alert, at: datetime) -> Alert:
    return plan_at([alert], at).alerts[0]


def test_an_unchanged_alert_is_not_repeated_before_the_repeat_interval() -> None:
    sent = notified(new_alert(), T0 + timedelta(seconds=30))
    assert sent.wake_at == T0 + timedelta(seconds=30) + timedelta(hours=24)
    later = T0 + timedelta(hours=23)
    assert plan_at([sent], later).notifications == []


def test_an_unchanged_alert_repeats_once_the_repeat_interval_passed() -> None:
    sent = notified(new_alert(), T0 + timedelta(seconds=30))
    repeat_at = T0 + timedelta(seconds=30) + timedelta(hours=24)
    assert plan_at([sent], repeat_at + timedelta(seconds=29)).notifications == []
    assert kinds(plan_at([sent], repeat_at + timedelta(seconds=30))) == [
        ("alert", "p_maria", ("score_dropped",))
    ]


def test_a_severity_rise_is_sent_at_the_next_flush_despite_the_repeat_interval() -> None:
    sent = notified(new_alert(severity="warning"), T0 + timedelta(seconds=30))
    rise_at = T0 + timedelta(minutes=10)
    [risen] = lifecycle.apply_verdicts(
        {"score_dropped": sent},
        [lifecycle_verdict("score_dropped", "fire", "critical")],
        RULES,
        lambda _m: TO_MARIA,
        "acme",
        rise_at,
    )
    assert risen.severity == "critical"
    assert plan_at([risen], rise_at + timedelta(seconds=29)).notifications == []
    result = plan_at([risen], rise_at + timedelta(seconds=30))
    assert [(n.kind, n.severity) for n in result.notifications] == [("alert", "critical")]


def test_a_severity_fall_is_not_news() -> None:
    sent = notified(new_alert(severity="critical"), T0 + timedelta(seconds=30))
    [fallen] = lifecycle.apply_verdicts(
        {"score_dropped": sent},
        [lifecycle_verdict("score_dropped", "fire", "warning")],
        RULES,
        lambda _m: TO_MARIA,
        "acme",
        T0 + timedelta(minutes=5),
    )
    assert plan_at([fallen], T0 + timedelta(hours=1)).notifications == []


def test_a_severity_rise_reopens_an_acknowledged_alert() -> None:
    sent = notified(new_alert(severity="warning"), T0 + timedelta(seconds=30))
    acked = lifecycle.acknowledge(sent, "p_maria", T0 + timedelta(minutes=1))
    [risen] = lifecycle.apply_verdicts(
        {"score_dropped": acked},
        [lifecycle_verdict("score_dropped", "fire", "critical")],
        RULES,
        lambda _m: TO_MARIA,
        "acme",
        T0 + timedelta(minutes=5),
    )
    assert risen.state == "firing"


# -- inhibition ------------------------------------------------------------------------------


def test_a_critical_alert_inhibits_lesser_ones_for_the_same_account() -> None:
    critical = new_alert("band_worsened", "critical", alert_id=1)
    warning = new_alert("ticket_surge", "warning", alert_id=2)
    other_account = new_alert("ticket_surge", "warning", alert_id=3, account="globex")
    result = plan_at([critical, warning], T0 + timedelta(seconds=30))
    assert kinds(result) == [("alert", "p_maria", ("band_worsened",))]
    assert result.alerts[1].muted == "inhibited"
    assert plan_at([other_account], T0 + timedelta(seconds=30)).notifications != []


def test_an_inhibited_alert_is_sent_after_group_wait_once_the_critical_one_resolves() -> None:
    result = plan_at(
        [new_alert("band_worsened", "critical", alert_id=1), new_alert("ticket_surge", alert_id=2)],
        T0 + timedelta(seconds=30),
    )
    critical, warning = result.alerts
    resolved_at = T0 + timedelta(hours=1)
    after = plan_at([lifecycle.resolve(critical, "rule", resolved_at), warning], resolved_at)
    assert kinds(after) == [("resolved", "p_maria", ("band_worsened",))]
    flushed = plan_at(after.alerts, resolved_at + timedelta(seconds=30))
    assert kinds(flushed) == [("alert", "p_maria", ("ticket_surge",))]


# -- silences --------------------------------------------------------------------------------


def silence(ends_at: datetime, **labels: str) -> Silence:
    matchers = tuple(Matcher(k, "=", v) for k, v in labels.items())
    return Silence(id=7, matchers=matchers, starts_at=T0 - timedelta(hours=1), ends_at=ends_at)


def test_a_silenced_alert_is_not_sent_until_the_silence_expires() -> None:
    ends = T0 + timedelta(hours=2)
    mute = [silence(ends, account_id="acme", rule="score_dropped")]
    result = plan_at([new_alert()], T0 + timedelta(minutes=5), mute)
    assert result.notifications == []
    assert result.alerts[0].muted == "silenced:7"
    assert result.alerts[0].wake_at == ends
    at_expiry = plan_at(result.alerts, ends, mute)
    assert at_expiry.notifications == []  # it waits its group wait from the expiry
    assert kinds(plan_at(at_expiry.alerts, ends + timedelta(seconds=30), mute)) == [
        ("alert", "p_maria", ("score_dropped",))
    ]


def test_a_silence_matches_only_what_all_its_matchers_match() -> None:
    mute = [
        Silence(
            id=1,
            matchers=(Matcher("account_id", "=~", "ac.*"), Matcher("severity", "!=", "critical")),
            starts_at=T0,
            ends_at=T0 + timedelta(days=1),
        )
    ]
    result = plan_at(
        [new_alert("a", "warning", alert_id=1), new_alert("b", "critical", alert_id=2)],
        T0 + timedelta(seconds=30),
        mute,
    )
    assert kinds(result) == [("alert", "p_maria", ("b",))]


# -- snooze ----------------------------------------------------------------------------------


def test_a_snoozed_alert_comes_back_when_the_snooze_ends() -> None:
    sent = notified(new_alert(), T0 + timedelta(seconds=30))
    until = T0 + timedelta(days=1)
    snoozed = lifecycle.snooze(sent, until, "p_maria", T0 + timedelta(minutes=1))
    assert plan_at([snoozed], T0 + timedelta(hours=23)).notifications == []
    woken = plan_at([snoozed], until)
    assert woken.alerts[0].state == "firing"
    assert kinds(plan_at(woken.alerts, until + timedelta(seconds=30))) == [
        ("alert", "p_maria", ("score_dropped",))
    ]


# -- escalation ------------------------------------------------------------------------------


def test_an_unacknowledged_critical_alert_escalates_to_the_manager_once() -> None:
    sent_at = T0 + timedelta(seconds=30)
    sent = notified(new_alert(severity="critical"), sent_at)
    assert sent.wake_at == sent_at + timedelta(hours=4)
    assert plan_at([sent], sent_at + timedelta(hours=3, minutes=59)).notifications == []
    escalated = plan_at([sent], sent_at + timedelta(hours=4))
    assert kinds(escalated) == [("escalation", "p_grace", ("score_dropped",))]
    assert escalated.alerts[0].escalation_path == ESCALATION.path
    assert plan_at(escalated.alerts, sent_at + timedelta(hours=8)).notifications == []


def test_an_acknowledged_critical_alert_does_not_escalate() -> None:
    sent = notified(new_alert(severity="critical"), T0 + timedelta(seconds=30))
    acked = lifecycle.acknowledge(sent, "p_maria", T0 + timedelta(hours=1))
    assert plan_at([acked], T0 + timedelta(hours=5)).notifications == []


def test_a_warning_alert_never_escalates() -> None:
    sent = notified(new_alert(severity="warning"), T0 + timedelta(seconds=30))
    assert plan_at([sent], T0 + timedelta(hours=5)).notifications == []


# -- resolved notices ------------------------------------------------------------------------


def test_a_resolved_notice_goes_to_whoever_was_notified() -> None:
    sent = notified(new_alert(), T0 + timedelta(seconds=30))
    resolved = lifecycle.resolve(sent, "rule", T0 + timedelta(hours=2))
    result = plan_at([resolved], T0 + timedelta(hours=2))
    assert kinds(result) == [("resolved", "p_maria", ("score_dropped",))]
    assert plan_at(result.alerts, T0 + timedelta(hours=3)).notifications == []


def test_an_alert_resolved_before_it_was_sent_sends_nothing() -> None:
    resolved = lifecycle.resolve(new_alert(), "rule", T0 + timedelta(seconds=10))
    assert plan_at([resolved], T0 + timedelta(minutes=1)).notifications == []


# -- helpers for verdicts ----------------------------------------------------------------------

from services.alerts.rules import Rule, ScoreDropped, Verdict  # noqa: E402

RULES = {
    "score_dropped": Rule(
        ScoreDropped(
            name="score_dropped",
            kind="score_dropped",
            severity="warning",
            motion="adoption",
            points=10,
            days=7,
        ),
        delivery="immediate",
        send_resolved=True,
    )
}


def lifecycle_verdict(rule: str, outcome: str, severity: Severity) -> Verdict:
    return Verdict(rule, outcome, severity)  # type: ignore[arg-type]


# -- keep firing for: a condition that clears and returns is one alert, not two ---------------

KEEP = timedelta(days=3)
KEEPING = {
    "score_dropped": replace(
        RULES["score_dropped"],
        config=RULES["score_dropped"].config.model_copy(update={"keep_firing_for_days": 3}),
    )
}


def verdict_at(alert: Alert, outcome: str, at: datetime) -> list[Alert]:
    return lifecycle.apply_verdicts(
        {alert.rule: alert},
        [lifecycle_verdict(alert.rule, outcome, alert.severity)],
        KEEPING,
        lambda _m: TO_MARIA,
        "acme",
        at,
    )


def test_without_keep_firing_for_a_cleared_condition_resolves_at_once() -> None:
    sent = notified(new_alert(), T0 + timedelta(seconds=30))
    [resolved] = lifecycle.apply_verdicts(
        {"score_dropped": sent},
        [lifecycle_verdict("score_dropped", "clear", "warning")],
        RULES,
        lambda _m: TO_MARIA,
        "acme",
        T0 + timedelta(hours=1),
    )
    assert resolved.state == "resolved"


def test_a_cleared_condition_keeps_the_alert_open_until_keep_firing_for_has_passed() -> None:
    sent = notified(new_alert(), T0 + timedelta(seconds=30))
    cleared_at = T0 + timedelta(hours=1)
    [clearing] = verdict_at(sent, "clear", cleared_at)
    assert (clearing.state, clearing.resolves_at) == ("firing", cleared_at + KEEP)
    assert verdict_at(clearing, "clear", cleared_at + timedelta(days=1)) == []  # no change
    quiet = plan_at([clearing], cleared_at + KEEP - timedelta(seconds=1))
    assert quiet.notifications == []
    assert quiet.alerts[0].wake_at == cleared_at + KEEP  # the scheduler looks again then
    done = plan_at([clearing], cleared_at + KEEP)
    assert done.alerts[0].state == "resolved"
    assert kinds(done) == [("resolved", "p_maria", ("score_dropped",))]


def test_a_condition_that_returns_within_keep_firing_for_is_the_same_alert_and_not_resent() -> None:
    sent = notified(new_alert(), T0 + timedelta(seconds=30))
    [clearing] = verdict_at(sent, "clear", T0 + timedelta(hours=1))
    [back] = verdict_at(clearing, "fire", T0 + timedelta(hours=5))
    assert (back.id, back.state, back.resolves_at) == (sent.id, "firing", None)
    assert plan_at([back], T0 + timedelta(hours=5, minutes=1)).notifications == []
    assert back.notified_at == sent.notified_at  # its repeat interval runs on unchanged


def test_a_clearing_alert_is_neither_repeated_nor_escalated_nor_inhibiting() -> None:
    critical = notified(new_alert("score_dropped", "critical"), T0 + timedelta(seconds=30))
    [clearing] = verdict_at(critical, "clear", T0 + timedelta(minutes=1))
    lesser = new_alert("ticket_surge", "warning", at=T0 + timedelta(minutes=2), alert_id=2)
    later = T0 + timedelta(days=2)  # past the repeat interval and the escalation delay
    result = plan_at([clearing, lesser], later)
    assert kinds(result) == [("alert", "p_maria", ("ticket_surge",))]
    assert result.alerts[0].escalated_at is None


def test_a_condition_cleared_before_its_first_notification_sends_nothing() -> None:
    fresh = new_alert()
    [clearing] = verdict_at(fresh, "clear", T0 + timedelta(seconds=10))
    assert plan_at([clearing], T0 + timedelta(minutes=5)).notifications == []
    done = plan_at([clearing], T0 + timedelta(seconds=10) + KEEP)
    assert (done.alerts[0].state, done.notifications) == ("resolved", [])
