"""Slack through the official SDK: ``chat.postMessage`` / ``chat.update`` with a bot token
(:class:`slack_sdk.web.async_client.AsyncWebClient`: DMs to a user id, or a channel id), or an
incoming webhook (:class:`slack_sdk.webhook.async_client.AsyncWebhookClient`: one fixed
channel).

The outbox owns retries, so both clients are built with no SDK retry handler, and every answer
is mapped onto the delivery outcomes: HTTP 429 (or ``ratelimited``) → :class:`Retry` after
``Retry-After``; 5xx, timeouts and connection errors → :class:`Retry`; a known permanent error
(``channel_not_found``, ``invalid_auth``, ``is_archived``, ``not_in_channel``…) or any other
refusal → :class:`Permanent`, so the worker falls back to email at once.

An ``update`` row (see :mod:`services.alerts.interactions`) rewrites a delivered message in
place with ``chat.update``: the stored alert payload rendered again, with status lines ("✅
Acknowledged by Maria Lopez, 10:42") under its header and the buttons of done actions removed.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from services.alerts import render
from services.alerts.feedback import UPDATE
from services.alerts.notifiers import Delivered, Message, Outcome, Permanent, Retry
from services.alerts.routing import WEBHOOK

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "invalid_auth",
        "not_authed",
        "is_archived",
        "channel_is_archived",
        "not_in_channel",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "user_not_found",
        "user_disabled",
        "cannot_dm_bot",
        "restricted_action",
        "invalid_blocks",
        "msg_too_long",
        "no_text",
        "invalid_payload",
        "action_prohibited",
        "no_service",
        "no_active_hooks",
        "team_disabled",
        "message_not_found",  # chat.update: the message was deleted
        "cant_update_message",
        "edit_window_closed",
    }
)
DEFAULT_RETRY_AFTER_SECONDS = 1.0


def retry_after(headers: Mapping[str, str]) -> float:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    raw = str(headers.get("retry-after") or headers.get("Retry-After") or "").strip()
    if not raw:
        return DEFAULT_RETRY_AFTER_SECONDS
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_SECONDS
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def transport_failure(exc: BaseException, *, detail: bool) -> Retry | None:
    """A timeout or a broken connection is a :class:`Retry` (``detail``: name the error too; a
    webhook URL carries its secret, the API URL does not); anything else is not ours."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return Retry(f"timeout: {type(exc).__name__}")
    if isinstance(exc, aiohttp.ClientError):
        return Retry(f"connection error: {type(exc).__name__}" + (f": {exc}" if detail else ""))
    return None


def api_failure(error: SlackApiError) -> Outcome:
    """Map a refused Web API call onto an outcome."""
    response = error.response
    status = int(getattr(response, "status_code", None) or getattr(response, "status", 0) or 0)
    headers: Mapping[str, str] = getattr(response, "headers", None) or {}
    data = getattr(response, "data", None)
    code = str(data.get("error") or "") if isinstance(data, dict) else ""
    if status == 429:
        return Retry("rate limited (429)", retry_after(headers))
    if status >= 500:
        return Retry(f"Slack answered {status}")
    if not code:
        return Retry(f"Slack answered {status} without a JSON error")
    if code == "ratelimited":
        return Retry("rate limited", retry_after(headers))
    if code in TRANSIENT_ERRORS:
        return Retry(f"Slack error {code}")
    if code not in PERMANENT_ERRORS:
        log.warning("unknown Slack error; not retrying", extra={"slack_error": code})
    return Permanent(f"Slack error {code}")


def with_status(body: dict[str, Any], status: Sequence[str], done: Sequence[str]) -> dict[str, Any]:
    """``body`` (a rendered message) with ``status`` lines as a context block under its header
    and the buttons whose ``action_id`` is in ``done`` removed (an emptied actions block goes)."""
    blocks: list[dict[str, Any]] = []
    for block in body.get("blocks", []):
        if block.get("type") == "actions":
            kept = [e for e in block.get("elements", []) if e.get("action_id") not in done]
            if not kept:
                continue
            block = {**block, "elements": kept}
        blocks.append(block)
    if status:
        at = 1 if blocks and blocks[0].get("type") == "header" else 0
        lines = "\n".join(status)
        context = {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": render.fit(lines, render.SECTION_LIMIT)}],
        }
        blocks.insert(at, context)
    text = " · ".join(status) + " — " + str(body.get("text", "")) if status else body["text"]
    return {
        "text": render.fit(text, render.TEXT_LIMIT),
        "blocks": blocks[: render.MAX_BLOCKS],
    }


