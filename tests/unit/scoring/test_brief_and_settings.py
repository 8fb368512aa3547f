"""The pre-call brief as text, and the service's settings."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from services.scoring import brief
from services.scoring.settings import ScoringSettings
from shared.events import ComponentMove
from tests.unit.scoring.builders import NOW


def weeks(*events: int) -> list[brief.Week]:
    start = NOW.date() - timedelta(days=7 * len(events))
    return [
        brief.Week(week_start=start + timedelta(days=7 * i), usage_events=e, active_days=min(e, 7))
        for i, e in enumerate(events)
    ]


@pytest.mark.parametrize(
    ("usage", "trend"),
    [
        ((10, 10, 10, 10, 10, 10, 10, 10), "flat (last 4 weeks vs the 4 before)"),
        ((10, 10, 10, 10, 5, 5, 5, 5), "down 50% (last 4 weeks vs the 4 before)"),
        ((0, 0, 0, 0, 3, 0, 0, 0), "usage started in the last 4 weeks"),
        ((0,) * 8, "no usage in the last 8 weeks"),
    ],
)
def test_usage_trend_compares_the_last_four_weeks_with_the_four_before(
    usage: tuple[int, ...], trend: str
) -> None:
    assert brief.usage_trend(weeks(*usage)) == trend


def test_the_text_brief_reads_top_to_bottom_who_health_changes_usage_tickets_renewal() -> None:
    composed = brief.Brief(
        account_id="acme",
        name="Acme Inc.",
        tier="enterprise",
        lifecycle_stage="renewing",
        seats=250,
        arr=180000.0,
        renewal_date=date(2027, 1, 15),
        days_to_renewal=55,
        team=brief.Team(csm=brief.Person(person_id="p_maria", name="Maria Rossi")),
        as_of=NOW,
        health=brief.Health(
            score=38.0,
            band="red",
            band_since=NOW - timedelta(days=3),
            as_of=NOW,
            model_version="health-v1",
            partial=True,
            stale=False,
            missing=["sentiment"],
            stale_inputs=[],
            reasons=["no activity for 16 days", "3 high/urgent tickets opened in 7 days"],
        ),
        score_30d_ago=72.0,
        changes_30d=[
            brief.Change(
                as_of=NOW - timedelta(days=3),
                score=38.0,
                band="red",
                triggers=["band_changed"],
                reasons=["no activity for 13 days"],
                moved_by=[ComponentMove(name="recency", delta_points=-12.5)],
            )
        ],
        usage=brief.Usage(weeks=weeks(50, 50, 50, 50, 40, 20, 5, 0), trend="down 68%"),
        open_tickets=[
            brief.Ticket(
                ticket_id="Z-1",
                priority="urgent",
                status="open",
                last_action="escalated",
                updated_at=NOW - timedelta(days=1),
            )
        ],
    )
    text = brief.render_text(composed)
    lines = text.splitlines()
    assert lines[0] == "Pre-call brief: Acme Inc. (acme)"
    assert "tier enterprise, renewing, 250 seats, ARR 180,000" in lines
    assert "CSM: Maria Rossi" in lines
    assert "  38/100, red since 2026-11-18 (model health-v1)" in lines
    assert "  30 days ago: 72 (-34)" in lines
    assert "  - no activity for 16 days" in lines
    assert "  data gaps: sentiment" in lines
    assert "  2026-11-18: 38 (red) — recency -12.5" in lines
    assert "Usage: down 68%" in lines
    assert "Open tickets: 1" in lines
    assert "  urgent Z-1 (open, escalated 2026-11-20)" in lines
    assert lines[-1] == "Renewal: 2027-01-15 (in 55 days)"
    order = [text.index(h) for h in ("Health", "What changed", "Usage:", "Open tickets", "Renewal")]
    assert order == sorted(order)


def test_settings_default_to_port_8001_and_read_the_scoring_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCORING_SWEEP_INTERVAL_SECONDS", "60")
    monkeypatch.setenv("TOPIC_PREFIX", "x.")
    settings = ScoringSettings()
    assert settings.port == 8001
    assert settings.sweep_interval_seconds == 60
    assert settings.group == "x.scoring"
    assert settings.model_file.name == "health-v1.toml"


def test_the_dedup_horizon_may_not_be_shorter_than_the_accepted_event_age(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCORING_MAX_EVENT_AGE_DAYS", "10")
    monkeypatch.setenv("SCORING_DEDUP_HORIZON_DAYS", "8")
    with pytest.raises(ValidationError, match="SCORING_DEDUP_HORIZON_DAYS must be at least"):
        ScoringSettings()
    monkeypatch.setenv("SCORING_DEDUP_HORIZON_DAYS", "6")
    with pytest.raises(ValidationError):
        ScoringSettings()  # and never under 7 days


def test_the_pool_must_hold_a_connection_for_every_background_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_POOL_SIZE", "6")
    with pytest.raises(ValidationError, match="DATABASE_POOL_SIZE must be at least 7"):
        ScoringSettings()
    monkeypatch.setenv("SCORING_SWEEP_CONCURRENCY", "1")
    assert ScoringSettings().database_pool_size == 6
