"""The health model file: what it may say, how it is validated, and the model it yields.

A model file (TOML, e.g. ``models/health-v1.toml``) names its ``version``, the score ``bands``,
and per component a weight, a direction, a maximum data age, a threshold and its measures;
optional ``profiles`` change weights, measure thresholds or bands for a segment (tier,
lifecycle stage). :func:`parse` checks everything and raises :class:`ModelError` listing
every problem with where it is (``components.activity.weight: ...``), so a bad file stops the
service at start-up with a message that says what to fix.

Which components and measures exist is fixed here (:data:`CATALOG`): the code computes them;
the file decides how much each counts and where "bad" and "good" lie.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Direction = Literal["higher_is_better", "lower_is_better"]
MeasureKind = Literal["absolute", "baseline"]
Input = Literal["usage", "features", "seats", "tickets", "surveys"]
BAND_NAMES = ("red", "yellow", "green")
# An account is warming up until its data covers the activity baseline: the four weeks of the
# baseline plus the last seven days (services.scoring.health.BASELINE_WEEKS + 1 weeks).
DEFAULT_WARM_UP_DAYS = 35
MAX_CURVE_KNOTS = 32

DEFAULT_MODEL_FILE = Path(__file__).resolve().parent / "models" / "health-v1.toml"


@dataclass(frozen=True)
class ComponentSpec:
    """What the code knows about a component: its inputs and the measures it can compute."""

    inputs: tuple[Input, ...]
    measures: Mapping[str, MeasureKind]
    absence_is_zero: bool = False  # no events means a real zero count, not missing data


CATALOG: Mapping[str, ComponentSpec] = {
    "activity": ComponentSpec(
        ("usage",),
        {"active_days_7d": "absolute", "usage_trend": "baseline", "wau_trend": "baseline"},
    ),
    "recency": ComponentSpec(
        ("usage",), {"days_since_activity": "absolute", "silence_vs_usual": "baseline"}
    ),
    "breadth": ComponentSpec(
        ("features",), {"features_30d": "absolute", "features_trend": "baseline"}
    ),
    "seat_utilisation": ComponentSpec(
        ("usage", "seats"), {"seat_utilisation": "absolute", "utilisation_trend": "baseline"}
    ),
    "support": ComponentSpec(
        ("tickets",),
        {
            "open_high_urgent": "absolute",
            "high_urgent_opened_7d": "absolute",
            "escalations_reopens_30d": "absolute",
            "ticket_rate_trend": "baseline",
        },
        absence_is_zero=True,
    ),
    "sentiment": ComponentSpec(
        ("surveys",), {"nps": "absolute", "csat": "absolute", "nps_trend": "baseline"}
    ),
}


class ModelError(ValueError):
    """The model file is invalid; ``problems`` lists each one with its location."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid health model {source}:\n{listing}")


# ---------------------------------------------------------------------------------------------
# The validated model (what scoring uses)


Knot = tuple[float, float]  # (value, points)


@dataclass(frozen=True, slots=True)
class Measure:
    """A measure and how its value maps to 0–100 points.

    Either linear between ``bad`` (0 points) and ``good`` (100 points), clamped; or, with a
    ``curve``, piecewise-linear through its (value, points) knots (values ascending, points
    monotone in the component's direction), flat beyond the first and last knot. For a curve,
    ``bad`` and ``good`` are the values of its worst and best ends (for reading only).
    """

    name: str
    kind: MeasureKind
    bad: float
    good: float
    share: float
    curve: tuple[Knot, ...] | None = None

    def points(self, value: float) -> float:
        if self.curve is not None:
            return _interpolate(self.curve, value)
        fraction = (value - self.bad) / (self.good - self.bad)
        if fraction <= 0.0:
            return 0.0
        return 100.0 if fraction >= 1.0 else 100.0 * fraction


def _interpolate(curve: tuple[Knot, ...], value: float) -> float:
    if value <= curve[0][0]:
        return curve[0][1]
    if value >= curve[-1][0]:
        return curve[-1][1]
    i = bisect.bisect_right([v for v, _ in curve], value)
    (x0, y0), (x1, y1) = curve[i - 1], curve[i]
    points = y0 + (y1 - y0) * (value - x0) / (x1 - x0)
    return min(max(points, min(y0, y1)), max(y0, y1))  # a float's rounding stays in the segment


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    weight: float
    direction: Direction
    max_data_age_days: float
    threshold_points: float
    missing_points: float
    measures: tuple[Measure, ...]
    inputs: tuple[Input, ...]
    absence_is_zero: bool


