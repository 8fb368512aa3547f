"""The offline facts (``services.scoring.facts``): the window table and the Ledger's folding."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from services.scoring import facts
from services.scoring.health import Facts
from tests.unit.scoring.builders import NOW, survey, usage


def test_every_windowed_fact_is_defined_once_and_names_a_facts_field() -> None:
    names = [c.fact for c in facts.COUNTS]
    assert len(names) == len(set(names))
    assert set(names) <= set(Facts.__dataclass_fields__)


def test_windows_are_the_documented_days() -> None:
    assert facts.Window(7, 34) == facts.BASELINE  # the four weeks before the last seven days
    assert [(w.newest, w.oldest) for w in facts.BASELINE.weeks()] == [
        (7, 13),
        (14, 20),
        (21, 27),
        (28, 34),
    ]
    assert list(facts.WEEK.days(100)) == [94, 95, 96, 97, 98, 99, 100]
    assert facts.span("survey_days") == facts.Window(0, 179)
    with pytest.raises(ValueError, match="whole number of weeks"):
        facts.MONTH.weeks()


def test_the_ledger_counts_an_event_once_per_source_account_and_id() -> None:
    ledger = facts.Ledger()
    event = usage("acme", at=NOW - timedelta(hours=1), event_id="42")
    ledger.fold_day([event, event])
    ledger.fold_day([event, msgspec.structs.replace(event, source="segment")])
    ledger.fold_day([usage("globex", at=NOW - timedelta(hours=1), event_id="42")])
    assert ledger.facts("acme", NOW, None).usage_events_7d == 2
    assert ledger.facts("globex", NOW, None).usage_events_7d == 1
    assert ledger.duplicates == 2


def test_late_answers_for_a_day_already_folded_add_up() -> None:
    ledger = facts.Ledger()
    at = NOW - timedelta(days=3)
    ledger.fold_day([survey("acme", at=at, score=10), survey("acme", at=at, score=2)])
    ledger.fold_day([survey("acme", at=at + timedelta(minutes=5), score=8)])
    got = ledger.facts("acme", NOW, None)
    assert (got.nps_answers, got.nps_recent_sum, got.nps_promoters) == (3, 20, 1)


def test_the_ledger_forgets_keys_older_than_its_dedup_days() -> None:
    ledger = facts.Ledger(dedup_days=10)
    old = usage("acme", at=NOW - timedelta(days=20), event_id="old")
    ledger.fold_day([old])
    ledger.fold_day([usage("acme", at=NOW, event_id="new")])
    ledger.fold_day([old])  # its key was forgotten: counted again (live refuses it as too old)
    assert ledger.duplicates == 0
    recent = usage("acme", at=NOW - timedelta(days=5), event_id="recent")
    ledger.fold_day([recent])
    ledger.fold_day([recent])
    assert ledger.duplicates == 1
