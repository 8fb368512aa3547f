"""The decisions for one account (rules + lifecycle + routing), pure, on a fixed ``now``."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from services.alerts import decide
from services.alerts.decide import AccountState, Health
from services.alerts.routing import Person, Team
from tests.integration.alerts.support import BAND_ONLY, T0, change, make_config

CONFIG = make_config(rules_text=BAND_ONLY)
MARIA = Person("p_maria", "Maria", email="maria@example.com", slack_user_id="U1")
GRACE = Person("p_grace", "Grace", email="grace@example.com", slack_user_id="U2")
PEOPLE = {"p_maria": MARIA, "p_grace": GRACE}


def state(**fields: Any) -> AccountState:
    base = AccountState(account_id="acme", name="Acme", team=Team(csm="p_maria"), people=PEOPLE)
    return replace(base, **fields)


def test_a_fall_into_red_opens_a_critical_alert_for_the_csm_and_keeps_the_health() -> None:
    decision = decide.on_changes(
        state(), [change("acme", T0, (80, "green"), (30, "red"))], [], CONFIG, T0
    )
    [alert] = decision.alerts
    assert (alert.rule, alert.severity, alert.state) == ("band_worsened", "critical", "firing")
    assert [r.person_id for r in alert.route.recipients] == ["p_maria"]
    [notification] = decision.notifications
    assert notification.recipient.person_id == "p_maria"
    assert notification.rules == ("band_worsened",)
    assert decision.health is not None
    assert decision.health.band == "red"
    assert decision.history == [(T0, 30)]
    assert (decision.evaluated, decision.late) == (1, 0)


def test_a_change_older_than_the_known_health_is_counted_late_and_decides_nothing() -> None:
    known = Health(
        as_of=T0, score=80, band="green", before_score=None, before_band=None, reasons=()
    )
    older = change("acme", T0 - timedelta(hours=1), (80, "green"), (30, "red"))
    decision = decide.on_changes(state(health=known), [older], [], CONFIG, T0)
    assert (decision.evaluated, decision.late) == (0, 1)
    assert decision.alerts == []
    assert decision.notifications == []
    assert decision.health is None  # unchanged: nothing to write


def test_an_acknowledged_alert_changes_and_the_other_open_alert_does_not() -> None:
    opened = decide.on_changes(
        state(), [change("acme", T0, (80, "green"), (30, "red"))], [], CONFIG, T0
    )
    [alert] = [replace(a, id=7) for a in opened.alerts]
    decision = decide.on_action(state(alerts=[alert]), [7], "ack", "maria", [], CONFIG, T0)
    [acked] = decision.alerts
    assert acked.state == "acknowledged"
    assert acked.acknowledged_by == "maria"
    nothing = decide.on_action(state(alerts=[alert]), [8], "ack", "maria", [], CONFIG, T0)
    assert nothing.alerts == []


def test_a_new_owner_takes_over_the_open_alerts_when_ownership_changed() -> None:
    opened = decide.on_changes(
        state(), [change("acme", T0, (80, "green"), (30, "red"))], [], CONFIG, T0
    )
    alerts = [replace(a, id=i) for i, a in enumerate(opened.alerts, 1)]
    moved = state(alerts=alerts, team=Team(csm="p_grace"))
    later = T0 + timedelta(minutes=5)
    decision = decide.on_changes(moved, [], [], CONFIG, later, ownership_changed=True)
    [alert] = decision.alerts
    assert [r.person_id for r in alert.route.recipients] == ["p_grace"]
    unchanged = decide.on_changes(moved, [], [], CONFIG, later)
    assert all(a.route.recipients[0].person_id == "p_maria" for a in unchanged.alerts + alerts)


def test_with_ids_gives_a_notification_the_ids_its_alerts_were_stored_with() -> None:
    opened = decide.on_changes(
        state(), [change("acme", T0, (80, "green"), (30, "red"))], [], CONFIG, T0
    )
    [notification] = opened.notifications
    saved = {a.rule: replace(a, id=42) for a in opened.alerts}
    assert decide.with_ids(notification, saved).alert_ids == (42,)
    assert decide.with_ids(notification, {}).alert_ids == (None,)
