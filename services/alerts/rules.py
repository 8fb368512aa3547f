"""Alert rules: the validated rules file and the pure evaluation of a health change against it.

A rule reads one :class:`~shared.events.HealthChange` (plus what the service knows about the
account: its renewal date, its recent scores) and gives a :class:`Verdict`:

- ``fire``     the condition holds: open the alert, or keep it open at this severity;
- ``sustain``  the condition still holds but did not newly start: keep an open alert open (at
               this severity) without opening a new one — e.g. a band that stays red;
- ``clear``    the condition no longer holds: resolve the open alert;
- ``unknown``  an input the rule needs is missing: leave the alert as it is.

An account that is still warming up (``after.warming_up``: its data does not cover the
baseline window yet) gets ``unknown`` from every risk rule (motions in :data:`RISK_MOTIONS`):
no risk alert is raised for it; opportunity rules still apply.

No I/O here; the time a rule measures against is the change's ``as_of``.

**Time passing.** Some verdicts change with no new data: a renewal enters its window, the days
without activity reach ``no_activity``'s steps, a green account reaches ``advocacy``'s days, a
score peak leaves ``score_dropped``'s window. :func:`as_time_passes` gives the latest change seen
again at a later moment (its day counters advanced, ``before`` = ``after``: no band moved), which
:func:`evaluate` judges like any change; :func:`next_evaluation` says when that is next worth
doing for an account (the earliest such crossing), so the scheduler only looks at those.

**Re-baseline.** A change whose model version differs from the one the account was last judged
with is the model's move, not the customer's: :func:`rebaselined` turns the ``fire`` of the
rules that compare the account with its own past (:data:`COMPARING_KINDS`) into ``sustain``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.events import SILENCE_DAYS, Band, HealthChange, HealthSnapshot

Severity = Literal["info", "warning", "critical"]
Motion = Literal["adoption", "renewal", "expansion", "advocacy"]
Delivery = Literal["immediate", "digest"]
RISK_MOTIONS: frozenset[Motion] = frozenset({"adoption", "renewal"})
Outcome = Literal["fire", "sustain", "clear", "unknown"]

SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
BAND_RANK: dict[str, int] = {"green": 0, "yellow": 1, "red": 2}


def raise_severity(severity: Severity, steps: int = 1) -> Severity:
    return SEVERITIES[min(SEVERITY_RANK[severity] + steps, len(SEVERITIES) - 1)]


# ---------------------------------------------------------------------------------------------
# The rules file


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    severity: Severity
    motion: Motion
    delivery: Delivery | None = None  # None: the file's default
    send_resolved: bool | None = None  # None: the file's default
    # Once the condition clears, the alert stays open this long before it resolves; if the
    # condition returns meanwhile it is the same alert, not a new one (no flapping).
    keep_firing_for_days: float = Field(0, ge=0, le=30)
    description: str = ""


class BandWorsened(_Rule):
    """The band got worse (green → yellow → red), into ``to`` or worse. Open while the band is
    at least ``to`` (``red``: only a fall into red fires)."""

    kind: Literal["band_worsened"]
    severity_when_red: Severity = "critical"
    to: Literal["yellow", "red"] = "yellow"


class ScoreDropped(_Rule):
    """The score is at least ``points`` below its highest value of the last ``days`` days."""

    kind: Literal["score_dropped"]
    points: float = Field(gt=0, le=100)
    days: float = Field(gt=0, le=90)
    critical_points: float | None = Field(None, gt=0, le=100)


class NoActivity(_Rule):
    """Nobody at the account did anything for ``days`` days."""

    kind: Literal["no_activity"]
    days: float = Field(gt=0)
    critical_days: float | None = Field(None, gt=0)


class TicketSurge(_Rule):
    """At least ``opened_7d`` high/urgent tickets opened in 7 days, or ``open`` still open."""

    kind: Literal["ticket_surge"]
    opened_7d: int = Field(ge=1)
    open: int | None = Field(None, ge=1)


class RenewalAtRisk(_Rule):
    """Renewal within ``within_days`` while the band is not green; critical when it is red or
    the renewal is within ``critical_within_days``."""

    kind: Literal["renewal_at_risk"]
    within_days: int = Field(ge=1, le=730)
    critical_within_days: int | None = Field(None, ge=0)


class Expansion(_Rule):
    """Seat utilisation at or above ``utilisation`` (0.9 = 90 %): time to talk about seats.
    Clears below ``clear_below`` (hysteresis; defaults to ``utilisation``)."""

    kind: Literal["expansion"]
    utilisation: float = Field(gt=0, le=5)
    clear_below: float | None = Field(None, gt=0, le=5)


class Advocacy(_Rule):
    """Green for ``green_days`` days with an NPS of at least ``min_nps``: ask for a reference."""

    kind: Literal["advocacy"]
    green_days: float = Field(gt=0)
    min_nps: int = Field(9, ge=0, le=10)


RuleConfig = Annotated[
    BandWorsened | ScoreDropped | NoActivity | TicketSurge | RenewalAtRisk | Expansion | Advocacy,
    Field(discriminator="kind"),
]


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    delivery: Delivery = "immediate"
    send_resolved: bool = True


class RenewalProximity(BaseModel):
    """Risk alerts of ``motions`` are raised one severity level while the renewal is near."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    within_days: int = Field(60, ge=0, le=730)
    motions: frozenset[Motion] = frozenset({"adoption"})


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    defaults: Defaults = Defaults()
    renewal_proximity: RenewalProximity = RenewalProximity()
    rule: list[RuleConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_are_unique(self) -> RulesFile:
        names = [r.name for r in self.rule]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(duplicates)}")
        return self