class SlackNotifier:
    """One ``send`` per outbox row; ``interactive``: the bot-token messages carry real buttons
    (handled by the interactivity endpoint) instead of link buttons."""

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        api_url: str = "https://slack.com/api",
        bot_token: SecretStr | None = None,
        webhook_url: SecretStr | None = None,
        interactive: bool = False,
        timeout_seconds: float = 10.0,
    ) -> None:
        """``session``: shared by every request (its timeout applies); None: a session per
        request, with ``timeout_seconds``."""
        timeout = max(1, math.ceil(timeout_seconds))
        self._web = (
            AsyncWebClient(
                token=bot_token.get_secret_value(),
                base_url=api_url.rstrip("/") + "/",
                session=session,
                timeout=timeout,
                retry_handlers=[],  # the outbox retries, honouring Retry-After
            )
            if bot_token is not None
            else None
        )
        self._webhook = (
            AsyncWebhookClient(
                webhook_url.get_secret_value(),
                session=session,
                timeout=timeout,
                retry_handlers=[],
            )
            if webhook_url is not None
            else None
        )
        self._interactive = interactive

    async def send(self, message: Message) -> Outcome:
        if message.kind == UPDATE:
            return await self._update(message)
        if message.destination.address == WEBHOOK:
            if self._webhook is None:
                return Permanent("no Slack webhook URL configured")
            body = render.slack_message(message.payload, mention=message.destination.mention)
            return await self._post_webhook(body)
        if self._web is None:
            return Permanent("no Slack bot token configured")
        body = self._render(message.payload, message.destination.mention)
        thread_ts = (
            message.thread_ref if message.thread_ref and message.kind == "resolved" else None
        )
        return await self._call(
            self._web.chat_postMessage,
            channel=message.destination.address,
            text=body["text"],
            blocks=body["blocks"],
            unfurl_links=False,
            metadata={
                "event_type": "churnwatch_notification",
                "event_payload": {"key": message.key},
            },
            **({"thread_ts": thread_ts} if thread_ts else {}),
        )

    def _render(self, payload: Mapping[str, Any], mention: str | None) -> dict[str, Any]:
        return render.slack_message(payload, mention=mention, interactive=self._interactive)

    async def _update(self, message: Message) -> Outcome:
        """``chat.update`` of the message ``payload["ts"]`` in the row's channel."""
        if self._web is None:
            return Permanent("no Slack bot token configured")
        update = message.payload
        body = with_status(
            self._render(update["message"], message.destination.mention),
            update.get("status", []),
            update.get("done", []),
        )
        return await self._call(
            self._web.chat_update,
            channel=message.destination.address,
            ts=str(update["ts"]),
            text=body["text"],
            blocks=body["blocks"],
        )

    async def _call(self, method: Any, **arguments: Any) -> Outcome:
        try:
            answer = await method(**arguments)
        except SlackApiError as exc:
            return api_failure(exc)
        except (TimeoutError, SlackClientError, aiohttp.ClientError) as exc:
            failure = transport_failure(exc, detail=True)
            return failure or Retry(f"Slack client error: {type(exc).__name__}")
        ts = answer.get("ts")
        channel = answer.get("channel")
        return Delivered(str(ts) if ts else None, str(channel) if channel else None)

    async def _post_webhook(self, body: dict[str, Any]) -> Outcome:
        assert self._webhook is not None
        try:
            response = await self._webhook.send_dict(body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            failure = transport_failure(exc, detail=False)
            assert failure is not None
            return failure
        status = response.status_code
        if status == 429:
            return Retry("rate limited (429)", retry_after(response.headers or {}))
        if status >= 500:
            return Retry(f"Slack webhook answered {status}")
        if 200 <= status < 300:
            return Delivered(None)
        return Permanent(f"Slack webhook answered {status} {str(response.body).strip()[:100]}")
