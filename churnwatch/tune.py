"""``churnwatch backtest --tune``: risk-rule thresholds chosen to a precision target and an alert
budget, from a backtest's health changes.

Scoring does not depend on the rules, so the backtest scores once and keeps every health change
(:attr:`~churnwatch.backtest.BacktestResult.changes`); each *candidate* — one risk rule with one
set of thresholds, or the rule switched off — is replayed over them with the alerts' own rules
and lifecycle (:func:`churnwatch.backtest.replay_alerts`) and judged on the backtest's judged
period with :mod:`churnwatch.evaluation`'s definitions. A *combination* takes one candidate per
risk rule; its alerts are the union of theirs ("any risk alert").

**Targets** (a combination *meets* them when all hold): the risk alerts' precision at least
``min_lift`` × the base rate (the share of judged accounts that churned in the period), their
median lead time at least ``min_lead_days``, and — with a ``budget`` — at most that many new risk
alerts per owner per week (the mean over owners and weeks, :class:`churnwatch.evaluation.Volume`).

**Search**: greedy, one candidate at a time — from every rule off, take the single change of one
rule's candidate that most improves (meets the targets, then the highest recall, then the highest
precision), until nothing improves. The rules that are not risk rules (expansion, advocacy) are
left as they are. The table shows every candidate on its own, the rules as they were, and the
chosen combination.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from churnwatch import backtest
from churnwatch.evaluation import RISK_MOTIONS, UNOWNED, Opened, counted_from
from services.alerts import rules as alert_rules

# The thresholds tried per rule kind (every product of the listed values), besides "off".
GRID: Mapping[str, Mapping[str, Sequence[Any]]] = {
    "band_worsened": {"to": ("yellow", "red"), "keep_firing_for_days": (3, 7, 14)},
    "score_dropped": {"points": (10, 15, 20, 25, 30), "days": (7, 14, 30)},
    "no_activity": {"days": (7, 10, 14, 21, 30, 45)},
    "ticket_surge": {"opened_7d": (1, 2, 3), "open": (2, 5)},
    "renewal_at_risk": {"within_days": (30, 60, 90)},
}
OFF = "off"


@dataclass(frozen=True)
class Candidate:
    rule: str
    settings: tuple[tuple[str, Any], ...] | None  # (field, value); None: switched off

    @property
    def label(self) -> str:
        if self.settings is None:
            return f"{self.rule} {OFF}"
        if not self.settings:
            return f"{self.rule} (as is)"
        return f"{self.rule} " + " ".join(f"{k}={v}" for k, v in self.settings)


@dataclass(frozen=True)
class _Alerts:
    """A candidate's alerts in the judged period."""

    first: Mapping[str, datetime]  # account -> first alert counted
    new: Counter[tuple[str, date]]  # (owner, week) -> alerts opened
    opened: int  # alerts opened in the period


@dataclass(frozen=True)
class Figures:
    alerted: int
    precision: float | None
    recall: float | None
    median_lead_days: float | None
    per_owner_week: float | None
    per_account_month: float | None
    busiest_owner_week: int
    meets: bool


@dataclass(frozen=True)
class Row:
    label: str
    figures: Figures


@dataclass(frozen=True)
class Tuning:
    base_rate: float | None
    min_lift: float
    min_lead_days: float
    budget: float | None
    rows: tuple[Row, ...]  # every candidate alone
    current: Figures  # the rules as given
    chosen: tuple[Candidate, ...]  # one per risk rule
    best: Figures

    @property
    def target_precision(self) -> float | None:
        return self.base_rate * self.min_lift if self.base_rate is not None else None


def candidates(ruleset: alert_rules.RuleSet) -> dict[str, list[Candidate]]:
    """Per risk rule: off, as is, and every combination of its grid."""
    out: dict[str, list[Candidate]] = {}
    for rule in ruleset.rules:
        if rule.motion not in RISK_MOTIONS:
            continue
        kind = rule.config.kind
        options = [Candidate(rule.name, None), Candidate(rule.name, ())]
        grid = GRID.get(kind, {})
        combos: list[dict[str, Any]] = [{}]
        for key, values in grid.items():
            combos = [{**c, key: v} for c in combos for v in values]
        for settings in combos:
            if settings and any(getattr(rule.config, k) != v for k, v in settings.items()):
                options.append(Candidate(rule.name, tuple(settings.items())))
        out[rule.name] = options
    return out


def ruleset_with(ruleset: alert_rules.RuleSet, chosen: Sequence[Candidate]) -> alert_rules.RuleSet:
    """The rules with the chosen candidates applied (a rule switched off is left out)."""
    by_rule = {c.rule: c for c in chosen}
    rules: list[alert_rules.Rule] = []
    for rule in ruleset.rules:
        candidate = by_rule.get(rule.name)
        if candidate is None:
            rules.append(rule)
        elif candidate.settings is not None:
            config = rule.config.model_copy(update=dict(candidate.settings))
            rules.append(alert_rules.Rule(config, rule.delivery, rule.send_resolved))
    return alert_rules.RuleSet(tuple(rules), ruleset.renewal_proximity)


