"""Notifiers classify every answer: Slack through httpx.MockTransport, email through a fake
``send`` (the real SMTP path is in the integration tests)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
import pytest
from pydantic import SecretStr

from services.alerts.lifecycle import Alert, Notification
from services.alerts.links import LinkSigner
from services.alerts.messages import AccountView, Content, alert_payload
from services.alerts.notifiers import Delivered, Message, Permanent, Retry
from services.alerts.notifiers.email import EmailNotifier, SmtpServer, classify, compose
from services.alerts.notifiers.slack import SlackNotifier
from services.alerts.routing import WEBHOOK, Destination, Recipient, Route

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


def slack_with(handler: Any, **kwargs: Any) -> tuple[SlackNotifier, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        result: httpx.Response = handler(request)
        return result

    client = httpx.AsyncClient(transport=httpx.MockTransport(record))
    options: dict[str, Any] = {
        "api_url": "https://slack.test/api",
        "bot_token": SecretStr("xoxb-1"),
    }
    return SlackNotifier(client, **(options | kwargs)), seen


async def test_slack_posts_to_the_user_with_the_bot_token_and_returns_the_ts() -> None:
    notifier, seen = slack_with(lambda r: httpx.Response(200, json={"ok": True, "ts": "1.2"}))
    outcome = await notifier.send(message(Destination("slack", "U_MARIA")))
    assert outcome == Delivered("1.2")
    [request] = seen
    assert str(request.url) == "https://slack.test/api/chat.postMessage"
    assert request.headers["authorization"] == "Bearer xoxb-1"
    body = json.loads(request.content)
    assert body["channel"] == "U_MARIA"
    assert body["metadata"]["event_payload"]["key"] == "alert:acme:p_maria:score_dropped:1"


async def test_a_resolved_notice_replies_in_the_thread() -> None:
    notifier, seen = slack_with(lambda r: httpx.Response(200, json={"ok": True, "ts": "1.3"}))
    await notifier.send(message(Destination("slack", "U_MARIA"), "resolved", thread_ref="1.2"))
    assert json.loads(seen[0].content)["thread_ts"] == "1.2"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(429, headers={"Retry-After": "7"}), Retry("rate limited (429)", 7.0)),
        (
            httpx.Response(
                200, json={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "3"}
            ),
            Retry("rate limited", 3.0),
        ),
        (httpx.Response(500), Retry("Slack answered 500")),
        (httpx.Response(503, text="<html>"), Retry("Slack answered 503")),
        (
            httpx.Response(200, json={"ok": False, "error": "internal_error"}),
            Retry("Slack error internal_error"),
        ),
        (
            httpx.Response(200, json={"ok": False, "error": "channel_not_found"}),
            Permanent("Slack error channel_not_found"),
        ),
        (
            httpx.Response(200, json={"ok": False, "error": "invalid_auth"}),
            Permanent("Slack error invalid_auth"),
        ),
        (
            httpx.Response(200, json={"ok": False, "error": "is_archived"}),
            Permanent("Slack error is_archived"),
        ),
        (
            httpx.Response(200, json={"ok": False, "error": "not_in_channel"}),
            Permanent("Slack error not_in_channel"),
        ),
    ],
)
async def test_slack_answers_are_classified(response: httpx.Response, expected: object) -> None:
    notifier, _ = slack_with(lambda r: response)
    assert await notifier.send(message(Destination("slack", "U_MARIA"))) == expected


async def test_a_slack_timeout_or_connection_error_is_retried() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    for handler in (timeout, refused):
        notifier, _ = slack_with(handler)
        assert isinstance(await notifier.send(message(Destination("slack", "U_MARIA"))), Retry)


async def test_an_incoming_webhook_mentions_the_person_and_classifies_its_answers() -> None:
    notifier, seen = slack_with(
        lambda r: httpx.Response(200, text="ok"),
        bot_token=None,
        webhook_url=SecretStr("https://hooks.slack.test/services/T/B/X"),
    )
    outcome = await notifier.send(message(Destination("slack", WEBHOOK, mention="U_MARIA")))
    assert outcome == Delivered(None)
    assert json.loads(seen[0].content)["text"].startswith("<@U_MARIA>")
    for status, kind in ((404, Permanent), (410, Permanent), (429, Retry), (502, Retry)):
        hook, _ = slack_with(
            lambda r, s=status: httpx.Response(s, text="channel_not_found"),
            bot_token=None,
            webhook_url=SecretStr("https://hooks.slack.test/x"),
        )
        assert isinstance(await hook.send(message(Destination("slack", WEBHOOK))), kind)


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
