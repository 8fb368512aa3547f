"""The health model at work: facts about an account → an explained score → a health change.

Pure: dataclasses and functions, no I/O; ``as_of`` is always passed in.

- :class:`Facts` is everything scoring knows about one account as of a moment (counts over
  windows that end on ``as_of``'s day, latest values, the account record). The store gathers
  it; nothing here reads a clock or a database.
- :func:`evaluate` turns facts into a :class:`~shared.events.HealthSnapshot`: per component
  its raw value, points, weight and contribution (they add up to the score), the band, the
  ``partial``/``stale`` flags naming what is missing or too old, the top reasons as sentences
  and the plain signals alert rules read. Missing or stale input scores the component's
  ``missing_points`` (0 by default, never above neutral), so missing data never lifts a score.
- :func:`warm_up` says whether an account's data covers the baseline window yet: while it does
  not (``Model.warm_up_days``, 35 by default), its score is flagged ``warming_up`` with the
  reason in words, and its band is never worse than yellow (the score itself is unchanged:
  the contributions still add up to it). Alert rules raise no risk alert for it.
- :func:`settle` carries the band's start over from the previous score (``days_in_band``).
- :func:`decide_change` says whether the move from the previous score is worth publishing
  (band changed, score moved by at least the delta, a component crossed its threshold) and
  builds the :class:`~shared.events.HealthChange` with a deterministic ``change_id``.
- :func:`assess` is the whole decision for one account: evaluate, settle, decide, and whether
  the score goes into the history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from services.scoring.model import Component, Input, Measure, Model, Profile
from shared.events import (
    MAX_EVIDENCE,
    MAX_TICKET_IDS,
    SILENCE_DAYS,
    ComponentMove,
    ComponentScore,
    HealthChange,
    HealthSnapshot,
    Signals,
)

DAY_SECONDS = 86_400.0
BASELINE_WEEKS = 4  # the activity baseline: the four weeks before the last seven days
SENTIMENT_WINDOW_DAYS = 180  # answers counted for NPS / CSAT
SENTIMENT_TREND_DAYS = 90  # the last 90 days of answers vs the 90 before

Status = Literal["ok", "missing", "stale"]
Trigger = Literal["band_changed", "score_delta", "threshold_crossed", "first_score"]


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known about one account as of a moment.

    Windows end on the day of ``as_of`` (UTC days of ``occurred_at``): ``_7d`` is that day and
    the six before, ``_prior_4w`` the 28 days before those, ``_30d`` that day and the 29
    before, ``_prior_30d`` the 30 days before those.
    """

    account_id: str
    # the account record
    known_since: datetime | None = None  # first event or record seen
    tier: str | None = None
    lifecycle_stage: str | None = None
    seats: int | None = None
    renewal_date: date | None = None
    # usage
    first_usage_at: datetime | None = None
    last_usage_at: datetime | None = None
    usage_events_7d: int = 0
    usage_events_prior_4w: int = 0
    active_days_7d: int = 0
    active_days_prior_4w: int = 0
    active_users_7d: int = 0
    active_users_prior_4w: int = 0  # weekly active users summed over the four prior weeks
    active_users_30d: int = 0
    active_users_prior_30d: int = 0
    # breadth
    first_feature_at: datetime | None = None
    last_feature_at: datetime | None = None
    features_30d: int = 0
    features_prior_30d: int = 0
    # support
    tickets_opened_7d: int = 0
    tickets_opened_prior_4w: int = 0
    high_urgent_opened_7d: int = 0
    escalations_30d: int = 0
    reopens_30d: int = 0
    open_tickets: int = 0
    open_high_urgent: int = 0
    oldest_open_high_urgent_update: datetime | None = None
    open_high_urgent_ids: tuple[str, ...] = ()  # least recently updated first, ≤ MAX_TICKET_IDS
    # sentiment (answers of the last SENTIMENT_WINDOW_DAYS)
    last_survey_at: datetime | None = None
    nps_answers: int = 0
    nps_promoters: int = 0
    nps_detractors: int = 0
    nps_recent_sum: int = 0
    nps_recent_answers: int = 0
    nps_prior_sum: int = 0
    nps_prior_answers: int = 0
    csat_sum: int = 0
    csat_answers: int = 0
    nps_latest: int | None = None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A score with the profile of the model that produced it."""

    snapshot: HealthSnapshot
    profile: str


@dataclass(frozen=True, slots=True)
class Previous:
    """The account's last recorded score."""

    snapshot: HealthSnapshot
    model_version: str
    as_of: datetime
    band_since: datetime
    # the score of the last health change published (None: unknown, the snapshot's is used):
    # ``score_delta`` is measured from it, so a slow drift is published once it adds up
    published_score: float | None = None
    # its days since activity: crossing ``SILENCE_DAYS`` from it, either way, is published
    published_silence: float | None = None