def search(
    result: backtest.BacktestResult,
    ruleset: alert_rules.RuleSet,
    *,
    budget: float | None = None,
    min_lift: float = 2.0,
    min_lead_days: float = 14.0,
) -> Tuning:
    """Judge every candidate of the backtest's (first) model and choose a combination."""
    if not result.changes:
        raise ValueError("the backtest kept no health changes (run it with keep_changes)")
    changes = result.changes[0]
    judge = _Judge(result, budget, min_lift, min_lead_days)
    options = candidates(ruleset)
    alerts: dict[Candidate, _Alerts] = {}
    for rule_candidates in options.values():
        for candidate in rule_candidates:
            if candidate.settings is None:
                alerts[candidate] = _Alerts({}, Counter(), 0)
                continue
            single = ruleset_with(ruleset, [candidate])
            only = alert_rules.RuleSet(
                tuple(r for r in single.rules if r.name == candidate.rule),
                ruleset.renewal_proximity,
            )
            opened = backtest.replay_alerts(
                changes, only, result.observed, time_rules=result.time_rules
            )
            alerts[candidate] = judge.alerts_of(opened)
    rows = tuple(
        Row(c.label, judge.figures([alerts[c]]))
        for rule_candidates in options.values()
        for c in rule_candidates
        if c.settings is not None
    )
    as_is = [next(c for c in cs if c.settings == ()) for cs in options.values()]
    current = judge.figures([alerts[c] for c in as_is])
    chosen = {name: cs[0] for name, cs in options.items()}  # every rule off
    best = judge.figures([])
    while True:
        step: tuple[tuple[bool, float, float], str, Candidate, Figures] | None = None
        for name, rule_candidates in options.items():
            for candidate in rule_candidates:
                if candidate == chosen[name]:
                    continue
                trial = {**chosen, name: candidate}
                figures = judge.figures([alerts[c] for c in trial.values()])
                key = _rank(figures)
                if key > _rank(best) and (step is None or key > step[0]):
                    step = (key, name, candidate, figures)
        if step is None:
            break
        _, name, candidate, best = step
        chosen[name] = candidate
    return Tuning(
        base_rate=result.base_rate,
        min_lift=min_lift,
        min_lead_days=min_lead_days,
        budget=budget,
        rows=rows,
        current=current,
        chosen=tuple(chosen.values()),
        best=best,
    )


def _rank(f: Figures) -> tuple[bool, float, float]:
    return (f.meets, f.recall or 0.0, f.precision or 0.0)


class _Judge:
    """The backtest's judged period and labels, as precomputed lookups."""

    def __init__(
        self,
        result: backtest.BacktestResult,
        budget: float | None,
        min_lift: float,
        min_lead_days: float,
    ) -> None:
        self.begin = datetime.combine(result.judged[0], time(), UTC)
        self.stop = datetime.combine(result.judged[1] + timedelta(days=1), time(), UTC)
        self.known = {t.account_id for t in result.truth}
        self.churn = {t.account_id: t.churn_date for t in result.truth if t.churn_date}
        self.owners = result.owners
        self.owner_count = len({result.owners.get(a) or UNOWNED for a in self.known})
        self.weeks = ((result.judged[1] - result.judged[0]).days + 1) / 7
        self.account_months = result.account_days / 30.44
        self.base_rate = result.base_rate
        self.budget = budget
        self.min_lift = min_lift
        self.min_lead_days = min_lead_days

    def alerts_of(self, opened: Sequence[Opened]) -> _Alerts:
        first: dict[str, datetime] = {}
        for f in counted_from(opened, self.begin):
            if f.at >= self.stop or f.account_id not in self.known:
                continue
            if f.account_id not in first or f.at < first[f.account_id]:
                first[f.account_id] = f.at
        new: Counter[tuple[str, date]] = Counter()
        count = 0
        for o in opened:
            if self.begin <= o.started < self.stop and o.account_id in self.known:
                day = o.started.date()
                owner = self.owners.get(o.account_id) or UNOWNED
                new[(owner, day - timedelta(days=day.weekday()))] += 1
                count += 1
        return _Alerts(first, new, count)

    def figures(self, parts: Sequence[_Alerts]) -> Figures:
        first: dict[str, datetime] = {}
        new: Counter[tuple[str, date]] = Counter()
        count = 0
        for part in parts:
            for account, at in part.first.items():
                if account not in first or at < first[account]:
                    first[account] = at
            new.update(part.new)
            count += part.opened
        true_alerted = sum(1 for a in first if a in self.churn)
        leads = [
            float((self.churn[a] - at.date()).days)
            for a, at in first.items()
            if a in self.churn and at.date() < self.churn[a]
        ]
        precision = true_alerted / len(first) if first else None
        recall = len(leads) / len(self.churn) if self.churn else None
        lead = statistics.median(leads) if leads else None
        per_owner_week = (
            count / (self.owner_count * self.weeks) if self.owner_count and self.weeks else None
        )
        per_account_month = count / self.account_months if self.account_months else None
        meets = (
            not first
            or (
                precision is not None
                and self.base_rate is not None
                and precision >= self.min_lift * self.base_rate
                and lead is not None
                and lead >= self.min_lead_days
            )
        ) and (self.budget is None or (per_owner_week or 0.0) <= self.budget)
        return Figures(
            alerted=len(first),
            precision=precision,
            recall=recall,
            median_lead_days=lead,
            per_owner_week=per_owner_week,
            per_account_month=per_account_month,
            busiest_owner_week=max(new.values(), default=0),
            meets=meets,
        )


