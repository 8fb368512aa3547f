"""What becomes of an outbox row after a send (pure, fixed ``now``), which due rows a worker
takes, and who gets a digest: the decisions of the delivery worker and the scheduler, apart
from their SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.alerts import scheduler
from services.alerts.delivery import DeliveryConfig, choose, judge
from services.alerts.digest import AccountLine, HeldAlert
from services.alerts.notifiers import Delivered, Permanent, Retry
from services.alerts.routing import Destination
from services.alerts.store import Candidate, ClaimedRow, PersonRow
from tests.integration.alerts.support import make_config

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
CONFIG = DeliveryConfig(
    backoff_initial_seconds=2.0,
    backoff_max_seconds=600.0,
    give_up=timedelta(days=1),
    slack_channel_interval=timedelta(seconds=1),
    message_id_domain="test.invalid",
)
EMAIL = Destination("email", "maria@example.com")


def row(
    channel: str = "slack", *, attempts: int = 1, age: timedelta = timedelta(0), **kw: object
) -> ClaimedRow:
    fields: dict[str, object] = {
        "id": 1,
        "key": "k1",
        "kind": "firing",
        "account_id": "acme",
        "destination": Destination(channel, "C1" if channel == "slack" else "maria@example.com"),  # type: ignore[arg-type]
        "fallbacks": (),
        "payload": {"x": 1},
        "message_id": "<m@test.invalid>",
        "thread_key": "acme|slack:C1",
        "thread_ref": None,
        "attempts": attempts,
        "created_at": NOW - age,
    }
    return ClaimedRow(**(fields | kw))  # type: ignore[arg-type]


def test_a_delivered_message_is_sent_remembers_its_thread_and_paces_its_slack_channel() -> None:
    verdict = judge(row(), Delivered(ref="1700.1"), CONFIG, NOW)
    assert verdict.status == "sent"
    assert verdict.outcome.state == "sent"
    assert verdict.outcome.provider_ref == "1700.1"
    assert verdict.outcome.thread == ("acme|slack:C1", "1700.1")
    assert verdict.outcome.hold_channel_until == NOW + timedelta(seconds=1)
    resolved = judge(row(kind="resolved"), Delivered(ref="1700.2"), CONFIG, NOW)
    assert resolved.outcome.thread is None  # a resolved notice is a reply, not a new root
    assert judge(row("email"), Delivered(), CONFIG, NOW).outcome.hold_channel_until is None


def test_a_transient_failure_backs_off_exponentially_with_jitter() -> None:
    first = judge(row("email", attempts=1), Retry("503"), CONFIG, NOW, rng=lambda: 1.0)
    third = judge(row("email", attempts=3), Retry("503"), CONFIG, NOW, rng=lambda: 0.0)
    assert first.status == "retry"
    assert first.outcome.state == "pending"
    assert first.outcome.next_attempt_at == NOW + timedelta(seconds=2)
    assert third.outcome.next_attempt_at == NOW + timedelta(seconds=4)  # half of 2·2², jitter 0
    assert first.outcome.error == "503"


def test_a_rate_limit_waits_exactly_retry_after_and_holds_the_whole_slack_channel() -> None:
    verdict = judge(row(), Retry("429", after_seconds=30), CONFIG, NOW)
    assert verdict.status == "rate_limited"
    assert verdict.outcome.next_attempt_at == NOW + timedelta(seconds=30)
    assert verdict.outcome.hold_channel_until == NOW + timedelta(seconds=30)


def test_after_give_up_a_transient_failure_falls_back_to_the_next_destination() -> None:
    old = row(age=timedelta(days=1), attempts=9, fallbacks=(EMAIL,))
    verdict = judge(old, Retry("503"), CONFIG, NOW)
    assert verdict.given_up
    assert verdict.status == "fallback"
    assert verdict.outcome.state == "fallen_back"
    assert verdict.outcome.error == "gave up after 9 attempts: 503"
    fallback = verdict.outcome.fallback
    assert fallback is not None
    assert (fallback.key, fallback.channel, fallback.address) == (
        "k1>email:maria@example.com",
        "email",
        "maria@example.com",
    )
    assert fallback.thread_key == "acme|email:maria@example.com"
    assert fallback.fallbacks == []


def test_a_permanent_failure_without_fallbacks_fails() -> None:
    verdict = judge(row(), Permanent("channel_not_found"), CONFIG, NOW)
    assert (verdict.status, verdict.outcome.state, verdict.outcome.fallback) == (
        "failed",
        "failed",
        None,
    )
    assert not verdict.given_up


def test_a_worker_takes_one_row_per_paced_slack_channel_and_every_other_row() -> None:
    due = [
        Candidate(1, "slack", "C1"),
        Candidate(2, "slack", "C1"),
        Candidate(3, "email", "a@x"),
        Candidate(4, "slack", "C2"),
    ]
    assert choose(due, pacing=True) == ([3], {"C1": 1, "C2": 4})
    assert choose(due, pacing=False) == ([1, 2, 3, 4], {})


def person(person_id: str, zone: str = "Europe/Madrid", **kw: object) -> PersonRow:
    fields: dict[str, object] = {
        "person_id": person_id,
        "name": person_id.title(),
        "email": f"{person_id}@example.com",
        "slack_user_id": None,
        "manager_id": None,
        "time_zone": zone,
        "active": True,
        "updated_at": NOW,
        "next_digest_at": NOW,
    }
    return PersonRow(**(fields | kw))  # type: ignore[arg-type]


def test_a_digest_goes_to_whom_nine_has_come_with_something_to_say_and_all_move_on() -> None:
    line = AccountLine("acme", "Acme", 30.0, "red", NOW, None, 1.0, ("down",))
    held = HeldAlert(7, "acme", "Acme", "expansion", "info", "seats full", True)
    due = [
        person("maria", next_digest_at=NOW),  # 11:00 in Madrid: due
        person("empty"),  # due, nothing to say: skipped
        person("tokyo", "Asia/Tokyo"),  # 19:00 in Tokyo: today's 09:00 has come
        person("gone", active=False),
        person("early", "America/New_York"),  # 05:00 in New York: not yet
    ]
    plan = scheduler.plan_digests(
        due,
        {"maria": [line], "gone": [line], "early": [line], "tokyo": [line]},
        {"maria": [held]},
        scheduler.DigestOptions(hour=9, skip_empty=True),
        make_config(),
        now=NOW,
        real_now=NOW,
    )
    assert [e.key for e in plan.entries] == ["digest:maria:2026-11-23", "digest:tokyo:2026-11-23"]
    assert plan.shown == [7]
    assert plan.sent == 2
    assert set(plan.next_at) == {"maria", "empty", "tokyo", "gone", "early"}
    assert plan.next_at["maria"] == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
