"""Messages carry the decision: rule names in words, ARR, tier, renewal date and days left,
what moved the score with its evidence, severity in the email subject — in Slack (URL and
interactive buttons), email (text and HTML), the digest, and the brief page."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.alerts import briefs, digest, links, messages, render
from services.alerts.decide import AccountState, Health
from services.alerts.messages import AccountView, Content, Move
from services.alerts.routing import Person, Recipient, Team

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
SIGNER = links.LinkSigner("s" * 32)
CONTENT = Content(
    signer=SIGNER,
    public_url="https://alerts.example.com",
    brief_url_template="",
    link_ttl=timedelta(days=7),
    message_id_domain="test.invalid",
)
MOVES = (
    Move("activity", -20.0, ("weekly active users 12 → 4", "active days per week 5 → 2")),
    Move("support", -9.5, ("3 high/urgent tickets open: #4512, #4519, #4533",)),
    Move("recency", -4.0, ()),
)
VIEW = AccountView(
    account_id="acme",
    name="Acme Corp",
    score=38.0,
    band="red",
    before_score=71.0,
    before_band="green",
    as_of=NOW,
    reasons=("weekly active users down 62% vs the 4-week baseline",),
    moved_by=MOVES,
    tier="enterprise",
    arr=120_000.0,
    renewal_date=date(2027, 1, 15),
)
LINKS = {
    "brief": "https://alerts.example.com/brief/b",
    "view": "https://alerts.example.com/links/v",
    "ack": "https://alerts.example.com/links/a",
    "snooze_1d": "https://alerts.example.com/links/s1",
    "snooze_1w": "https://alerts.example.com/links/s7",
    "feedback_useful": "https://alerts.example.com/links/fu",
    "feedback_not_useful": "https://alerts.example.com/links/fn",
    "feedback_known": "https://alerts.example.com/links/fk",
}


def payload(kind: str = "alert", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": kind,
        "account": messages.account_json(VIEW, NOW),
        "owner": {"name": "Maria Lopez", "person_id": "p_maria"},
        "severity": "critical",
        "health": {"score": 38.0, "band": "red", "before_score": 71.0, "before_band": "green"},
        "reasons": list(VIEW.reasons),
        "moved_by": messages.moves_json(MOVES),
        "alerts": [
            {
                "id": 41,
                "rule": "renewal_at_risk",
                "title": messages.rule_title("renewal_at_risk"),
                "severity": "critical",
                "summary": "renews in 43 days while red",
            },
            {"id": 42, "rule": "band_worsened", "severity": "critical", "summary": "green → red"},
        ],
        "route_path": ["CSM → p_maria (Maria Lopez)"],
        "escalation_path": [],
        "links": dict(LINKS),
    }
    return base | over


FACTS = [
    "Renewal at risk",
    "Health fell into a worse band",  # no title in the payload: from the rule's name
    "$120k",
    "enterprise",
    "2027-01-15 (in 43 days)",
    "71 (green) → 38 (red)",
    "Activity −20.0 points: weekly active users 12 → 4; active days per week 5 → 2",
    "Support tickets −9.5 points: 3 high/urgent tickets open: #4512, #4519, #4533",
    "Recent use −4.0 points",
    "Maria Lopez",
]


def slack_text(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


def test_the_payload_carries_the_record_facts_titles_and_attribution() -> None:
    account = messages.account_json(VIEW, NOW)
    assert account == {
        "id": "acme",
        "name": "Acme Corp",
        "tier": "enterprise",
        "arr": 120_000.0,
        "renewal_date": "2027-01-15",
        "days_to_renewal": 43,
    }
    moves = messages.moves_json(MOVES)
    assert [m["label"] for m in moves] == ["Activity", "Support tickets", "Recent use"]
    assert moves[1]["evidence"] == ["3 high/urgent tickets open: #4512, #4519, #4533"]
    assert len(messages.moves_json(MOVES * 3)) == messages.MAX_MOVES
    assert messages.rule_title("no_activity") == "No product activity"
    assert messages.rule_title("my_custom_rule") == "My custom rule"


@pytest.mark.parametrize("interactive", [False, True])
def test_slack_shows_every_fact_in_words(interactive: bool) -> None:
    message = render.slack_message(payload(), interactive=interactive)
    text = slack_text(message)
    for fact in FACTS:
        assert fact in text, fact
    assert "renewal_at_risk" not in text
    assert "band_worsened" not in text
    assert "Renewal at risk" in message["text"]
    assert "$120k" in message["text"]


def test_webhook_buttons_open_signed_links() -> None:
    message = render.slack_message(payload())
    buttons = {
        e["action_id"]: e
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    }
    assert {k: b["url"] for k, b in buttons.items()} == {
        "ack": LINKS["ack"],
        "snooze_1d": LINKS["snooze_1d"],
        "snooze_1w": LINKS["snooze_1w"],
        "open_brief": LINKS["brief"],
        "feedback_useful": LINKS["feedback_useful"],
        "feedback_not_useful": LINKS["feedback_not_useful"],
        "feedback_known": LINKS["feedback_known"],
    }
    assert not any("value" in b for b in buttons.values())


def test_interactive_buttons_carry_the_action_and_the_alert_ids() -> None:
    message = render.slack_message(payload(), interactive=True)
    blocks = {b["block_id"]: b for b in message["blocks"] if b["type"] == "actions"}
    assert list(blocks) == ["actions", "feedback"]
    actions = blocks["actions"]["elements"]
    assert [(e["action_id"], e.get("value")) for e in actions] == [
        ("ack", "41,42"),
        ("snooze_1d", "41,42"),
        ("snooze_1w", "41,42"),
        ("open_brief", None),
    ]
    assert [e for e in actions if "url" in e] == [actions[-1]]  # only the brief is a URL
    assert actions[-1]["url"] == LINKS["brief"]
    feedback = blocks["feedback"]["elements"]
    assert [(e["action_id"], e["value"]) for e in feedback] == [
        ("feedback_useful", "41,42"),
        ("feedback_not_useful", "41,42"),
        ("feedback_known", "41,42"),
    ]
    assert all("url" not in e for e in feedback)


def test_a_resolved_notice_has_no_acknowledge_and_no_attribution() -> None:
    links_ = {k: v for k, v in LINKS.items() if not k.startswith(("ack", "snooze"))}
    message = render.slack_message(payload("resolved", links=links_), interactive=True)
    ids = [
        e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert "ack" not in ids
    assert "open_brief" in ids
    assert "What moved the score" not in slack_text(message)


@pytest.mark.parametrize(
    ("kind", "severity", "subject"),
    [
        ("alert", "critical", "[churnwatch] Critical: Acme Corp — Renewal at risk and 1 more"),
        ("alert", "warning", "[churnwatch] Warning: Acme Corp — Renewal at risk and 1 more"),
        (
            "escalation",
            "critical",
            "[churnwatch] Critical, escalated: Acme Corp — Renewal at risk and 1 more",
        ),
        ("resolved", "critical", "[churnwatch] Resolved: Acme Corp — Renewal at risk and 1 more"),
    ],
)
def test_the_email_subject_names_the_severity(kind: str, severity: str, subject: str) -> None:
    assert render.email_subject(payload(kind, severity=severity)) == subject


def test_email_text_and_html_show_every_fact_and_link() -> None:
    text, html = render.email_bodies(payload())
    for fact in FACTS:
        assert fact in text, fact
        assert fact in html, fact
    for url in LINKS.values():
        if url != LINKS["view"]:
            assert url in text
            assert f'href="{url}"' in html


def test_a_payload_written_before_the_facts_existed_still_renders() -> None:
    old = payload()
    old["account"] = {"id": "acme", "name": "Acme Corp"}
    del old["moved_by"]
    for a in old["alerts"]:
        a.pop("title", None)
    for k in ("feedback_useful", "feedback_not_useful", "feedback_known"):
        del old["links"][k]
    text, html = render.email_bodies(old)
    assert "ARR:     unknown" in text
    assert "Renewal: unknown" in text
    assert "Renewal at risk" in html
    assert "Was this alert useful" not in text
    assert "unknown" in slack_text(render.slack_message(old))


def test_html_escapes_what_it_shows() -> None:
    hostile = payload()
    hostile["account"] = {**hostile["account"], "name": "<script>x</script>"}
    _, html = render.email_bodies(hostile)
    assert "<script>x" not in html
    assert "&lt;script&gt;x" in html


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (None, None),
        (950, "$950"),
        (1000, "$1k"),
        (12_500, "$12k"),
        (9_950, "$9.9k"),
        (120_000, "$120k"),
        (1_000_000, "$1M"),
        (2_350_000, "$2.4M"),
    ],
)
def test_arr_is_written_short(amount: float | None, shown: str | None) -> None:
    assert render.money(amount) == shown


@pytest.mark.parametrize(
    ("left", "shown"),
    [
        (0, "2027-01-15 (today)"),
        (1, "2027-01-15 (in 1 day)"),
        (-1, "2027-01-15 (1 day ago)"),
        (-30, "2027-01-15 (30 days ago)"),
        (None, "2027-01-15"),
    ],
)
def test_the_renewal_says_how_many_days_are_left(left: int | None, shown: str) -> None:
    assert render.renewal_line({"renewal_date": "2027-01-15", "days_to_renewal": left}) == shown
    assert render.renewal_line({}) is None


def test_the_digest_carries_titles_facts_attribution_and_signed_brief_links() -> None:
    line = digest.AccountLine(
        account_id="acme",
        name="Acme Corp",
        score=38.0,
        band="red",
        as_of=NOW,
        score_week_ago=71.0,
        reasons=("weekly active users down 62% vs the 4-week baseline",),
        tier="enterprise",
        arr=120_000.0,
        renewal_date=date(2027, 1, 15),
        moved_by=tuple(m.to_json() for m in MOVES),
    )
    held = digest.HeldAlert(41, "acme", "Acme Corp", "ticket_surge", "warning", "3 opened", True)
    built = digest.build("p_maria", "Maria", NOW.date(), [line], [held], now=NOW, silent_days=7)
    p = messages.digest_payload(built, Recipient("p_maria", "Maria"), CONTENT, NOW)
    text, html = render.email_bodies(p)
    for body in (text, html):
        assert "Surge of urgent support tickets" in body
        assert "ARR $120k" in body
        assert "enterprise" in body
        assert "renews 2027-01-15 (in 43 days)" in body
        assert "Activity −20.0 points: weekly active users 12 → 4" in body
    [red] = p["red"]
    assert red["brief"].startswith("https://alerts.example.com/brief/")
    token = red["brief"].rsplit("/", 1)[1]
    link = SIGNER.verify(token, NOW)
    assert (link.action, link.account_id, link.person) == ("brief", "acme", "p_maria")
    slack = slack_text(render.slack_message(p))
    assert "Surge of urgent support tickets" in slack
    assert f"<{red['brief']}|Open brief>" in slack  # links as Slack links, not raw URLs


def test_a_rollout_notice_renders_its_lines() -> None:
    p = {
        "kind": "rollout",
        "title": "Model 2026.12 rolled out",
        "lines": ["12 accounts", "3 worse"],
    }
    assert render.email_subject(p) == "[churnwatch] Model 2026.12 rolled out"
    text, html = render.email_bodies(p)
    assert "- 3 worse" in text
    assert "<li>12 accounts</li>" in html
    message = render.slack_message(p)
    assert message["blocks"][0]["text"]["text"] == "Model 2026.12 rolled out"
    assert "12 accounts\n3 worse" in slack_text(message).replace("\\n", "\n")


def test_the_brief_link_is_signed_for_the_person_and_expires_with_the_others() -> None:
    url = CONTENT.brief_url("acme corp/1", "p_maria", NOW)
    link = SIGNER.verify(url.rsplit("/", 1)[1], NOW)
    assert (link.action, link.account_id, link.alert_ids) == ("brief", "acme corp/1", ())
    assert link.expires_at == NOW + timedelta(days=7)
    with pytest.raises(links.LinkError, match="expired"):
        SIGNER.verify(url.rsplit("/", 1)[1], NOW + timedelta(days=7))
    console = dataclasses.replace(CONTENT, brief_url_template="https://console/a/{account_id}")
    assert console.brief_url("acme corp/1", None, NOW) == "https://console/a/acme%20corp%2F1"


def test_the_brief_page_shows_score_facts_attribution_and_alerts() -> None:
    health = Health(
        as_of=NOW,
        score=38.0,
        band="red",
        before_score=71.0,
        before_band="green",
        reasons=("weekly active users down 62% vs the 4-week baseline",),
        moved_by=MOVES,
    )
    state = AccountState(
        account_id="acme",
        name="Acme Corp",
        team=Team(csm="p_maria", account_executive=None, renewal_owner="p_gone"),
        renewal_date=date(2027, 1, 15),
        tier="enterprise",
        arr=120_000.0,
        health=health,
        people={"p_maria": Person("p_maria", "Maria Lopez")},
    )
    link = links.Link("brief", "acme", (), "p_maria", NOW + timedelta(days=7))
    html = render.page("brief.html.j2", refused=False, **briefs.context(state, link, NOW))
    for fact in [
        "Acme Corp",
        "38",
        "(was 71, green)",
        "$120k",
        "enterprise",
        "2027-01-15 (in 43 days)",
        "Maria Lopez",
        "p_gone",  # an owner the service has no record of: by id
        "Activity −20.0 points: weekly active users 12 → 4",
        "weekly active users down 62% vs the 4-week baseline",
        "expires 2026-12-10 09:00 UTC",
    ]:
        assert fact in html, fact
    assert "<h3>Open alerts</h3>\n<p>None.</p>" in html
