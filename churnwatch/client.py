"""A small HTTP client for the three services, shared by the ``churnwatch`` CLI and the demo.

Errors, drawn as a tree::

    ClientError                    something the caller should report and stop on
    ├── ServiceUnreachable         no answer at all (refused, timed out, DNS) after the retries
    └── ServiceRefused             an answer that is an error: ``status``, ``code``, ``message``

Retries live here, at the edge, as one predicate (:func:`should_retry`): ``429`` and ``503``
are retried honouring ``Retry-After`` (seconds), connection failures with exponential backoff
and jitter; anything else is the caller's to handle. Every retry is counted, so the CLI can say
how many there were.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from shared.refused import Refused, error_of

Service = Literal["ingest", "scoring", "alerts"]
DEFAULT_URLS: Mapping[Service, str] = {
    "ingest": "http://127.0.0.1:8000",
    "scoring": "http://127.0.0.1:8001",
    "alerts": "http://127.0.0.1:8002",
}
RETRIED_STATUSES = frozenset({429, 503})


class ClientError(Exception):
    """A call failed in a way the caller reports."""


class ServiceUnreachable(ClientError):
    def __init__(self, service: str, url: str, reason: str) -> None:
        super().__init__(f"cannot reach {service} at {url}: {reason}")
        self.service = service
        self.url = url
        self.reason = reason


class ServiceRefused(Refused, ClientError):
    """The service answered with an error; ``code`` is its machine-readable code."""


@dataclass(frozen=True)
class Endpoints:
    """Where the services are and the API key to present (``CHURNWATCH_API_KEY``)."""

    api_key: str
    urls: Mapping[Service, str] = field(default_factory=lambda: dict(DEFAULT_URLS))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Endpoints:
        """``CHURNWATCH_API_KEY`` and ``INGEST_URL`` / ``SCORING_URL`` / ``ALERTS_URL``."""
        urls: dict[Service, str] = {
            name: env.get(f"{name.upper()}_URL") or default
            for name, default in DEFAULT_URLS.items()
        }
        return cls(api_key=env.get("CHURNWATCH_API_KEY", ""), urls=urls)

    def url(self, service: Service, path: str) -> str:
        return self.urls[service].rstrip("/") + path


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8  # tries in all, the first included, while answered 429 / 503
    unanswered_attempts: int = 3  # tries in all while there is no answer at all
    initial_seconds: float = 0.5
    max_seconds: float = 15.0


def should_retry(response: httpx.Response | None) -> bool:
    """Whether a call is worth repeating: no answer, or ``429`` / ``503``."""
    return response is None or response.status_code in RETRIED_STATUSES


def retry_delay(
    response: httpx.Response | None,
    attempt: int,
    policy: RetryPolicy,
    rng: Callable[[], float] = random.random,
) -> float:
    """``Retry-After`` when the answer gives one (seconds), else backoff with jitter."""
    if response is not None:
        header = response.headers.get("retry-after", "")
        try:
            return min(policy.max_seconds * 4, max(0.0, float(header)))
        except ValueError:
            pass
    ceiling = min(policy.max_seconds, policy.initial_seconds * 2 ** (attempt - 1))
    return float(ceiling / 2 + rng() * ceiling / 2)


class Client:
    """Calls the services with the API key; retries per :func:`should_retry`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoints: Endpoints,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.http = http
        self.endpoints = endpoints
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self.retries = 0  # every repeated call, for the caller's report

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.endpoints.api_key}"}

    async def request(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
    ) -> httpx.Response:
        """One call, retried while :func:`should_retry`; returns the final answer whatever its
        status. Raises :class:`ServiceUnreachable` when no answer came after every attempt."""
        url = self.endpoints.url(service, path)
        sent_headers = {**(self._auth() if auth else {}), **(headers or {})}
        attempt = 0
        while True:
            attempt += 1
            response: httpx.Response | None = None
            failure = ""
            try:
                response = await self.http.request(
                    method, url, content=content, headers=sent_headers, params=params
                )
            except httpx.TransportError as exc:
                failure = _describe(exc)
            limit = (
                self.policy.attempts if response is not None else self.policy.unanswered_attempts
            )
            if not should_retry(response) or attempt >= limit:
                if response is None:
                    raise ServiceUnreachable(service, self.endpoints.urls[service], failure)
                return response
            self.retries += 1
            await self._sleep(retry_delay(response, attempt, self.policy))

    async def get_json(
        self, service: Service, path: str, params: Mapping[str, Any] | None = None
    ) -> Any:
        """GET and decode; an error answer raises :class:`ServiceRefused`."""
        response = await self.request(service, "GET", path, params=params)
        return _json_or_raise(service, response)

    async def get_text(
        self, service: Service, path: str, params: Mapping[str, Any] | None = None
    ) -> str:
        response = await self.request(
            service, "GET", path, params=params, headers={"Accept": "text/plain"}
        )
        if response.status_code >= 400:
            raise ServiceRefused(service, response.status_code, *error_of(response))
        return response.text

    async def post_json(self, service: Service, path: str, body: bytes) -> Any:
        response = await self.request(
            service, "POST", path, content=body, headers={"Content-Type": "application/json"}
        )
        return _json_or_raise(service, response)


def _json_or_raise(service: str, response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise ServiceRefused(service, response.status_code, *error_of(response))
    try:
        return response.json()
    except ValueError:
        raise ServiceRefused(
            service, response.status_code, "invalid_answer", "the answer is not JSON"
        ) from None


def _describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unknown (is the stack running? `make up`)"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"
