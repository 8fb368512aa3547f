"""The console's client of the APIs: alerts followed page by page (to a limit), ids sent in
groups the APIs accept, error answers read from the envelope."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.console import backends
from services.console.backends import BackendDown, BackendError, Backends


def client(handler: Any) -> Backends:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Backends(http, {"scoring": "http://s", "alerts": "http://a"}, "key")


async def test_alerts_are_followed_page_by_page_up_to_the_limit() -> None:
    seen: list[dict[str, Any]] = []

    def endless(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        before = int(params.get("before_id", 10_000))
        assert request.headers["authorization"] == "Bearer key"
        page = [{"id": before - 1, "account_id": "acme"}]
        return httpx.Response(200, json={"alerts": page, "next_before_id": before - 1})

    found = await client(endless).alerts(["acme"], limit=1)
    assert len(found) == backends.MAX_ALERT_PAGES
    assert [p.get("before_id") for p in seen[:3]] == [None, "9999", "9998"]


async def test_ids_go_in_groups_of_at_most_500() -> None:
    groups: list[int] = []

    def count(request: httpx.Request) -> httpx.Response:
        groups.append(len(request.url.params.get_list("member")))
        return httpx.Response(200, json={"accounts": []})

    await client(count).accounts([f"p{i}" for i in range(1001)])
    assert groups == [500, 500, 1]


async def test_errors_carry_the_services_code_and_an_absence_is_none() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/health"):
            return httpx.Response(404, json={"code": "not_scored", "message": "no"})
        return httpx.Response(409, json={"code": "already_resolved", "message": "resolved"})

    api = client(refuse)
    assert await api.health("acme") is None
    with pytest.raises(BackendError) as refused:
        await api.act(7, "ack", "p_maria")
    assert (refused.value.status, refused.value.code) == (409, "already_resolved")

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(BackendDown):
        await client(down).alert(7)
    assert not await client(down).ready("scoring")
