"""Folding events into aggregates: order-independent, idempotent merges; the lateness window."""

from __future__ import annotations

import random
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.scoring import aggregate
from services.scoring.aggregate import MASK_DAYS, DayMask, coalesce
from shared.events import Event
from tests.unit.scoring.builders import NOW, survey, ticket, usage

ANCHOR = date(2026, 11, 21).toordinal()
masks = st.builds(
    lambda offset, days: DayMask.of(date.fromordinal(ANCHOR - offset)).merge(
        DayMask(ANCHOR - offset, sum(1 << d for d in days))
    ),
    st.integers(0, 100),
    st.sets(st.integers(0, MASK_DAYS - 1), max_size=10),
)


@given(masks, masks, masks)
def test_day_masks_merge_commutatively_associatively_and_idempotently(
    a: DayMask, b: DayMask, c: DayMask
) -> None:
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a
    assert a.merge(b).merge(b) == a.merge(b)


@given(st.lists(st.integers(0, 120), min_size=1, max_size=30))
def test_a_mask_keeps_exactly_the_days_within_its_window_of_the_newest(offsets: list[int]) -> None:
    merged = DayMask.of(date.fromordinal(ANCHOR - offsets[0]))
    for offset in offsets[1:]:
        merged = merged.merge(DayMask.of(date.fromordinal(ANCHOR - offset)))
    newest = ANCHOR - min(offsets)
    assert merged.anchor == newest
    assert merged.days() == {ANCHOR - o for o in offsets if newest - (ANCHOR - o) < MASK_DAYS}


events = st.lists(
    st.one_of(
        st.builds(
            lambda a, h, u, f: usage(a, at=NOW - timedelta(hours=h), user=u, feature=f),
            st.sampled_from(["acme", "globex"]),
            st.integers(0, 200),
            st.sampled_from(["u1", "u2", "u3"]),
            st.sampled_from([None, "reports", "api"]),
        ),
        st.builds(
            lambda a, h, act, s: ticket(
                a, at=NOW - timedelta(hours=h), action=act, status=s, ticket_id="t1"
            ),
            st.sampled_from(["acme", "globex"]),
            st.integers(0, 5),
            st.sampled_from(["opened", "escalated", "reopened", "solved"]),
            st.sampled_from(["open", "solved"]),
        ),
        st.builds(
            lambda a, h, s: survey(a, at=NOW - timedelta(hours=h), score=s),
            st.sampled_from(["acme", "globex"]),
            st.integers(0, 3),
            st.integers(0, 10),
        ),
    ),
    max_size=40,
)


def folded(batches: list[list[Event]]) -> aggregate.Coalesced:
    """Coalesce each batch, then merge the batches as the SQL upserts do."""
    total = aggregate.Coalesced()
    for batch in batches:
        part = coalesce(batch)
        for key, c in part.days.items():
            total.days.setdefault(key, aggregate.DayCounts()).add(c)
        for key, s in part.surveys.items():
            total.surveys.setdefault(key, aggregate.SurveyCounts()).add(s)
        for kind in ("users", "features"):
            mine, theirs = getattr(total, kind), getattr(part, kind)
            for key, mask in theirs.items():
                mine[key] = mask if key not in mine else mine[key].merge(mask)
        for ticket_key, state in part.tickets.items():
            current = total.tickets.get(ticket_key)
            if current is None or state.newer_than(current):
                total.tickets[ticket_key] = state
        for account_id, seen in part.activity.items():
            if account_id in total.activity:
                total.activity[account_id].merge(seen)
            else:
                total.activity[account_id] = seen
    return total


@given(events, st.randoms(use_true_random=False))
def test_coalescing_does_not_depend_on_batching_or_order(
    stream: list[Event], rng: random.Random
) -> None:
    shuffled = list(stream)
    rng.shuffle(shuffled)
    cut = rng.randint(0, len(shuffled))
    assert folded([shuffled[:cut], shuffled[cut:]]) == folded([stream])


def test_usage_counts_per_account_and_day_of_occurred_at_and_users_as_day_masks() -> None:
    late = NOW - timedelta(days=3)
    batch = coalesce(
        [
            usage("acme", at=NOW, user="u1", feature="reports"),
            usage("acme", at=NOW, user="u1"),
            usage("acme", at=late, user="u2"),
        ]
    )
    assert {k: v.usage_events for k, v in batch.days.items()} == {
        ("acme", NOW.date()): 2,
        ("acme", late.date()): 1,
    }
    assert batch.users[("acme", "u1")].days() == {NOW.date().toordinal()}
    assert batch.users[("acme", "u2")].days() == {late.date().toordinal()}
    assert set(batch.features) == {("acme", "reports")}
    assert batch.days[("acme", NOW.date())].last_usage_at == NOW
    assert batch.days[("acme", late.date())].last_feature_at is None
    assert batch.activity["acme"].last_usage_day == NOW.date()
    assert batch.activity["acme"].first_usage_at == late
    assert batch.activity["acme"].known_since == late


def test_tickets_keep_the_newest_state_and_count_openings_escalations_and_reopens() -> None:
    batch = coalesce(
        [
            ticket("acme", ticket_id="t1", action="solved", status="solved", at=NOW),
            ticket(
                "acme",
                ticket_id="t1",
                action="opened",
                priority="high",
                at=NOW - timedelta(hours=2),
            ),
            ticket("acme", ticket_id="t1", action="escalated", at=NOW - timedelta(hours=1)),
            ticket("acme", ticket_id="t2", action="reopened", at=NOW - timedelta(hours=1)),
        ]
    )
    assert batch.tickets[("acme", "t1")].status == "solved"
    counts = batch.days[("acme", NOW.date())]
    assert (counts.tickets_opened, counts.high_urgent_opened) == (1, 1)
    assert (counts.escalations, counts.reopens) == (1, 1)


def test_surveys_sum_answers_and_keep_the_latest_nps() -> None:
    batch = coalesce(
        [
            survey("acme", score=10, at=NOW - timedelta(hours=1)),
            survey("acme", score=3, at=NOW),
            survey("acme", score=4, kind="csat", at=NOW),
        ]
    )
    counts = batch.surveys[("acme", NOW.date())]
    assert (counts.nps_sum, counts.nps_answers) == (13, 2)
    assert (counts.nps_promoters, counts.nps_detractors) == (1, 1)
    assert (counts.csat_sum, counts.csat_answers) == (4, 1)
    latest = batch.activity["acme"].nps_latest
    assert latest is not None
    assert latest[2] == 3


def test_events_outside_the_lateness_window_are_refused_with_a_code() -> None:
    window = {"max_age": timedelta(days=7), "future_tolerance": timedelta(hours=1)}
    old = aggregate.admit(usage(at=NOW - timedelta(days=7, seconds=1)), NOW, **window)
    ahead = aggregate.admit(usage(at=NOW + timedelta(hours=2)), NOW, **window)
    assert old is not None
    assert old.code == "too_old"
    assert "retention horizon of 7 days" in old.reason
    assert ahead is not None
    assert ahead.code == "from_the_future"
    assert aggregate.admit(usage(at=NOW - timedelta(days=6)), NOW, **window) is None
    assert aggregate.admit(usage(at=NOW + timedelta(minutes=30)), NOW, **window) is None