# ---------------------------------------------------------------------------------------------
# Measures: how each value is computed from the facts, and how it reads as a sentence.


def days_since(then: datetime | None, as_of: datetime) -> float | None:
    if then is None:
        return None
    return max(0.0, (as_of - then).total_seconds() / DAY_SECONDS)


def published_days_since(days: float | None) -> float | None:
    """Days since the last activity as the snapshot's signals publish them (0.1 day)."""
    return round(days, 1) if days is not None else None


def _ratio(recent: float, baseline: float) -> float:
    """Recent vs baseline; against a zero baseline, as if the baseline were one."""
    return recent / baseline if baseline > 0 else recent + 1.0


def _covers(start: datetime | None, as_of: datetime, days: int) -> bool:
    """Whether data started early enough for a baseline reaching ``days`` back."""
    return start is not None and (as_of.date() - start.date()).days >= days - 1


def measure_values(facts: Facts, as_of: datetime) -> dict[str, float | None]:
    """Every measure's value (None when it cannot be computed, e.g. no baseline yet)."""
    f = facts
    weekly_baseline = _covers(f.first_usage_at, as_of, 7 * (BASELINE_WEEKS + 1))
    monthly_baseline = _covers(f.first_usage_at, as_of, 60)
    silence = days_since(f.last_usage_at, as_of)
    usual_gap = 7.0 * BASELINE_WEEKS / f.active_days_prior_4w if f.active_days_prior_4w else None
    nps = 100.0 * (f.nps_promoters - f.nps_detractors) / f.nps_answers if f.nps_answers else None
    nps_trend = (
        f.nps_recent_sum / f.nps_recent_answers - f.nps_prior_sum / f.nps_prior_answers
        if f.nps_recent_answers and f.nps_prior_answers
        else None
    )
    return {
        "active_days_7d": float(f.active_days_7d),
        "usage_trend": (
            _ratio(f.usage_events_7d, f.usage_events_prior_4w / BASELINE_WEEKS)
            if weekly_baseline
            else None
        ),
        "wau_trend": (
            _ratio(f.active_users_7d, f.active_users_prior_4w / BASELINE_WEEKS)
            if weekly_baseline
            else None
        ),
        "days_since_activity": silence,
        "silence_vs_usual": (
            silence / usual_gap if weekly_baseline and silence is not None and usual_gap else None
        ),
        "features_30d": float(f.features_30d),
        "features_trend": (
            _ratio(f.features_30d, f.features_prior_30d)
            if _covers(f.first_feature_at, as_of, 60)
            else None
        ),
        "seat_utilisation": f.active_users_30d / f.seats if f.seats else None,
        "utilisation_trend": (
            _ratio(f.active_users_30d, f.active_users_prior_30d) if monthly_baseline else None
        ),
        "open_high_urgent": float(f.open_high_urgent),
        "high_urgent_opened_7d": float(f.high_urgent_opened_7d),
        "escalations_reopens_30d": float(f.escalations_30d + f.reopens_30d),
        "ticket_rate_trend": (
            _ratio(f.tickets_opened_7d, f.tickets_opened_prior_4w / BASELINE_WEEKS)
            if _covers(f.known_since, as_of, 7 * (BASELINE_WEEKS + 1))
            else None
        ),
        "nps": nps,
        "csat": f.csat_sum / f.csat_answers if f.csat_answers else None,
        "nps_trend": nps_trend,
    }