@dataclass(frozen=True, slots=True)
class BandRange:
    name: Literal["red", "yellow", "green"]
    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    tiers: frozenset[str] | None
    lifecycle_stages: frozenset[str] | None
    components: tuple[Component, ...]
    bands: tuple[BandRange, ...]

    def matches(self, tier: str | None, lifecycle_stage: str | None) -> bool:
        if self.tiers is not None and tier not in self.tiers:
            return False
        return self.lifecycle_stages is None or lifecycle_stage in self.lifecycle_stages

    def band(self, score: float) -> Literal["red", "yellow", "green"]:
        for band in self.bands:
            if band.lower <= score < band.upper:
                return band.name
        return self.bands[-1].name  # the top of the range (100) belongs to the last band


@dataclass(frozen=True, slots=True)
class Model:
    version: str
    description: str
    top_reasons: int
    reason_below_points: float
    default: Profile
    profiles: tuple[Profile, ...] = field(default=())
    warm_up_days: int = DEFAULT_WARM_UP_DAYS

    def profile_for(self, tier: str | None, lifecycle_stage: str | None) -> Profile:
        for profile in self.profiles:
            if profile.matches(tier, lifecycle_stage):
                return profile
        return self.default

    def all_profiles(self) -> tuple[Profile, ...]:
        return (*self.profiles, self.default)


# ---------------------------------------------------------------------------------------------
# The file's shape (pydantic checks types and unknown keys; the rest is checked below)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _MeasureFile(_File):
    name: str
    kind: MeasureKind
    bad: float | None = None
    good: float | None = None
    curve: list[tuple[float, float]] | None = None
    share: float = Field(1.0, gt=0)


class _ComponentFile(_File):
    weight: float = Field(ge=0, le=100)
    direction: Direction
    max_data_age_days: float = Field(gt=0)
    threshold_points: float = Field(50.0, ge=0, le=100)
    missing_points: float = Field(
        0.0, ge=0, le=50, description="points when the input is missing or stale; ≤ neutral"
    )
    measures: list[_MeasureFile] = Field(min_length=1)


class _BandFile(_File):
    name: Literal["red", "yellow", "green"]
    from_: float = Field(alias="from")
    to: float


class _Threshold(_File):
    bad: float | None = None
    good: float | None = None
    curve: list[tuple[float, float]] | None = None


class _ProfileFile(_File):
    name: str = Field(min_length=1)
    tier: list[str] | None = None
    lifecycle_stage: list[str] | None = None
    weights: dict[str, float] | None = None
    measures: dict[str, _Threshold] = Field(default_factory=dict)
    bands: list[_BandFile] | None = None


class _ModelFile(_File):
    version: str = Field(min_length=1, max_length=64)
    description: str = ""
    top_reasons: int = Field(3, ge=1, le=10)
    reason_below_points: float = Field(60.0, ge=0, le=100)
    warm_up_days: int = Field(DEFAULT_WARM_UP_DAYS, ge=0, le=366)
    bands: list[_BandFile]
    components: dict[str, _ComponentFile] = Field(min_length=1)
    profiles: list[_ProfileFile] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Loading


def load(path: Path, *, warm_up_days: int | None = None) -> Model:
    """Read and validate a model file; raises :class:`ModelError`. ``warm_up_days`` (the
    service's ``SCORING_WARM_UP_DAYS``) overrides the file's when given."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ModelError(str(path), [f"cannot read the file: {exc}"]) from None
    loaded = parse(text, source=str(path))
    if warm_up_days is None:
        return loaded
    return dataclasses.replace(loaded, warm_up_days=warm_up_days)


def parse(text: str, *, source: str = "<text>") -> Model:
    """Validate a model given as TOML text; raises :class:`ModelError` naming every problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(source, [f"not valid TOML: {exc}"]) from None
    try:
        spec = _ModelFile.model_validate(raw)
    except ValidationError as exc:
        raise ModelError(source, [_pydantic_problem(e) for e in exc.errors()]) from None

    problems: list[str] = []
    components = _components(spec.components, problems)
    bands = _bands(spec.bands, "bands", problems)
    _check_weights({c.name: c.weight for c in components}, "components.*.weight", problems)
    default = Profile("default", None, None, components, bands)
    profiles = tuple(
        _profile(p, f"profiles[{i}]", default, problems) for i, p in enumerate(spec.profiles)
    )
    names = [p.name for p in profiles]
    for name in sorted({n for n in names if names.count(n) > 1 or n == "default"}):
        problems.append(f"profiles: the name {name!r} is used twice or is reserved")
    if problems:
        raise ModelError(source, problems)
    return Model(
        version=spec.version,
        description=spec.description,
        top_reasons=spec.top_reasons,
        reason_below_points=spec.reason_below_points,
        default=default,
        profiles=profiles,
        warm_up_days=spec.warm_up_days,
    )


