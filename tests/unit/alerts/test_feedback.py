"""Feedback and Slack interactivity, the pure parts: the status lines of an updated message,
the update rows, per-rule figures, the CS lead's digest section, reading Slack's request and
refusing forged or stale ones (with a fixed clock)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

import pytest
from fastapi.exceptions import RequestValidationError
from slack_sdk.signature import SignatureVerifier

from devstack.sinks import block_actions, signed_interaction
from services.alerts import digest, feedback, interactions, render
from services.alerts.lifecycle import Alert
from services.alerts.links import LinkSigner
from services.alerts.messages import Content, digest_payload, outbox_entry
from services.alerts.routing import Destination, Person, Recipient, Route
from services.alerts.store import FeedbackRow, RuleFeedback, SlackMessage
from shared.clock import FixedClock

NOW = datetime(2026, 11, 23, 9, 42, tzinfo=UTC)
MARIA = Person("p_maria", "Maria Lopez", slack_user_id="U_MARIA", time_zone="Europe/Madrid")
PEOPLE = {"p_maria": MARIA}
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def alert(state: str = "firing", rule: str = "band_worsened", id: int = 7, **kw: object) -> Alert:
    return Alert(
        id=id,
        account_id="acme",
        rule=rule,
        motion="adoption",
        severity="critical",
        state=state,  # type: ignore[arg-type]
        summary="fell into red",
        started_at=NOW,
        updated_at=NOW,
        route=Route((), ()),
        **kw,  # type: ignore[arg-type]
    )


def verdict(v: str, by: str = "p_maria", alert_id: int = 7) -> FeedbackRow:
    return FeedbackRow(alert_id, by, "acme", "band_worsened", v, "slack", NOW)


def test_an_acknowledged_alert_says_who_and_when_in_their_time_zone() -> None:
    acked = alert("acknowledged", acknowledged_at=NOW, acknowledged_by="slack:p_maria")
    lines, done = feedback.status([acked], [], PEOPLE)
    assert lines == ["✅ Acknowledged by Maria Lopez, 10:42"]  # 09:42 UTC in Madrid
    assert done == ["ack"]


def test_someone_unknown_is_a_slack_mention_and_an_api_key_its_name_in_utc() -> None:
    by_slack = alert("acknowledged", acknowledged_at=NOW, acknowledged_by="slack:U_X")
    by_api = alert("acknowledged", id=8, acknowledged_at=NOW, acknowledged_by="ops")
    lines, _ = feedback.status([by_slack], [], PEOPLE)
    assert lines == ["✅ Acknowledged by <@U_X>, 09:42 UTC"]
    lines, _ = feedback.status([by_api], [], PEOPLE)
    assert lines == ["✅ Acknowledged by ops, 09:42 UTC"]


def test_snoozed_resolved_and_feedback_lines_and_done_buttons() -> None:
    snoozed = alert(
        "snoozed",
        rule="no_activity",
        id=8,
        snoozed_until=NOW + timedelta(days=1),
        acknowledged_by="link:p_maria",
    )
    resolved = alert("resolved", resolved_by="p_maria")
    given = [verdict("useful"), verdict("known", by="api:ops"), verdict("useful", by="slack:U_X")]
    lines, done = feedback.status([resolved, snoozed], given, PEOPLE)
    assert lines == [
        "✔️ band worsened: Resolved by Maria Lopez",
        "💤 no activity: Snoozed by Maria Lopez until Tue 24 Nov 10:42",
        "Feedback: 👍 useful (Maria Lopez, <@U_X>) · 🤷 already known (ops)",
    ]
    assert done == []  # the snoozed alert can still be acknowledged
    _, done = feedback.status([resolved], [], PEOPLE)
    assert done == ["ack", "snooze_1d", "snooze_1w"]


def test_alerts_acknowledged_together_say_it_once_and_titles_name_them() -> None:
    one = alert("acknowledged", acknowledged_at=NOW, acknowledged_by="slack:p_maria")
    two = replace(one, id=8, rule="score_dropped")
    lines, done = feedback.status([one, two], [], PEOPLE)
    assert (lines, done) == (["✅ Acknowledged by Maria Lopez, 10:42"], ["ack"])
    lines, done = feedback.status([one, replace(two, state="firing")], [], PEOPLE, {7: "Red"})
    assert (lines, done) == (["✅ Red: Acknowledged by Maria Lopez, 10:42"], [])


def test_one_update_row_per_delivered_message_after_the_previous_update() -> None:
    message = SlackMessage(
        41, "D_MARIA", "1.000001", "U_MARIA", {"account": {"id": "acme"}, "alerts": [{"id": 7}]}
    )
    acked = alert("acknowledged", acknowledged_at=NOW, acknowledged_by="p_maria")
    [entry] = feedback.updates(
        [message], {7: acked}, [], PEOPLE, message_id_domain="x", now=NOW, real_now=NOW
    )
    assert (entry.kind, entry.channel, entry.address, entry.fallbacks) == (
        "update",
        "slack",
        "D_MARIA",
        [],
    )
    assert entry.payload["ts"] == "1.000001"
    assert entry.payload["status"] == ["✅ Acknowledged by Maria Lopez, 10:42"]
    assert entry.thread_key == "update|D_MARIA|1.000001"
    assert entry.key.startswith("update:41:")


def test_precision_counts_useful_and_known_usefulness_only_useful() -> None:
    figures = RuleFeedback("band_worsened", useful=3, not_useful=1, known=1)
    assert feedback.rule_json(figures) == {
        "rule": "band_worsened",
        "judged": 5,
        "useful": 3,
        "not_useful": 1,
        "known": 1,
        "precision": 0.8,
        "usefulness": 0.6,
    }
    assert RuleFeedback("quiet").precision is None


def test_a_cs_leads_digest_shows_how_each_rule_was_judged() -> None:
    content = Content(
        LinkSigner("a-signing-secret-long-enough"), "https://a", "", timedelta(1), "x"
    )
    built = digest.build("p_grace", "Grace", date(2026, 11, 23), [], [], now=NOW, silent_days=7)
    recipient = Recipient("Grace", "p_grace", email="grace@example.com")
    payload = digest_payload(built, recipient, content, NOW)
    entry = outbox_entry(
        "digest:p_grace:2026-11-23", "digest", None, [Destination("email", "g")], payload, "x", NOW
    )
    judged = [RuleFeedback("band_worsened", useful=1, not_useful=1), RuleFeedback("x", useful=1)]
    assert feedback.with_rules(entry, judged, set()) == entry  # not a lead
    assert feedback.with_rules(entry, [], {"p_grace"}) == entry  # nothing judged
    lead = feedback.with_rules(entry, judged, {"p_grace"})
    text, html = render.email_bodies(lead.payload)
    assert (
        "band_worsened: precision 50% of 2 judged (1 useful, 0 already known, 1 not useful)" in text
    )
    assert "precision 100% of 1 judged" in html


# -- Slack's request ---------------------------------------------------------------------------


def refusal(body: bytes, headers: dict[str, str], now: datetime) -> str | None:
    clock = FixedClock(now)
    found = interactions.refusal(interactions.verifier(SECRET, clock), clock, body, headers)
    return found[0] if found else None


def test_a_request_is_accepted_up_to_five_minutes_old_and_refused_after() -> None:
    payload = block_actions("D1", "1.1", "ack", "7", user_id="U_MARIA")
    stamp = int(NOW.timestamp())
    body, headers = signed_interaction(SECRET, payload, timestamp=stamp)
    assert refusal(body, headers, NOW) is None
    assert refusal(body, headers, NOW + timedelta(seconds=300)) is None
    assert refusal(body, headers, NOW + timedelta(seconds=301)) == "slack_request_stale"
    assert refusal(body, headers, NOW - timedelta(seconds=301)) == "slack_request_stale"


def test_a_forged_altered_or_unsigned_request_is_refused() -> None:
    payload = block_actions("D1", "1.1", "ack", "7", user_id="U_MARIA")
    stamp = int(NOW.timestamp())
    body, headers = signed_interaction("another-secret", payload, timestamp=stamp)
    assert refusal(body, headers, NOW) == "slack_signature_invalid"
    body, headers = signed_interaction(SECRET, payload, timestamp=stamp)
    assert refusal(body.replace(b"7", b"8"), headers, NOW) == "slack_signature_invalid"
    assert refusal(body, {}, NOW) == "slack_signature_invalid"
    assert refusal(body, headers | {"x-slack-request-timestamp": "soon"}, NOW) == (
        "slack_signature_invalid"
    )
    # the SDK's verifier agrees with what the sink signs
    assert (
        SignatureVerifier(SECRET).generate_signature(timestamp=str(stamp), body=body)
        == (headers["x-slack-signature"])
    )


def test_clicks_are_read_and_other_buttons_ignored() -> None:
    payload = block_actions("D1", "1.1", "feedback_known", "7,8,7", user_id="U_MARIA")
    payload["actions"].append({"action_id": "open_brief", "type": "button"})
    read = interactions.parse(urlencode({"payload": json.dumps(payload)}).encode())
    assert read.user_id == "U_MARIA"
    assert read.clicks == (interactions.Click("feedback_known", (7, 8)),)
    assert read.ignored == 1
    other = interactions.parse(urlencode({"payload": json.dumps({"type": "shortcut"})}).encode())
    assert other.clicks == ()


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"", "body.payload"),
        (b"payload=not-json", "body.payload"),
        (urlencode({"payload": "[1]"}).encode(), "body.payload"),
        (
            urlencode({"payload": json.dumps({"type": "block_actions"})}).encode(),
            "body.payload.user.id",
        ),
        (
            urlencode(
                {"payload": json.dumps(block_actions("D", "1", "ack", "x", user_id="U"))}
            ).encode(),
            "body.payload.actions.0.value",
        ),
        (
            urlencode(
                {
                    "payload": json.dumps(
                        block_actions("D", "1", "ack", ",".join(map(str, range(51))), user_id="U")
                    )
                }
            ).encode(),
            "body.payload.actions.0.value",
        ),
    ],
)
def test_a_malformed_request_names_the_field(body: bytes, where: str) -> None:
    with pytest.raises(RequestValidationError) as caught:
        interactions.parse(body)
    [item] = caught.value.errors()
    assert ".".join(str(p) for p in item["loc"]) == where


def test_fifty_alert_ids_are_the_most_a_button_carries() -> None:
    payload = block_actions("D", "1", "ack", ",".join(map(str, range(1, 51))), user_id="U")
    read = interactions.parse(urlencode({"payload": json.dumps(payload)}).encode())
    assert len(read.clicks[0].alert_ids) == interactions.MAX_ALERTS_PER_BUTTON == 50


def test_rows_skip_unsaved_alerts() -> None:
    unsaved = replace(alert(), id=None)
    rows = feedback.rows([alert(), unsaved], "useful", "p_maria", "api", NOW)
    assert [(r.alert_id, r.verdict, r.source) for r in rows] == [(7, "useful", "api")]