def _plural(n: float, one: str, many: str | None = None) -> str:
    count = round(n)
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _change(ratio: float, what: str, versus: str) -> str:
    pct = round(abs(1.0 - ratio) * 100)
    return f"{what} {'down' if ratio < 1 else 'up'} {pct}% vs {versus}"


Sentence = Callable[[float, Facts], str]

SENTENCES: Mapping[str, Sentence] = {
    "active_days_7d": lambda v, f: (
        "no activity in the last 7 days"
        if v == 0
        else f"active on only {_plural(v, 'day')} of the last 7"
    ),
    "usage_trend": lambda v, f: _change(v, "usage", "the 4-week baseline"),
    "wau_trend": lambda v, f: _change(v, "weekly active users", "the 4-week baseline"),
    "days_since_activity": lambda v, f: f"no activity for {_plural(v, 'day')}",
    "silence_vs_usual": lambda v, f: f"silent {v:.1f}× longer than the usual gap between visits",
    "features_30d": lambda v, f: (
        "no feature used in the last 30 days"
        if v == 0
        else f"only {_plural(v, 'feature')} used in the last 30 days"
    ),
    "features_trend": lambda v, f: _change(v, "features used", "the previous 30 days"),
    "seat_utilisation": lambda v, f: (
        f"only {round(v * 100)}% of seats active in 30 days ({f.active_users_30d} of {f.seats})"
    ),
    "utilisation_trend": lambda v, f: _change(v, "monthly active users", "the previous 30 days"),
    "open_high_urgent": lambda v, f: f"{_plural(v, 'high/urgent ticket')} open",
    "high_urgent_opened_7d": lambda v, f: f"{_plural(v, 'high/urgent ticket')} opened in 7 days",
    "escalations_reopens_30d": lambda v, f: (
        f"{_plural(f.escalations_30d, 'escalation')} and "
        f"{_plural(f.reopens_30d, 'reopened ticket')} in 30 days"
    ),
    "ticket_rate_trend": lambda v, f: f"new tickets at {v:.1f}× the 4-week rate",
    "nps": lambda v, f: f"NPS {round(v)} from {_plural(f.nps_answers, 'answer')} in 180 days",
    "csat": lambda v, f: f"CSAT {v:.1f}/5 from {_plural(f.csat_answers, 'answer')} in 180 days",
    "nps_trend": lambda v, f: f"NPS answers {abs(v):.1f} points lower than the 90 days before",
}

_NEVER_SEEN: Mapping[Input, str] = {
    "usage": "no product usage recorded yet",
    "features": "no feature usage recorded yet",
    "seats": "seat count unknown",
    "tickets": "no tickets recorded",
    "surveys": "no NPS or CSAT answer yet",
}

_TOO_OLD: Mapping[Input, str] = {
    "usage": "no activity for {days} days",  # the same words as recency's: said once
    "features": "no feature used for {days} days",
    "surveys": "no NPS or CSAT answer in {days} days",
    "tickets": "an open high/urgent ticket has had no update for {days} days",
}


def last_seen(facts: Facts, source: Input) -> datetime | None:
    """When the input was last seen (None: never, or not a time: seats, tickets)."""
    if source == "usage":
        return facts.last_usage_at
    if source == "features":
        return facts.last_feature_at
    if source == "surveys":
        return facts.last_survey_at
    return None


