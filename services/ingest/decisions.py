"""What the pure core of ingest decides for one request, and the body checks every route shares.

The core never touches the network: it takes the request body (already read, at most
``max_body_bytes``), ``now`` and the limits, and returns a :class:`Decision` — the Kafka messages
to publish and the items it refuses, each with its index, a machine code, a sentence and the
item's raw bytes (they go to the dead-letter topic). A problem with the whole request raises
:class:`RequestRefused` instead (400 / 413 / 415 / 422 …): then nothing is published.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import ParamSpec, TypeVar

import msgspec


class Message(msgspec.Struct, frozen=True, gc=False):
    """One Kafka message: where it goes, its key, its encoded value."""

    topic: str
    key: bytes
    value: bytes


class Refused(msgspec.Struct, frozen=True, gc=False):
    """An item the core refuses: which one, why, and its original bytes for the DLQ."""

    index: int
    code: str
    message: str
    raw: bytes
    key: bytes | None = None


@dataclass(slots=True)
class Decision:
    """A request's outcome: publish ``messages``; ``accepted`` items produced them (one item
    may produce more than one message); ``ignored`` items were understood and need nothing."""

    messages: list[Message] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    accepted: int = 0
    ignored: int = 0
    learned: dict[str, str] = field(default_factory=dict)  # user id → account (Segment group)


class ItemRefused(Exception):
    """One item is refused (``code``, message): the core reports it by index and goes on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class RequestRefused(Exception):
    """The whole request is refused; nothing of it is published."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


P = ParamSpec("P")
R = TypeVar("R")


def utf8_or_refused(decide: Callable[P, R]) -> Callable[P, R]:
    """A decoding core that refuses a body whose strings are not UTF-8 itself (400
    ``invalid_json``, as the HTTP layer would): msgspec raises ``UnicodeDecodeError`` for them,
    from the body or from any of its items."""

    @functools.wraps(decide)
    def refusing(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return decide(*args, **kwargs)
        except UnicodeDecodeError as exc:
            raise RequestRefused(
                400, "invalid_json", f"the body is not valid JSON: not UTF-8 ({exc.reason})"
            ) from None

    return refusing


@dataclass(frozen=True)
class Limits:
    """The explicit limits of a request (see docs/ingest.md for the table)."""

    max_body_bytes: int = 512 * 1024
    max_event_bytes: int = 32 * 1024
    max_events: int = 2500
    max_future: timedelta = timedelta(hours=24)


_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_raw_one = msgspec.json.Decoder(msgspec.Raw)
_WHITESPACE = b" \t\r\n"


def split_items(
    body: bytes, limits: Limits, *, what: str = "events", single: bool = False
) -> list[msgspec.Raw]:
    """The items of a body that is one JSON object or an array of them, undecoded.

    Scans the body once; each item stays raw bytes (its size is its byte length) until the
    caller decodes it. Raises :class:`RequestRefused` for invalid JSON (400), a body that is
    neither an object nor an array — or not an object when ``single`` — (422) and more than
    ``limits.max_events`` items (413).
    """
    start = body.lstrip(_WHITESPACE)[:1]
    try:
        if start == b"[" and not single:
            items = _raw_list.decode(body)
        elif start == b"{":
            items = [_raw_one.decode(body)]
        else:
            msgspec.json.decode(body)  # only to tell invalid JSON from the wrong shape
            shape = "a JSON object" if single else f"a JSON object or an array of {what}"
            raise RequestRefused(422, "invalid_body", f"the body must be {shape}")
    except (msgspec.DecodeError, RecursionError) as exc:
        raise RequestRefused(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    check_count(len(items), limits, what=what)
    return items


def check_count(count: int, limits: Limits, *, what: str = "events") -> None:
    if count > limits.max_events:
        raise RequestRefused(
            413,
            "too_many_events",
            f"{count} {what} in one request; at most {limits.max_events} are accepted",
        )


def too_large(raw: msgspec.Raw | bytes, limits: Limits) -> str | None:
    """Why an item is too large, or None."""
    size = len(raw)
    if size > limits.max_event_bytes:
        return f"the item is {size} bytes; at most {limits.max_event_bytes} are accepted"
    return None


def derived_id(raw: msgspec.Raw | bytes) -> str:
    """An event id for an item that has none: a digest of its bytes.

    The same request retried (after a 503, say) yields the same ids, so downstream dedup
    counts it once. Two byte-identical items in one request are one event.
    """
    return "h:" + hashlib.blake2b(raw, digest_size=16).hexdigest()