@dataclass(frozen=True)
class Rule:
    """One rule with the file's defaults applied."""

    config: RuleConfig
    delivery: Delivery
    send_resolved: bool

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def motion(self) -> Motion:
        return self.config.motion

    @property
    def keep_firing_for(self) -> timedelta:
        return timedelta(days=self.config.keep_firing_for_days)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    renewal_proximity: RenewalProximity

    def by_name(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    @property
    def history_days(self) -> float:
        """How far back the score history must reach for the score-drop rules."""
        return max(
            (r.config.days for r in self.rules if isinstance(r.config, ScoreDropped)), default=0
        )


class RulesError(ValueError):
    """The rules file is missing or invalid; the message says where and why."""


def parse(text: str, *, source: str = "<rules>") -> RuleSet:
    try:
        raw = tomllib.loads(text)
        config = RulesFile.model_validate(raw)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{source}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise RulesError(f"{source}: invalid rules:\n{exc}") from None
    rules = tuple(
        Rule(
            config=r,
            delivery=r.delivery or config.defaults.delivery,
            send_resolved=(
                config.defaults.send_resolved if r.send_resolved is None else r.send_resolved
            ),
        )
        for r in config.rule
    )
    return RuleSet(rules, config.renewal_proximity)


def load(path: Path) -> RuleSet:
    try:
        text = path.read_text()
    except OSError as exc:
        raise RulesError(f"{path}: cannot read the rules file: {exc}") from None
    return parse(text, source=str(path))


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True)
class Context:
    """What the service knows besides the change: the account record and recent scores."""

    renewal_date: date | None = None
    # (as_of, score) of earlier evaluations of this account, any order, any age
    score_history: Sequence[tuple[datetime, float]] = ()


@dataclass(frozen=True)
class Verdict:
    rule: str
    outcome: Outcome
    severity: Severity
    summary: str = ""


def evaluate(ruleset: RuleSet, change: HealthChange, context: Context) -> list[Verdict]:
    """Every rule's verdict on one health change."""
    verdicts: list[Verdict] = []
    renewal = change.after.signals.renewal_date or context.renewal_date
    renewal_near = (
        renewal is not None
        and 0 <= (renewal - change.as_of.date()).days <= ruleset.renewal_proximity.within_days
    )
    for rule in ruleset.rules:
        if change.after.warming_up and rule.motion in RISK_MOTIONS:
            verdicts.append(Verdict(rule.name, "unknown", rule.config.severity, "warming up"))
            continue
        verdict = _evaluate_one(rule.config, change, context, renewal)
        if (
            renewal_near
            and verdict.outcome in ("fire", "sustain")
            and rule.motion in ruleset.renewal_proximity.motions
        ):
            verdict = Verdict(
                verdict.rule,
                verdict.outcome,
                raise_severity(verdict.severity),
                f"{verdict.summary}; renewal on {renewal}",
            )
        verdicts.append(verdict)
    return verdicts


