"""The consumer loop's collector setting (shared.kafka.batch_friendly_gc)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from shared.kafka import GC_YOUNG_THRESHOLD, batch_friendly_gc


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*saved)


@pytest.mark.usefixtures("thresholds")
def test_the_youngest_generation_waits_for_a_batchs_worth_of_allocations() -> None:
    gc.set_threshold(700, 10, 10)
    batch_friendly_gc()
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)
    assert gc.isenabled()


@pytest.mark.usefixtures("thresholds")
def test_a_higher_threshold_set_elsewhere_is_kept() -> None:
    gc.set_threshold(GC_YOUNG_THRESHOLD * 2, 5, 7)
    batch_friendly_gc()
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD * 2, 5, 7)
