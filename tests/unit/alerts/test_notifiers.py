"""Notifiers classify every answer: Slack's as slack_sdk reports them, email's through a fake
``send`` (the real HTTP and SMTP paths, against the sinks, are in the integration tests:
``tests/integration/alerts/test_slack.py``, ``test_delivery.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import aiohttp
import aiosmtplib
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from services.alerts.lifecycle import Alert, Notification
from services.alerts.links import LinkSigner
from services.alerts.messages import AccountView, Content, alert_payload
from services.alerts.notifiers import Delivered, Message, Permanent, Retry
from services.alerts.notifiers.email import EmailNotifier, classify, compose
from services.alerts.notifiers.slack import (
    SlackNotifier,
    api_failure,
    retry_after,
    transport_failure,
    with_status,
)
from services.alerts.routing import WEBHOOK, Destination, Recipient, Route
from shared.mail import SmtpServer

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
MARIA = Recipient("Maria", "p_maria", slack="U_MARIA", email="maria@example.com")
CONTENT = Content(
    signer=LinkSigner("a-signing-secret-long-enough"),
    public_url="https://alerts.example.com",
    brief_url_template="https://scoring.example.com/v1/accounts/{account_id}/brief",
    link_ttl=timedelta(days=7),
    message_id_domain="example.com",
)


def payload(kind: str = "alert", summary: str = "score dropped 24 points") -> dict[str, Any]:
    alert = Alert(
        id=7,
        account_id="acme",
        rule="score_dropped",
        motion="adoption",
        severity="critical",
        state="firing",
        summary=summary,
        started_at=NOW,
        updated_at=NOW,
        route=Route((MARIA,), ("CSM → p_maria (Maria)",)),
    )
    notification = Notification(kind, "acme", MARIA, (7,), ("score_dropped",), "critical", NOW)  # type: ignore[arg-type]
    view = AccountView(
        "acme", "Acme Corporation", 48, "yellow", 71.5, "green", NOW, ("usage down 62%",)
    )
    return alert_payload(notification, view, [alert], CONTENT, NOW)


def message(
    destination: Destination, kind: str = "alert", thread_ref: str | None = None
) -> Message:
    return Message(
        key="alert:acme:p_maria:score_dropped:1",
        kind=kind,
        destination=destination,
        payload=payload(kind),
        message_id="<abc@example.com>",
        thread_root="<account.1@example.com>",
        thread_ref=thread_ref,
    )


def refused(status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    """The error slack_sdk raises for an answer that is not ``ok``."""
    response = AsyncSlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.test/api/chat.postMessage",
        req_args={},
        data=data,
        headers=headers or {},
        status_code=status,
    )
    return SlackApiError("refused", response)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (refused(429, {"ok": False}, {"Retry-After": "7"}), Retry("rate limited (429)", 7.0)),
        (
            refused(200, {"ok": False, "error": "ratelimited"}, {"retry-after": "3"}),
            Retry("rate limited", 3.0),
        ),
        (refused(500, {}), Retry("Slack answered 500")),
        (refused(503, {}), Retry("Slack answered 503")),
        (refused(400, {}), Retry("Slack answered 400 without a JSON error")),
        (
            refused(200, {"ok": False, "error": "internal_error"}),
            Retry("Slack error internal_error"),
        ),
        (
            refused(200, {"ok": False, "error": "channel_not_found"}),
            Permanent("Slack error channel_not_found"),
        ),
        (
            refused(200, {"ok": False, "error": "invalid_auth"}),
            Permanent("Slack error invalid_auth"),
        ),
        (refused(200, {"ok": False, "error": "is_archived"}), Permanent("Slack error is_archived")),
        (
            refused(200, {"ok": False, "error": "not_in_channel"}),
            Permanent("Slack error not_in_channel"),
        ),
        (
            refused(200, {"ok": False, "error": "message_not_found"}),
            Permanent("Slack error message_not_found"),
        ),
        (refused(200, {"ok": False, "error": "brand_new"}), Permanent("Slack error brand_new")),
    ],
)
def test_slack_sdk_refusals_map_onto_the_outbox_outcomes(error: Any, expected: object) -> None:
    assert api_failure(error) == expected


def test_retry_after_reads_seconds_or_an_http_date_and_defaults_to_one_second() -> None:
    assert retry_after({"Retry-After": "12"}) == 12.0
    assert retry_after({"retry-after": "-3"}) == 0.0
    assert retry_after({}) == 1.0
    assert retry_after({"Retry-After": "soon"}) == 1.0
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TimeoutError(), Retry("timeout: TimeoutError")),
        (aiohttp.ServerTimeoutError("slow"), Retry("timeout: ServerTimeoutError")),
        (aiohttp.ServerDisconnectedError(), Retry("connection error: ServerDisconnectedError")),
        (ValueError("a bug"), None),
    ],
)
def test_timeouts_and_broken_connections_are_retried(
    error: BaseException, expected: Retry | None
) -> None:
    assert transport_failure(error, detail=False) == expected


def test_an_update_shows_its_status_under_the_header_and_drops_the_done_buttons() -> None:
    body = {
        "text": "Acme: band worsened",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Acme"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "why"}},
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "action_id": "ack", "value": "7"},
                    {"type": "button", "action_id": "snooze_1d", "value": "7"},
                ],
            },
            {"type": "actions", "elements": [{"type": "button", "action_id": "ack", "value": "7"}]},
        ],
    }
    updated = with_status(body, ["✅ Acknowledged by Maria Lopez, 10:42"], ["ack"])
    blocks = updated["blocks"]
    assert [b["type"] for b in blocks] == ["header", "context", "section", "actions"]
    assert blocks[1]["elements"][0]["text"] == "✅ Acknowledged by Maria Lopez, 10:42"
    assert [e["action_id"] for e in blocks[3]["elements"]] == ["snooze_1d"]
    assert updated["text"].startswith("✅ Acknowledged by Maria Lopez, 10:42 — Acme")
    assert with_status(body, [], [])["blocks"] == body["blocks"]


async def test_without_a_token_or_webhook_a_message_cannot_go() -> None:
    none = SlackNotifier(None)
    assert isinstance(await none.send(message(Destination("slack", "U_MARIA"))), Permanent)
    assert isinstance(await none.send(message(Destination("slack", WEBHOOK))), Permanent)


# -- email ---------------------------------------------------------------------------------------


def test_an_email_has_html_and_text_its_message_id_and_threads_per_account() -> None:
    mail = compose(
        message(Destination("email", "maria@example.com"), thread_ref="<prev@example.com>"),
        "cw <a@example.com>",
    )
    assert mail["Message-ID"] == "<abc@example.com>"
    assert mail["Subject"] == "[churnwatch] Critical: Acme Corporation — Health score dropped"
    assert mail["In-Reply-To"] == "<prev@example.com>"
    assert mail["References"] == "<account.1@example.com> <prev@example.com>"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "72 (green) → 48 (yellow)" in text.get_content()
    assert "usage down 62%" in html.get_content()
    assert "https://alerts.example.com/links/" in html.get_content()


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (aiosmtplib.SMTPResponseException(451, "try later"), Retry),
        (aiosmtplib.SMTPDataError(452, "full"), Retry),
        (aiosmtplib.SMTPResponseException(550, "no such user"), Permanent),
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "no", "x@y")]),
            Permanent,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(450, "busy", "x@y")]),
            Retry,
        ),
        (aiosmtplib.SMTPConnectError("refused"), Retry),
        (aiosmtplib.SMTPServerDisconnected("gone"), Retry),
        (aiosmtplib.SMTPTimeoutError("slow"), Retry),
    ],
)
def test_smtp_failures_are_classified(error: Exception, kind: type) -> None:
    assert isinstance(classify(error), kind)


async def test_the_email_notifier_sends_the_same_message_id_on_every_attempt() -> None:
    sent: list[EmailMessage] = []
    answers: list[Exception | None] = [aiosmtplib.SMTPResponseException(451, "later"), None]

    async def fake_send(mail: EmailMessage, **options: Any) -> None:
        sent.append(mail)
        assert options["start_tls"] is True
        error = answers.pop(0)
        if error:
            raise error

    notifier = EmailNotifier(
        SmtpServer(host="smtp.test"), sender="cw <a@example.com>", send=fake_send
    )
    one = message(Destination("email", "maria@example.com"))
    assert isinstance(await notifier.send(one), Retry)
    assert await notifier.send(one) == Delivered("<abc@example.com>")
    assert [m["Message-ID"] for m in sent] == ["<abc@example.com>", "<abc@example.com>"]
