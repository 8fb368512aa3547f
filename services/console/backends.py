"""The console's client of scoring's and alerts' HTTP APIs (httpx, its own API key).

No retries: a page is answered now or says the service is away (``503 backend_unavailable``).
An error answer is read from the services' envelope by ``shared.refused`` (``code``, ``message``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx

from services.console import metrics
from shared.refused import Refused, error_of

Service = Literal["scoring", "alerts"]
MAX_IDS = 500  # both APIs take at most this many repeated ids per call
MAX_ALERT_PAGES = 10  # alerts of one group of accounts: at most 10 pages of 500


class BackendError(Refused):
    """Scoring or alerts answered with an error."""


class BackendDown(Exception):
    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service} does not answer: {reason}")
        self.service = service


def _risk(account: Mapping[str, Any]) -> tuple[int, float, str]:
    score = account.get("score")
    band_order = {"red": 0, "yellow": 1, "green": 2}.get(account.get("band") or "", 3)
    return (band_order, score if score is not None else 101.0, str(account["account_id"]))


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), MAX_IDS):
        yield ids[start : start + MAX_IDS]


class Backends:
    def __init__(self, http: httpx.AsyncClient, urls: Mapping[Service, str], api_key: str) -> None:
        self._http = http
        self._urls = {k: v.rstrip("/") for k, v in urls.items()}
        self._auth = {"Authorization": f"Bearer {api_key}"}

    async def _call(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        missing_ok: bool = False,
    ) -> Any:
        started = time.perf_counter()
        try:
            response = await self._http.request(
                method, self._urls[service] + path, params=params, json=json, headers=self._auth
            )
        except httpx.TransportError as exc:
            metrics.BACKEND_ERRORS.labels(service, "unreachable").inc()
            raise BackendDown(service, type(exc).__name__) from None
        finally:
            metrics.BACKEND_SECONDS.labels(service).observe(time.perf_counter() - started)
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            metrics.BACKEND_ERRORS.labels(service, f"http_{response.status_code}").inc()
            raise BackendError(service, response.status_code, *error_of(response))
        return response.json()

    async def ready(self, service: Service) -> bool:
        try:
            response = await self._http.get(self._urls[service] + "/healthz")
        except httpx.TransportError:
            return False
        return response.status_code == 200

    # -- scoring ---------------------------------------------------------------------------

    async def people_by_email(self, email: str) -> list[dict[str, Any]]:
        body = await self._call("scoring", "GET", "/v1/people", params={"email": email})
        people: list[dict[str, Any]] = body["people"]
        return people

    async def reports(self, person_id: str) -> list[dict[str, Any]]:
        body = await self._call(
            "scoring", "GET", f"/v1/people/{person_id}/reports", missing_ok=True
        )
        return [] if body is None else list(body["reports"])

    async def accounts(
        self,
        members: Iterable[str] | None,
        *,
        account_ids: Iterable[str] | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Account summaries: with one of ``members`` on the team (None: all), optionally
        only ``account_ids``."""
        found: list[dict[str, Any]] = []
        ids = None if account_ids is None else sorted(set(account_ids))
        groups: list[list[str] | None] = (
            [None] if members is None else list(_chunks(sorted(set(members))))
        )
        for group in groups:
            if group == []:
                continue
            params: dict[str, Any] = {"limit": limit}
            if group is not None:
                params["member"] = group
            if ids is not None:
                params["account_id"] = ids
            body = await self._call("scoring", "GET", "/v1/accounts", params=params)
            found.extend(body["accounts"])
        unique = {a["account_id"]: a for a in found}
        return sorted(unique.values(), key=_risk)[:limit]  # a cut keeps the riskiest

    async def health(self, account_id: str) -> dict[str, Any] | None:
        path = f"/v1/accounts/{account_id}/health"
        body: dict[str, Any] | None = await self._call("scoring", "GET", path, missing_ok=True)
        return body

    async def history(self, account_id: str, now: datetime, days: int) -> list[dict[str, Any]]:
        start = (now - timedelta(days=days)).isoformat()
        body = await self._call(
            "scoring",
            "GET",
            f"/v1/accounts/{account_id}/health/history",
            params={"from": start, "to": now.isoformat()},
            missing_ok=True,
        )
        return [] if body is None else list(body["points"])

    async def brief(self, account_id: str) -> dict[str, Any] | None:
        path = f"/v1/accounts/{account_id}/brief"
        body: dict[str, Any] | None = await self._call("scoring", "GET", path, missing_ok=True)
        return body

    # -- alerts ----------------------------------------------------------------------------

    async def alerts(
        self, account_ids: Iterable[str], *, open_only: bool = True, limit: int = 500
    ) -> list[dict[str, Any]]:
        """The alerts of ``account_ids``, newest first per group of ids, following alerts'
        pages (``next_before_id``) up to ``MAX_ALERT_PAGES`` pages of ``limit``."""
        found: list[dict[str, Any]] = []
        for group in _chunks(sorted(set(account_ids))):
            params: dict[str, Any] = {"account_id": group, "limit": limit}
            if open_only:
                params["open_only"] = "true"
            for _ in range(MAX_ALERT_PAGES):
                body = await self._call("alerts", "GET", "/v1/alerts", params=params)
                found.extend(body["alerts"])
                if body.get("next_before_id") is None:
                    break
                params["before_id"] = body["next_before_id"]
        return found

    async def alert(self, alert_id: int) -> dict[str, Any] | None:
        body: dict[str, Any] | None = await self._call(
            "alerts", "GET", f"/v1/alerts/{alert_id}", missing_ok=True
        )
        return body

    async def act(
        self, alert_id: int, action: Literal["ack", "snooze"], by: str, seconds: float = 0
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"by": by}
        if action == "snooze":
            body["seconds"] = seconds
        answer: dict[str, Any] = await self._call(
            "alerts", "POST", f"/v1/alerts/{alert_id}/{action}", json=body
        )
        return answer

    async def feedback(self, alert_id: int, verdict: str, by: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call(
            "alerts",
            "POST",
            f"/v1/alerts/{alert_id}/feedback",
            json={"verdict": verdict, "by": by},
        )
        return answer

    async def use_token(self, digest: str, expires_at: datetime) -> bool:
        """Record a single-use token as used; False when it already was."""
        try:
            await self._call(
                "alerts",
                "POST",
                "/v1/used-tokens",
                json={"digest": digest, "expires_at": expires_at.isoformat()},
            )
        except BackendError as exc:
            if exc.code == "already_used":
                return False
            raise
        return True
