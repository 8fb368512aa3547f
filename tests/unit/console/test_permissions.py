"""Who sees what, per role: a CSM (team member), a manager (their reports' accounts too), an
admin (everything), someone on no team (nothing)."""

from __future__ import annotations

from typing import Any

from services.console.permissions import (
    Person,
    Viewer,
    may_see,
    may_see_team_page,
    scope,
    team,
    visible,
)

ACME: dict[str, Any] = {
    "account_id": "acme",
    "csm": "p_maria",
    "account_executive": None,
    "renewal_owner": None,
}
INITECH: dict[str, Any] = {
    "account_id": "initech",
    "csm": "p_maria",
    "account_executive": "p_james",
}
GLOBEX: dict[str, Any] = {"account_id": "globex", "csm": "p_james", "renewal_owner": None}
RENEWING: dict[str, Any] = {"account_id": "renewing", "csm": None, "renewal_owner": "p_ravi"}
ORPHAN: dict[str, Any] = {"account_id": "orphan", "csm": None}
ALL: list[dict[str, Any]] = [ACME, INITECH, GLOBEX, RENEWING, ORPHAN]

MARIA = Viewer("maria@example.com", "Maria", "p_maria")
JAMES = Viewer("james@example.com", "James", "p_james")
LENA = Viewer(
    "lena@example.com",
    "Lena",
    "p_lena",
    reports=(Person("p_maria", "Maria"), Person("p_ravi", "Ravi", manager_id="p_maria")),
)
ADMIN = Viewer("boss@example.com", "boss@example.com", None, admin=True)
NOBODY = Viewer("new@example.com", "New", "p_new")


def ids(viewer: Viewer) -> set[str]:
    return {a["account_id"] for a in visible(viewer, ALL)}


def test_a_team_member_sees_the_accounts_where_they_have_any_role() -> None:
    assert ids(MARIA) == {"acme", "initech"}
    assert ids(JAMES) == {"initech", "globex"}  # AE of initech counts
    assert not may_see(MARIA, GLOBEX)
    assert not may_see_team_page(MARIA)


def test_a_manager_sees_their_reports_accounts_direct_and_indirect() -> None:
    assert ids(LENA) == {"acme", "initech", "renewing"}
    assert not may_see(LENA, GLOBEX)
    assert may_see_team_page(LENA)
    assert scope(LENA) == frozenset({"p_lena", "p_maria", "p_ravi"})


def test_an_admin_sees_everything_even_accounts_with_no_team() -> None:
    assert ids(ADMIN) == {"acme", "initech", "globex", "renewing", "orphan"}
    assert scope(ADMIN) is None
    assert may_see_team_page(ADMIN)
    assert ADMIN.acts_as == "boss@example.com"


def test_someone_on_no_team_sees_nothing_and_an_empty_team_matches_no_one() -> None:
    assert ids(NOBODY) == set()
    assert team(ORPHAN) == frozenset()
    nameless = Viewer("x@example.com", "X", None)
    assert ids(nameless) == set()  # no person id: not even accounts with an empty role
