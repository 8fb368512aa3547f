"""``python -m devstack.sinks``: both sinks in one process, programmable over HTTP, writing
what they receive to a directory."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx
import pytest

from tests.support import ROOT, eventually


async def test_the_sinks_entry_point_records_to_a_directory_and_can_be_programmed(
    tmp_path: Path,
) -> None:
    log = (tmp_path / "sinks.out").open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
        [sys.executable, "-m", "devstack.sinks", "--dir", str(tmp_path / "out")],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:

        async def started() -> dict[str, object] | None:
            text = (tmp_path / "sinks.out").read_text()
            return json.loads(text.splitlines()[0]) if text.strip() else None

        info = await eventually(started, what="the sinks to start")
        assert info is not None
        api = str(info["slack_api_url"])
        base = api.removesuffix("/api")
        async with httpx.AsyncClient() as client:
            programmed = await client.post(
                f"{base}/_sink/program",
                json={"slack": ["429:3", "channel_not_found"], "smtp": ["451"]},
            )
            assert programmed.status_code == 200
            answers = [
                await client.post(f"{api}/chat.postMessage", json={"channel": "C1", "text": "hi"})
                for _ in range(3)
            ]
            assert [a.status_code for a in answers] == [429, 200, 200]
            assert answers[0].headers["retry-after"] == "3"
            assert [a.json().get("error") for a in answers] == [
                "ratelimited",
                "channel_not_found",
                None,
            ]
            hook = await client.post(str(info["slack_webhook_url"]), json={"text": "hook"})
            assert (hook.status_code, hook.text) == (200, "ok")
            recorded = (await client.get(f"{base}/_sink/slack")).json()
            assert [r["delivered"] for r in recorded] == [False, False, True, True]
            # chat.update of the posted message; then a click on a message the sink does not have
            ts = answers[2].json()["ts"]
            update = {"channel": "C1", "ts": ts, "text": "edited"}
            updated = await client.post(f"{api}/chat.update", json=update)
            assert updated.json()["ok"] is True
            gone = await client.post(f"{api}/chat.update", json=update | {"ts": "9.9"})
            assert gone.json()["error"] == "message_not_found"
            recorded = (await client.get(f"{base}/_sink/slack")).json()
            assert [(r["kind"], r["updated"]) for r in recorded[-2:]] == [
                ("update", True),
                ("update", False),
            ]
            click = {"ts": "9.9", "action_id": "ack", "user_id": "U1", "url": "http://x"}
            missing = await client.post(f"{base}/_sink/click", json=click | {"signing_secret": "s"})
            assert (missing.status_code, missing.json()["error"]) == (404, "no message 9.9")
            incomplete = await client.post(f"{base}/_sink/click", json=click)
            assert (incomplete.status_code, incomplete.json()["error"]) == (
                400,
                "missing field 'signing_secret'",
            )

        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = "a@example.com", "b@example.com", "hello"
        mail.set_content("body")
        port = int(str(info["smtp_port"]))
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await aiosmtplib.send(mail, hostname="127.0.0.1", port=port, start_tls=False)
        assert refused.value.code == 451
        await aiosmtplib.send(mail, hostname="127.0.0.1", port=port, start_tls=False)

        lines = (tmp_path / "out" / "slack.jsonl").read_text().splitlines()
        texts = [json.loads(line)["body"]["text"] for line in lines]
        assert texts == ["hi", "hi", "hi", "hook", "edited", "edited"]
        [eml] = sorted((tmp_path / "out" / "mail").glob("*.eml"))
        assert b"Subject: hello" in eml.read_bytes()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 10)
        log.close()
    assert code == 0