def _pydantic_problem(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]).replace("from_", "from")
    return f"{where or 'file'}: {error['msg']}"


def _components(given: Mapping[str, _ComponentFile], problems: list[str]) -> tuple[Component, ...]:
    components: list[Component] = []
    for name, spec in given.items():
        where = f"components.{name}"
        known = CATALOG.get(name)
        if known is None:
            problems.append(f"{where}: unknown component (known: {', '.join(CATALOG)})")
            continue
        measures: list[Measure] = []
        seen: set[str] = set()
        for i, m in enumerate(spec.measures):
            at = f"{where}.measures[{i}] ({m.name})"
            kind = known.measures.get(m.name)
            if kind is None:
                problems.append(
                    f"{at}: not a measure of {name} (known: {', '.join(known.measures)})"
                )
                continue
            if m.name in seen:
                problems.append(f"{at}: listed twice")
                continue
            seen.add(m.name)
            if m.kind != kind:
                problems.append(f"{at}: is a {kind} measure, not {m.kind}")
            shape = _shape(spec.direction, m.bad, m.good, m.curve, at, problems)
            if shape is not None:
                measures.append(Measure(m.name, m.kind, *shape[:2], m.share, shape[2]))
        kinds = {m.kind for m in measures}
        for needed in ("absolute", "baseline"):
            if needed not in kinds:
                problems.append(f"{where}.measures: needs at least one {needed} measure")
        components.append(
            Component(
                name=name,
                weight=spec.weight,
                direction=spec.direction,
                max_data_age_days=spec.max_data_age_days,
                threshold_points=spec.threshold_points,
                missing_points=spec.missing_points,
                measures=tuple(measures),
                inputs=known.inputs,
                absence_is_zero=known.absence_is_zero,
            )
        )
    return tuple(components)


def _shape(
    direction: Direction,
    bad: float | None,
    good: float | None,
    curve: list[tuple[float, float]] | None,
    where: str,
    problems: list[str],
) -> tuple[float, float, tuple[Knot, ...] | None] | None:
    """A measure's mapping: ``bad`` and ``good``, or a ``curve`` (checked); None if invalid."""
    if curve is None:
        if bad is None or good is None:
            problems.append(f"{where}: needs `bad` and `good`, or a `curve`")
            return None
        _check_direction(direction, bad, good, where, problems)
        return bad, good, None
    if bad is not None or good is not None:
        problems.append(f"{where}: give either `bad`/`good` or a `curve`, not both")
        return None
    before = len(problems)
    knots = tuple((float(v), float(p)) for v, p in curve)
    if not 2 <= len(knots) <= MAX_CURVE_KNOTS:
        problems.append(f"{where}.curve: needs 2 to {MAX_CURVE_KNOTS} knots, has {len(knots)}")
        return None
    for i, (value, points) in enumerate(knots):
        if not (math.isfinite(value) and math.isfinite(points)):
            problems.append(f"{where}.curve[{i}]: value and points must be finite numbers")
        elif not 0.0 <= points <= 100.0:
            problems.append(f"{where}.curve[{i}]: points must be within 0–100, not {points:g}")
    for i, ((v0, p0), (v1, p1)) in enumerate(itertools.pairwise(knots), start=1):
        if not v1 > v0:
            problems.append(f"{where}.curve[{i}]: values must ascend ({v1:g} after {v0:g})")
        rising = direction == "higher_is_better"
        if (p1 < p0) if rising else (p1 > p0):
            problems.append(
                f"{where}.curve[{i}]: the component is {direction}, so points must "
                f"{'not fall' if rising else 'not rise'} as the value grows "
                f"({p0:g} → {p1:g})"
            )
    if len(problems) > before:
        return None
    worst, best = (
        (knots[0], knots[-1]) if direction == "higher_is_better" else (knots[-1], knots[0])
    )
    return worst[0], best[0], knots


