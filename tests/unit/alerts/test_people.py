"""People's hours and attention, pure, on fixed instants: which settings apply, when a
message may reach a person, the daily budget at its edge, escalation in working time, and
where the settings come from (the person record, the service's defaults)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from pydantic import ValidationError

from services.alerts import decide, hours, retention
from services.alerts.decide import AccountState
from services.alerts.routing import (
    Handoff,
    PeopleDefaults,
    Person,
    Team,
    allot,
    escalate_at,
    hold_until,
    reach,
)
from services.alerts.settings import AlertsSettings
from shared.events import PersonRecord, decode_person
from tests.integration.alerts.support import BAND_ONLY, change, make_config

OFFICE = hours.parse_working("mon-fri 09:00-18:00")
NIGHTS = hours.parse_quiet("22:00-08:00")
MADRID = "Europe/Madrid"
TUESDAY_NIGHT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 04:00 in Madrid
TUESDAY_NINE = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # 09:00 in Madrid
MARIA = Person("p_maria", "Maria", slack_user_id="U1", time_zone=MADRID)


# -- which settings apply ------------------------------------------------------------------------


def test_a_persons_own_settings_win_over_the_defaults() -> None:
    defaults = PeopleDefaults(OFFICE, NIGHTS, "email", 10)
    own = replace(
        MARIA,
        working_hours=hours.parse_working("mon-thu 08:00-16:00"),
        alert_channel="digest",
        daily_alert_budget=3,
    )
    r = reach(own, defaults)
    assert (str(r.working_hours), r.quiet_hours, r.channel, r.budget) == (
        "mon,tue,wed,thu 08:00-16:00",
        NIGHTS,
        "digest",
        3,
    )
    assert reach(MARIA, defaults).budget == 10
    assert reach(replace(MARIA, daily_alert_budget=0), defaults).budget is None  # 0: none


# -- when a message may go ---------------------------------------------------------------------


def test_a_warning_at_night_waits_for_nine_and_a_critical_goes_now() -> None:
    r = reach(MARIA, PeopleDefaults(working_hours=OFFICE))
    assert hold_until(r, "warning", TUESDAY_NIGHT) == (TUESDAY_NINE, "working_hours")
    assert hold_until(r, "info", TUESDAY_NIGHT) == (TUESDAY_NINE, "working_hours")
    assert hold_until(r, "critical", TUESDAY_NIGHT) == (None, None)
    assert hold_until(r, "warning", TUESDAY_NINE) == (None, None)


def test_quiet_hours_hold_even_a_critical_alert_and_push_the_morning_back() -> None:
    r = reach(MARIA, PeopleDefaults(working_hours=OFFICE, quiet_hours=NIGHTS))
    eight = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # 08:00 in Madrid: quiet hours end
    assert hold_until(r, "critical", TUESDAY_NIGHT) == (eight, "quiet_hours")
    early = reach(MARIA, PeopleDefaults(hours.parse_working("mon-fri 07:00-15:00"), NIGHTS))
    assert hold_until(early, "warning", TUESDAY_NIGHT) == (eight, "working_hours")


def test_without_hours_everything_goes_now() -> None:
    assert hold_until(reach(MARIA, PeopleDefaults()), "info", TUESDAY_NIGHT) == (None, None)


# -- the daily budget ------------------------------------------------------------------------------


def test_the_budget_lets_through_exactly_its_count_and_no_more() -> None:
    assert allot([(1, False)] * 4, used_before=0, budget=2) == [True, True, False, False]
    assert allot([(1, False)], used_before=2, budget=2) == [False]
    assert allot([(1, False)], used_before=1, budget=2) == [True]


def test_a_message_with_several_new_alerts_needs_room_for_all_of_them() -> None:
    assert allot([(2, False), (1, False)], used_before=0, budget=2) == [True, False]
    assert allot([(3, False)], used_before=0, budget=2) == [False]


def test_a_critical_alert_always_goes_and_counts() -> None:
    assert allot([(1, True), (1, True), (1, False)], used_before=0, budget=2) == [
        True,
        True,
        False,
    ]
    assert allot([(1, True)], used_before=5, budget=2) == [True]


def test_no_budget_and_repeats_always_go() -> None:
    assert allot([(1, False)] * 50, used_before=1000, budget=None) == [True] * 50
    assert allot([(0, False)], used_before=9, budget=2) == [True]


def test_a_handoff_defaults_to_a_direct_message_now() -> None:
    assert Handoff() == Handoff("slack", None, None, None)


# -- escalation in working time ----------------------------------------------------------------


def test_escalation_counts_working_hours_of_the_first_recipient() -> None:
    friday_five = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # 17:00 in Madrid
    r = reach(MARIA, PeopleDefaults(working_hours=OFFICE))
    # One working hour on Friday, three on Monday from 09:00: Monday 12:00 in Madrid.
    assert escalate_at(r, friday_five, timedelta(hours=4)) == datetime(
        2026, 11, 30, 11, 0, tzinfo=UTC
    )
    assert escalate_at(None, friday_five, timedelta(hours=4)) == friday_five + timedelta(hours=4)


def test_decide_escalates_a_critical_alert_after_four_working_hours_not_four_hours() -> None:
    config = replace(make_config(rules_text=BAND_ONLY), people=PeopleDefaults(OFFICE))
    grace = Person("p_grace", "Grace", slack_user_id="U2", time_zone=MADRID)
    people = {"p_maria": replace(MARIA, manager_id="p_grace"), "p_grace": grace}
    friday_five = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    state = AccountState(account_id="acme", name="Acme", team=Team(csm="p_maria"), people=people)
    opened = decide.on_changes(
        state, [change("acme", friday_five, (80, "green"), (30, "red"))], [], config, friday_five
    )
    [alert] = opened.alerts
    alert = replace(alert, id=1)
    monday_noon = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
    later = replace(state, alerts=[alert])

    def escalations(at: datetime) -> list[str | None]:
        notes = decide.on_tick(later, [], config, at).notifications
        return [n.recipient.person_id for n in notes if n.kind == "escalation"]

    assert escalations(friday_five + timedelta(hours=4)) == []  # plain time would escalate
    assert escalations(monday_noon - timedelta(seconds=1)) == []
    assert escalations(monday_noon) == ["p_grace"]


# -- where the settings come from ------------------------------------------------------------------


def test_an_old_person_record_decodes_with_no_settings_of_its_own() -> None:
    old = (
        b'{"person_id": "p_old", "name": "Old", "time_zone": "Europe/Madrid", '
        b'"updated_at": "2026-10-12T10:00:00Z", "source": "hr-sync", "schema_version": 1}'
    )
    record = decode_person(old)
    assert isinstance(record, PersonRecord)
    assert (record.working_hours, record.quiet_hours, record.alert_channel) == (None, None, None)
    assert record.daily_alert_budget is None


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("working_hours", {"days": [], "start": "09:00", "end": "18:00"}, "length"),
        ("working_hours", {"days": ["mon"], "start": "18:00", "end": "09:00"}, "start before"),
        (
            "working_hours",
            {"days": ["mon"], "start": "9:00", "end": "18:00"},
            r"regex .*working_hours\.start",
        ),
        ("quiet_hours", {"start": "07:00", "end": "07:00"}, "same time"),
        ("alert_channel", "pager", "Invalid enum value .pager."),
        ("daily_alert_budget", 1001, "<= 1000"),
        ("daily_alert_budget", -1, ">= 0"),
    ],
)
def test_a_person_record_with_bad_settings_is_refused_with_the_reason(
    field: str, value: object, why: str
) -> None:
    raw = {
        "person_id": "p_x",
        "name": "X",
        "updated_at": "2026-10-12T10:00:00Z",
        "source": "hr-sync",
        field: value,
    }
    with pytest.raises((msgspec.ValidationError, ValueError), match=why):
        decode_person(msgspec.json.encode(raw))


def test_a_person_record_at_the_budget_limit_is_accepted() -> None:
    raw = b'{"person_id": "p_x", "name": "X", "updated_at": "2026-10-12T10:00:00Z", '
    raw += b'"source": "s", "daily_alert_budget": 1000}'
    record = decode_person(raw)
    assert isinstance(record, PersonRecord)
    assert record.daily_alert_budget == 1000


# -- settings ------------------------------------------------------------------------------------


def settings(**env: str) -> AlertsSettings:
    return AlertsSettings(_env_file=None, **env)  # type: ignore[arg-type]


def test_default_hours_and_budget_from_the_settings_are_validated_and_normalised() -> None:
    s = settings(working_hours="Mon-Fri 09:00-17:30", quiet_hours="22:00-07:00")
    assert s.working_hours == "mon,tue,wed,thu,fri 09:00-17:30"
    with pytest.raises(ValidationError, match="working_hours"):
        settings(working_hours="weekdays 9-5")
    with pytest.raises(ValidationError, match="quiet_hours"):
        settings(quiet_hours="07:00-07:00")
    with pytest.raises(ValidationError, match="daily_alert_budget"):
        settings(daily_alert_budget="1001")
    assert settings(daily_alert_budget="1000").daily_alert_budget == 1000


def test_retention_horizons_are_validated_and_cut_by_the_right_clock() -> None:
    with pytest.raises(ValidationError, match="retain_history_days"):
        settings(retain_history_days="0.5")
    with pytest.raises(ValidationError, match="purge_batch_size"):
        settings(purge_batch_size="0")
    policy = retention.Retention(resolved_alerts=timedelta(days=90), outbox=timedelta(days=30))
    clock, wall = datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)
    cut = retention.cutoffs(policy, clock, wall)
    assert cut["alerts"] == clock - timedelta(days=90)  # stamped by the service's clock
    assert cut["outbox"] == wall - timedelta(days=30)  # stamped by the wall clock
    assert set(cut) == {
        "alerts",
        "outbox",
        "used_links",
        "processed_changes",
        "score_history",
        "digest_items",
        "alert_budget",
    }


# -- the digest on working days only -------------------------------------------------------------


def test_no_digest_on_a_day_off_and_the_next_working_day_has_one() -> None:
    from services.alerts import scheduler
    from services.alerts.digest import HeldAlert
    from services.alerts.store import PersonRow

    held = {"p_maria": [HeldAlert(7, "acme", "Acme", "band_worsened", "warning", "", True)]}

    def plan(now: datetime, working: str | None, defaults: PeopleDefaults) -> list[str]:
        row = PersonRow(
            "p_maria", "Maria", "m@example.com", None, None, MADRID, True, now, now, working
        )
        config = replace(make_config(), people=defaults)
        options = scheduler.DigestOptions(hour=9)
        built = scheduler.plan_digests([row], {}, held, options, config, now=now, real_now=now)
        return [e.key for e in built.entries]

    saturday = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)  # 09:00 in Madrid
    monday = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert plan(saturday, "mon,tue,wed,thu,fri 09:00-18:00", PeopleDefaults()) == []
    assert plan(saturday, None, PeopleDefaults(OFFICE)) == []  # the default's days
    assert plan(saturday, "sat 09:00-12:00", PeopleDefaults(OFFICE)) == [
        "digest:p_maria:2026-11-28"
    ]
    assert plan(saturday, None, PeopleDefaults()) == ["digest:p_maria:2026-11-28"]
    assert plan(monday, None, PeopleDefaults(OFFICE)) == ["digest:p_maria:2026-11-30"]
