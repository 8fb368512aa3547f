"""Working-time arithmetic on fixed instants: weekends, midnight, both DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.alerts.hours import (
    QuietHours,
    WorkingHours,
    add_working,
    is_working,
    next_working,
    parse_quiet,
    parse_working,
    quiet_until,
)

OFFICE = parse_working("mon-fri 09:00-18:00")
MADRID = "Europe/Madrid"
NEW_YORK = "America/New_York"
TOKYO = "Asia/Tokyo"


def local(zone: str, *args: int) -> datetime:
    return datetime(*args).replace(tzinfo=ZoneInfo(zone))  # type: ignore[arg-type]


def utc(*args: int) -> datetime:
    return datetime(*args).replace(tzinfo=UTC)  # type: ignore[arg-type]


# -- parsing ------------------------------------------------------------------------------------


def test_parse_working_reads_ranges_lists_and_ranges_across_the_week_end() -> None:
    assert WorkingHours(frozenset(range(5)), time(9), time(18)) == OFFICE
    assert parse_working("mon,wed,fri 08:30-12:00").days == {0, 2, 4}
    assert parse_working("fri-mon 10:00-11:00").days == {4, 5, 6, 0}
    assert parse_working("SUN-THU 08:00-16:00").days == {6, 0, 1, 2, 3}
    assert str(parse_working("mon-fri 09:00-18:00")) == "mon,tue,wed,thu,fri 09:00-18:00"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "mon-fri",
        "09:00-18:00",
        "mon-fri 9:00-18:00",
        "mon-fri 09:00-24:00",
        "mo-fr 09:00-18:00",
    ],
)
def test_parse_working_refuses_what_it_cannot_read_and_names_it(text: str) -> None:
    with pytest.raises(ValueError, match="working hours"):
        parse_working(text)


def test_working_hours_must_start_before_they_end_on_the_same_day() -> None:
    with pytest.raises(ValueError, match="start before they end"):
        parse_working("mon-fri 18:00-09:00")
    with pytest.raises(ValueError, match="start before they end"):
        parse_working("mon-fri 09:00-09:00")
    parse_working("mon-fri 09:00-09:01")  # the shortest day there is


def test_parse_quiet_allows_a_window_across_midnight_but_not_an_empty_one() -> None:
    assert parse_quiet("22:00-07:00") == QuietHours(time(22), time(7))
    assert parse_quiet("12:00-13:00") == QuietHours(time(12), time(13))
    with pytest.raises(ValueError, match="same time"):
        parse_quiet("07:00-07:00")
    with pytest.raises(ValueError, match="quiet hours"):
        parse_quiet("22-07")


# -- next working instant ---------------------------------------------------------------------


def test_inside_working_hours_is_now_and_the_end_is_not_inside() -> None:
    monday_ten = local(MADRID, 2026, 11, 23, 10, 0)
    assert next_working(OFFICE, MADRID, monday_ten) == monday_ten
    assert is_working(OFFICE, MADRID, local(MADRID, 2026, 11, 23, 9, 0))
    assert not is_working(OFFICE, MADRID, local(MADRID, 2026, 11, 23, 8, 59, 59))
    assert not is_working(OFFICE, MADRID, local(MADRID, 2026, 11, 23, 18, 0))


def test_a_night_waits_for_the_morning_in_the_persons_zone() -> None:
    # 02:00 UTC on Tuesday is 03:00 in Madrid and 21:00 on Monday in New York.
    night = utc(2026, 11, 24, 2, 0)
    assert next_working(OFFICE, MADRID, night) == local(MADRID, 2026, 11, 24, 9, 0)
    assert next_working(OFFICE, NEW_YORK, night) == local(NEW_YORK, 2026, 11, 24, 9, 0)


def test_friday_evening_and_the_weekend_wait_for_monday() -> None:
    monday = local(MADRID, 2026, 11, 30, 9, 0)
    assert next_working(OFFICE, MADRID, local(MADRID, 2026, 11, 27, 18, 0)) == monday
    assert next_working(OFFICE, MADRID, local(MADRID, 2026, 11, 28, 12, 0)) == monday
    assert next_working(OFFICE, MADRID, local(MADRID, 2026, 11, 29, 23, 59)) == monday


def test_just_before_and_after_midnight() -> None:
    hours = parse_working("mon-fri 00:00-08:00")
    assert next_working(hours, TOKYO, local(TOKYO, 2026, 11, 23, 23, 59)) == local(
        TOKYO, 2026, 11, 24, 0, 0
    )
    assert next_working(hours, TOKYO, local(TOKYO, 2026, 11, 24, 0, 0)) == local(
        TOKYO, 2026, 11, 24, 0, 0
    )


def test_the_morning_after_spring_forward_is_at_nine_local_summer_time() -> None:
    # Europe/Madrid moves from +01:00 to +02:00 on Sunday 2026-03-29.
    friday_night = local(MADRID, 2026, 3, 27, 20, 0)
    assert next_working(OFFICE, MADRID, friday_night) == utc(2026, 3, 30, 7, 0)


def test_the_morning_after_fall_back_is_at_nine_local_standard_time() -> None:
    # America/New_York moves from -04:00 to -05:00 on Sunday 2026-11-01.
    friday_night = local(NEW_YORK, 2026, 10, 30, 20, 0)
    assert next_working(OFFICE, NEW_YORK, friday_night) == utc(2026, 11, 2, 14, 0)


# -- adding working time ------------------------------------------------------------------------


def test_four_working_hours_within_one_day() -> None:
    start = local(MADRID, 2026, 11, 23, 10, 0)
    assert add_working(OFFICE, MADRID, start, timedelta(hours=4)) == local(
        MADRID, 2026, 11, 23, 14, 0
    )


def test_working_time_ending_exactly_at_closing_stays_on_that_day() -> None:
    start = local(MADRID, 2026, 11, 23, 14, 0)
    assert add_working(OFFICE, MADRID, start, timedelta(hours=4)) == local(
        MADRID, 2026, 11, 23, 18, 0
    )
    assert add_working(OFFICE, MADRID, start, timedelta(hours=4, seconds=1)) == local(
        MADRID, 2026, 11, 24, 9, 0, 1
    )


def test_a_night_alert_starts_counting_at_nine() -> None:
    night = local(MADRID, 2026, 11, 24, 2, 0)
    assert add_working(OFFICE, MADRID, night, timedelta(hours=4)) == local(
        MADRID, 2026, 11, 24, 13, 0
    )
    assert add_working(OFFICE, MADRID, night, timedelta(0)) == local(MADRID, 2026, 11, 24, 9, 0)


def test_friday_afternoon_plus_four_working_hours_is_monday_morning() -> None:
    friday = local(MADRID, 2026, 11, 27, 16, 0)
    assert add_working(OFFICE, MADRID, friday, timedelta(hours=4)) == local(
        MADRID, 2026, 11, 30, 11, 0
    )


def test_across_spring_forward_a_working_hour_is_an_hour() -> None:
    friday = local(MADRID, 2026, 3, 27, 16, 0)  # 15:00 UTC, +01:00
    # 2 h on Friday, 2 h on Monday from 09:00 +02:00 (07:00 UTC) → 09:00 UTC.
    assert add_working(OFFICE, MADRID, friday, timedelta(hours=4)) == utc(2026, 3, 30, 9, 0)


def test_across_fall_back() -> None:
    friday = local(NEW_YORK, 2026, 10, 30, 17, 0)  # 21:00 UTC, -04:00
    assert add_working(OFFICE, NEW_YORK, friday, timedelta(hours=2)) == utc(2026, 11, 2, 15, 0)


def test_a_working_window_shortened_by_the_dst_change_counts_its_real_length() -> None:
    # On 2026-03-29 in Madrid 01:00-04:00 local is only two real hours (02:00 → 03:00).
    nights = parse_working("sat-sun 01:00-04:00")
    saturday = local(MADRID, 2026, 3, 28, 4, 0)
    assert add_working(nights, MADRID, saturday, timedelta(hours=2)) == local(
        MADRID, 2026, 3, 29, 4, 0
    )
    assert add_working(nights, MADRID, saturday, timedelta(hours=3)) == local(
        MADRID, 2026, 4, 4, 2, 0
    )


def test_many_weeks_of_working_time() -> None:
    start = local(MADRID, 2026, 11, 23, 9, 0)  # a Monday
    # 45 working hours a week: two weeks are 90 h, ending at Friday's close a week later.
    assert add_working(OFFICE, MADRID, start, timedelta(hours=90)) == local(
        MADRID, 2026, 12, 4, 18, 0
    )


def test_negative_working_time_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        add_working(OFFICE, MADRID, utc(2026, 11, 23), timedelta(seconds=-1))


# -- quiet hours -----------------------------------------------------------------------------


NIGHT = parse_quiet("22:00-07:00")


def test_quiet_hours_across_midnight_at_their_edges() -> None:
    assert quiet_until(NIGHT, TOKYO, local(TOKYO, 2026, 11, 23, 21, 59)) is None
    assert quiet_until(NIGHT, TOKYO, local(TOKYO, 2026, 11, 23, 22, 0)) == local(
        TOKYO, 2026, 11, 24, 7, 0
    )
    assert quiet_until(NIGHT, TOKYO, local(TOKYO, 2026, 11, 24, 0, 0)) == local(
        TOKYO, 2026, 11, 24, 7, 0
    )
    assert quiet_until(NIGHT, TOKYO, local(TOKYO, 2026, 11, 24, 6, 59)) == local(
        TOKYO, 2026, 11, 24, 7, 0
    )
    assert quiet_until(NIGHT, TOKYO, local(TOKYO, 2026, 11, 24, 7, 0)) is None


def test_quiet_hours_within_one_day() -> None:
    lunch = parse_quiet("12:00-13:00")
    assert quiet_until(lunch, MADRID, local(MADRID, 2026, 11, 23, 12, 30)) == local(
        MADRID, 2026, 11, 23, 13, 0
    )
    assert quiet_until(lunch, MADRID, local(MADRID, 2026, 11, 23, 13, 30)) is None


def test_a_quiet_night_across_spring_forward_ends_at_seven_summer_time() -> None:
    night = local(MADRID, 2026, 3, 29, 1, 30)  # before the jump: +01:00
    assert quiet_until(NIGHT, MADRID, night) == utc(2026, 3, 29, 5, 0)
