"""`make up` wires the console: it runs on its port with the local scoring, alerts and SMTP
sink, a key kept across restarts, cookies for plain-HTTP local use — and alerts' account links
(in Slack, email and the digest) open the console's account page instead of alerts' own
signed brief page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devstack.stack import CONSOLE, SERVICES, Stack, service_url
from services.alerts.links import LinkSigner
from services.alerts.messages import Content
from services.console.settings import ConsoleSettings


def test_make_up_starts_the_console_configured_for_the_local_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert CONSOLE.exists()
    assert [s.name for s in SERVICES] == ["ingest", "scoring", "alerts", "console"]
    assert CONSOLE.default_port == 8004
    stack = Stack(home=tmp_path)
    env = stack.service_env()
    assert env["CONSOLE_SCORING_URL"] == service_url("scoring")
    assert env["CONSOLE_ALERTS_URL"] == service_url("alerts")
    assert env["CONSOLE_API_KEY"] == stack.dev_api_key()
    assert env["CONSOLE_SMTP_PORT"] == str(stack.smtp_port)
    assert env["CONSOLE_SECRET_KEY"] == Stack(home=tmp_path).service_env()["CONSOLE_SECRET_KEY"]
    assert (tmp_path / "console-secret-key").stat().st_mode & 0o077 == 0  # kept, private
    for name, value in env.items():
        if name.startswith("CONSOLE_"):
            monkeypatch.setenv(name, value)
    settings = ConsoleSettings()  # what the console builds from that environment
    assert settings.local_dev
    assert settings.public_url == CONSOLE.url


def test_alerts_account_links_open_the_consoles_account_page(tmp_path: Path) -> None:
    template = Stack(home=tmp_path).service_env()["ALERTS_BRIEF_URL_TEMPLATE"]
    content = Content(
        signer=LinkSigner("a-signing-secret-of-enough-length-0123456789"),
        public_url=service_url("alerts"),
        brief_url_template=template,
        link_ttl=timedelta(days=7),
        message_id_domain="example.com",
    )
    url = content.brief_url("acme/emea", "p_maria", datetime(2026, 12, 3, tzinfo=UTC))
    assert url == f"{CONSOLE.url}/accounts/acme%2Femea"
