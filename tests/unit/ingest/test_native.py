"""The native API's pure core: partial acceptance, refusals by index, limits at their edges."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from services.ingest import native
from services.ingest.decisions import Limits, RequestRefused
from shared import events
from shared.events import Topics
from tests.unit.ingest.fakes import NOW

TOPICS = Topics("t.")
LIMITS = Limits()
EXAMPLES = Path(events.__file__).parent / "examples"


def example(kind: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / f"{kind}.json").read_text())
    del document["received_at"], document["source"]
    return document


def body(*items: Any) -> bytes:
    return json.dumps(list(items)).encode()


def decide(raw: bytes, limits: Limits = LIMITS) -> Any:
    return native.decide_events(raw, now=NOW, limits=limits, topics=TOPICS)


def test_each_kind_goes_to_its_topic_keyed_by_account_with_received_at_and_source_set() -> None:
    decision = decide(body(example("usage"), example("ticket"), example("survey")))
    assert decision.accepted == 3
    assert decision.refused == []
    assert [m.topic for m in decision.messages] == ["t.usage.v1", "t.tickets.v1", "t.surveys.v1"]
    assert {m.key for m in decision.messages} == {b"acme-corp"}
    published = [events.decode_event(m.value) for m in decision.messages]
    assert all(e.received_at == NOW and e.source == "native" for e in published)
    usage = published[0]
    assert isinstance(usage, events.UsageEvent)
    assert usage.event_id == "evt_01HZX3B5T4W8N2K7Q9R6M1C0DE"
    assert usage.feature == "reports.export"
    assert usage.quantity == 3.0


def test_a_single_object_is_a_batch_of_one() -> None:
    decision = decide(json.dumps(example("usage")).encode())
    assert decision.accepted == 1


def test_good_items_are_accepted_and_bad_ones_refused_by_index_with_their_raw_bytes() -> None:
    bad = {**example("usage"), "colour": "blue"}
    decision = decide(body(example("usage"), bad, 42, example("ticket")))
    assert decision.accepted == 2
    assert [(r.index, r.code) for r in decision.refused] == [
        (1, "invalid_event"),
        (2, "invalid_event"),
    ]
    assert decision.refused[0].message == "Object contains unknown field `colour`"
    assert json.loads(decision.refused[0].raw) == bad
    assert decision.refused[1].raw == b"42"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"user_id": 7}, "Expected `str`, got `int` - at `$.user_id`"),
        ({"event_type": "pageview"}, "Invalid value 'pageview' - at `$.event_type`"),
        ({"occurred_at": "2026-11-20T14:03:12"}, "Expected `datetime` with a timezone"),
        ({"received_at": "2026-11-20T14:03:12Z"}, "unknown field `received_at`"),
        ({"source": "me"}, "unknown field `source`"),
        ({"quantity": -1}, "Expected `float` >= 0.0"),
        ({"event_id": "x" * 129}, "Expected `str` of length <= 128"),
        ({"schema_version": 2}, "Invalid enum value 2 - at `$.schema_version`"),
    ],
)
def test_an_invalid_item_is_refused_with_the_field_named(
    change: dict[str, Any], message: str
) -> None:
    decision = decide(body({**example("usage"), **change}))
    assert decision.accepted == 0
    assert decision.refused[0].code == "invalid_event"
    assert message in decision.refused[0].message


def test_a_missing_field_is_named() -> None:
    item = example("ticket")
    del item["priority"]
    decision = decide(body(item))
    assert decision.refused[0].message == "Object missing required field `priority`"


def test_a_csat_score_out_of_range_is_refused() -> None:
    decision = decide(body({**example("survey"), "kind": "csat", "score": 9}))
    assert decision.refused[0].code == "invalid_event"
    assert "CSAT" in decision.refused[0].message


def test_an_event_without_id_gets_one_derived_from_its_bytes_stable_across_retries() -> None:
    item = example("usage")
    del item["event_id"]
    first = decide(body(item, {**item, "user_id": "u_other"}))
    again = decide(body(item, {**item, "user_id": "u_other"}))
    ids = [events.decode_event(m.value).event_id for m in first.messages]
    assert ids == [events.decode_event(m.value).event_id for m in again.messages]
    assert len(set(ids)) == 2
    assert all(i.startswith("h:") and len(i) <= 128 for i in ids)


# -- limits at their edges -----------------------------------------------------------------


def padded(size: int, **change: Any) -> bytes:
    """A valid usage event of exactly ``size`` bytes (whitespace inside the object pads it)."""
    compact = json.dumps({**example("usage"), **change}, separators=(",", ":")).encode()
    raw = compact[:-1] + b" " * (size - len(compact)) + b"}"
    assert len(raw) == size
    return raw


def test_an_event_of_exactly_the_size_limit_is_accepted() -> None:
    limits = Limits(max_event_bytes=256)
    decision = decide(b"[" + padded(256) + b"]", limits)
    assert decision.accepted == 1


def test_an_event_one_byte_over_the_size_limit_is_refused_alone() -> None:
    limits = Limits(max_event_bytes=256)
    decision = decide(b"[" + padded(257) + b"," + padded(250, event_id="other") + b"]", limits)
    assert decision.accepted == 1
    assert [(r.index, r.code) for r in decision.refused] == [(0, "event_too_large")]
    assert decision.refused[0].raw == padded(257)


def test_the_default_event_size_limit_is_32_kib() -> None:
    assert decide(b"[" + padded(32 * 1024) + b"]").accepted == 1
    assert decide(b"[" + padded(32 * 1024 + 1) + b"]").refused[0].code == "event_too_large"


def test_exactly_the_maximum_number_of_events_is_accepted() -> None:
    decision = decide(body(*[example("usage")] * 2500))
    assert decision.accepted == 2500


def test_one_event_over_the_maximum_refuses_the_whole_request_with_413() -> None:
    with pytest.raises(RequestRefused) as refused:
        decide(body(*[example("usage")] * 2501))
    assert (refused.value.status, refused.value.code) == (413, "too_many_events")


def test_an_event_exactly_24_hours_ahead_is_accepted_and_one_more_second_is_refused() -> None:
    edge = {**example("usage"), "occurred_at": (NOW + timedelta(hours=24)).isoformat()}
    beyond = {
        **example("usage"),
        "event_id": "later",
        "occurred_at": (NOW + timedelta(hours=24, seconds=1)).isoformat(),
    }
    decision = decide(body(edge, beyond))
    assert decision.accepted == 1
    assert [(r.index, r.code) for r in decision.refused] == [(1, "occurred_in_future")]
    assert decision.refused[0].key == b"acme-corp"


@pytest.mark.parametrize("raw", [b"[{]", b"", b"{", b"nope", b"[1,"])
def test_invalid_json_refuses_the_whole_request_with_400(raw: bytes) -> None:
    with pytest.raises(RequestRefused) as refused:
        decide(raw)
    assert (refused.value.status, refused.value.code) == (400, "invalid_json")


@pytest.mark.parametrize("raw", [b"42", b'"x"', b"null", b"true"])
def test_a_body_that_is_neither_object_nor_array_is_422(raw: bytes) -> None:
    with pytest.raises(RequestRefused) as refused:
        decide(raw)
    assert (refused.value.status, refused.value.code) == (422, "invalid_body")


# -- the input models stay in step with the contract -----------------------------------------


@pytest.mark.parametrize(
    ("model", "wire"),
    [
        (native.UsageEventIn, events.UsageEvent),
        (native.TicketEventIn, events.TicketEvent),
        (native.SurveyEventIn, events.SurveyEvent),
        (native.AccountIn, events.AccountRecord),
        (native.PersonIn, events.PersonRecord),
    ],
)
def test_input_models_accept_the_contract_fields_except_those_ingest_sets(
    model: type[msgspec.Struct], wire: type[msgspec.Struct]
) -> None:
    set_by_ingest = {"received_at", "source"}
    assert {f.name for f in msgspec.structs.fields(model)} == {
        f.name for f in msgspec.structs.fields(wire)
    } - set_by_ingest


# -- accounts and people -------------------------------------------------------------------


def test_a_put_account_takes_its_id_from_the_path_and_its_source_from_the_caller() -> None:
    item = json.loads((EXAMPLES / "account.json").read_text())
    del item["source"], item["account_id"]
    decision = native.decide_accounts(
        json.dumps(item).encode(),
        now=NOW,
        limits=LIMITS,
        topics=TOPICS,
        source="crm-sync",
        path_id="acme-corp",
    )
    [message] = decision.messages
    assert (message.topic, message.key) == ("t.accounts.v1", b"acme-corp")
    record = events.decode_account(message.value)
    assert record.account_id == "acme-corp"
    assert record.source == "crm-sync"
    assert record.team.csm == "p_maria"
    assert record.renewal_date is not None


def test_a_put_account_whose_body_names_another_id_is_refused() -> None:
    decision = native.decide_accounts(
        b'{"account_id": "other", "name": "X"}',
        now=NOW,
        limits=LIMITS,
        topics=TOPICS,
        source="crm",
        path_id="acme-corp",
    )
    assert [(r.index, r.code) for r in decision.refused] == [(0, "id_mismatch")]


def test_a_put_takes_one_object_not_an_array() -> None:
    with pytest.raises(RequestRefused) as refused:
        native.decide_accounts(
            b'[{"name": "X"}]', now=NOW, limits=LIMITS, topics=TOPICS, source="crm", path_id="a"
        )
    assert refused.value.code == "invalid_body"


def test_bulk_accounts_need_their_ids_and_default_updated_at_to_now() -> None:
    decision = native.decide_accounts(
        b'[{"account_id": "a1", "name": "One"}, {"name": "No id"}]',
        now=NOW,
        limits=LIMITS,
        topics=TOPICS,
        source="crm",
    )
    assert events.decode_account(decision.messages[0].value).updated_at == NOW
    assert [(r.index, r.code) for r in decision.refused] == [(1, "invalid_record")]
    assert "account_id" in decision.refused[0].message


def test_people_are_keyed_by_person_id_and_an_unknown_time_zone_is_refused() -> None:
    decision = native.decide_people(
        b'[{"person_id": "p_maria", "name": "Maria", "time_zone": "Europe/Madrid"},'
        b' {"person_id": "p_x", "name": "X", "time_zone": "Mars/Olympus"}]',
        now=NOW,
        limits=LIMITS,
        topics=TOPICS,
        source="hr",
    )
    [message] = decision.messages
    assert (message.topic, message.key) == ("t.people.v1", b"p_maria")
    assert events.decode_person(message.value).time_zone == "Europe/Madrid"
    assert [(r.index, r.code) for r in decision.refused] == [(1, "invalid_record")]
    assert "Mars/Olympus" in decision.refused[0].message


def test_a_persons_hours_channel_and_budget_pass_through_and_bad_ones_are_refused() -> None:
    decision = native.decide_people(
        b'[{"person_id": "p_maria", "name": "Maria", "time_zone": "Europe/Madrid",'
        b' "working_hours": {"days": ["mon", "tue"], "start": "08:30", "end": "16:00"},'
        b' "quiet_hours": {"start": "22:00", "end": "07:00"}, "alert_channel": "digest",'
        b' "daily_alert_budget": 5},'
        b' {"person_id": "p_x", "name": "X", "working_hours":'
        b' {"days": ["mon"], "start": "18:00", "end": "09:00"}}]',
        now=NOW,
        limits=LIMITS,
        topics=TOPICS,
        source="hr",
    )
    [message] = decision.messages
    person = events.decode_person(message.value)
    assert isinstance(person, events.PersonRecord)
    assert person.working_hours is not None
    assert (person.working_hours.days, person.working_hours.start) == (["mon", "tue"], "08:30")
    assert (person.alert_channel, person.daily_alert_budget) == ("digest", 5)
    assert [(r.index, r.code) for r in decision.refused] == [(1, "invalid_record")]
    assert "start before they end" in decision.refused[0].message
