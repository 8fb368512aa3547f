"""The sweep's due time: the next UTC midnight, or the first moment time alone crosses a
threshold before it (an input going stale, the published silence reaching SILENCE_DAYS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from services.scoring import due, health
from shared.events import SILENCE_DAYS
from tests.unit.scoring.builders import NOW
from tests.unit.scoring.test_health import MODEL, healthy

US = timedelta(microseconds=1)
MIDNIGHT_AFTER_NOW = datetime(2026, 11, 22, tzinfo=UTC)


def published(facts: health.Facts, at: datetime) -> tuple[list[str], bool]:
    """What the score publishes that time alone changes within a day: stale inputs, silence."""
    snapshot = health.evaluate(MODEL, facts, at).snapshot
    days = snapshot.signals.days_since_activity
    return snapshot.stale_inputs, days is not None and days >= SILENCE_DAYS


def test_a_fresh_account_is_due_at_the_next_utc_midnight() -> None:
    assert due.next_evaluation(MODEL, healthy(), NOW) == MIDNIGHT_AFTER_NOW


def test_a_score_at_exact_midnight_is_due_at_the_next_one() -> None:
    midnight = datetime(2026, 11, 21, tzinfo=UTC)
    facts = healthy(last_usage_at=midnight - timedelta(hours=1))
    assert due.next_midnight(midnight) == midnight + timedelta(days=1)
    assert due.next_evaluation(MODEL, facts, midnight) == midnight + timedelta(days=1)
    just_before = midnight - US
    assert due.next_evaluation(MODEL, healthy(last_usage_at=just_before), just_before) == midnight


def test_an_as_of_in_another_zone_is_read_in_utc() -> None:
    evening = NOW + timedelta(hours=8)  # 20:00 UTC: already 07:00 on 22 November in Sydney
    sydney = evening.astimezone(ZoneInfo("Australia/Sydney"))
    assert sydney.date() == MIDNIGHT_AFTER_NOW.date()
    facts = healthy(last_usage_at=evening - timedelta(hours=1))
    assert due.next_evaluation(MODEL, facts, sydney) == MIDNIGHT_AFTER_NOW


def test_the_silence_crossing_is_the_first_microsecond_it_is_published() -> None:
    facts = healthy(last_usage_at=NOW - timedelta(days=2.5))
    at = due.next_evaluation(MODEL, facts, NOW)
    assert NOW < at < MIDNIGHT_AFTER_NOW
    assert published(facts, at - US)[1] is False
    assert published(facts, at)[1] is True
    # published rounded to 0.1 day: 2.95 days after the last activity, not 3
    assert abs((at - facts.last_usage_at).total_seconds() / 86_400 - 2.95) < 1e-6  # type: ignore[operator]


def test_an_input_going_stale_is_due_one_microsecond_after_its_max_age() -> None:
    # activity's max data age is 14 days (stale when older): at exactly 14 days it is not yet
    facts = healthy(last_usage_at=NOW - timedelta(days=14), last_feature_at=NOW)
    at = due.next_evaluation(MODEL, facts, NOW)
    assert at == NOW + US, "crossing right at as_of"
    assert "activity" not in published(facts, NOW)[0]
    assert "activity" in published(facts, at)[0]


def test_an_open_ticket_without_update_and_an_old_answer_cross_on_their_own_clocks() -> None:
    ticket = healthy(
        open_high_urgent=1, oldest_open_high_urgent_update=NOW - timedelta(days=30, hours=-3)
    )
    assert due.next_evaluation(MODEL, ticket, NOW) == NOW + timedelta(hours=3) + US
    answer = healthy(last_survey_at=NOW - timedelta(days=180, hours=-5))
    assert due.next_evaluation(MODEL, answer, NOW) == NOW + timedelta(hours=5) + US


def test_already_stale_and_silent_or_never_active_waits_for_midnight() -> None:
    stale = healthy(
        last_usage_at=NOW - timedelta(days=20), last_feature_at=NOW - timedelta(days=20)
    )
    assert published(stale, NOW) == (["activity", "breadth", "seat_utilisation"], True)
    assert due.next_evaluation(MODEL, stale, NOW) == MIDNIGHT_AFTER_NOW
    never = healthy(
        last_usage_at=None, first_usage_at=None, last_feature_at=None, first_feature_at=None
    )
    assert due.next_evaluation(MODEL, never, NOW) == MIDNIGHT_AFTER_NOW


def test_two_crossings_in_a_day_come_one_after_the_other() -> None:
    facts = healthy(
        last_usage_at=NOW - timedelta(days=2.9),  # silent at 2.95 days: ~1.2 h from now
        last_survey_at=NOW - timedelta(days=180, hours=-6),  # stale in 6 h
    )
    first = due.next_evaluation(MODEL, facts, NOW)
    assert first < NOW + timedelta(hours=2)
    second = due.next_evaluation(MODEL, facts, first)
    assert second == NOW + timedelta(hours=6) + US
    assert due.next_evaluation(MODEL, facts, second) == MIDNIGHT_AFTER_NOW


@settings(max_examples=200, deadline=None)
@given(
    usage_hours=st.one_of(st.none(), st.floats(0, 24 * 20)),
    feature_hours=st.floats(0, 24 * 20),
    survey_hours=st.floats(0, 24 * 200),
    ticket_hours=st.one_of(st.none(), st.floats(0, 24 * 40)),
    as_of_seconds=st.integers(0, 86_399),
)
def test_nothing_time_changes_is_missed_before_the_due_time(
    usage_hours: float | None,
    feature_hours: float,
    survey_hours: float,
    ticket_hours: float | None,
    as_of_seconds: int,
) -> None:
    as_of = datetime(2026, 11, 21, tzinfo=UTC) + timedelta(seconds=as_of_seconds)
    facts = healthy(
        last_usage_at=as_of - timedelta(hours=usage_hours) if usage_hours is not None else None,
        last_feature_at=as_of - timedelta(hours=feature_hours),
        last_survey_at=as_of - timedelta(hours=survey_hours),
        open_high_urgent=1 if ticket_hours is not None else 0,
        oldest_open_high_urgent_update=(
            as_of - timedelta(hours=ticket_hours) if ticket_hours is not None else None
        ),
    )
    at = due.next_evaluation(MODEL, facts, as_of)
    assert as_of < at <= due.next_midnight(as_of)
    before = published(facts, as_of)
    assert published(facts, at - US) == before, "a change before the due time"
    if at < due.next_midnight(as_of):
        assert published(facts, at) != before, "due without a change"
