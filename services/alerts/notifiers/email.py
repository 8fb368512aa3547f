"""Email through SMTP (aiosmtplib): HTML and plain text from templates, one Message-ID per
notification kept across retries, threaded per account (``In-Reply-To`` / ``References``).

4xx replies, timeouts and connection errors → :class:`Retry`; 5xx replies → :class:`Permanent`
(the worker falls back at once).
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from services.alerts import render
from services.alerts.notifiers import Delivered, Message, Outcome, Permanent, Retry
from shared import mail
from shared.mail import SendMail, SmtpServer


def compose(message: Message, sender: str) -> EmailMessage:
    """The email for one outbox row (pure)."""
    payload = message.payload
    text, html = render.email_bodies(payload)
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = message.destination.address
    mail["Subject"] = render.email_subject(payload)
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = message.message_id
    mail["X-Churnwatch-Key"] = message.key
    if message.thread_root:
        parent = message.thread_ref or message.thread_root
        mail["In-Reply-To"] = parent
        references = [message.thread_root]
        if message.thread_ref and message.thread_ref != message.thread_root:
            references.append(message.thread_ref)
        mail["References"] = " ".join(references)
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(text)
    mail.add_alternative(html, subtype="html")
    return mail


def classify(exc: BaseException) -> Outcome:
    """What an SMTP failure means for the next attempt."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        if codes and all(400 <= c < 500 for c in codes):
            return Retry(f"recipient refused temporarily ({codes[0]})")
        return Permanent(f"recipient refused ({codes[0] if codes else '?'})")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        reply = f"{exc.code} {exc.message}"[:200]
        if 400 <= exc.code < 500:
            return Retry(f"SMTP {reply}")
        if 500 <= exc.code < 600:
            return Permanent(f"SMTP {reply}")
        return Retry(f"SMTP {reply}")
    if isinstance(exc, (aiosmtplib.SMTPException, OSError, TimeoutError)):
        return Retry(f"SMTP connection problem: {type(exc).__name__}: {exc}"[:200])
    raise exc


class EmailNotifier:
    def __init__(
        self, server: SmtpServer, *, sender: str, send: SendMail = aiosmtplib.send
    ) -> None:
        self._server = server
        self._sender = sender
        self._send = send

    async def send(self, message: Message) -> Outcome:
        try:
            await mail.send(self._server, compose(message, self._sender), send_mail=self._send)
        except Exception as exc:
            return classify(exc)
        return Delivered(message.message_id)
