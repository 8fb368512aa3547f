"""Slack: ``chat.postMessage`` with a bot token (DMs to a user id, or a channel id), or an
incoming webhook (one fixed channel).

HTTP 429 (or ``ratelimited``) → :class:`Retry` after ``Retry-After``; 5xx, timeouts and
connection errors → :class:`Retry`; a known permanent error (``channel_not_found``,
``invalid_auth``, ``is_archived``, ``not_in_channel``…) or any other refusal →
:class:`Permanent`, so the worker falls back to email at once.
"""

from __future__ import annotations

import email.utils
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from services.alerts import render
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
    }
)
DEFAULT_RETRY_AFTER_SECONDS = 1.0


def retry_after(response: httpx.Response) -> float:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    raw = response.headers.get("retry-after", "").strip()
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


class SlackNotifier:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_url: str = "https://slack.com/api",
        bot_token: SecretStr | None = None,
        webhook_url: SecretStr | None = None,
    ) -> None:
        self._client = client
        self._api_url = api_url.rstrip("/")
        self._token = bot_token
        self._webhook = webhook_url

    async def send(self, message: Message) -> Outcome:
        body = render.slack_message(message.payload, mention=message.destination.mention)
        if message.destination.address == WEBHOOK:
            if self._webhook is None:
                return Permanent("no Slack webhook URL configured")
            return await self._post_webhook(body)
        if self._token is None:
            return Permanent("no Slack bot token configured")
        body["channel"] = message.destination.address
        body["unfurl_links"] = False
        body["metadata"] = {
            "event_type": "churnwatch_notification",
            "event_payload": {"key": message.key},
        }
        if message.thread_ref and message.kind == "resolved":
            body["thread_ts"] = message.thread_ref
        return await self._post_api(body)

    async def _post(
        self,
        who: str,
        url: str,
        body: dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
        detail: bool = False,
    ) -> httpx.Response | Retry:
        """POST ``body``; a timeout, a broken connection, a 429 or a 5xx is a :class:`Retry`
        (``detail``: name the transport error too; a webhook URL carries its secret, the API
        URL does not)."""
        try:
            response = await self._client.post(url, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            return Retry(f"timeout: {type(exc).__name__}")
        except httpx.TransportError as exc:
            return Retry(f"connection error: {type(exc).__name__}" + (f": {exc}" if detail else ""))
        if response.status_code == 429:
            return Retry("rate limited (429)", retry_after(response))
        if response.status_code >= 500:
            return Retry(f"{who} answered {response.status_code}")
        return response

    async def _post_api(self, body: dict[str, Any]) -> Outcome:
        assert self._token is not None
        response = await self._post(
            "Slack",
            f"{self._api_url}/chat.postMessage",
            body,
            headers={"Authorization": f"Bearer {self._token.get_secret_value()}"},
            detail=True,
        )
        if not isinstance(response, httpx.Response):
            return response
        try:
            answer = response.json()
        except ValueError:
            return Retry(f"Slack answered {response.status_code} without JSON")
        if not isinstance(answer, dict):
            return Retry(f"Slack answered {response.status_code} with unexpected JSON")
        if answer.get("ok") is True:
            return Delivered(str(answer["ts"]) if answer.get("ts") else None)
        error = str(answer.get("error") or f"http_{response.status_code}")
        if error == "ratelimited":
            return Retry("rate limited", retry_after(response))
        if error in TRANSIENT_ERRORS:
            return Retry(f"Slack error {error}")
        if error not in PERMANENT_ERRORS:
            log.warning("unknown Slack error; not retrying", extra={"slack_error": error})
        return Permanent(f"Slack error {error}")

    async def _post_webhook(self, body: dict[str, Any]) -> Outcome:
        assert self._webhook is not None
        response = await self._post("Slack webhook", self._webhook.get_secret_value(), body)
        if not isinstance(response, httpx.Response):
            return response
        if 200 <= response.status_code < 300:
            return Delivered(None)
        return Permanent(
            f"Slack webhook answered {response.status_code} {response.text.strip()[:100]}"
        )
