"""Stand-ins for Slack and an SMTP server, for tests, the demo and the chaos harness.

- :class:`SlackSink` — a Slack-compatible HTTP server: answers Web API ``chat.postMessage``
  (``POST /api/chat.postMessage``; a message to a user id lands in a DM channel ``D<id>``, as
  on Slack) and ``chat.update`` (the message must exist: else ``message_not_found``), and
  incoming-webhook posts (``POST /services/...``); records every request and keeps each
  message's current content (``messages``); can be told how to answer the next ones: ``ok``,
  ``429`` with a ``Retry-After``, ``500``, ``slow`` (hold the answer), a Slack error such as
  ``channel_not_found``, or ``drop`` (close the connection without answering).
  :func:`signed_interaction` builds the request Slack sends to an app's interactivity URL when
  someone clicks a button, signed as Slack signs it.
- :class:`SmtpSink` — a real SMTP server on loopback (aiosmtpd): records every message it is
  offered, and answers ``250``, ``451``, ``550`` or ``drop`` as told.

Both run on the caller's event loop::

    async with SlackSink() as slack, SmtpSink() as smtp:
        slack.program(Reply.rate_limited(retry_after=1), Reply.ok())
        smtp.program("451", "250")
        ...  # point the service at slack.api_url / slack.webhook_url and smtp.port
        assert len(slack.delivered()) == 1

``python -m devstack.sinks --dir DIR`` runs both until interrupted, appends what Slack
receives to ``DIR/slack.jsonl`` and writes each accepted email to ``DIR/mail/<n>.eml``. Its
HTTP server also has a small control API: ``POST /_sink/program`` with
``{"slack": ["429:2", "ok"], "smtp": ["451", "250"]}`` (the optional ``"slack_default"`` /
``"smtp_default"`` change what is answered once the queue is empty), ``GET /_sink/slack``,
``GET /_sink/mail``, ``POST /_sink/reset``, and ``POST /_sink/click`` with ``{"ts",
"action_id", "user_id", "url", "signing_secret"}``: a click on a recorded message's button,
sent to the app's interactivity ``url`` as Slack would (:meth:`SlackSink.click`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import json
import signal
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from aiosmtpd.smtp import SMTP, Envelope, Session
from slack_sdk.signature import SignatureVerifier

# ---------------------------------------------------------------------------------------------
# Slack


@dataclass(frozen=True)
class Reply:
    """How the Slack sink answers one request."""

    status: int = 200
    error: str | None = None  # a Slack error code: answered 200 {"ok": false, "error": ...}
    retry_after: float | None = None
    delay_seconds: float = 0.0
    drop: bool = False

    @classmethod
    def ok(cls) -> Reply:
        return cls()

    @classmethod
    def rate_limited(cls, retry_after: float = 1.0) -> Reply:
        return cls(status=429, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        return cls(status=status)

    @classmethod
    def slow(cls, seconds: float) -> Reply:
        return cls(delay_seconds=seconds)

    @classmethod
    def slack_error(cls, code: str = "channel_not_found") -> Reply:
        return cls(error=code)

    @classmethod
    def dropped(cls) -> Reply:
        return cls(drop=True)

    @classmethod
    def parse(cls, spec: str) -> Reply:
        """``ok``, ``429[:seconds]``, ``500`` (any 5xx), ``slow:seconds``, ``drop``, or a Slack
        error code such as ``channel_not_found``."""
        name, _, arg = spec.partition(":")
        if name == "ok":
            return cls.ok()
        if name == "429":
            return cls.rate_limited(float(arg or 1))
        if name.isdigit():
            return cls.server_error(int(name))
        if name == "slow":
            return cls.slow(float(arg or 5))
        if name == "drop":
            return cls.dropped()
        return cls.slack_error(name)


@dataclass
class SlackRequest:
    """One request the Slack sink received, and how it answered."""

    kind: str  # "api" (chat.postMessage), "update" (chat.update) or "webhook"
    path: str
    body: dict[str, Any]
    authorization: bool  # a bearer token was presented
    received_at: float
    reply: Reply = field(default_factory=Reply)
    answered: bool = False  # False while held (slow) or when dropped
    ts: str | None = None  # the ts answered to a successful chat.postMessage

    @property
    def channel(self) -> str | None:
        value = self.body.get("channel")
        return str(value) if value is not None else None

    @property
    def text(self) -> str:
        return str(self.body.get("text", ""))

    @property
    def key(self) -> str | None:
        """The notification key churnwatch puts in the message metadata (Web API only)."""
        metadata = self.body.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        key = payload.get("key")
        return str(key) if key is not None else None

    @property
    def delivered(self) -> bool:
        reply = self.reply
        return self.answered and reply.status == 200 and reply.error is None and not reply.drop

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "channel": self.channel,
            "body": self.body,
            "received_at": self.received_at,
            "reply": asdict(self.reply),
            "answered": self.answered,
            # a message posted (what delivered() lists); a successful chat.update is "updated"
            "delivered": self.delivered and self.kind != "update",
            "updated": self.delivered and self.kind == "update",
            "ts": self.ts,
        }


class SlackSink:
    """A Slack-compatible HTTP server on ``host``:``port`` (0 = a free port)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        record_to: Path | None = None,
        token: str | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self._record_to = record_to
        self._token = token
        self.requests: list[SlackRequest] = []
        self._queue: deque[Reply] = deque()
        self._per_channel: dict[str, deque[Reply]] = {}
        self.default = Reply.ok()
        self._server: asyncio.Server | None = None
        self._ts = 0
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts) → latest body
        self.control: Any = None  # set by the entry point: handles /_sink/ paths
        self._connections: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    # -- programming -------------------------------------------------------------------------

    def program(self, *replies: Reply | str, channel: str | None = None) -> None:
        """Answer the next requests (to ``channel``, or to any) with ``replies``, in order."""
        parsed = [r if isinstance(r, Reply) else Reply.parse(r) for r in replies]
        if channel is None:
            self._queue.extend(parsed)
        else:
            self._per_channel.setdefault(channel, deque()).extend(parsed)

    def reset(self) -> None:
        self.requests.clear()
        self.messages.clear()
        self._queue.clear()
        self._per_channel.clear()
        self.default = Reply.ok()

    def delivered(self) -> list[SlackRequest]:
        """The posts answered with success: what a real Slack would have posted."""
        return [r for r in self.requests if r.delivered and r.kind != "update"]

    def updates(self) -> list[SlackRequest]:
        """The ``chat.update`` requests answered with success, in order."""
        return [r for r in self.requests if r.delivered and r.kind == "update"]

    def _next_reply(self, channel: str | None) -> Reply:
        queue = self._per_channel.get(channel or "")
        if queue:
            return queue.popleft()
        if self._queue:
            return self._queue.popleft()
        return self.default

    # -- serving -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """Use as the Slack API base URL (``<api_url>/chat.postMessage``)."""
        return f"{self.url}/api"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/services/T0000/B0000/sink"

    async def start(self) -> SlackSink:
        self._server = await asyncio.start_server(self._serve, self.host, self._port)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            for task in list(self._handlers):
                task.cancel()  # replies held back ("slow") end with the sink
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def __aenter__(self) -> SlackSink:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                method, path, headers, body = request
                if not await self._answer(method, path, headers, body, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return
        finally:
            if task is not None:
                self._handlers.discard(task)
            self._connections.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        raw: bytes,
        writer: asyncio.StreamWriter,
    ) -> bool:
        route = urlsplit(path).path
        if route.startswith("/_sink/") and self.control is not None:
            control_status, control_answer = await self.control(method, route, raw)
            await _respond(writer, control_status, control_answer)
            return True
        if method != "POST" or not (
            route.endswith(("/chat.postMessage", "/chat.update")) or route.startswith("/services/")
        ):
            await _respond(writer, 404, {"ok": False, "error": "unknown_method"})
            return True
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            await _respond(writer, 400, {"ok": False, "error": "invalid_json"})
            return True
        kind = (
            "webhook"
            if route.startswith("/services/")
            else "update"
            if route.endswith("/chat.update")
            else "api"
        )
        auth = headers.get("authorization", "")
        request = SlackRequest(kind, route, body, auth.lower().startswith("bearer "), time.time())
        self.requests.append(request)
        reply = self._next_reply(request.channel)
        if kind != "webhook" and self._token is not None and auth != f"Bearer {self._token}":
            reply = Reply.slack_error("invalid_auth")
        elif kind == "update" and reply == Reply.ok() and not self._exists(request):
            reply = Reply.slack_error("message_not_found")
        request.reply = reply
        if reply.delay_seconds:
            await asyncio.sleep(reply.delay_seconds)
        if reply.drop:
            self._record(request)
            return False
        extra: dict[str, str] = {}
        if reply.retry_after is not None:
            extra["Retry-After"] = f"{reply.retry_after:g}"
        if reply.status != 200:
            answer: Any = {"ok": False, "error": "ratelimited" if reply.status == 429 else "http"}
            status = reply.status
        elif reply.error is not None:
            status, answer = (200, {"ok": False, "error": reply.error})
            if kind == "webhook":
                status, answer = 404, reply.error
        elif kind == "webhook":
            status, answer = 200, "ok"
        else:
            status, answer = 200, self._store(request)
        request.answered = True
        self._record(request)
        await _respond(writer, status, answer, extra)
        return True

    async def click(
        self,
        ts: str,
        action_id: str,
        *,
        user_id: str,
        url: str,
        signing_secret: str,
    ) -> tuple[int, str]:
        """Click the button ``action_id`` of the message ``ts`` as ``user_id``: POST the signed
        request Slack would send to the app's interactivity ``url``; (status, body) answered.
        Raises ``LookupError`` when there is no such message or button."""
        found = [(channel, body) for (channel, at), body in self.messages.items() if at == ts]
        if not found:
            raise LookupError(f"no message {ts}")
        channel, message = found[0]
        values = [
            str(element.get("value", ""))
            for block in message.get("blocks", [])
            for element in block.get("elements", [])
            if element.get("action_id") == action_id and "url" not in element
        ]
        if not values:
            raise LookupError(f"message {ts} has no {action_id!r} button")
        payload = block_actions(channel, ts, action_id, values[0], user_id=user_id)
        body, headers = signed_interaction(signing_secret, payload)
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(url, content=body, headers=headers)
        return answer.status_code, answer.text

    def _exists(self, request: SlackRequest) -> bool:
        return (request.channel or "", str(request.body.get("ts"))) in self.messages

    def _store(self, request: SlackRequest) -> dict[str, Any]:
        """Post or update the message; Slack's answer."""
        channel = request.channel or ""
        if request.kind == "update":
            request.ts = str(request.body.get("ts"))
        else:
            if channel.startswith(("U", "W")):
                channel = "D" + channel[1:]  # a DM lands in the user's direct-message channel
            self._ts += 1
            request.ts = f"{int(time.time())}.{self._ts:06d}"
        content: dict[str, Any] = {
            k: request.body[k] for k in ("text", "blocks") if k in request.body
        }
        self.messages[(channel, request.ts)] = content
        return {"ok": True, "channel": channel, "ts": request.ts, "message": content}

    def _record(self, request: SlackRequest) -> None:
        if self._record_to is not None:
            with (self._record_to / "slack.jsonl").open("a") as out:
                out.write(json.dumps(request.to_json()) + "\n")


