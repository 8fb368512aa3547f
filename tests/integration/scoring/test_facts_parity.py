"""One definition of the facts: the live facts query on the real PostgreSQL and the offline
``Ledger`` give identical facts for the same events, whatever the stream.

Random event streams over ~70 days — usage by several users and features, tickets changing
priority and state, NPS and CSAT answers, account records, events arriving days late,
redeliveries, and ids reused by other sources and accounts — go (a) through the consumer's
real write path (``BatchHandler``: plan → claim → coalesce → apply) one arrival day at a time,
and (b) into ``services.scoring.facts.Ledger`` in the same batches. At a few checkpoints, the
facts of every account as of several moments (before, on and after the checkpoint's day) must
be equal field for field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone

import asyncpg
import msgspec
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from services.scoring.facts import Ledger
from services.scoring.handler import BatchHandler
from services.scoring.store import facts_sql
from shared.clock import FixedClock
from shared.events import AccountRecord, Event
from tests.unit.scoring.builders import account, records, survey, ticket, usage

START = datetime(2026, 9, 1, tzinfo=UTC)
DAYS = 70
ACCOUNTS = ("acme", "globex", "initech")
TABLES = (
    "account_days",
    "survey_days",
    "account_users",
    "account_features",
    "tickets",
    "activity",
    "processed_events",
    "accounts",
    "dirty_accounts",
)
# Some events carry a non-UTC offset: the day they count on is still their UTC day.
OFFSETS = (UTC, UTC, UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9)))


@dataclass(frozen=True)
class Delivery:
    arrives: int  # day number after START on which the consumer gets it
    value: Event | AccountRecord


@st.composite
def an_event(draw: st.DrawFn, serial: int) -> Event:
    account_id = draw(st.sampled_from(ACCOUNTS))
    # whole half-hours, so some events share a moment (tie-breaks matter)
    at = START + timedelta(minutes=30 * draw(st.integers(0, DAYS * 48 - 1)))
    at = at.astimezone(draw(st.sampled_from(OFFSETS)))
    kind = draw(st.sampled_from(["usage", "usage", "usage", "ticket", "survey"]))
    # Ids are reused now and then — by another source or account (another event), or by the
    # same one (a client's mistake: the first to arrive counts, on both sides).
    event_id = draw(st.sampled_from([f"e{serial}", f"E-{serial % 7}", f"e{serial % 5}"]))
    source = draw(st.sampled_from(["native", "native", "segment", "zendesk"]))
    return msgspec.structs.replace(
        _event(draw, kind, account_id, at, event_id), source=source, received_at=at
    )


def _event(draw: st.DrawFn, kind: str, account_id: str, at: datetime, event_id: str) -> Event:
    if kind == "usage":
        return usage(
            account_id,
            at=at,
            user=draw(st.sampled_from(["u1", "u2", "u3", "u4", "u5"])),
            feature=draw(st.sampled_from([None, None, "reports", "export", "api"])),
            event_id=event_id,
        )
    if kind == "ticket":
        return ticket(
            account_id,
            at=at,
            ticket_id=draw(st.sampled_from(["t1", "t2", "t3"])),
            action=draw(st.sampled_from(["opened", "updated", "escalated", "solved", "reopened"])),
            priority=draw(st.sampled_from(["low", "normal", "high", "urgent"])),
            status=draw(st.sampled_from(["new", "open", "pending", "solved", "closed"])),
            event_id=event_id,
        )
    if draw(st.booleans()):
        return survey(account_id, at=at, score=draw(st.integers(0, 10)), event_id=event_id)
    return survey(account_id, at=at, kind="csat", score=draw(st.integers(1, 5)), event_id=event_id)


@st.composite
def a_stream(draw: st.DrawFn) -> list[Delivery]:
    """Events (some late, some delivered again later) and account records, by arrival day."""
    count = draw(st.integers(1, 120), label="events")
    events = [draw(an_event(serial)) for serial in range(count)]
    out: list[Delivery] = []
    for event in events:
        day = (event.occurred_at - START).days
        late = draw(st.sampled_from([0, 0, 0, 0, 1, 2, 5]))
        out.append(Delivery(day + late, event))
        if draw(st.integers(0, 9)) == 0:  # about one in ten comes again
            out.append(Delivery(day + late + draw(st.integers(0, 3)), event))
    for serial in range(draw(st.integers(0, 4), label="records")):
        day = draw(st.integers(0, DAYS - 1))
        record = account(
            draw(st.sampled_from(ACCOUNTS)),
            seats=draw(st.sampled_from([None, 3, 40])),
            tier=draw(st.sampled_from([None, "pro", "enterprise"])),
            lifecycle_stage=draw(st.sampled_from([None, "onboarding", "mature", "renewing"])),
            updated_at=START + timedelta(days=day, minutes=serial),  # distinct: no ties
        )
        out.append(Delivery(day, record))
    return out


async def reset(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE " + ", ".join(f"scoring.{t}" for t in TABLES))


def latest_records(deliveries: list[Delivery]) -> dict[str, AccountRecord]:
    """The account records as the store keeps them: the newest ``updated_at`` wins."""
    out: dict[str, AccountRecord] = {}
    for d in deliveries:
        if isinstance(d.value, AccountRecord):
            held = out.get(d.value.account_id)
            if held is None or d.value.updated_at >= held.updated_at:
                out[d.value.account_id] = d.value
    return out


# No shrinking: each example replays ~70 days through the database, so shrinking a failure
# would outlast the test's timeout; the assertion names the account, the day and as_of.
@settings(
    max_examples=25,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stream=a_stream(), data=st.data())
async def test_the_facts_query_and_the_ledger_agree_on_every_stream(
    pool: asyncpg.Pool, stream: list[Delivery], data: st.DataObject
) -> None:
    await reset(pool)
    clock = FixedClock(START)
    handler = BatchHandler(
        pool, clock, max_event_age=timedelta(days=100), future_tolerance=timedelta(hours=1)
    )
    ledger = Ledger(dedup_days=2 * DAYS)  # the store forgets no key here either (no purge)
    last = max(d.arrives for d in stream)
    checkpoints = data.draw(
        st.sets(st.integers(0, last), min_size=1, max_size=3), label="checkpoints"
    ) | {last}
    arrived: list[Delivery] = []
    compared = 0
    for day in range(last + 1):
        todays = [d for d in stream if d.arrives == day]
        clock.current = datetime.combine(START.date() + timedelta(days=day), time(23, 59), UTC)
        if todays:
            await handler(records(*(d.value for d in todays)))
            ledger.fold_day([d.value for d in todays if not isinstance(d.value, AccountRecord)])
            arrived += todays
        if day not in checkpoints:
            continue
        known = latest_records(arrived)
        for shift in data.draw(
            st.lists(st.integers(-40, 10), min_size=1, max_size=3), label=f"as_of around {day}"
        ):
            as_of = clock.now() + timedelta(days=shift)
            async with pool.acquire() as conn:
                stored = await facts_sql.gather_facts(conn, list(ACCOUNTS), as_of)
                # the plan PostgreSQL settles on for a prepared statement run often (generic:
                # planned without the ids) answers the same
                await conn.execute("SET plan_cache_mode = force_generic_plan")
                generic = await facts_sql.gather_facts(conn, list(ACCOUNTS), as_of)
                await conn.execute("RESET plan_cache_mode")
            assert [f.account_id for f in stored] == sorted(ACCOUNTS)  # in key order
            assert generic == stored
            for facts in stored:
                offline = ledger.facts(facts.account_id, as_of, known.get(facts.account_id))
                assert facts == offline, f"day {day}, as of {as_of.isoformat()}"
                compared += 1
    assert compared >= len(ACCOUNTS)