def input_status(
    component: Component, facts: Facts, as_of: datetime
) -> tuple[Status, Input | None, float | None]:
    """Whether the component's inputs are there and fresh: (status, which input, its age).

    A missing input outweighs a stale one: "we never had it" is the stronger statement.
    """
    stale: tuple[Status, Input | None, float | None] = ("ok", None, None)
    for source in component.inputs:
        if source == "seats":
            if not facts.seats:
                return "missing", source, None
            continue
        if source == "tickets":
            age = days_since(facts.oldest_open_high_urgent_update, as_of)
        else:
            age = days_since(last_seen(facts, source), as_of)
            if age is None:
                return "missing", source, None
        if age is not None and age > component.max_data_age_days and stale[0] == "ok":
            stale = ("stale", source, age)
    return stale


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass(slots=True)  # not frozen: a frozen init costs a setattr call per field
class _Finding:
    """Something that costs the score points; said in words only if it becomes a reason."""

    loss: float  # score points it costs
    points: float  # the points of the measure (or component) it is about
    data_driven: bool  # False for "never seen" inputs: said only when there is room
    text: str | None = None  # fixed words, or…
    measure: str = ""  # …the measure whose sentence says it
    value: float = 0.0

    def sentence(self, facts: Facts) -> str:
        return self.text if self.text is not None else SENTENCES[self.measure](self.value, facts)


@dataclass(slots=True)
class _Scored:
    score: ComponentScore
    loss: float  # what the whole component costs the score
    findings: list[_Finding]  # biggest loss first


def _component(
    component: Component, facts: Facts, values: Mapping[str, float | None], as_of: datetime
) -> _Scored:
    """Score one component, with the findings that could become reasons."""
    status, source, age = input_status(component, facts, as_of)
    raw: float | None = None
    present: list[tuple[Measure, float, float]] = []
    share = weighted = 0.0
    for measure in component.measures:
        value = values[measure.name]
        if value is None:
            continue
        if raw is None and measure.kind == "absolute":
            raw = value
        points_of = measure.points(value)
        present.append((measure, value, points_of))
        share += measure.share
        weighted += measure.share * points_of
    if status != "ok" and not (status == "stale" and component.absence_is_zero):
        assert source is not None
        if status == "missing":
            return _unscored(component, raw, status, _NEVER_SEEN[source], data_driven=False)
        text = _TOO_OLD[source].format(days=round(age or 0))
        return _unscored(component, raw, status, text, data_driven=True)
    if raw is None:  # no absolute measure has a value
        text = f"no {component.name.replace('_', ' ')} data"
        return _unscored(component, raw, "missing", text, data_driven=False)

    points = weighted / share
    findings = [
        _Finding(
            loss=component.weight * (m.share / share) * (100.0 - p) / 100.0,
            points=p,
            data_driven=True,
            measure=m.name,
            value=v,
        )
        for m, v, p in present
        if p < 100.0
    ]
    note = None
    if findings:
        findings.sort(key=lambda f: -f.loss)  # stable: ties keep the model's order
        first = findings[0]
        note = SENTENCES[first.measure](first.value, facts)
        findings[0] = _Finding(first.loss, first.points, True, note)  # said once, kept
    if status == "stale":  # counted anyway (absence is zero), but said to be old
        note = _TOO_OLD["tickets"].format(days=round(age or 0))
    loss = component.weight * (100.0 - points) / 100.0
    return _Scored(_score(component, raw, points, status, note), loss, findings)


def _unscored(
    component: Component, raw: float | None, status: Status, text: str, *, data_driven: bool
) -> _Scored:
    """A component whose input is missing or too old: ``missing_points``, said why."""
    points = component.missing_points
    loss = component.weight * (100.0 - points) / 100.0
    finding = _Finding(loss, points, data_driven, text)
    return _Scored(_score(component, raw, points, status, text), loss, [finding])


def _score(
    component: Component, raw: float | None, points: float, status: Status, detail: str | None
) -> ComponentScore:
    rounded = round(points, 1)
    return ComponentScore(
        name=component.name,
        raw=round(raw, 3) if raw is not None else None,
        points=rounded,
        weight=component.weight,
        contribution=round(rounded * component.weight / 100.0, 2),
        status=status,
        detail=detail,
    )


def history_days(facts: Facts, as_of: datetime) -> int:
    """Days of data the account has as of ``as_of``: from the day of its first event or record
    to the day of ``as_of``, both counted (0 when nothing is known yet)."""
    if facts.known_since is None:
        return 0
    return max(0, (as_of.date() - facts.known_since.date()).days + 1)


