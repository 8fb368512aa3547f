"""Signed, expiring one-click links."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from services.alerts.links import Link, LinkError, LinkSigner

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
LINK = Link("ack", "acme", (1, 2), "p_maria", NOW + timedelta(days=7))
SIGNER = LinkSigner("a-signing-secret-long-enough")


def test_a_signed_link_verifies_to_what_was_signed() -> None:
    assert SIGNER.verify(SIGNER.sign(LINK), NOW) == LINK


def test_an_expired_link_is_refused() -> None:
    token = SIGNER.sign(LINK)
    with pytest.raises(LinkError) as caught:
        SIGNER.verify(token, NOW + timedelta(days=7))
    assert caught.value.code == "link_expired"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature altered
        lambda t: LinkSigner("another-secret-entirely").sign(LINK),  # signed by someone else
        lambda t: "x" + t,  # payload altered
        lambda t: t.replace(".", ""),
        lambda t: "",
        lambda t: "!!!.???",
    ],
)
def test_a_forged_or_altered_link_is_refused(tamper: object) -> None:
    token = tamper(SIGNER.sign(LINK))  # type: ignore[operator]
    with pytest.raises(LinkError) as caught:
        SIGNER.verify(token, NOW)
    assert caught.value.code == "link_invalid"


def respell_last_character(token: str) -> str:
    """The same bytes, spelled differently: a base64 last character carries unused bits."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    return token[:-1] + alphabet[last ^ 1]  # 32 bytes in 43 characters: 2 unused bits


@pytest.mark.parametrize(
    "respell",
    [respell_last_character, lambda t: t + "=", lambda t: t + "==", lambda t: t[:5] + "*" + t[5:]],
    ids=["unused bits", "padding", "more padding", "a stray character"],
)
def test_the_same_link_spelled_differently_is_refused(respell: Callable[[str], str]) -> None:
    """A link is used up by its token: another spelling of it must not act a second time
    (found by issue 9's hostile inputs)."""
    token = SIGNER.sign(LINK)
    other = respell(token)
    assert other != token
    with pytest.raises(LinkError) as caught:
        SIGNER.verify(other, NOW)
    assert caught.value.code == "link_invalid"


def test_links_signed_with_a_previous_secret_keep_working_during_rotation() -> None:
    old = LinkSigner("the-old-secret-0123456789")
    rotated = LinkSigner("the-new-secret-0123456789", previous=["the-old-secret-0123456789"])
    assert rotated.verify(old.sign(LINK), NOW) == LINK
    assert rotated.sign(LINK) != old.sign(LINK)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16"):
        LinkSigner("short")
