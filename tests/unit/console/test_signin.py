"""Sign-in links, sessions and CSRF tokens: signed, expiring at the edge, never an open
redirect."""

from __future__ import annotations

import pytest

from services.console import signin
from services.console.settings import ConsoleSettings
from services.console.signin import LinkExpired, LinkInvalid, Tokens, csrf_ok, safe_next


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def tokens(clock: Clock, secret: str = "key-1") -> Tokens:  # noqa: S107 (a test key)
    return Tokens(secret, sign_in_ttl=900, session_ttl=3600, now=clock)


def test_a_link_works_until_its_ttl_and_not_one_second_after() -> None:
    clock = Clock()
    t = tokens(clock)
    token = t.sign_in("Maria@Example.com", "/accounts/acme")
    clock.t += 900
    link = t.read_sign_in(token)
    assert (link.email, link.next) == ("maria@example.com", "/accounts/acme")
    assert link.expires_at.timestamp() == pytest.approx(1_800_000_900)
    assert len(link.digest) == 64
    clock.t += 1
    with pytest.raises(LinkExpired):
        t.read_sign_in(token)


def test_a_link_signed_with_another_key_or_altered_is_invalid() -> None:
    clock = Clock()
    token = tokens(clock, "other").sign_in("maria@example.com")
    with pytest.raises(LinkInvalid):
        tokens(clock).read_sign_in(token)
    good = tokens(clock).sign_in("maria@example.com")
    with pytest.raises(LinkInvalid):
        # a changed payload character (the signature's last one may only carry padding bits)
        tokens(clock).read_sign_in(("A" if good[0] != "A" else "B") + good[1:])
    session = tokens(clock).session("maria@example.com", "p_maria", "Maria")
    with pytest.raises(LinkInvalid):  # a session cookie is not a sign-in link (salts differ)
        tokens(clock).read_sign_in(session)


def test_two_links_for_one_person_differ_so_each_is_used_once() -> None:
    t = tokens(Clock())
    first, second = t.sign_in("maria@example.com"), t.sign_in("maria@example.com")
    assert t.read_sign_in(first).digest != t.read_sign_in(second).digest


def test_a_session_expires_and_carries_its_csrf_token() -> None:
    clock = Clock()
    t = tokens(clock)
    cookie = t.session("maria@example.com", "p_maria", "Maria")
    session = t.read_session(cookie)
    assert session is not None
    assert (session.person_id, session.name) == ("p_maria", "Maria")
    assert csrf_ok(session.csrf, session.csrf)
    assert not csrf_ok(session.csrf, session.csrf[:-1])
    assert not csrf_ok(session.csrf, None)
    assert not csrf_ok("", "")
    assert not csrf_ok(session.csrf, "é" * 32)  # not ASCII: refused, not a TypeError
    clock.t += 3601
    assert t.read_session(cookie) is None
    assert t.read_session("garbage") is None
    assert t.read_session(None) is None


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/accounts/acme?x=1", "/accounts/acme?x=1"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/a\nb", "/"),
        ("", "/"),
        (None, "/"),
        ("/" + "a" * 500, "/"),
    ],
)
def test_next_is_a_local_path_only(given: str | None, kept: str) -> None:
    assert safe_next(given) == kept


def test_the_demo_link_needs_the_consoles_key(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ConsoleSettings(local_dev=True, public_url="http://127.0.0.1:8004")
    with pytest.raises(ValueError, match="CONSOLE_SECRET_KEY"):
        signin.sign_in_link(settings, "maria@example.com")
    keyed = ConsoleSettings(local_dev=True, public_url="http://127.0.0.1:8004", secret_key="k" * 32)
    link = signin.sign_in_link(keyed, "maria@example.com", "/alerts")
    assert link.startswith("http://127.0.0.1:8004/sign-in/")
    token = link.rsplit("/", 1)[1]
    assert Tokens("k" * 32, sign_in_ttl=900, session_ttl=60).read_sign_in(token).next == "/alerts"


def test_settings_refuse_plain_http_outside_local_dev_and_bad_networks() -> None:
    with pytest.raises(ValueError, match="https"):
        ConsoleSettings(public_url="http://console.example")
    with pytest.raises(ValueError, match="CIDR"):
        ConsoleSettings(local_dev=True, trusted_proxies="10.0.0.0/8,nonsense")
    ok = ConsoleSettings(
        public_url="https://console.example", trusted_proxies="10.0.0.0/8", admins="A@x.io, b@x.io"
    )
    assert ok.admin_emails() == {"a@x.io", "b@x.io"}
    assert len(ok.proxy_networks()) == 1