def warm_up(model: Model, facts: Facts, as_of: datetime) -> str | None:
    """The reason the account is still warming up, or None once its data covers the baseline
    window (``model.warm_up_days``; 0 turns warm-up off)."""
    days = history_days(facts, as_of)
    if days >= model.warm_up_days:
        return None
    return f"warming up: {days} of {model.warm_up_days} days of history"


def evaluate(model: Model, facts: Facts, as_of: datetime) -> Evaluation:
    """Score one account as of ``as_of`` with the profile of its segment."""
    profile: Profile = model.profile_for(facts.tier, facts.lifecycle_stage)
    values = measure_values(facts, as_of)
    scored = [_component(component, facts, values, as_of) for component in profile.components]
    components = [s.score for s in scored]
    score = round(sum(c.contribution for c in components), 1)
    warming = warm_up(model, facts, as_of)
    band = profile.band(score)
    if warming is not None and band == "red":
        band = "yellow"  # too little history to call it red: watched, not alarmed
    return Evaluation(
        snapshot=HealthSnapshot(
            score=score,
            band=band,
            warming_up=warming is not None,
            warming_up_reason=warming,
            components=components,
            partial=any(c.status == "missing" for c in components),
            stale=any(c.status == "stale" for c in components),
            missing=[c.name for c in components if c.status == "missing"],
            stale_inputs=[c.name for c in components if c.status == "stale"],
            reasons=top_reasons(model, scored, facts),
            signals=signals(facts, values["days_since_activity"]),
        ),
        profile=profile.name,
    )


def top_reasons(model: Model, scored: list[_Scored], facts: Facts) -> list[str]:
    """The model's ``top_reasons`` findings in words, so that each says something new.

    First each component's biggest finding, the most costly component first; then the other
    findings by what they cost; findings about data never received come last. Only measures
    under ``reason_below_points`` are said.
    """
    firsts = sorted(
        ((s.loss, s.findings[0]) for s in scored if s.findings), key=lambda item: -item[0]
    )
    others = sorted((f for s in scored for f in s.findings[1:]), key=lambda f: -f.loss)
    ranked = [f for _, f in firsts if f.data_driven] + [f for f in others if f.data_driven]
    ranked += sorted(
        (f for s in scored for f in s.findings if not f.data_driven), key=lambda f: -f.loss
    )
    reasons: list[str] = []
    for finding in ranked:
        if finding.points >= model.reason_below_points or finding.loss <= 0:
            continue
        text = finding.sentence(facts)
        if text not in reasons:
            reasons.append(text)
        if len(reasons) == model.top_reasons:
            break
    return reasons


def signals(facts: Facts, days_since: float | None) -> Signals:
    """The plain facts alert rules read (``days_in_band`` is filled once the band is settled)."""
    return Signals(
        days_since_activity=published_days_since(days_since),
        active_users_7d=facts.active_users_7d,
        seats=facts.seats,
        seat_utilisation=round(facts.active_users_30d / facts.seats, 3) if facts.seats else None,
        open_high_urgent_tickets=facts.open_high_urgent,
        open_high_urgent_ticket_ids=list(facts.open_high_urgent_ids[:MAX_TICKET_IDS]) or None,
        high_urgent_opened_7d=facts.high_urgent_opened_7d,
        nps_latest=facts.nps_latest,
        renewal_date=facts.renewal_date,
    )


def settle(evaluation: HealthSnapshot, previous: Previous | None, as_of: datetime) -> datetime:
    """When the current band began: carried over while the band holds, else ``as_of``."""
    if previous is not None and previous.snapshot.band == evaluation.band:
        return min(previous.band_since, as_of)
    return as_of


def with_days_in_band(snapshot: HealthSnapshot, band_since: datetime, as_of: datetime) -> None:
    """Fill ``signals.days_in_band`` (in place: the snapshot was just built for this call)."""
    snapshot.signals.days_in_band = round(
        max(0.0, (as_of - band_since).total_seconds() / DAY_SECONDS), 1
    )


