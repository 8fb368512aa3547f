"""Point curves in the model file: monotone piecewise-linear (value, points) knots, checked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.scoring import model
from services.scoring.model import ModelError

BASE = model.DEFAULT_MODEL_FILE.read_text()
ACTIVE = '{ name = "active_days_7d", kind = "absolute", bad = 1, good = 5 }'
SILENCE = '{ name = "days_since_activity", kind = "absolute", bad = 14, good = 2, share = 2 }'


def with_measure(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


def problems(text: str) -> list[str]:
    with pytest.raises(ModelError) as caught:
        model.parse(text, source="t.toml")
    return caught.value.problems


def measure(loaded: model.Model, component: str, name: str) -> model.Measure:
    c = next(c for c in loaded.default.components if c.name == component)
    return next(m for m in c.measures if m.name == name)


def test_a_curve_interpolates_between_knots_and_is_flat_beyond_them() -> None:
    text = with_measure(
        ACTIVE,
        '{ name = "active_days_7d", kind = "absolute", curve = [[0, 5], [2, 40], [6, 100]] }',
    )
    m = measure(model.parse(text), "activity", "active_days_7d")
    assert m.curve == ((0, 5), (2, 40), (6, 100))
    assert (m.bad, m.good) == (0, 6)
    assert m.points(-3) == 5
    assert m.points(1) == pytest.approx(22.5)
    assert m.points(4) == pytest.approx(70)
    assert m.points(9) == 100


def test_a_lower_is_better_curve_falls_and_its_bad_end_is_the_high_value() -> None:
    text = with_measure(
        SILENCE,
        '{ name = "days_since_activity", kind = "absolute", curve = [[1, 100], [7, 30], [30, 0]] }',
    )
    m = measure(model.parse(text), "recency", "days_since_activity")
    assert (m.bad, m.good) == (30, 1)
    assert m.points(4) == pytest.approx(65)


@pytest.mark.parametrize(
    ("curve", "message"),
    [
        ("[[0, 50], [2, 40]]", "points must not fall"),
        ("[[0, 10], [0, 40]]", "values must ascend"),
        ("[[3, 10], [1, 40]]", "values must ascend"),
        ("[[0, -1], [2, 40]]", "within 0–100"),
        ("[[0, 10], [2, 140]]", "within 0–100"),
        ("[[0, 10]]", "2 to 32 knots"),
        ("[[0, 10], [1, nan]]", "finite"),
    ],
)
def test_a_bad_curve_is_refused_saying_where_and_why(curve: str, message: str) -> None:
    text = with_measure(
        ACTIVE, f'{{ name = "active_days_7d", kind = "absolute", curve = {curve} }}'
    )
    found = problems(text)
    assert any("components.activity.measures[0]" in p and message in p for p in found), found


def test_curve_and_bad_good_together_or_neither_are_refused() -> None:
    both = with_measure(
        ACTIVE,
        '{ name = "active_days_7d", kind = "absolute", bad = 1, good = 5, '
        "curve = [[0, 0], [5, 100]] }",
    )
    assert any("not both" in p for p in problems(both))
    neither = with_measure(ACTIVE, '{ name = "active_days_7d", kind = "absolute" }')
    assert any("needs `bad` and `good`, or a `curve`" in p for p in problems(neither))


def test_a_profile_may_override_a_measure_with_a_curve_checked_the_same_way() -> None:
    ok = BASE.replace(
        '"breadth.features_30d" = { bad = 2, good = 8 }',
        '"breadth.features_30d" = { curve = [[0, 0], [3, 60], [8, 100]] }',
    )
    loaded = model.parse(ok)
    enterprise = next(p for p in loaded.profiles if p.name == "enterprise")
    breadth = next(c for c in enterprise.components if c.name == "breadth")
    assert next(m for m in breadth.measures if m.name == "features_30d").points(3) == 60
    bad = BASE.replace(
        '"breadth.features_30d" = { bad = 2, good = 8 }',
        '"breadth.features_30d" = { curve = [[0, 90], [8, 10]] }',
    )
    assert any("profiles[1].measures.breadth.features_30d" in p for p in problems(bad))


@given(
    st.lists(
        st.tuples(st.floats(-100, 100), st.floats(0, 100)),
        min_size=2,
        max_size=8,
        unique_by=lambda k: k[0],
    ),
    st.floats(-200, 200),
    st.floats(-200, 200),
)
def test_a_valid_curve_gives_points_in_range_and_never_falls(
    knots: list[tuple[float, float]], a: float, b: float
) -> None:
    ordered = sorted(knots)
    rising = [(v, p) for (v, _), p in zip(ordered, sorted(p for _, p in ordered), strict=True)]
    m = model.Measure("x", "absolute", 0, 1, 1.0, tuple(rising))
    low, high = sorted((a, b))
    assert 0 <= m.points(low) <= m.points(high) <= 100
