"""A slow drift is published: ``score_delta`` is measured from the last *published* score.

Measured from the previous *computed* score, a score that loses 2 points a day never moves 10
points from one rescoring to the next, so no health change was ever published and alerts'
``score_dropped`` never saw it.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec

from services.scoring import health, model
from services.scoring.health import Previous
from shared.events import SILENCE_DAYS, HealthSnapshot, Signals
from tests.unit.scoring.builders import NOW
from tests.unit.scoring.test_health import healthy

MODEL = model.load(model.DEFAULT_MODEL_FILE)
DELTA = 10.0


def snapshot(score: float) -> HealthSnapshot:
    return HealthSnapshot(score=score, band="green", components=[])


def decide(previous: Previous, after: HealthSnapshot) -> list[str]:
    change = health.decide_change(
        account_id="acme", model=MODEL, previous=previous, after=after, as_of=NOW, score_delta=DELTA
    )
    return list(change.triggers) if change else []


def test_a_drift_of_two_points_a_day_is_published_once_it_adds_up_to_the_delta() -> None:
    published = 90.0
    computed = 90.0
    published_on: list[int] = []
    for day in range(1, 11):
        after = snapshot(90.0 - 2 * day)
        before = Previous(
            snapshot(computed),
            MODEL.version,
            NOW - timedelta(days=1),
            NOW,
            published_score=published,
        )
        if decide(before, after) == ["score_delta"]:
            published = after.score
            published_on.append(day)
        computed = after.score
    assert published_on == [5, 10]  # 90 → 80 → 70: each 10 points from the last published


def test_the_edge_is_the_delta_itself() -> None:
    before = Previous(snapshot(81.0), MODEL.version, NOW, NOW, published_score=90.0)
    assert decide(before, snapshot(80.0)) == ["score_delta"]  # exactly 10 from 90
    assert decide(before, snapshot(80.01)) == []  # 9.99
    assert decide(before, snapshot(100.0)) == ["score_delta"]  # a rise counts too


def test_without_a_known_published_score_the_previous_score_is_the_reference() -> None:
    before = Previous(snapshot(81.0), MODEL.version, NOW, NOW)
    assert decide(before, snapshot(72.0)) == []
    assert decide(before, snapshot(71.0)) == ["score_delta"]


def test_assess_carries_the_published_score_forward() -> None:
    facts = healthy()
    first = health.assess(MODEL, facts, None, NOW, score_delta=DELTA)
    assert first is not None
    assert first.change is not None  # the first score is published
    assert first.published_score == first.snapshot.score
    carried = first.previous(MODEL.version, NOW)
    assert carried.published_score == first.snapshot.score

    score = first.snapshot.score
    later = NOW + timedelta(hours=1)
    quiet = Previous(snapshot(score - 4), MODEL.version, NOW, NOW, published_score=score - 3)
    same = health.assess(MODEL, facts, quiet, later, score_delta=DELTA)
    assert same is not None
    assert same.change is None  # 3 points from the last published score
    assert same.published_score == score - 3  # nothing published: the reference stays

    far = Previous(snapshot(score - 4), MODEL.version, NOW, NOW, published_score=score - 12)
    moved = health.assess(MODEL, facts, far, later, score_delta=DELTA)
    assert moved is not None
    assert moved.change is not None
    assert moved.change.triggers == ["score_delta"]  # 4 from the last computed, 12 published
    assert moved.published_score == score


def silent(days: float | None) -> HealthSnapshot:
    return HealthSnapshot(
        score=80.0, band="green", components=[], signals=Signals(days_since_activity=days)
    )


def after_published(published: float | None, now: float | None) -> list[str]:
    before = Previous(
        silent(now), MODEL.version, NOW, NOW, published_score=80.0, published_silence=published
    )
    return decide(before, silent(now))


def test_silence_crossing_three_days_either_way_since_the_last_publish_is_published() -> None:
    assert SILENCE_DAYS == 3.0
    assert after_published(0.5, 3.0) == ["threshold_crossed"]  # silent: alerts may count on
    assert after_published(0.5, 2.99) == []
    assert after_published(10.0, 0.2) == ["threshold_crossed"]  # activity resumed
    assert after_published(10.0, 25.0) == []  # still silent: alerts counts the days itself
    assert after_published(0.2, 0.9) == []  # an active account: nothing to say
    assert after_published(None, 5.0) == []  # unknown: nothing to compare with


def test_the_end_of_an_accounts_warm_up_is_published() -> None:
    """Alerts reads ``warming_up`` from the last published snapshot (no risk alert while it is
    set), also when it judges the account as time passes: its end must be published."""
    warming = msgspec.structs.replace(silent(1.0), warming_up=True)
    before = Previous(warming, MODEL.version, NOW, NOW, published_score=80.0, published_silence=1.0)
    assert decide(before, silent(1.0)) == ["threshold_crossed"]
    assert decide(before, warming) == []
