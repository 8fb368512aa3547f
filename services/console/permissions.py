"""Who sees what (pure): a person sees the accounts where they are on the account team (CSM,
account executive, renewal owner); a manager also sees the accounts of everyone under them
(direct and indirect reports); a configured admin sees every account. Everything the console
shows or does on an account goes through :func:`may_see`; an account one may not see answers
404, exactly like one that does not exist."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

TEAM_ROLES = ("csm", "account_executive", "renewal_owner")


@dataclass(frozen=True)
class Person:
    person_id: str
    name: str
    email: str | None = None
    manager_id: str | None = None


@dataclass(frozen=True)
class Viewer:
    """The signed-in person: ``person_id`` is None for an admin who is not in the directory."""

    email: str
    name: str
    person_id: str | None = None
    admin: bool = False
    reports: tuple[Person, ...] = ()  # everyone under them
    csrf: str = field(default="", repr=False)

    @property
    def members(self) -> frozenset[str]:
        """Whose accounts this person sees (besides an admin's everything)."""
        own = {self.person_id} if self.person_id else set()
        return frozenset(own | {p.person_id for p in self.reports})

    @property
    def is_manager(self) -> bool:
        return bool(self.reports)

    @property
    def acts_as(self) -> str:
        """Who an action is recorded as, in the alerts service."""
        return self.person_id or self.email


def team(account: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(str(account[r]) for r in TEAM_ROLES if account.get(r))


def scope(viewer: Viewer) -> frozenset[str] | None:
    """The team members whose accounts the viewer sees; None: every account (admin)."""
    return None if viewer.admin else viewer.members


def may_see(viewer: Viewer, account: Mapping[str, Any]) -> bool:
    """Whether ``account`` (a record with its team: csm, account_executive, renewal_owner) is
    the viewer's to see and act on."""
    if viewer.admin:
        return True
    return bool(team(account) & viewer.members)


def visible(viewer: Viewer, accounts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [a for a in accounts if may_see(viewer, a)]


def may_see_team_page(viewer: Viewer) -> bool:
    return viewer.admin or viewer.is_manager