def _evaluate_one(
    rule: RuleConfig, change: HealthChange, context: Context, renewal: date | None
) -> Verdict:
    after = change.after
    signals = after.signals
    name = rule.name

    def fire(summary: str, severity: Severity | None = None) -> Verdict:
        return Verdict(name, "fire", severity or rule.severity, summary)

    def clear(summary: str = "") -> Verdict:
        return Verdict(name, "clear", rule.severity, summary)

    unknown = Verdict(name, "unknown", rule.severity)

    match rule:
        case BandWorsened():
            severity = rule.severity_when_red if after.band == "red" else rule.severity
            if after.band == "green":
                return clear("back to green")
            if BAND_RANK[after.band] < BAND_RANK[rule.to]:
                return clear(f"health band {after.band}")
            summary = _band_summary(change.before.band if change.before else None, after.band)
            before = change.before
            if before is not None and BAND_RANK[after.band] > BAND_RANK[before.band]:
                return fire(summary, severity)
            return Verdict(name, "sustain", severity, summary)
        case ScoreDropped():
            since = change.as_of - timedelta(days=rule.days)
            earlier = [score for at, score in context.score_history if since <= at <= change.as_of]
            if change.before is not None:
                earlier.append(change.before.score)
            if not earlier:
                return unknown
            peak = max(earlier)
            drop = peak - after.score
            if drop < rule.points:
                return clear(f"score {after.score:.0f}, {drop:.0f} points below its peak")
            critical = rule.critical_points is not None and drop >= rule.critical_points
            return fire(
                f"score dropped {drop:.0f} points in {rule.days:g} days "
                f"({peak:.0f} → {after.score:.0f})",
                "critical" if critical else None,
            )
        case NoActivity():
            days = signals.days_since_activity
            if days is None:
                return unknown
            if days < rule.days:
                return clear()
            critical = rule.critical_days is not None and days >= rule.critical_days
            return fire(f"no activity for {days:.0f} days", "critical" if critical else None)
        case TicketSurge():
            opened, still_open = signals.high_urgent_opened_7d, signals.open_high_urgent_tickets
            if opened is None and still_open is None:
                return unknown
            if opened is not None and opened >= rule.opened_7d:
                return fire(f"{opened} high/urgent tickets opened in 7 days")
            if rule.open is not None and still_open is not None and still_open >= rule.open:
                return fire(f"{still_open} high/urgent tickets open")
            return clear()
        case RenewalAtRisk():
            if renewal is None:
                return unknown
            days_left = (renewal - change.as_of.date()).days
            if after.band == "green" or not 0 <= days_left <= rule.within_days:
                return clear()
            critical = after.band == "red" or (
                rule.critical_within_days is not None and days_left <= rule.critical_within_days
            )
            return fire(
                f"renewal in {days_left} days ({renewal}) while {after.band}",
                "critical" if critical else None,
            )
        case Expansion():
            utilisation = signals.seat_utilisation
            if utilisation is None:
                return unknown
            if utilisation >= rule.utilisation:
                seats = f" of {signals.seats} seats" if signals.seats else ""
                return fire(f"seat utilisation {utilisation:.0%}{seats}")
            if utilisation < (rule.clear_below or rule.utilisation):
                return clear()
            return Verdict(name, "sustain", rule.severity, f"seat utilisation {utilisation:.0%}")
        case Advocacy():
            if after.band != "green":
                return clear()
            nps, days = signals.nps_latest, signals.days_in_band
            if nps is None or days is None:
                return unknown
            if nps >= rule.min_nps and days >= rule.green_days:
                return fire(f"green for {days:.0f} days with NPS {nps}")
            return clear()
    raise AssertionError(f"unhandled rule kind {rule!r}")  # pragma: no cover


def _band_summary(before: Band | None, after: Band) -> str:
    if before is None:
        return f"health band {after}"
    if before == after:  # a sustained alert keeps saying what is true now, not "red → red"
        return f"health band still {after}"
    return f"health band {before} → {after}"


# ---------------------------------------------------------------------------------------------
# Time passing and re-baselines

DAY_SECONDS = 86_400.0
DAY_COUNTER_DIGITS = 6  # day counters are rounded so a crossing computed to the second holds


def later(snapshot: HealthSnapshot, as_of: datetime, now: datetime) -> HealthSnapshot:
    """The snapshot taken at ``as_of`` as it reads at ``now`` with no new data: the days in the
    band have grown by the time passed (a band change is always published), and so have the
    days since the last activity when the snapshot shows at least ``SILENCE_DAYS`` of them
    (scoring publishes the activity that ends such a silence; an account shown active may have
    been active every day since, unpublished); the score, the band and every count stay as
    scoring last published them."""
    elapsed = max((now - as_of).total_seconds(), 0.0) / DAY_SECONDS
    signals = snapshot.signals
    silence = signals.days_since_activity
    moved = msgspec.structs.replace(
        signals,
        days_since_activity=_plus(silence, elapsed) if _silent(silence) else silence,
        days_in_band=_plus(signals.days_in_band, elapsed),
    )
    return msgspec.structs.replace(snapshot, signals=moved)


