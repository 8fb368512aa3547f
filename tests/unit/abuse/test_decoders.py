"""Every decoder of untrusted bytes, fuzzed: whatever it is given, it answers or raises only
its documented refusal type — never anything else (which would be a 500, or a crashed
consumer task).

| decoder | documented refusal |
|---|---|
| ``shared.events.decode_*`` (every consumer) | ``msgspec.DecodeError`` |
| scoring's consumer decoder | ``shared.kafka.DecodeFailure`` |
| alerts' consumer decoder | ``msgspec.DecodeError`` |
| ingest native, Segment and Zendesk cores | ``RequestRefused`` (or items refused in the decision) |
| ingest's Zendesk signature check | ``RequestRefused`` |
| alerts' one-click link tokens | ``LinkError`` |
| ``API_KEYS`` | ``ValueError`` |

Inputs: arbitrary bytes, arbitrary JSON, the contract's example payloads with a field
changed, removed or added, and JSON nested far deeper than any real payload.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.alerts import handler as alerts_handler
from services.alerts import links
from services.ingest import native, zendesk
from services.ingest.decisions import Limits, RequestRefused, split_items
from services.ingest.segment import Kind, SegmentRules, SegmentTranslator, write_key_in_body
from services.scoring import handler as scoring_handler
from shared import events
from shared.auth import ApiKeys
from shared.kafka import DecodeFailure

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TOPICS = events.Topics("fuzz.")
LIMITS = Limits(max_body_bytes=4 * 1024 * 1024)
EXAMPLES = {
    path.stem: json.loads(path.read_text())
    for path in (Path(events.__file__).parent / "examples").glob("*.json")
}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)


@st.composite
def mutated_examples(draw: st.DrawFn) -> bytes:
    """A contract example with one field replaced, removed or added."""
    example = dict(EXAMPLES[draw(st.sampled_from(sorted(EXAMPLES)))])
    field = draw(st.sampled_from(sorted(example)))
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    if action == "replace":
        example[field] = draw(json_values)
    elif action == "remove":
        del example[field]
    else:
        example[draw(st.text(max_size=12))] = draw(json_values)
    return json.dumps(example).encode()


inputs = (
    st.binary(max_size=600)
    | json_values.map(lambda v: json.dumps(v).encode())
    | mutated_examples()
    | mutated_examples().map(lambda b: b"[" + b + b"]")
)

DEEP = {
    "arrays 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "objects 100,000 deep": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "an event with a field 50,000 deep": b'{"event_type":"usage","feature":'
    + b"[" * 50_000
    + b"]" * 50_000
    + b"}",
    "a batch item 50,000 deep": b"[" + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"]",
    "a Segment batch 50,000 deep": b'{"batch":[{"type":"track","properties":'
    + b"[" * 50_000
    + b"]" * 50_000
    + b"}]}",
}


def refuses_only(call: Callable[[bytes], Any], allowed: tuple[type[BaseException], ...]) -> None:
    """``call`` over many inputs: an answer, or one of ``allowed`` — nothing else."""

    @FUZZ
    @given(raw=inputs)
    def check(raw: bytes) -> None:
        with contextlib.suppress(*allowed):
            call(raw)

    check()


# -- the consumers' decoders ---------------------------------------------------------------

CONTRACT_DECODERS = {
    "event": events.decode_event,
    "account": events.decode_account,
    "person": events.decode_person,
    "membership": events.decode_membership,
    "health change": events.decode_health_change,
}


@pytest.mark.parametrize("kind", sorted(CONTRACT_DECODERS))
def test_the_contract_decoders_refuse_anything_with_a_decode_error_only(kind: str) -> None:
    refuses_only(CONTRACT_DECODERS[kind], (msgspec.DecodeError,))


@pytest.mark.parametrize("kind", sorted(CONTRACT_DECODERS))
@pytest.mark.parametrize("shape", sorted(DEEP))
def test_the_contract_decoders_refuse_deep_nesting_with_a_decode_error(
    kind: str, shape: str
) -> None:
    with pytest.raises(msgspec.DecodeError):
        CONTRACT_DECODERS[kind](DEEP[shape])


EXAMPLE_KIND = {"usage": "event", "ticket": "event", "survey": "event"}


def with_nul(example: dict[str, Any], field: str) -> bytes:
    return json.dumps(example | {field: f"{example[field]}\u0000"}).encode()


NUL_CASES = [
    (kind, field)
    for kind, example in sorted(EXAMPLES.items())
    for field, value in sorted(example.items())
    if isinstance(value, str)
    and field not in ("event_type", "occurred_at", "received_at")
    and not field.endswith(("_at", "_date"))
]


@pytest.mark.parametrize(("kind", "field"), NUL_CASES)
def test_a_string_with_a_nul_character_is_refused_with_a_decode_error(
    kind: str, field: str
) -> None:
    """PostgreSQL cannot store NUL: such a record would fail its consumer's transaction on
    every retry and stop the partition (issue 9's poison found it in scoring and alerts)."""
    decode = CONTRACT_DECODERS[EXAMPLE_KIND.get(kind, kind.replace("_", " "))]
    with pytest.raises(msgspec.DecodeError):  # "contains the NUL character", or an enum's
        decode(with_nul(EXAMPLES[kind], field))
    assert decode(json.dumps(EXAMPLES[kind]).encode())  # the example itself is fine


SCORING_TOPICS = [TOPICS.usage, TOPICS.tickets, TOPICS.surveys, TOPICS.accounts, TOPICS.people]
ALERTS_TOPICS = [TOPICS.health, TOPICS.accounts, TOPICS.people]


@pytest.mark.parametrize("topic", SCORING_TOPICS)
def test_scoring_turns_every_undecodable_record_into_a_decode_failure(topic: str) -> None:
    decode = scoring_handler.decoder(TOPICS)
    refuses_only(lambda raw: decode(topic, raw), (DecodeFailure,))
    for raw in DEEP.values():
        with pytest.raises(DecodeFailure):
            decode(topic, raw)


@pytest.mark.parametrize("topic", ALERTS_TOPICS)
def test_alerts_turns_every_undecodable_record_into_a_decode_failure(topic: str) -> None:
    decode = alerts_handler.make_decoder(TOPICS)
    refuses_only(lambda raw: decode(topic, raw), (DecodeFailure,))
    for raw in DEEP.values():
        with pytest.raises(DecodeFailure):
            decode(topic, raw)


# -- ingest's cores ------------------------------------------------------------------------

SEGMENT = SegmentTranslator(SegmentRules())


def segment(kind: Kind) -> Callable[[bytes], Any]:
    def decide(raw: bytes) -> Any:
        return SEGMENT.decide(
            raw, kind, now=NOW, limits=LIMITS, topics=TOPICS, memberships=lambda _: None
        )

    return decide


INGEST_CORES: dict[str, Callable[[bytes], Any]] = {
    "native events": lambda raw: native.decide_events(raw, now=NOW, limits=LIMITS, topics=TOPICS),
    "account records": lambda raw: native.decide_accounts(
        raw, now=NOW, limits=LIMITS, topics=TOPICS, source="fuzz"
    ),
    "one person record": lambda raw: native.decide_people(
        raw, now=NOW, limits=LIMITS, topics=TOPICS, source="fuzz", path_id="p1"
    ),
    "zendesk": lambda raw: zendesk.decide(
        raw, now=NOW, topics=TOPICS, organizations={"3601": "acme"}
    ),
    **{f"segment {kind}": segment(kind) for kind in get_args(Kind)},
}


@pytest.mark.parametrize("core", sorted(INGEST_CORES))
def test_ingest_refuses_a_body_only_with_a_request_refusal(core: str) -> None:
    refuses_only(INGEST_CORES[core], (RequestRefused,))


NOT_UTF8 = {
    "a top-level string": b'"\xff"',
    "an object key": b'{"\xff": 1}',
    "a value": b'{"a": "\xff\xfe"}',
    "an event's field": b'{"event_type":"usage","event_id":"e","account_id":"\xed\xa0\x80",'
    b'"occurred_at":"2026-11-20T10:00:00Z","user_id":"u","type":"login"}',
    "a batch item": b'[{"event_type":"usage","user_id":"\xff"}]',
    "a Segment batch item": b'{"batch":[{"type":"track","event":"\xff","userId":"u"}]}',
    "a Segment call": b'{"type":"track","userId":"\xff","event":"x"}',
}


@pytest.mark.parametrize("core", sorted(INGEST_CORES))
def test_ingest_refuses_strings_that_are_not_utf8_with_a_request_refusal(core: str) -> None:
    """msgspec raises UnicodeDecodeError for them; hypothesis found it now and then (issue 9)."""
    for raw in NOT_UTF8.values():
        with contextlib.suppress(RequestRefused):
            INGEST_CORES[core](raw)
    assert write_key_in_body(b'{"writeKey": "\xff"}') is None


@pytest.mark.parametrize("core", sorted(INGEST_CORES))
def test_ingest_refuses_deep_nesting_with_a_request_refusal(core: str) -> None:
    for raw in DEEP.values():
        with contextlib.suppress(RequestRefused):
            INGEST_CORES[core](raw)


@FUZZ
@given(raw=inputs)
def test_splitting_a_body_into_items_refuses_only_with_a_request_refusal(raw: bytes) -> None:
    with contextlib.suppress(RequestRefused):
        split_items(raw, LIMITS)


@FUZZ
@given(raw=inputs)
def test_a_write_key_is_looked_for_in_any_body_without_raising(raw: bytes) -> None:
    found = write_key_in_body(raw)
    assert found is None or isinstance(found, str)


@FUZZ
@given(
    signature=st.none() | st.text(max_size=60),
    timestamp=st.none() | st.text(max_size=40),
    body=st.binary(max_size=200),
)
def test_a_zendesk_signature_is_refused_unless_it_is_right(
    signature: str | None, timestamp: str | None, body: bytes
) -> None:
    with pytest.raises(RequestRefused) as refused:
        zendesk.verify(
            secrets=[b"the-secret"],
            signature_header=signature,
            timestamp_header=timestamp,
            body=body,
            now=NOW,
            max_age=timedelta(minutes=5),
        )
    assert refused.value.status == 401


# -- links and keys --------------------------------------------------------------------------

SIGNER = links.LinkSigner("fuzz-signing-secret-0123456789")


@FUZZ
@given(token=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.hex()))
def test_a_link_token_is_refused_unless_it_was_signed_here(token: str) -> None:
    with pytest.raises(links.LinkError):
        SIGNER.verify(token, NOW)


@FUZZ
@given(raw=st.text(max_size=300) | json_values.map(json.dumps))
def test_an_api_keys_setting_is_refused_with_a_value_error_only(raw: str) -> None:
    with contextlib.suppress(ValueError):
        ApiKeys.from_json(raw)