# ---------------------------------------------------------------------------------------------
# Health changes


def change_id(account_id: str, as_of: datetime, model_version: str, after: HealthSnapshot) -> str:
    """Deterministic: the same account, moment, model and result always give the same id."""
    material = "\x1f".join(
        (account_id, as_of.isoformat(), model_version, f"{after.score:.1f}", after.band)
    )
    return "hc_" + hashlib.sha256(material.encode()).hexdigest()[:40]


def decide_change(
    *,
    account_id: str,
    model: Model,
    previous: Previous | None,
    after: HealthSnapshot,
    as_of: datetime,
    score_delta: float,
) -> HealthChange | None:
    """The health change to publish for this evaluation, or None when nothing moved enough."""
    triggers: list[Trigger] = []
    before = previous.snapshot if previous is not None else None
    if previous is None or before is None:
        triggers.append("first_score")
    else:
        if before.band != after.band:
            triggers.append("band_changed")
        published = previous.published_score
        reference = before.score if published is None else published
        if abs(after.score - reference) >= score_delta:  # from the last published score
            triggers.append("score_delta")
        if (
            _crossed(model, before, after)
            or _silence_crossed(previous, after)
            or before.warming_up != after.warming_up  # the warm-up ended: risk rules apply
        ):
            triggers.append("threshold_crossed")
    if not triggers:
        return None
    return HealthChange(
        change_id=change_id(account_id, as_of, model.version, after),
        account_id=account_id,
        as_of=as_of,
        model_version=model.version,
        before=before,
        after=after,
        triggers=triggers,
        moved_by=moved_by(before, after),
        reasons=list(after.reasons),
    )


def _silence_crossed(previous: Previous, after: HealthSnapshot) -> bool:
    """Days since activity crossed ``SILENCE_DAYS`` since the last published change (so alerts
    may count silence forward from a published snapshot: see ``shared.events.SILENCE_DAYS``)."""
    was = previous.published_silence
    if was is None and previous.published_score is None:
        was = previous.snapshot.signals.days_since_activity  # nothing known of the published one
    now = after.signals.days_since_activity
    if was is None or now is None:
        return False
    return (was >= SILENCE_DAYS) != (now >= SILENCE_DAYS)


def _crossed(model: Model, before: HealthSnapshot, after: HealthSnapshot) -> bool:
    thresholds = {c.name: c.threshold_points for c in model.default.components}
    previous = {c.name: c.points for c in before.components}
    for component in after.components:
        threshold = thresholds.get(component.name)
        was = previous.get(component.name)
        if threshold is None or was is None:
            continue
        if (was >= threshold) != (component.points >= threshold):
            return True
    return False


def moved_by(before: HealthSnapshot | None, after: HealthSnapshot) -> list[ComponentMove]:
    """Which components moved the score, by how many points and with which facts, biggest
    move first."""
    previous = {c.name: c.contribution for c in before.components} if before else {}
    moves: list[ComponentMove] = []
    for c in after.components:
        delta = round(c.contribution - previous.get(c.name, 0.0), 2)
        if abs(delta) >= 0.05:  # the facts are said only for a component that moved
            said = evidence(c, before, after)
            moves.append(ComponentMove(name=c.name, delta_points=delta, evidence=said))
    moves.sort(key=lambda m: (-abs(m.delta_points), m.name))
    return moves


# The facts that say why a component moved, read from a snapshot: (what, how it is written,
# where it is read). "raw" is the component's own measured value.
_Fact = tuple[str, Callable[[float], str], Callable[[HealthSnapshot, ComponentScore], float | None]]


def _raw_of(name: str) -> Callable[[HealthSnapshot, ComponentScore], float | None]:
    def read(snapshot: HealthSnapshot, _: ComponentScore) -> float | None:
        found = [c.raw for c in snapshot.components if c.name == name]
        return found[0] if found else None

    return read


def _int(v: float) -> str:
    return f"{round(v)}"