def block_actions(
    channel: str,
    ts: str,
    action_id: str,
    value: str,
    *,
    user_id: str,
    user_name: str = "someone",
) -> dict[str, Any]:
    """The ``payload`` Slack sends when ``user_id`` clicks the button ``action_id`` (with its
    ``value``) of the message ``ts`` in ``channel`` (the fields churnwatch reads, and the
    context around them)."""
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": "T0000"},
        "api_app_id": "A0000",
        "team": {"id": "T0000", "domain": "sink"},
        "container": {"type": "message", "message_ts": ts, "channel_id": channel},
        "channel": {"id": channel, "name": channel},
        "trigger_id": f"{int(time.time())}.0000.sink",
        "response_url": "http://127.0.0.1:9/actions/T0000/sink",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "actions",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def signed_interaction(
    signing_secret: str, payload: dict[str, Any], *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of the request Slack POSTs to an app's interactivity URL: the form field
    ``payload`` (JSON), signed with the app's signing secret (``X-Slack-Signature`` =
    ``v0=`` HMAC-SHA256 of ``v0:<timestamp>:<body>``) at ``timestamp`` (default: now)."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    return body, {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": signature,
    }


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    return method, path, headers, body


async def _respond(
    writer: asyncio.StreamWriter, status: int, answer: Any, extra: dict[str, str] | None = None
) -> None:
    if isinstance(answer, str):
        body, content_type = answer.encode(), "text/plain"
    else:
        body, content_type = json.dumps(answer).encode(), "application/json"
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}.get(
        status, "Error"
    )
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in (extra or {}).items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()


