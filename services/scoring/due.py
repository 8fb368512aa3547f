"""When an account's score can next change with time alone: its due time for the sweep.

Pure: no clock, no I/O. Data changes are rescored through the dirty queue; what is left to the
time-driven sweep is what moves while no event arrives. That is, for an account scored as of
``as_of`` with these facts:

- the next UTC midnight after ``as_of``: every window (7 days, the prior four weeks, 30 days,
  the 180 days of answers), the warm-up and the baselines' coverage are counted in UTC days,
  and the first score of a new day goes into the history;
- earlier within the day, the moment a threshold is crossed by time alone:
  - an input of one of the profile's components passes its ``max_data_age_days``
    (:func:`services.scoring.health.input_status` turns ``ok`` into ``stale``: the component
    scores its ``missing_points``, the snapshot's ``stale`` flag and ``stale_inputs`` change);
  - the days since the last activity, as published in ``signals.days_since_activity``
    (rounded to 0.1 day), reach ``SILENCE_DAYS``: a crossing scoring publishes so that alerts
    can count silence forward from a published snapshot.

Measures that change continuously (days since activity and the recency points and sentences
it drives, silence vs the usual gap, days in band) are refreshed at day granularity, by the
midnight re-evaluation: each account is re-evaluated when its day rolls over or its data
changes. Each crossing's moment is worked out, then checked to the microsecond on the very
functions the score uses: the due time is the first microsecond at which the evaluation
differs, whatever the rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

from services.scoring import health
from services.scoring.model import Model
from shared.events import SILENCE_DAYS

MICROSECOND = timedelta(microseconds=1)


def next_midnight(as_of: datetime) -> datetime:
    """The first UTC midnight strictly after ``as_of`` (a score at 00:00 is due at the next)."""
    day = as_of.astimezone(UTC).date() + timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=UTC)


def silent(facts: health.Facts, at: datetime) -> bool:
    """Whether the published days since the last activity are ``SILENCE_DAYS`` or more at
    ``at`` (the rounding of :func:`services.scoring.health.signals`)."""
    days = health.published_days_since(health.days_since(facts.last_usage_at, at))
    return days is not None and days >= SILENCE_DAYS


Crossing = tuple[datetime, Callable[[datetime], bool]]  # (about when, whether it has passed)


def _older_than(last: datetime, max_age: float) -> Callable[[datetime], bool]:
    """Whether an input last seen at ``last`` is stale at a moment (as ``input_status`` says)."""

    def passed(at: datetime) -> bool:
        age = health.days_since(last, at)
        return age is not None and age > max_age

    return passed


def _crossings(
    model: Model, facts: health.Facts, as_of: datetime, before: datetime
) -> list[Crossing]:
    """Every threshold time alone will cross after ``as_of`` and about before ``before``: an
    input of a component not yet stale (nor missing) passing its maximum age, and silence
    reaching ``SILENCE_DAYS``. (Most accounts have none: they are checked by time first.)"""
    found: list[Crossing] = []
    horizon = before + timedelta(seconds=1)  # "about": a float's rounding either way
    profile = model.profile_for(facts.tier, facts.lifecycle_stage)
    for component in profile.components:
        max_age = component.max_data_age_days
        for source in component.inputs:
            last = (
                facts.oldest_open_high_urgent_update
                if source == "tickets"
                else health.last_seen(facts, source)
            )
            if last is None or last + timedelta(days=max_age) >= horizon:
                continue
            if health.input_status(component, facts, as_of)[0] != "ok":
                break  # missing stays missing, stale stays stale, until new data comes
            found.append((last + timedelta(days=max_age), _older_than(last, max_age)))
    last_usage = facts.last_usage_at
    if last_usage is not None:
        # published rounded to 0.1 day: silent from about SILENCE_DAYS - 0.05 days on
        about = last_usage + timedelta(days=SILENCE_DAYS - 0.05)
        if about < horizon and not silent(facts, as_of):
            found.append((about, lambda at: silent(facts, at)))
    return found


def _first(passed: Callable[[datetime], bool], about: datetime, after: datetime) -> datetime:
    """The first microsecond after ``after`` at which ``passed`` holds (it holds from some
    moment on), searched from ``about``: a float's rounding away from it."""
    at = max(about, after + MICROSECOND)
    for _ in range(64):
        if passed(at):
            if at - MICROSECOND <= after or not passed(at - MICROSECOND):
                return at
            at -= MICROSECOND
        else:
            at += MICROSECOND
    return _earliest(passed, after, max(at, about) + timedelta(seconds=1))


def _earliest(passed: Callable[[datetime], bool], after: datetime, until: datetime) -> datetime:
    """Bisection: the first microsecond in (``after``, ``until``] at which ``passed`` holds,
    given that it holds at ``until``, not at ``after``, and keeps holding once it does."""
    lo, hi = after, until
    while hi - lo > MICROSECOND:
        mid = lo + (hi - lo) // 2  # timedelta halves in whole microseconds
        if passed(mid):
            hi = mid
        else:
            lo = mid
    return hi


def next_evaluation(model: Model, facts: health.Facts, as_of: datetime) -> datetime:
    """The earliest moment after ``as_of`` at which the account's score or the facts it
    publishes can change with time alone: the next UTC midnight, or a crossing before it.

    Each crossing is one-way within a day (``ok`` → ``stale``, not silent → silent: only new
    data goes back, and new data is rescored through the dirty queue); its moment is worked
    out, then checked to the microsecond on the functions the score itself uses.
    """
    midnight = next_midnight(as_of)
    due = midnight
    for about, passed in _crossings(model, facts, as_of, midnight):
        due = min(due, _first(passed, about, as_of))
    return due