EVIDENCE: Mapping[str, list[_Fact]] = {
    "activity": [
        ("weekly active users", _int, lambda s, c: s.signals.active_users_7d),
        ("active days per week", _int, _raw_of("activity")),
    ],
    "recency": [("days since the last activity", _int, lambda s, c: s.signals.days_since_activity)],
    "breadth": [("features used per month", _int, _raw_of("breadth"))],
    "seat_utilisation": [
        ("seats in use (30 days)", lambda v: f"{round(v * 100)}%", _raw_of("seat_utilisation"))
    ],
    "support": [
        ("high/urgent tickets opened per week", _int, lambda s, c: s.signals.high_urgent_opened_7d)
    ],
    "sentiment": [
        ("NPS", _int, _raw_of("sentiment")),
        ("latest NPS answer", _int, lambda s, c: s.signals.nps_latest),
    ],
}


def evidence(
    component: ComponentScore, before: HealthSnapshot | None, after: HealthSnapshot
) -> list[str]:
    """The facts behind a component's move, in words: each listed fact that changed, as
    "weekly active users 12 → 4" (its value alone for a first score); for support, the open
    high/urgent tickets by id. When no listed fact changed (a trend measure moved), the
    component's own sentence."""
    said: list[str] = []
    for what, write, read in EVIDENCE.get(component.name, []):
        now = read(after, component)
        was = read(before, component) if before is not None else None
        if now is None or (was is not None and write(was) == write(now)):
            continue
        said.append(
            f"{what} {write(was)} → {write(now)}" if was is not None else f"{what} {write(now)}"
        )
    if component.name == "support":
        ids = after.signals.open_high_urgent_ticket_ids or []
        count = after.signals.open_high_urgent_tickets or 0
        was_ids = before.signals.open_high_urgent_ticket_ids if before else None
        if count and (ids != was_ids):
            named = ", ".join(f"#{t}" if t.isdigit() else t for t in ids)
            more = f" and {count - len(ids)} more" if count > len(ids) else ""
            said.append(f"{_plural(count, 'high/urgent ticket')} open: {named}{more}")
    if not said and component.detail:
        said.append(component.detail)
    return said[:MAX_EVIDENCE]


@dataclass(frozen=True, slots=True)
class Assessment:
    """The outcome of rescoring one account: what to store, and what (if anything) to publish."""

    account_id: str
    snapshot: HealthSnapshot
    profile: str
    band_since: datetime
    change: HealthChange | None
    record_history: bool  # a change, the first score, or the first score of a new day
    published_score: float | None = None  # the score of the last change published, this one's
    published_silence: float | None = None  # and its days since activity

    def previous(self, model_version: str, as_of: datetime) -> Previous:
        """What the next assessment of the account starts from."""
        return Previous(
            snapshot=self.snapshot,
            model_version=model_version,
            as_of=as_of,
            band_since=self.band_since,
            published_score=self.published_score,
            published_silence=self.published_silence,
        )


def assess(
    model: Model,
    facts: Facts,
    previous: Previous | None,
    as_of: datetime,
    *,
    score_delta: float,
) -> Assessment | None:
    """Score an account and decide what follows; None when a later score is already stored."""
    if previous is not None and previous.as_of > as_of:
        return None
    evaluation = evaluate(model, facts, as_of)
    snapshot = evaluation.snapshot
    band_since = settle(snapshot, previous, as_of)
    with_days_in_band(snapshot, band_since, as_of)
    change = decide_change(
        account_id=facts.account_id,
        model=model,
        previous=previous,
        after=snapshot,
        as_of=as_of,
        score_delta=score_delta,
    )
    new_day = previous is None or previous.as_of.date() != as_of.date()
    return Assessment(
        account_id=facts.account_id,
        snapshot=snapshot,
        profile=evaluation.profile,
        band_since=band_since,
        change=change,
        record_history=change is not None or new_day,
        published_score=(
            snapshot.score
            if change is not None
            else previous.published_score
            if previous is not None
            else None
        ),
        published_silence=(
            snapshot.signals.days_since_activity
            if change is not None
            else previous.published_silence
            if previous is not None
            else None
        ),
    )
