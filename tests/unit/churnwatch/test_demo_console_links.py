"""`make demo` ends by printing one console sign-in link per demo person: each is a link the
running console accepts (same kept key), for that person's email, and none for people without
an email or no longer active."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import unquote

import pytest
from pydantic import ValidationError

from churnwatch.demo import console_links, explore_settings
from churnwatch.simulator import simulate
from devstack.stack import Stack
from services.console.settings import ConsoleSettings
from services.console.signin import LinkInvalid, tokens_of


def test_each_demo_person_with_an_email_gets_a_link_the_console_accepts(tmp_path: Path) -> None:
    simulation = simulate(3, accounts=12, days=30, start=date(2026, 7, 1), intensity=0.3)
    stack = Stack(home=tmp_path, overrides={"CONSOLE_SIGN_IN_TTL_SECONDS": "3600"})
    links = console_links(stack, simulation)

    emails = {p.email for p in simulation.people if p.email and p.active}
    assert emails
    assert len(links) == len(emails)
    env = stack.service_env()
    console = ConsoleSettings(
        public_url=env["CONSOLE_PUBLIC_URL"], secret_key=env["CONSOLE_SECRET_KEY"], local_dev=True
    )
    tokens = tokens_of(console, env["CONSOLE_SECRET_KEY"])
    seen = set()
    for name, role, link in links:
        assert name
        assert role
        assert link.startswith(f"{env['CONSOLE_PUBLIC_URL']}/sign-in/")
        signed = tokens.read_sign_in(unquote(link.rsplit("/", 1)[1]))
        seen.add(signed.email)
        assert signed.next == "/"
    assert seen == {e.lower() for e in emails if e}

    other = tokens_of(console, "another-key-of-another-console-0123456789")
    with pytest.raises(LinkInvalid):
        other.read_sign_in(unquote(links[0][2].rsplit("/", 1)[1]))


def test_the_exploring_stack_keeps_sign_in_links_usable_for_the_hour_the_console_allows() -> None:
    settings = explore_settings(datetime(2026, 8, 1, tzinfo=UTC), "demo.", 0.0)
    ttl = settings["CONSOLE_SIGN_IN_TTL_SECONDS"]
    assert ttl == "3600"
    ConsoleSettings(local_dev=True, sign_in_ttl_seconds=float(ttl))  # accepted at its edge
    with pytest.raises(ValidationError):
        ConsoleSettings(local_dev=True, sign_in_ttl_seconds=float(ttl) + 1)
