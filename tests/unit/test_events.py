import json
from pathlib import Path

import jsonschema
import msgspec
import pytest

from shared import events
from shared.events import TicketEvent, Topics, UsageEvent

EXAMPLES = Path(events.__file__).parent / "examples"
SCHEMA_FILE = Path(events.__file__).parent / "schemas" / "events.v1.json"

DECODERS = {
    "usage": events.decode_event,
    "ticket": events.decode_event,
    "survey": events.decode_event,
    "account": events.decode_account,
    "person": events.decode_person,
    "membership": events.decode_membership,
    "health_change": events.decode_health_change,
}


def test_there_is_one_example_per_kind() -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.json")) == sorted(events.SCHEMA_TYPES)


@pytest.mark.parametrize("kind", sorted(events.SCHEMA_TYPES))
def test_example_round_trips_unchanged(kind: str) -> None:
    raw = (EXAMPLES / f"{kind}.json").read_bytes()
    message = DECODERS[kind](raw)
    assert isinstance(message, events.SCHEMA_TYPES[kind])
    assert json.loads(events.encode(message)) == json.loads(raw)


@pytest.mark.parametrize("kind", sorted(events.SCHEMA_TYPES))
def test_example_conforms_to_the_exported_json_schema(kind: str) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    definition = {"$ref": schema["x-kinds"][kind], "$defs": schema["$defs"]}
    jsonschema.validate(json.loads((EXAMPLES / f"{kind}.json").read_text()), definition)


def test_committed_json_schema_is_up_to_date() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == json.loads(json.dumps(events.json_schema())), (
        "run `make schemas` and commit shared/schemas/events.v1.json"
    )


def test_consumers_tolerate_unknown_fields() -> None:
    doc = json.loads((EXAMPLES / "usage.json").read_text())
    doc["added_in_a_later_minor_version"] = {"nested": True}
    event = events.decode_event(json.dumps(doc).encode())
    assert isinstance(event, UsageEvent)
    assert event.user_id == "u_4821"


def test_event_type_selects_the_struct() -> None:
    event = events.decode_event((EXAMPLES / "ticket.json").read_bytes())
    assert isinstance(event, TicketEvent)
    assert event.priority == "urgent"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"occurred_at": "2026-11-20T14:03:12"}, "timezone"),
        ({"event_id": "x" * 129}, "length <= 128"),
        ({"event_id": ""}, "length >= 1"),
        ({"quantity": -1}, ">= 0"),
        ({"event_type": "pageview"}, "Invalid value 'pageview'"),
    ],
)
def test_invalid_events_are_refused_with_the_field_named(
    change: dict[str, object], error: str
) -> None:
    doc = json.loads((EXAMPLES / "usage.json").read_text()) | change
    with pytest.raises(msgspec.ValidationError, match=error):
        events.decode_event(json.dumps(doc).encode())


def test_event_id_of_exactly_128_characters_is_accepted() -> None:
    doc = json.loads((EXAMPLES / "usage.json").read_text()) | {"event_id": "x" * 128}
    assert events.decode_event(json.dumps(doc).encode()).event_id == "x" * 128


def test_csat_scores_outside_one_to_five_are_refused() -> None:
    doc = json.loads((EXAMPLES / "survey.json").read_text()) | {"kind": "csat", "score": 9}
    with pytest.raises(msgspec.ValidationError, match="CSAT"):
        events.decode_event(json.dumps(doc).encode())


def test_seats_up_to_the_limit_are_accepted_and_one_more_is_refused() -> None:
    doc = json.loads((EXAMPLES / "account.json").read_text())
    at_limit = doc | {"seats": events.MAX_SEATS}
    assert events.decode_account(json.dumps(at_limit).encode()).seats == events.MAX_SEATS
    with pytest.raises(msgspec.ValidationError, match=f"<= {events.MAX_SEATS}"):
        events.decode_account(json.dumps(doc | {"seats": events.MAX_SEATS + 1}).encode())


def test_unknown_time_zone_is_refused() -> None:
    doc = json.loads((EXAMPLES / "person.json").read_text()) | {"time_zone": "Mars/Olympus"}
    with pytest.raises(msgspec.ValidationError, match="unknown time zone"):
        events.decode_person(json.dumps(doc).encode())


def test_topic_names_carry_the_prefix_and_version() -> None:
    topics = Topics("staging.")
    assert topics.usage == "staging.usage.v1"
    assert topics.health == "staging.health-changes.v1"
    assert topics.ingest_dlq == "staging.ingest.dlq.v1"
    assert len(topics.all()) == len(events.TOPIC_SPECS)
    assert {name for name, spec in topics.all().items() if spec.compacted} == {
        "staging.accounts.v1",
        "staging.people.v1",
        "staging.memberships.v1",
        "staging.health-changes.v1",
    }


def test_a_health_change_written_before_evidence_existed_still_decodes() -> None:
    raw = json.loads((EXAMPLES / "health_change.json").read_bytes())
    for move in raw["moved_by"]:
        del move["evidence"]
    del raw["after"]["signals"]["open_high_urgent_ticket_ids"]
    change = events.decode_health_change(json.dumps(raw).encode())
    assert [m.evidence for m in change.moved_by] == [[], []]
    assert change.after.signals.open_high_urgent_ticket_ids is None


def test_a_move_naming_too_many_facts_is_refused() -> None:
    raw = json.loads((EXAMPLES / "health_change.json").read_bytes())
    raw["moved_by"][0]["evidence"] = ["fact"] * (events.MAX_EVIDENCE + 1)
    with pytest.raises(msgspec.ValidationError, match="evidence"):
        events.decode_health_change(json.dumps(raw).encode())
    raw["moved_by"][0]["evidence"] = ["fact"] * events.MAX_EVIDENCE
    assert len(events.decode_health_change(json.dumps(raw).encode()).moved_by[0].evidence) == 8
