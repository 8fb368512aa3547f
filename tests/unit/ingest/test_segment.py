"""Segment calls → churnwatch events: account resolution, time correction, group, identify."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.ingest.decisions import Decision, Limits, RequestRefused
from services.ingest.segment import Kind, SegmentRules, SegmentTranslator, event_time
from shared import events
from shared.events import Topics
from tests.unit.ingest.fakes import NOW

TOPICS = Topics("t.")


def translate(
    payload: Any,
    kind: Kind = "batch",
    *,
    rules: SegmentRules | None = None,
    known: dict[str, str] | None = None,
    limits: Limits | None = None,
) -> Decision:
    return SegmentTranslator(rules or SegmentRules()).decide(
        json.dumps(payload).encode(),
        kind,
        now=NOW,
        limits=limits or Limits(),
        topics=TOPICS,
        memberships=(known or {}).get,
    )


def track(**fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": "m-1",
        "userId": "u_1",
        "event": "Report Exported",
        "context": {"groupId": "acme-corp", "library": {"name": "analytics-python"}},
        **fields,
    }


def usage(decision: Decision, index: int = 0) -> events.UsageEvent:
    event = events.decode_event(decision.messages[index].value)
    assert isinstance(event, events.UsageEvent)
    return event


def test_the_clock_correction_is_received_minus_the_clients_send_delay() -> None:
    original = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
    sent = datetime(2026, 11, 20, 11, 30, tzinfo=UTC)  # the client's clock: 30 min later
    assert event_time(original, sent, NOW) == NOW - timedelta(minutes=30)
    assert event_time(original, None, NOW) == original
    assert event_time(None, sent, NOW) == NOW


def test_a_track_call_becomes_a_usage_event_on_the_groups_account() -> None:
    decision = translate({"batch": [track()]})
    assert decision.accepted == 1
    [message] = decision.messages
    assert (message.topic, message.key) == ("t.usage.v1", b"acme-corp")
    event = usage(decision)
    assert event.event_id == "m-1"
    assert (event.user_id, event.type, event.feature) == ("u_1", "feature_used", "Report Exported")
    assert event.source == "segment"
    assert event.received_at == NOW


def test_a_batch_corrects_each_items_time_with_the_batchs_sent_at() -> None:
    payload = {
        "batch": [track(timestamp="2026-11-20T09:00:00Z")],
        "sentAt": "2026-11-20T09:10:00Z",  # sent 10 minutes after it happened, client clock
    }
    assert usage(translate(payload)).occurred_at == NOW - timedelta(minutes=10)


def test_original_timestamp_wins_over_timestamp_and_an_items_sent_at_over_the_batchs() -> None:
    item = track(
        timestamp="2026-11-20T08:00:00Z",
        originalTimestamp="2026-11-20T09:00:00Z",
        sentAt="2026-11-20T09:01:00Z",
    )
    payload = {"batch": [item], "sentAt": "2026-11-20T10:00:00Z"}
    assert usage(translate(payload)).occurred_at == NOW - timedelta(minutes=1)


def test_without_sent_at_the_clients_time_is_used_as_it_is() -> None:
    event = usage(translate({"batch": [track(timestamp="2026-11-20T09:00:00+01:00")]}))
    assert event.occurred_at == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def test_without_any_time_the_event_happened_when_received() -> None:
    assert usage(translate({"batch": [track()]})).occurred_at == NOW


def test_a_corrected_time_more_than_24_hours_ahead_is_refused() -> None:
    payload = {"batch": [track(timestamp="2026-11-22T12:00:01Z")]}
    decision = translate(payload)
    assert [(r.index, r.code) for r in decision.refused] == [(0, "occurred_in_future")]


def test_login_event_names_become_login_usage() -> None:
    event = usage(translate({"batch": [track(event="Signed In")]}))
    assert (event.type, event.feature) == ("login", None)


def test_the_account_comes_from_the_configured_property_without_a_group_id() -> None:
    item = track(context={}, properties={"workspace": "ws-9", "other": [1, 2]})
    decision = translate({"batch": [item]}, rules=SegmentRules(account_property="workspace"))
    assert usage(decision).account_id == "ws-9"


def test_the_account_comes_from_a_known_membership_last() -> None:
    decision = translate({"batch": [track(context={})]}, known={"u_1": "from-group"})
    assert usage(decision).account_id == "from-group"


def test_a_track_call_with_no_way_to_its_account_is_refused() -> None:
    decision = translate({"batch": [track(context={})]})
    assert [(r.index, r.code) for r in decision.refused] == [(0, "account_unresolved")]
    assert "group call" in decision.refused[0].message


def test_a_group_call_publishes_a_membership_and_attaches_later_calls_in_the_batch() -> None:
    group = {"type": "group", "messageId": "g-1", "userId": "u_1", "groupId": "acme-corp"}
    decision = translate({"batch": [group, track(context={}, messageId="m-2")]})
    assert decision.accepted == 2
    membership, usage_message = decision.messages
    assert (membership.topic, membership.key) == ("t.memberships.v1", b"u_1")
    record = events.decode_membership(membership.value)
    assert (record.user_id, record.account_id, record.source) == ("u_1", "acme-corp", "segment")
    assert events.decode_event(usage_message.value).account_id == "acme-corp"
    assert decision.learned == {"u_1": "acme-corp"}


def test_group_traits_update_the_account_only_when_enabled() -> None:
    group = {
        "type": "group",
        "userId": "u_1",
        "groupId": 42,
        "traits": {"name": "Acme", "plan": "enterprise", "seats": 250, "industry": "tools"},
    }
    assert [m.topic for m in translate({"batch": [group]}).messages] == ["t.memberships.v1"]
    enabled = translate({"batch": [group]}, rules=SegmentRules(group_updates_accounts=True))
    assert [m.topic for m in enabled.messages] == ["t.memberships.v1", "t.accounts.v1"]
    account = events.decode_account(enabled.messages[1].value)
    assert (account.account_id, account.name, account.tier, account.seats) == (
        "42",
        "Acme",
        "enterprise",
        250,
    )


def test_identify_and_alias_are_acknowledged_and_ignored() -> None:
    decision = translate(
        {
            "batch": [
                {"type": "identify", "userId": "u_1", "traits": {"email": "a@b.c"}},
                {"type": "alias", "userId": "u_1", "previousId": "anon"},
            ]
        }
    )
    assert (decision.accepted, decision.ignored, decision.messages) == (0, 2, [])


def test_page_and_screen_calls_are_usage_events() -> None:
    page = {"type": "page", "userId": "u_1", "name": "Dashboard", "context": {"groupId": "a"}}
    screen = {**page, "type": "screen", "name": "Settings"}
    decision = translate({"batch": [page, screen]})
    assert [(usage(decision, i).type, usage(decision, i).feature) for i in (0, 1)] == [
        ("page_view", "Dashboard"),
        ("screen_view", "Settings"),
    ]


def test_anonymous_users_are_users_and_a_message_with_neither_id_is_refused() -> None:
    decision = translate({"batch": [track(userId=None, anonymousId="anon-7"), track(userId=None)]})
    assert usage(decision).user_id == "anon-7"
    assert [(r.index, r.code) for r in decision.refused] == [(1, "missing_user")]


def test_fields_ingest_does_not_read_are_tolerated_and_the_ones_it_reads_are_checked() -> None:
    decision = translate(
        {
            "batch": [
                track(integrations={"All": True}, _metadata={"bundled": []}, channel="server"),
                track(messageId=12),
                {"type": "flush", "userId": "u"},
            ],
            "context": {"library": {"name": "analytics.js"}},
        }
    )
    assert decision.accepted == 1
    assert [(r.index, r.code) for r in decision.refused] == [
        (1, "invalid_message"),
        (2, "invalid_message"),
    ]
    assert "messageId" in decision.refused[0].message


def test_a_single_call_endpoint_reads_one_message_whose_type_may_be_omitted() -> None:
    single = track()
    del single["type"]
    assert translate(single, "track").accepted == 1
    wrong = translate(track(type="page"), "track")
    assert wrong.refused[0].code == "invalid_message"


def test_a_batch_item_over_the_size_limit_is_refused_alone() -> None:
    big = track(properties={"blob": "x" * 2000})
    decision = translate({"batch": [big, track()]}, limits=Limits(max_event_bytes=1024))
    assert decision.accepted == 1
    assert [(r.index, r.code) for r in decision.refused] == [(0, "event_too_large")]


def test_more_messages_than_the_limit_refuse_the_batch() -> None:
    with pytest.raises(RequestRefused) as refused:
        translate({"batch": [track()] * 3}, limits=Limits(max_events=2))
    assert refused.value.status == 413


def test_a_batch_without_its_batch_array_is_422() -> None:
    with pytest.raises(RequestRefused) as refused:
        translate({"messages": []})
    assert (refused.value.status, refused.value.code) == (422, "invalid_body")


def test_times_too_far_apart_to_correct_refuse_the_message_not_the_request() -> None:
    item = track(timestamp="0001-01-01T00:00:00Z", sentAt="9999-12-31T23:59:59Z")
    decision = translate({"batch": [item, track(messageId="m-2")]})
    assert decision.accepted == 1
    assert [(r.index, r.code) for r in decision.refused] == [(0, "invalid_message")]