def _silent(days: float | None) -> bool:
    return days is not None and days >= SILENCE_DAYS


def _plus(days: float | None, elapsed: float) -> float | None:
    return None if days is None else round(days + elapsed, DAY_COUNTER_DIGITS)


def as_time_passes(
    account_id: str,
    model_version: str,
    snapshot: HealthSnapshot,
    as_of: datetime,
    now: datetime,
) -> HealthChange:
    """The account's latest health (``snapshot`` at ``as_of``) as a change judged at ``now``:
    ``before`` is the snapshot itself, so no band moved and nothing fires for a move; the rules
    that read levels and durations see them as of ``now``."""
    return HealthChange(
        change_id=f"time:{account_id}:{now.isoformat()}",
        account_id=account_id,
        as_of=now,
        model_version=model_version,
        before=snapshot,
        after=later(snapshot, as_of, now),
        triggers=[],
    )


def next_evaluation(
    ruleset: RuleSet,
    snapshot: HealthSnapshot,
    as_of: datetime,
    context: Context,
    since: datetime,
) -> datetime | None:
    """The first moment after ``since`` at which time alone may change a verdict on the account
    whose latest health is ``snapshot`` at ``as_of`` (None: never, until new data arrives).

    The crossings: ``no_activity``'s ``days`` and ``critical_days`` (counted only from a silence
    of ``SILENCE_DAYS`` or more: see :func:`later`); ``advocacy``'s
    ``green_days`` while green; a renewal entering ``renewal_at_risk``'s ``within_days`` and
    ``critical_within_days`` and the proximity window (at 00:00 UTC of the day: rules count
    whole days to the renewal), and leaving them the day after the renewal; a score that could
    make ``score_dropped`` fire leaving its window. ``ticket_surge``, ``expansion`` and
    ``band_worsened`` read counts and moves that only new data changes."""
    signals = snapshot.signals
    renewal = signals.renewal_date or context.renewal_date
    found: list[datetime] = []

    def after_days(days: float, have: float | None) -> None:
        if have is not None and days > have:
            found.append(as_of + timedelta(seconds=math.ceil((days - have) * DAY_SECONDS)))

    def on_day(day: date) -> None:
        found.append(datetime.combine(day, time(), UTC))

    proximity = ruleset.renewal_proximity
    if renewal is not None and any(r.motion in proximity.motions for r in ruleset.rules):
        on_day(renewal - timedelta(days=proximity.within_days))
        on_day(renewal + timedelta(days=1))
    for rule in ruleset.rules:
        if snapshot.warming_up and rule.motion in RISK_MOTIONS:
            continue
        config = rule.config
        match config:
            case NoActivity() if _silent(signals.days_since_activity):
                for days in (config.days, config.critical_days):
                    if days is not None:
                        after_days(days, signals.days_since_activity)
            case Advocacy() if snapshot.band == "green":
                after_days(config.green_days, signals.days_in_band)
            case RenewalAtRisk() if renewal is not None:
                on_day(renewal - timedelta(days=config.within_days))
                if config.critical_within_days is not None:
                    on_day(renewal - timedelta(days=config.critical_within_days))
                on_day(renewal + timedelta(days=1))
            case ScoreDropped():
                window = timedelta(days=config.days)
                found.extend(
                    at + window
                    for at, score in context.score_history
                    if score - snapshot.score >= config.points
                )
            case _:
                pass
    return min((at for at in found if at > since), default=None)


# Rules that compare the account with its own past (band moves, score drops): across a model
# version that past was measured by another model, so they do not fire (see rebaselined).
COMPARING_KINDS: frozenset[str] = frozenset({"band_worsened", "score_dropped"})


def rebaselined(ruleset: RuleSet, verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The verdicts of a change across a model version: the comparing rules do not open an
    alert (``fire`` → ``sustain``: an open one stays open, a cleared one clears)."""
    kinds = {r.name: r.config.kind for r in ruleset.rules}
    return [
        Verdict(v.rule, "sustain", v.severity, v.summary)
        if v.outcome == "fire" and kinds.get(v.rule) in COMPARING_KINDS
        else v
        for v in verdicts
    ]
