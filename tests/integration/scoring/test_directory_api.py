"""The directory routes of the read API (what the console reads): people by email, a manager's
reports, account summaries with their team, health and a daily score line."""

from __future__ import annotations

import httpx
import msgspec

from services.scoring.handler import BatchHandler
from shared.events import PersonRecord
from tests.integration.scoring.test_api import AUTH, client, portfolio  # noqa: F401 (fixtures)
from tests.unit.scoring.builders import person, records


async def test_people_are_found_by_email_case_insensitively(
    client: httpx.AsyncClient,  # noqa: F811
    portfolio: None,  # noqa: F811
) -> None:
    found = await client.get("/v1/people", params={"email": "P_Maria@Example.com"}, headers=AUTH)
    assert found.status_code == 200
    assert [p["person_id"] for p in found.json()["people"]] == ["p_maria"]
    none = await client.get("/v1/people", params={"email": "nobody@example.com"}, headers=AUTH)
    assert none.json() == {"people": []}
    short = await client.get("/v1/people", params={"email": "x@"}, headers=AUTH)
    assert short.status_code == 422
    assert short.json()["code"] == "invalid_request"


async def test_reports_are_direct_and_indirect_and_a_cycle_ends(
    client: httpx.AsyncClient,  # noqa: F811
    handler: BatchHandler,
) -> None:
    def managed(pid: str, manager: str) -> PersonRecord:
        return msgspec.structs.replace(person(pid, pid.title()), manager_id=manager)

    await handler(
        records(
            managed("p_lead", "p_ceo"),
            managed("p_csm1", "p_lead"),
            managed("p_csm2", "p_csm1"),
            managed("p_ceo", "p_csm2"),  # a cycle back to the top
            person("p_other", "Other"),
        )
    )
    answer = await client.get("/v1/people/p_lead/reports", headers=AUTH)
    assert answer.status_code == 200
    depths = {r["person_id"]: r["depth"] for r in answer.json()["reports"]}
    assert depths == {"p_csm1": 1, "p_csm2": 2, "p_ceo": 3}
    unknown = await client.get("/v1/people/p_nobody/reports", headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "unknown_person"


async def test_account_summaries_by_member_with_team_names_health_and_line(
    client: httpx.AsyncClient,  # noqa: F811
    portfolio: None,  # noqa: F811
) -> None:
    mine = await client.get("/v1/accounts", params={"member": "p_maria"}, headers=AUTH)
    assert mine.status_code == 200
    accounts = {a["account_id"]: a for a in mine.json()["accounts"]}
    assert sorted(accounts) == ["healthy", "silent", "tickets"]
    silent = accounts["silent"]
    assert silent["csm_name"] == "Maria Rossi"
    assert silent["renewal_owner_name"] == "James Okafor"
    assert silent["band"] == "red"
    assert silent["line"], "a daily score line"
    assert silent["line"][-1]["score"] == silent["score"]
    days = [point["day"] for point in silent["line"]]
    assert days == sorted(set(days))
    every = await client.get("/v1/accounts", headers=AUTH)
    assert len(every.json()["accounts"]) == 4
    only = await client.get(
        "/v1/accounts",
        params={"member": "p_maria", "account_id": ["other", "silent"]},
        headers=AUTH,
    )
    assert [a["account_id"] for a in only.json()["accounts"]] == ["silent"]
    capped = await client.get("/v1/accounts", params={"limit": 2}, headers=AUTH)
    kept = capped.json()["accounts"]
    assert len(kept) == 2
    assert kept[0]["band"] == "red"  # a cut keeps the riskiest
    assert kept[0]["score"] <= kept[1]["score"] or kept[1]["band"] != "red"
    too_many = await client.get("/v1/accounts", params={"limit": 5001}, headers=AUTH)
    assert too_many.status_code == 422
    refused = await client.get("/v1/accounts")
    assert refused.status_code == 401