# ---------------------------------------------------------------------------------------------
# Output


def format_table(tuning: Tuning, *, written: Path | None = None) -> str:
    target = tuning.target_precision
    out = [
        "Tuning the risk rules (risk alerts as a whole; every candidate replayed over the same "
        "health changes)",
        f"  targets: precision ≥ {tuning.min_lift:g}× the base rate "
        f"({_pct(tuning.base_rate)} → {_pct(target)}), median lead ≥ "
        f"{tuning.min_lead_days:g} days"
        + (
            f", ≤ {tuning.budget:g} new risk alerts per owner per week"
            if tuning.budget is not None
            else ""
        ),
    ]
    rows = [
        [
            "candidate",
            "accounts",
            "precision",
            "recall",
            "lead",
            "/owner-wk",
            "busiest wk",
            "/acct-mo",
            "meets",
        ]
    ]
    for row in tuning.rows:
        rows.append([row.label, *_cells(row.figures)])
    rows.append(["rules as given", *_cells(tuning.current)])
    chosen = ", ".join(c.label for c in tuning.chosen if c.settings is not None) or "all off"
    rows.append(["chosen: " + chosen, *_cells(tuning.best)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.append(
            "  "
            + "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(r)
            )
        )
    off = [c.rule for c in tuning.chosen if c.settings is None]
    if off:
        out.append(f"  switched off: {', '.join(off)}")
    if written is not None:
        out.append(f"  written: {written}")
    return "\n".join(out)


def _cells(f: Figures) -> list[str]:
    return [
        str(f.alerted),
        _pct(f.precision),
        _pct(f.recall),
        "—" if f.median_lead_days is None else f"{f.median_lead_days:.0f} d",
        "—" if f.per_owner_week is None else f"{f.per_owner_week:.2f}",
        str(f.busiest_owner_week),
        "—" if f.per_account_month is None else f"{f.per_account_month:.3f}",
        "yes" if f.meets else "no",
    ]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def to_json(tuning: Tuning) -> dict[str, Any]:
    def figures(f: Figures) -> dict[str, Any]:
        return {
            "accounts_alerted": f.alerted,
            "precision": f.precision,
            "recall": f.recall,
            "median_lead_days": f.median_lead_days,
            "per_owner_week": f.per_owner_week,
            "busiest_owner_week": f.busiest_owner_week,
            "per_account_month": f.per_account_month,
            "meets_targets": f.meets,
        }

    return {
        "base_rate": tuning.base_rate,
        "target_precision": tuning.target_precision,
        "min_lead_days": tuning.min_lead_days,
        "budget_per_owner_week": tuning.budget,
        "candidates": [{"candidate": r.label, **figures(r.figures)} for r in tuning.rows],
        "current": figures(tuning.current),
        "chosen": [
            {"rule": c.rule, "off": c.settings is None, "settings": dict(c.settings or {})}
            for c in tuning.chosen
        ],
        "best": figures(tuning.best),
    }


# ---------------------------------------------------------------------------------------------
# Writing the tuned rules file


def rules_toml(text: str, chosen: Sequence[Candidate]) -> str:
    """The rules file ``text`` with the chosen thresholds set and the rules switched off
    commented out (comments and everything else kept); validated before it is returned."""
    by_rule = {c.rule: c for c in chosen}
    parts = re.split(r"(?m)^(?=\[\[rule\]\])", text)
    out = [parts[0]]
    for block in parts[1:]:
        match = re.search(r'(?m)^name\s*=\s*"([^"]+)"', block)
        candidate = by_rule.get(match.group(1)) if match else None
        if candidate is None:
            out.append(block)
        elif candidate.settings is None:
            body, tail = _split_trailing_comments(block)
            note = "# switched off by churnwatch backtest --tune\n"
            out.append(note + "".join(f"# {line}\n" for line in body.splitlines()) + tail)
        else:
            for key, value in candidate.settings:
                line = f"{key} = {_toml(value)}"
                pattern = re.compile(rf"(?m)^{re.escape(key)}\s*=.*$")
                if pattern.search(block):
                    block = pattern.sub(line, block, count=1)
                else:
                    block = re.sub(r"(?m)^(kind\s*=.*)$", rf"\1\n{line}", block, count=1)
            out.append(block)
    result = "".join(out)
    alert_rules.parse(result, source="<tuned rules>")
    return result


def _split_trailing_comments(block: str) -> tuple[str, str]:
    """A rule block without the comment lines that introduce the next section."""
    lines = block.splitlines(keepends=True)
    cut = len(lines)
    while cut > 0 and (not lines[cut - 1].strip() or lines[cut - 1].lstrip().startswith("#")):
        cut -= 1
    return "".join(lines[:cut]), "".join(lines[cut:])


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
