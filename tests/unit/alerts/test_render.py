"""Slack Block Kit stays within Slack's limits: long content is cut with a link, never
rejected."""

from __future__ import annotations

import json
from typing import Any

from services.alerts import render

LINKS = {
    "brief": "https://scoring.example.com/brief",
    "view": "https://alerts.example.com/links/view-token",
    "ack": "https://alerts.example.com/links/ack",
    "snooze_1d": "https://alerts.example.com/links/s1",
    "snooze_1w": "https://alerts.example.com/links/s7",
}


def payload(alerts: int, summary: str, reasons: int = 3) -> dict[str, Any]:
    return {
        "kind": "alert",
        "account": {"id": "acme", "name": "Acme " * 60},
        "owner": {"name": "Maria", "person_id": "p_maria"},
        "severity": "critical",
        "health": {"score": 30.0, "band": "red", "before_score": 80.0, "before_band": "green"},
        "reasons": [f"reason {i} " + "x" * 500 for i in range(reasons)],
        "alerts": [
            {"id": i, "rule": f"rule_{i}", "severity": "warning", "summary": summary}
            for i in range(alerts)
        ],
        "route_path": ["CSM → p_maria (Maria)"],
        "escalation_path": [],
        "links": LINKS,
    }


def check_limits(message: dict[str, Any]) -> None:
    assert len(message["text"]) <= render.TEXT_LIMIT
    assert len(message["blocks"]) <= render.MAX_BLOCKS
    for block in message["blocks"]:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= render.SECTION_LIMIT
        for field in block.get("fields", []):
            assert len(field["text"]) <= render.FIELD_LIMIT
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= render.HEADER_LIMIT
        for element in block.get("elements", []):
            if element.get("type") == "button":
                assert len(element["text"]["text"]) <= render.BUTTON_LIMIT


def test_a_normal_message_has_the_facts_reasons_and_buttons() -> None:
    message = render.slack_message(payload(1, "score dropped 24 points", reasons=1))
    check_limits(message)
    text = json.dumps(message, ensure_ascii=False)
    assert "80 (green) → 30 (red)" in text
    assert "Maria" in text
    buttons = [
        e["text"]["text"]
        for b in message["blocks"]
        for e in b.get("elements", [])
        if e.get("type") == "button"
    ]
    assert buttons == ["Acknowledge", "Snooze 1 day", "Snooze 1 week", "Open brief"]
    assert "Rule 0" in text  # a rule without a title in words: its name, readable


def test_a_huge_summary_is_cut_with_a_link_to_the_full_view() -> None:
    message = render.slack_message(payload(1, "y" * 10_000))
    check_limits(message)
    assert any(
        b["text"]["text"].endswith(f"… <{LINKS['view']}|more>")
        for b in message["blocks"]
        if b["type"] == "section" and "text" in b
    )


def test_hundreds_of_alerts_stay_within_fifty_blocks() -> None:
    message = render.slack_message(payload(400, "z" * 900))
    check_limits(message)
    assert any(
        "more — <" in b["text"]["text"]
        for b in message["blocks"]
        if b["type"] == "section" and "text" in b
    )


def test_fit_cuts_at_the_limit_and_leaves_short_text_alone() -> None:
    assert render.fit("short", 10) == "short"
    cut = render.fit("a" * 100, 50, "https://x")
    assert len(cut) == 50
    assert cut.endswith("… <https://x|more>")
