"""The daily digest is due at 09:00 in each person's own time zone (fixed clock), and says
what a CSM needs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.alerts import digest
from services.alerts.digest import AccountLine, HeldAlert


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_the_digest_is_due_at_nine_in_the_persons_time_zone() -> None:
    after = utc(2026, 11, 23, 0, 0)
    assert digest.next_digest_at("Europe/Madrid", 9, after) == utc(2026, 11, 23, 8, 0)
    assert digest.next_digest_at("America/New_York", 9, after) == utc(2026, 11, 23, 14, 0)
    assert digest.next_digest_at("Asia/Tokyo", 9, after) == utc(2026, 11, 24, 0, 0)


def test_once_nine_has_passed_the_next_digest_is_tomorrow() -> None:
    assert digest.next_digest_at("Europe/Madrid", 9, utc(2026, 11, 23, 8, 0)) == utc(
        2026, 11, 24, 8, 0
    )


def test_nine_local_follows_daylight_saving_time() -> None:
    # Madrid is UTC+2 in summer: on the day clocks go back (25 Oct 2026), 09:00 is 08:00 UTC.
    assert digest.next_digest_at("Europe/Madrid", 9, utc(2026, 10, 24, 12, 0)) == utc(
        2026, 10, 25, 8, 0
    )
    assert digest.next_digest_at("Europe/Madrid", 9, utc(2026, 10, 23, 12, 0)) == utc(
        2026, 10, 24, 7, 0
    )


def test_a_missed_slot_is_still_sent_the_same_day_but_never_a_day_late() -> None:
    assert digest.due_slot("Europe/Madrid", 9, utc(2026, 11, 23, 8, 0)) == utc(2026, 11, 23, 8, 0)
    assert digest.due_slot("Europe/Madrid", 9, utc(2026, 11, 23, 15, 0)) == utc(2026, 11, 23, 8, 0)
    assert digest.due_slot("Europe/Madrid", 9, utc(2026, 11, 23, 20, 1)) is None
    assert digest.local_date("Asia/Tokyo", utc(2026, 11, 24, 0, 0)) == date(2026, 11, 24)


NOW = utc(2026, 11, 23, 8, 0)


def line(
    name: str, score: float, band: str, week_ago: float | None = None, silent: float | None = None
) -> AccountLine:
    return AccountLine(
        account_id=name,
        name=name.title(),
        score=score,
        band=band,
        as_of=NOW - timedelta(days=1),
        score_week_ago=week_ago,
        days_since_activity=silent,
    )


def test_the_digest_lists_red_and_yellow_accounts_movers_silent_ones_and_held_alerts() -> None:
    accounts = [
        line("acme", 30, "red", week_ago=75),
        line("globex", 55, "yellow", week_ago=58),
        line("initech", 90, "green", week_ago=70, silent=9),
        line("hooli", 85, "green", silent=2),
    ]
    held = [HeldAlert(1, "initech", "Initech", "expansion", "info", "seat utilisation 95%", True)]
    built = digest.build(
        "p_maria", "Maria", date(2026, 11, 23), accounts, held, now=NOW, silent_days=7
    )
    assert [a.account_id for a in built.red] == ["acme"]
    assert [a.account_id for a in built.yellow] == ["globex"]
    assert [a.account_id for a in built.movers] == ["acme", "initech"]  # ≥ 5 points, biggest first
    assert [(a.account_id, round(d)) for a, d in built.silent] == [("initech", 10)]
    assert built.held == held
    assert not built.empty


def test_a_quiet_portfolio_makes_an_empty_digest() -> None:
    built = digest.build(
        "p_maria",
        "Maria",
        date(2026, 11, 23),
        [line("hooli", 85, "green")],
        [],
        now=NOW,
        silent_days=7,
    )
    assert built.empty