def _check_direction(
    direction: Direction, bad: float, good: float, where: str, problems: list[str]
) -> None:
    if bad == good:
        problems.append(f"{where}: bad and good must differ")
    elif direction == "higher_is_better" and good < bad:
        problems.append(f"{where}: the component is higher_is_better, so good must exceed bad")
    elif direction == "lower_is_better" and good > bad:
        problems.append(f"{where}: the component is lower_is_better, so good must be below bad")


def _check_weights(weights: Mapping[str, float], where: str, problems: list[str]) -> None:
    total = sum(weights.values())
    if not math.isclose(total, 100.0, abs_tol=1e-6):
        listing = ", ".join(f"{k}={v:g}" for k, v in weights.items())
        problems.append(
            f"{where}: weights must add up to 100, they add up to {total:g} ({listing})"
        )


def _bands(given: list[_BandFile], where: str, problems: list[str]) -> tuple[BandRange, ...]:
    ordered = sorted(given, key=lambda b: b.from_)
    bands = tuple(BandRange(b.name, b.from_, b.to) for b in ordered)
    if not bands:
        problems.append(f"{where}: at least one band is needed")
        return bands
    names = [b.name for b in bands]
    if len(set(names)) != len(names):
        problems.append(f"{where}: each band may appear once ({', '.join(names)})")
    for band in bands:
        if band.upper <= band.lower:
            problems.append(f"{where}.{band.name}: 'to' ({band.upper:g}) must exceed 'from'")
    if bands[0].lower != 0:
        problems.append(f"{where}: the lowest band must start at 0, not {bands[0].lower:g}")
    if bands[-1].upper != 100:
        problems.append(f"{where}: the highest band must end at 100, not {bands[-1].upper:g}")
    for low, high in itertools.pairwise(bands):
        if low.upper < high.lower:
            problems.append(f"{where}: gap between {low.name} and {high.name}")
        elif low.upper > high.lower:
            problems.append(f"{where}: {low.name} and {high.name} overlap")
    severity = [BAND_NAMES.index(b.name) for b in bands]
    if severity != sorted(severity):
        problems.append(f"{where}: bands must go red → yellow → green as the score rises")
    return bands


def _profile(spec: _ProfileFile, where: str, default: Profile, problems: list[str]) -> Profile:
    if spec.tier is None and spec.lifecycle_stage is None:
        problems.append(f"{where} ({spec.name}): needs a tier or lifecycle_stage condition")
    by_name = {c.name: c for c in default.components}
    weights = {c.name: c.weight for c in default.components}
    if spec.weights is not None:
        unknown = set(spec.weights) - set(by_name)
        missing = set(by_name) - set(spec.weights)
        if unknown:
            problems.append(f"{where}.weights: unknown components {sorted(unknown)}")
        if missing:
            problems.append(
                f"{where}.weights: must give every component, missing {sorted(missing)}"
            )
        for name, weight in spec.weights.items():
            if not 0 <= weight <= 100:
                problems.append(f"{where}.weights.{name}: must be between 0 and 100")
        weights = {name: spec.weights.get(name, 0.0) for name in by_name}
        _check_weights(weights, f"{where}.weights", problems)
    overrides: dict[str, dict[str, tuple[float, float, tuple[Knot, ...] | None]]] = {}
    for key, threshold in spec.measures.items():
        component, _, measure = key.partition(".")
        base = by_name.get(component)
        if base is None or measure not in {m.name for m in base.measures}:
            problems.append(f"{where}.measures.{key}: no such component.measure in the model")
            continue
        shape = _shape(
            base.direction,
            threshold.bad,
            threshold.good,
            threshold.curve,
            f"{where}.measures.{key}",
            problems,
        )
        if shape is not None:
            overrides.setdefault(component, {})[measure] = shape
    components = tuple(
        _override(c, weights[c.name], overrides.get(c.name, {})) for c in default.components
    )
    bands = _bands(spec.bands, f"{where}.bands", problems) if spec.bands else default.bands
    return Profile(
        name=spec.name,
        tiers=frozenset(spec.tier) if spec.tier is not None else None,
        lifecycle_stages=(
            frozenset(spec.lifecycle_stage) if spec.lifecycle_stage is not None else None
        ),
        components=components,
        bands=bands,
    )


def _override(
    component: Component,
    weight: float,
    shapes: Mapping[str, tuple[float, float, tuple[Knot, ...] | None]],
) -> Component:
    measures = tuple(
        dataclasses.replace(
            m, bad=shapes[m.name][0], good=shapes[m.name][1], curve=shapes[m.name][2]
        )
        if m.name in shapes
        else m
        for m in component.measures
    )
    return dataclasses.replace(component, weight=weight, measures=measures)
