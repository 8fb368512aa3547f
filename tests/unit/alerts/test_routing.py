"""Routing by motion from the current account team, with every step recorded."""

from __future__ import annotations

from services.alerts import routing
from services.alerts.routing import Channels, Destination, Person, Recipient, Team, TeamChannel

PEOPLE = {
    p.person_id: p
    for p in [
        Person(
            "p_maria",
            "Maria",
            email="maria@example.com",
            slack_user_id="U_MARIA",
            manager_id="p_grace",
        ),
        Person("p_james", "James", email="james@example.com", manager_id="p_grace"),
        Person("p_aisha", "Aisha", slack_user_id="U_AISHA", manager_id="p_grace", active=False),
        Person(
            "p_grace",
            "Grace",
            email="grace@example.com",
            slack_user_id="U_GRACE",
            manager_id="p_vp",
        ),
        Person("p_gone", "Gone", email="gone@example.com", manager_id="p_ghost", active=False),
    ]
}
TEAM = Team(csm="p_maria", account_executive="p_james", renewal_owner="p_aisha")
CHANNEL = TeamChannel("C_TEAM", "team@example.com")


def keys(route: routing.Route) -> list[str]:
    return [r.key for r in route.recipients]


def test_adoption_and_advocacy_go_to_the_csm() -> None:
    assert keys(routing.route("adoption", TEAM, PEOPLE, CHANNEL)) == ["p_maria"]
    assert keys(routing.route("advocacy", TEAM, PEOPLE, CHANNEL)) == ["p_maria"]


def test_expansion_goes_to_the_account_executive() -> None:
    assert keys(routing.route("expansion", TEAM, PEOPLE, CHANNEL)) == ["p_james"]


def test_renewal_goes_to_the_renewal_owner_and_the_csm_and_an_inactive_owner_to_the_manager() -> (
    None
):
    route = routing.route("renewal", TEAM, PEOPLE, CHANNEL)
    assert keys(route) == ["p_grace", "p_maria"]
    assert route.path == (
        "renewal owner p_aisha inactive",
        "→ manager p_grace (Grace)",
        "CSM → p_maria (Maria)",
    )


def test_no_owner_goes_to_the_team_channel() -> None:
    route = routing.route("adoption", Team(), PEOPLE, CHANNEL)
    assert keys(route) == ["team"]
    assert route.path == ("CSM: none", "→ team channel")


def test_an_inactive_owner_without_a_reachable_manager_goes_to_the_team_channel() -> None:
    route = routing.route("adoption", Team(csm="p_gone"), PEOPLE, CHANNEL)
    assert keys(route) == ["team"]
    assert route.path == ("CSM p_gone inactive", "manager p_ghost unknown", "→ team channel")


def test_an_unknown_owner_goes_to_the_team_channel_and_nobody_is_said_when_none_is_set() -> None:
    assert keys(routing.route("adoption", Team(csm="p_new"), PEOPLE, CHANNEL)) == ["team"]
    route = routing.route("adoption", Team(), PEOPLE, TeamChannel())
    assert route.recipients == ()
    assert route.path[-1] == "no team channel configured: nobody to notify"


def test_escalation_goes_to_the_managers_of_those_notified_or_else_the_team_channel() -> None:
    maria = routing.route("adoption", TEAM, PEOPLE, CHANNEL).recipients
    assert keys(routing.escalation(maria, PEOPLE, CHANNEL)) == ["p_grace"]
    grace = (Recipient("Grace", "p_grace", "U_GRACE"),)
    assert keys(routing.escalation(grace, PEOPLE, CHANNEL)) == ["team"]  # p_vp is unknown


def test_a_person_is_reached_on_slack_first_with_email_then_the_team_channel_as_fallbacks() -> None:
    maria = Recipient("Maria", "p_maria", slack="U_MARIA", email="maria@example.com")
    options = routing.destinations(maria, Channels(slack_api=True, email=True), CHANNEL)
    assert options == [
        Destination("slack", "U_MARIA"),
        Destination("email", "maria@example.com"),
        Destination("slack", "C_TEAM", mention="U_MARIA"),
        Destination("email", "team@example.com"),
    ]


def test_with_only_a_webhook_a_person_is_mentioned_in_the_webhook_channel() -> None:
    maria = Recipient("Maria", "p_maria", slack="U_MARIA")
    options = routing.destinations(maria, Channels(slack_webhook=True), TeamChannel())
    assert options == [Destination("slack", routing.WEBHOOK, mention="U_MARIA")]


def test_email_can_be_preferred_for_digests() -> None:
    maria = Recipient("Maria", "p_maria", slack="U_MARIA", email="maria@example.com")
    options = routing.destinations(
        maria, Channels(slack_api=True, email=True), TeamChannel(), prefer="email"
    )
    assert [o.channel for o in options] == ["email", "slack"]