# ---------------------------------------------------------------------------------------------
# SMTP

SMTP_REPLIES = {
    "250": "250 2.0.0 OK: queued",
    "451": "451 4.3.0 Temporary failure, try again later",
    "550": "550 5.1.1 Mailbox unavailable",
}


@dataclass
class ReceivedMail:
    """One message offered to the SMTP sink (accepted or not)."""

    mail_from: str
    rcpt_to: list[str]
    raw: bytes
    reply: str  # "250", "451", "550" or "drop"
    received_at: float

    @property
    def accepted(self) -> bool:
        return self.reply == "250"

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str | None:
        value = self.message["Message-ID"]
        return str(value) if value is not None else None

    def to_json(self) -> dict[str, Any]:
        msg = self.message
        return {
            "mail_from": self.mail_from,
            "rcpt_to": self.rcpt_to,
            "subject": str(msg["Subject"] or ""),
            "message_id": self.message_id,
            "reply": self.reply,
            "received_at": self.received_at,
        }


class SmtpSink:
    """A real SMTP server (aiosmtpd) on ``host``:``port`` (0 = a free port)."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, record_to: Path | None = None
    ) -> None:
        self.host = host
        self._port = port
        self._record_to = record_to
        self.received: list[ReceivedMail] = []
        self._queue: deque[str] = deque()
        self.default = "250"
        self._server: asyncio.Server | None = None

    def program(self, *replies: str) -> None:
        """Answer the next messages with ``replies`` ("250", "451", "550", "drop")."""
        for reply in replies:
            if reply not in SMTP_REPLIES and reply != "drop":
                raise ValueError(f"unknown SMTP reply {reply!r}")
            self._queue.append(reply)

    def reset(self) -> None:
        self.received.clear()
        self._queue.clear()
        self.default = "250"

    def accepted(self) -> list[ReceivedMail]:
        return [m for m in self.received if m.accepted]

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> SmtpSink:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(_SmtpHandler(self), hostname="sink.invalid", loop=loop),
            self.host,
            self._port,
        )
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def __aenter__(self) -> SmtpSink:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _take(self, envelope: Envelope) -> str:
        reply = self._queue.popleft() if self._queue else self.default
        content = envelope.original_content or envelope.content or b""
        mail = ReceivedMail(
            mail_from=str(envelope.mail_from),
            rcpt_to=list(envelope.rcpt_tos),
            raw=content if isinstance(content, bytes) else content.encode(),
            reply=reply,
            received_at=time.time(),
        )
        self.received.append(mail)
        if self._record_to is not None and mail.accepted:
            folder = self._record_to / "mail"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{len(self.received):06d}.eml").write_bytes(mail.raw)
        return reply


class _SmtpHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self._sink._take(envelope)
        if reply == "drop":
            transport = server.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            return "421 4.3.0 closing"
        return SMTP_REPLIES[reply]


# ---------------------------------------------------------------------------------------------
# python -m devstack.sinks


async def _main(args: argparse.Namespace, out: Path) -> None:
    slack = SlackSink(args.host, args.slack_port, record_to=out, token=args.slack_token)
    smtp = SmtpSink(args.host, args.smtp_port, record_to=out)

    async def control(method: str, route: str, raw: bytes) -> tuple[int, Any]:
        if method == "GET" and route == "/_sink/slack":
            return 200, [r.to_json() for r in slack.requests]
        if method == "GET" and route == "/_sink/mail":
            return 200, [m.to_json() for m in smtp.received]
        if method == "POST" and route == "/_sink/reset":
            slack.reset()
            smtp.reset()
            return 200, {"ok": True}
        if method == "POST" and route == "/_sink/click":
            try:
                spec = json.loads(raw or b"{}")
                status, text = await slack.click(
                    str(spec["ts"]),
                    str(spec["action_id"]),
                    user_id=str(spec["user_id"]),
                    url=str(spec["url"]),
                    signing_secret=str(spec["signing_secret"]),
                )
            except KeyError as exc:  # before LookupError, its base
                return 400, {"ok": False, "error": f"missing field {exc}"}
            except LookupError as exc:
                return 404, {"ok": False, "error": str(exc)}
            except (ValueError, TypeError) as exc:
                return 400, {"ok": False, "error": str(exc)}
            except httpx.HTTPError as exc:
                return 502, {"ok": False, "error": f"the app did not answer: {exc!r}"}
            return 200, {"ok": True, "status": status, "answer": text}
        if method == "POST" and route == "/_sink/program":
            try:
                spec = json.loads(raw or b"{}")
                slack.program(*spec.get("slack", []))
                smtp.program(*spec.get("smtp", []))
                if "slack_default" in spec:
                    slack.default = Reply.parse(spec["slack_default"])
                if "smtp_default" in spec:
                    default = str(spec["smtp_default"])
                    if default not in SMTP_REPLIES and default != "drop":
                        raise ValueError(f"unknown SMTP reply {default!r}")
                    smtp.default = default
            except (ValueError, TypeError) as exc:
                return 400, {"ok": False, "error": str(exc)}
            return 200, {"ok": True}
        return 404, {"ok": False, "error": "unknown control route"}

    slack.control = control
    await slack.start()
    await smtp.start()
    print(
        json.dumps(
            {
                "slack_api_url": slack.api_url,
                "slack_webhook_url": slack.webhook_url,
                "smtp_host": smtp.host,
                "smtp_port": smtp.port,
                "dir": str(out),
            }
        ),
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await slack.stop()
    await smtp.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.sinks", description=__doc__)
    parser.add_argument("--dir", required=True, help="where to write slack.jsonl and mail/")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--slack-port", type=int, default=0)
    parser.add_argument("--smtp-port", type=int, default=0)
    parser.add_argument("--slack-token", default=None, help="refuse other bearer tokens")
    args = parser.parse_args(argv)
    out = Path(args.dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    asyncio.run(_main(args, out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
