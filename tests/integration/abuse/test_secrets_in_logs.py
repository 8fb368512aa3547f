"""No secret a service was given — API keys, the link signing secret, the Zendesk signing
secret, the Slack bot token, the database password — appears in any line it logs, at DEBUG,
after it was used every way it can be: good, unknown and wrong-scoped keys in every place a
key is presented, signed webhooks, Slack deliveries, and a failed start-up against a database
that does not answer (error paths are where a DSN or a header usually leaks)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from chaos.stack import Deployment, Service
from devstack import process
from services.ingest import zendesk


async def exercise(deployment: Deployment, http: httpx.AsyncClient) -> None:
    keys = deployment.secrets.keys
    ingest, scoring, alerts = (deployment.service(n).url for n in ("ingest", "scoring", "alerts"))
    event = {
        "event_type": "usage",
        "account_id": "secrets-acct",
        "occurred_at": datetime.now(UTC).isoformat(),
        "user_id": "u",
        "type": "login",
    }
    for key in (keys["events"], keys["read"], "cw_unknown_key_for_the_log_test"):
        bearer = {"Authorization": f"Bearer {key}"}
        await http.post(f"{ingest}/v1/events", json=[event, {"broken": True}], headers=bearer)
        await http.post(f"{ingest}/v1/events", json=event, headers={"X-API-Key": key})
        basic = base64.b64encode(f"{key}:".encode()).decode()
        track = {"userId": "u", "event": "Login", "context": {"groupId": "secrets-acct"}}
        await http.post(
            f"{ingest}/v1/track", json=track, headers={"Authorization": f"Basic {basic}"}
        )
        await http.post(f"{ingest}/v1/batch", json={"writeKey": key, "batch": [track]})
        await http.get(f"{scoring}/v1/accounts/secrets-acct/health", headers=bearer)
        await http.get(f"{scoring}/v1/portfolio", params={"owner": "p"}, headers=bearer)
        await http.get(f"{alerts}/v1/alerts", headers=bearer)
        await http.post(f"{alerts}/v1/silences", json={"matchers": []}, headers=bearer)
    body = json.dumps({"type": "zen:event-type:ticket.created", "id": "x", "detail": {}}).encode()
    timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    secret = deployment.secrets.zendesk_signing_secret.encode()
    await http.post(
        f"{ingest}/v1/webhooks/zendesk",
        content=body,
        headers={
            "Authorization": f"Bearer {keys['webhooks']}",
            "Content-Type": "application/json",
            zendesk.SIGNATURE_HEADER: zendesk.signature(secret, timestamp, body),
            zendesk.TIMESTAMP_HEADER: timestamp,
        },
    )


async def failed_start(deployment: Deployment, name: str, home: Path) -> Service:
    """The service started against a database that does not answer: it logs why and exits."""
    url = urlsplit(deployment.database_url)
    nobody = url.netloc.replace(f":{url.port}", f":{process.free_port()}")
    unreachable = url._replace(netloc=nobody).geturl()
    service = Service(name, {**deployment.env(name), "DATABASE_URL": unreachable}, home)
    with pytest.raises(RuntimeError):
        await service.start(ready_timeout_s=60)
    service.kill()
    return service


async def test_no_secret_appears_in_any_log_line(
    deployment: Deployment, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    await exercise(deployment, http)
    failed = [await failed_start(deployment, name, tmp_path) for name in ("scoring", "alerts")]
    logs = {s.label: s.logs() for s in deployment.all_services()}
    logs |= {f"{s.label} (failed start)": s.logs() for s in failed}
    assert all(logs.values())
    assert any("Traceback" in text or '"exc"' in text for text in logs.values())  # errors logged
    leaks = [
        f"{secret} in {label}"
        for label, text in logs.items()
        for secret, value in deployment.secrets.values().items()
        if value in text
    ]
    assert leaks == [], leaks
    for service in failed:  # why it could not start, with the traceback, was logged
        assert "Application startup failed" in logs[f"{service.label} (failed start)"]
        assert "Traceback" in logs[f"{service.label} (failed start)"]
