"""What a batch asks for, before the database: decoding, the window, in-batch duplicates."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from services.scoring.handler import ConsumerLag, Inbound, decoder, plan
from shared import events
from shared.events import AccountRecord, PersonRecord, Topics
from shared.kafka import DecodeFailure, Record, Tombstone
from tests.unit.scoring.builders import NOW, account, person, records, tombstone, usage

WINDOW = {"max_age": timedelta(days=7), "future_tolerance": timedelta(hours=1)}
TOPICS = Topics("t.")


def test_events_and_records_are_decoded_by_topic_and_null_values_are_tombstones() -> None:
    decode = decoder(TOPICS)
    assert isinstance(decode(TOPICS.usage, events.encode(usage())), events.UsageEvent)
    assert isinstance(decode(TOPICS.accounts, events.encode(account())), AccountRecord)
    assert isinstance(decode(TOPICS.people, events.encode(person())), PersonRecord)
    assert decode(TOPICS.accounts, None) == Tombstone("account")
    assert decode(TOPICS.people, None) == Tombstone("person")


@pytest.mark.parametrize(
    "raw", [b"{not json", b'{"event_type": "usage"}', b'{"event_type": "nope"}', b""]
)
def test_anything_undecodable_fails_with_the_undecodable_code(raw: bytes) -> None:
    with pytest.raises(DecodeFailure) as failure:
        decoder(TOPICS)(TOPICS.usage, raw)
    assert failure.value.rejection.code == "undecodable"
    assert failure.value.rejection.reason


def test_the_same_event_id_twice_in_a_batch_is_taken_once() -> None:
    first = usage(event_id="dup")
    decided = plan(records(first, usage(event_id="dup"), usage(event_id="other")), NOW, **WINDOW)
    assert [e.event_id for e in decided.events] == ["dup", "other"]
    assert decided.events[0] is first
    assert decided.duplicates == 1


def test_events_outside_the_window_are_refused_and_the_rest_go_on() -> None:
    batch = records(usage(at=NOW - timedelta(days=9)), usage(at=NOW))
    decided = plan(batch, NOW, **WINDOW)
    assert [why.code for _, why in decided.rejected] == ["too_old"]
    assert decided.rejected[0][0] is batch[0]
    assert len(decided.events) == 1


def test_the_last_record_per_key_wins_and_a_tombstone_deletes() -> None:
    decided = plan(
        [
            *records(account("acme", seats=5), account("acme", seats=9), person("p1")),
            *tombstone("p1", "person"),
            *tombstone("gone"),
        ],
        NOW,
        **WINDOW,
    )
    acme = decided.accounts["acme"]
    assert acme is not None
    assert acme.seats == 9
    assert decided.accounts["gone"] is None
    assert decided.people == {"p1": None}


def test_a_tombstone_without_a_key_is_refused() -> None:
    decided = plan(tombstone(""), NOW, **WINDOW)
    assert [why.code for _, why in decided.rejected] == ["no_key"]


def test_the_consumer_lag_is_the_age_of_the_newest_record_of_the_batch() -> None:
    now_ms = int(time.time() * 1000)
    batch: list[Record[Inbound]] = [
        Record("t.usage.v1", 0, offset, None, usage(), b"", now_ms - age_ms)
        for offset, age_ms in enumerate((90_000, 30_000, 60_000))
    ]
    lag = ConsumerLag()
    lag.observe(batch)
    assert 29 <= lag.seconds <= 40
    lag.observe([])
    assert 29 <= lag.seconds <= 40  # an empty batch says nothing new


def test_the_consumer_lag_counts_fresh_records_still_waiting_at_the_last_batchs_pace() -> None:
    now_ms = int(time.time() * 1000)
    batch: list[Record[Inbound]] = [
        Record("t.usage.v1", 0, offset, None, usage(), b"", now_ms) for offset in range(100)
    ]
    ticks = iter([10.0, 10.5, 11.0])
    waiting = 0
    lag = ConsumerLag(monotonic=lambda: next(ticks))
    lag.follow(lambda: waiting)
    lag.observe(batch)
    waiting = 100_000
    assert lag.seconds < 1  # fresh records, and no pace known yet
    lag.observe(batch)  # 100 records took 0.5 s: 5 ms each
    assert lag.seconds == pytest.approx(500.0)  # 100,000 waiting at 5 ms each
    waiting = 0
    assert lag.seconds < 1  # caught up: the age of the newest record again
    lag.observe([])  # an empty batch neither moves the pace nor the age
    waiting = 10
    assert lag.seconds == pytest.approx(0.05)
