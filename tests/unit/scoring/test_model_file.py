"""The model file: the shipped one is valid, and every rule names what is wrong and where."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from services.scoring import model
from services.scoring.model import ModelError

SHIPPED = model.DEFAULT_MODEL_FILE


def shipped() -> dict[str, Any]:
    return tomllib.loads(SHIPPED.read_text())


def to_toml(doc: dict[str, Any]) -> str:
    """A tiny TOML writer for the shapes a model file has (tables, arrays of tables)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f'"{k}" = {value(x)}' for k, x in v.items()) + "}"
        return repr(v)

    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, v in doc.items():
        if isinstance(v, dict) and key == "components":
            tables.extend((f"components.{name}", spec) for name, spec in v.items())
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            arrays.append((key, v))
        else:
            lines.append(f"{key} = {value(v)}")
    for name, spec in tables:
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {value(x)}" for k, x in spec.items())
    for name, items in arrays:
        for item in items:
            lines.append(f"[[{name}]]")
            lines.extend(f"{k} = {value(x)}" for k, x in item.items())
    return "\n".join(lines) + "\n"


def problems_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ModelError) as caught:
        model.parse(to_toml(doc), source="test.toml")
    assert "test.toml" in str(caught.value)
    return caught.value.problems


def test_the_shipped_model_file_is_valid_and_versioned() -> None:
    loaded = model.load(SHIPPED)
    assert loaded.version == "health-v1"
    assert sum(c.weight for c in loaded.default.components) == 100
    assert [b.name for b in loaded.default.bands] == ["red", "yellow", "green"]
    for profile in loaded.all_profiles():
        assert sum(c.weight for c in profile.components) == 100
        for component in profile.components:
            assert component.direction in ("higher_is_better", "lower_is_better")
            assert component.max_data_age_days > 0
            assert {m.kind for m in component.measures} == {"absolute", "baseline"}


def test_the_writer_used_by_these_tests_round_trips_the_shipped_file() -> None:
    assert tomllib.loads(to_toml(shipped())) == shipped()


def test_weights_that_do_not_add_up_to_100_are_refused() -> None:
    doc = shipped()
    doc["components"]["activity"]["weight"] = 35
    [problem] = problems_of(doc)
    assert "weights must add up to 100, they add up to 105" in problem


def test_bands_with_a_gap_an_overlap_or_not_reaching_0_and_100_are_refused() -> None:
    doc = shipped()
    doc["bands"] = [
        {"name": "red", "from": 5, "to": 40},
        {"name": "yellow", "from": 45, "to": 75},
        {"name": "green", "from": 70, "to": 99},
    ]
    problems = problems_of(doc)
    assert any("must start at 0, not 5" in p for p in problems)
    assert any("must end at 100, not 99" in p for p in problems)
    assert any("gap between red and yellow" in p for p in problems)
    assert any("yellow and green overlap" in p for p in problems)


def test_a_component_without_a_direction_or_maximum_data_age_is_refused() -> None:
    doc = shipped()
    del doc["components"]["recency"]["direction"]
    del doc["components"]["breadth"]["max_data_age_days"]
    problems = problems_of(doc)
    assert "components.recency.direction: Field required" in problems
    assert "components.breadth.max_data_age_days: Field required" in problems


def test_a_measure_against_its_direction_is_refused() -> None:
    doc = shipped()
    doc["components"]["recency"]["measures"][0]["bad"] = 1
    doc["components"]["recency"]["measures"][0]["good"] = 10
    [problem] = problems_of(doc)
    assert problem.startswith("components.recency.measures[0] (days_since_activity)")
    assert "lower_is_better, so good must be below bad" in problem


def test_unknown_components_measures_and_keys_are_named() -> None:
    doc = shipped()
    doc["components"]["happiness"] = dict(doc["components"]["sentiment"])
    doc["components"]["activity"]["measures"].append(
        {"name": "vibes", "kind": "absolute", "bad": 0, "good": 1}
    )
    doc["colour"] = "blue"
    problems = problems_of(doc)
    assert any(p.startswith("colour: Extra inputs are not permitted") for p in problems)
    doc.pop("colour")
    problems = problems_of(doc)
    assert any(p.startswith("components.happiness: unknown component") for p in problems)
    assert any("(vibes): not a measure of activity" in p for p in problems)


def test_every_component_needs_an_absolute_and_a_baseline_measure() -> None:
    doc = shipped()
    doc["components"]["breadth"]["measures"] = [
        m for m in doc["components"]["breadth"]["measures"] if m["kind"] == "absolute"
    ]
    [problem] = problems_of(doc)
    assert problem == "components.breadth.measures: needs at least one baseline measure"


def test_a_measure_with_the_wrong_kind_is_refused() -> None:
    doc = shipped()
    doc["components"]["activity"]["measures"][1]["kind"] = "absolute"
    [problem] = problems_of(doc)
    assert "(usage_trend): is a baseline measure, not absolute" in problem


def test_profiles_must_give_weights_adding_to_100_and_known_measures() -> None:
    doc = shipped()
    doc["profiles"][0]["weights"]["activity"] = 50
    doc["profiles"][1]["measures"] = {"breadth.nonsense": {"bad": 0, "good": 1}}
    doc["profiles"].append({"name": "loose", "weights": doc["profiles"][1]["weights"]})
    problems = problems_of(doc)
    assert any(p.startswith("profiles[0].weights: weights must add up to 100") for p in problems)
    assert any("profiles[1].measures.breadth.nonsense: no such" in p for p in problems)
    assert any("profiles[2] (loose): needs a tier or lifecycle_stage" in p for p in problems)


def test_missing_points_may_not_exceed_neutral() -> None:
    doc = shipped()
    doc["components"]["sentiment"]["missing_points"] = 80
    [problem] = problems_of(doc)
    assert problem.startswith("components.sentiment.missing_points:")


def test_a_file_that_is_not_toml_or_cannot_be_read_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not valid TOML"):
        model.parse("version = ", source="x")
    with pytest.raises(ModelError, match="cannot read the file"):
        model.load(tmp_path / "missing.toml")


def test_the_first_matching_profile_applies_and_the_default_otherwise() -> None:
    loaded = model.load(SHIPPED)
    assert loaded.profile_for("enterprise", "onboarding").name == "onboarding"
    assert loaded.profile_for("enterprise", "mature").name == "enterprise"
    assert loaded.profile_for("pro", "mature").name == "default"
    assert loaded.profile_for(None, None).name == "default"
    onboarding = loaded.profile_for(None, "onboarding")
    breadth = next(c for c in onboarding.components if c.name == "breadth")
    assert next(m for m in breadth.measures if m.name == "features_30d").good == 3
    assert breadth.weight == 25


@pytest.mark.parametrize(
    ("score", "band"),
    [(0, "red"), (39.9, "red"), (40, "yellow"), (69.9, "yellow"), (70, "green"), (100, "green")],
)
def test_band_cut_offs_are_inclusive_below(score: float, band: str) -> None:
    assert model.load(SHIPPED).default.band(score) == band
