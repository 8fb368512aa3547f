"""bench.report: the verdict on a target and the sizing table derived from CPU per event."""

from __future__ import annotations

import math

from bench.report import Row, Section, sizing


def test_a_target_is_judged_in_the_direction_that_is_good() -> None:
    assert Row("drain", 30.0, 100.0, "events/s", target=0.25).met is True
    assert Row("drain", 20.0, 100.0, "events/s", target=0.25).met is False
    assert Row("latency", 200.0, 100.0, "ms", higher_is_better=False, target=2).met is True
    assert Row("latency", 201.0, 100.0, "ms", higher_is_better=False, target=2).met is False
    assert Row("no baseline", 1.0, 0.0, "ms", target=2).met is None
    assert math.isnan(Row("no baseline", 1.0, 0.0, "ms").ratio)


def test_sizing_turns_cpu_per_event_and_per_account_into_what_one_cpu_handles() -> None:
    rows = [
        Row("S2 drain", 1.0, 1.0, "events/s", cpu_us=(40.0, 4.0), db_cpu_us=20.0),
        Row("S5 sweep", 1.0, 1.0, "s", cpu_us=(100.0, None), per="account", db_cpu_us=120.0),
        Row("S1 ingest", 1.0, 1.0, "events/s", cpu_us=(5.0, 6.0)),  # PostgreSQL not measured
        Row("S3 latency", 1.0, 1.0, "ms"),  # no CPU figure: no line
    ]
    lines = sizing([Section("x", rows=rows)])
    assert len(lines) == 2 + 3  # header, rule, one line per row with a CPU figure
    assert "| S1 ingest | 5.0 µs | 200,000 events/s | — |" in lines
    assert "| S2 drain | 40.0 µs | 25,000 events/s | 20 millicores per 1,000 events/s |" in lines
    assert "| S3 latency" not in "".join(lines)
    assert (
        "| S5 sweep | 100.0 µs | 36,000,000 accounts swept per hour "
        "| 120 µs per account: one CPU per 30,000,000 an hour |"
    ) in lines


def test_no_cpu_figures_no_sizing_table() -> None:
    assert sizing([Section("x", rows=[Row("S3", 1.0, 1.0, "ms")])]) == []
