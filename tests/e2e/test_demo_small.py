"""A small ``make demo``: 20 accounts × 50 days — the first 36 imported as history (past the
baselines' warm-up; fitted on first, the fit refusing its 2 churners), the last 14 live on a
fast clock through the real services, on the session's Kafka and PostgreSQL — then the
outputs exist and the report's figures are what the services hold."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from churnwatch import collect, demo
from devstack.stack import Stack, service_url


async def get(client: httpx.AsyncClient, url: str, key: str, **params: Any) -> Any:
    answer = await client.get(url, params=params, headers={"Authorization": f"Bearer {key}"})
    answer.raise_for_status()
    return answer.json()


async def test_a_small_demo_writes_its_outputs_and_reports_what_the_services_hold(
    local_stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = demo.Options(
        seed=11,
        accounts=20,
        days=50,
        start=date(2026, 7, 1),
        drive_seconds=30.0,
        lead_seconds=8.0,
        history_days=36,
        settle_timeout_seconds=90.0,
        out=tmp_path / "reports",
        quiet=True,
    )
    run = await asyncio.to_thread(demo.run, options, local_stack)
    printed = capsys.readouterr().out

    out = tmp_path / "reports"
    html = (out / "demo.html").read_text()
    summary = (out / "demo-summary.txt").read_text()
    saved = collect.load(out / "demo-run.json")
    assert saved.alerts == run.alerts
    assert "<svg" in html
    assert "How well each rule warned" in html
    assert summary.startswith("churnwatch demo: 20 accounts, 12 people, 50 days")

    # the fit ran on the history (2 churners by its end: too few) and its decision is said
    decision = (
        "Fit: churnwatch fit on the 36 days of history (2 churners of 20 accounts by "
        "2026-08-05): the fit refused — 0 of 160 training rows churn within 14 days"
    )
    assert decision in summary
    assert decision in printed
    assert "so scoring runs live with the shipped model health-v1" in summary
    assert 0 < run.timings["fit_seconds"] < 60

    # ingest took every event the simulation produced
    sent = {k: v for k, v in run.ingest["sent"].items() if k not in ("accounts", "people")}
    assert sum(sent.values()) > 1000
    assert run.ingest["rejected"] == {}
    assert run.ingest["accepted"] == run.ingest["sent"]

    key = local_stack.dev_api_key()
    scoring, alerts = service_url("scoring"), service_url("alerts")
    async with httpx.AsyncClient(timeout=10) as client:
        # every account was scored, and the report's bands are scoring's
        bands = {}
        for account in run.accounts:
            body = await get(client, f"{scoring}/v1/accounts/{account.account_id}/health", key)
            bands[account.account_id] = body["band"]
        assert {a: h.band for a, h in run.health.items()} == bands
        assert f"green {Counter(bands.values())['green']}" in summary

        # the report's alerts are the alerts service's, rule by rule
        listed = (await get(client, f"{alerts}/v1/alerts", key, limit=500))["alerts"]
        assert Counter(a.rule for a in run.alerts) == Counter(a["rule"] for a in listed)
        assert len(run.alerts) > 0

        # the Slack messages shown are the ones the sink recorded as delivered
        recorded = await get(client, f"{local_stack.slack_sink_url}/_sink/slack", key)
    delivered = [r for r in recorded if r["delivered"]]
    assert [r["body"] for r in run.slack if r["delivered"]] == [r["body"] for r in delivered]
    assert len(delivered) > 0
    assert json.dumps(delivered[0]["body"], ensure_ascii=False) in summary
    assert len(run.mail) == len(list((local_stack.sinks_dir / "mail").glob("*.eml"))) > 0

    # the churners of the truth are in the report, each with a trajectory
    for truth in run.truth:
        if truth.churned:
            assert run.history.get(truth.account_id), truth.account_id

    # it ends with the console running and one sign-in link per person; a link signs in
    console = service_url("console")
    links = re.findall(rf"{re.escape(console)}/sign-in/\S+", printed)
    assert len(links) == 12  # the 12 people of the simulation
    async with httpx.AsyncClient(base_url=console, timeout=10) as browser:
        confirm = await browser.get(links[0])
        assert confirm.status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', confirm.text)
        assert csrf is not None
        signed_in = await browser.post(links[0], data={"csrf": csrf.group(1)})
        assert signed_in.status_code == 303
        portfolio = await browser.get("/")
    assert portfolio.status_code == 200
    assert "Sign out" in portfolio.text  # signed in, on their portfolio
