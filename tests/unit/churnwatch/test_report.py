"""The demo report on a hand-made run: which alerts count, the figures it shows, and that the
HTML stands alone."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

from churnwatch import collect, report
from churnwatch.collect import AlertRow, Health, Mail, Person, Point, RunData, Truth

START = date(2026, 7, 1)


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


def alert(
    id: int, account: str, rule: str, started: datetime, resolved: datetime | None = None
) -> AlertRow:
    return AlertRow(
        id=id,
        account_id=account,
        rule=rule,
        motion="adoption",
        severity="warning",
        state="resolved" if resolved else "firing",
        summary=f"{rule} on {account}",
        started_at=started,
        notified_at=started,
        resolved_at=resolved,
        escalated_at=None,
        recipients=["p_maria"],
        path=["CSM → p_maria (Maria)"],
    )


EMAIL = (
    "From: churnwatch <alerts@churnwatch.invalid>\r\nTo: maria@example.com\r\n"
    "Subject: [churnwatch] Your portfolio on 2026-08-01\r\nMIME-Version: 1.0\r\n"
    'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable'
    "\r\n\r\nHello Maria =E2=80=94 here is your portfolio.\r\n"
)


def run_data() -> RunData:
    """Three accounts; onboarding ends on July 15.

    - ``gone`` churns Aug 20: no_activity from Jul 10 (still open on the 15th → counts from
      then: 36 days ahead) and band_worsened Aug 10 (10 days ahead);
    - ``fine`` never churns: a band_worsened during onboarding, over by Jul 12 (never counts),
      and a no_activity on Aug 1 (a false alarm);
    - ``quiet`` churns Aug 25 with no alert at all."""
    return RunData(
        seed=1,
        days=60,
        start=START,
        speed=43_200,
        intensity=1.0,
        collected_at=at(8, 30),
        people=[Person("p_maria", "Maria Lopez", "csm", "Europe/Madrid")],
        accounts=[
            collect.Account(a, a.title(), "growth", 10, 5000.0, None, "p_maria", None, None)
            for a in ("gone", "fine", "quiet")
        ],
        truth=[
            Truth("gone", "silent_drop_off", True, date(2026, 8, 20), None),
            Truth("fine", "healthy", False, None, None),
            Truth("quiet", "slow_decay", True, date(2026, 8, 25), None),
        ],
        rules=[("band_worsened", "adoption"), ("no_activity", "adoption")],
        bands=[("red", 0, 40), ("yellow", 40, 70), ("green", 70, 100)],
        onboarding_days=14,
        health={
            "gone": Health(at(8, 30), 5.0, "red", ["no activity for 30 days"]),
            "fine": Health(at(8, 30), 92.0, "green", []),
            "quiet": Health(at(8, 30), 20.0, "red", ["usage down 80%"]),
        },
        history={
            "gone": [Point(at(7, 2), 80.0, "green"), Point(at(8, 10), 30.0, "red")],
            "fine": [Point(at(7, 2), 90.0, "green")],
        },
        alerts=[
            alert(1, "gone", "no_activity", at(7, 10)),
            alert(2, "fine", "band_worsened", at(7, 5), resolved=at(7, 12)),
            alert(3, "gone", "band_worsened", at(8, 10)),
            alert(4, "fine", "no_activity", at(8, 1)),
        ],
        slack=[
            {
                "kind": "api",
                "path": "/api/chat.postMessage",
                "channel": "U1",
                "delivered": False,
                "body": {"text": "refused one"},
            },
            {
                "kind": "api",
                "path": "/api/chat.postMessage",
                "channel": "U1",
                "delivered": True,
                "body": {
                    "text": "Gone: 2 alerts",
                    "blocks": [
                        {
                            "type": "header",
                            "text": {"type": "plain_text", "text": "Gone: 2 alerts"},
                        },
                        {
                            "type": "section",
                            "fields": [
                                {"type": "mrkdwn", "text": "*ARR*\n$120k"},
                                {"type": "mrkdwn", "text": "*Renewal*\n2027-01-15 (in 43 days)"},
                            ],
                        },
                    ],
                },
            },
        ],
        mail=[
            Mail(
                "/sinks/mail/000001.eml",
                "[churnwatch] Your portfolio on 2026-08-01",
                ["maria@example.com"],
                EMAIL,
            )
        ],
        ingest={
            "sent": {"native": 100, "accounts": 3},
            "accepted": {"native": 100, "accounts": 3},
            "rejected": {},
        },
        timings={"drive_seconds": 120.0},
    )


def test_alerts_over_before_onboarding_ended_do_not_count_and_open_ones_count_from_then() -> None:
    counted, begin = report.counted_alerts(run_data())

    assert begin == datetime(2026, 7, 15, tzinfo=UTC)
    assert [(c.alert.id, c.at) for c in counted] == [
        (1, begin),
        (3, at(8, 10)),
        (4, at(8, 1)),
    ]


def test_rule_figures_come_from_the_counted_alerts() -> None:
    """no_activity: alerted gone and fine → precision ½; caught gone (36 days ahead) of two
    churners → recall ½. band_worsened: only gone counts → precision 1, recall ½, 10 days."""
    scores = {s.rule: s for s in report.figures(run_data()).scores}

    assert scores["no_activity"].precision == 0.5
    assert scores["no_activity"].recall == 0.5
    assert scores["no_activity"].lead_days == (36.0,)
    assert scores["band_worsened"].precision == 1.0
    assert scores["band_worsened"].lead_days == (10.0,)
    assert scores["any risk alert"].median_lead_days == 36


def test_the_html_stands_alone_and_shows_the_figures() -> None:
    page = report.render_html(run_data())

    assert "<script" not in page
    assert not re.search(r"""(src|href)=['"]?https?:""", page)
    assert "<link" not in page
    assert page.count("<svg") >= 4  # band bar, timeline, trajectories
    assert "How well each rule warned" in page
    assert "50%" in page  # no_activity's precision
    assert "Gone: 2 alerts" in page  # the delivered Slack message, not the refused one
    assert "<b>ARR</b> $120k · <b>Renewal</b> 2027-01-15 (in 43 days)" in page  # its facts
    assert "refused one" not in page
    assert "Hello Maria — here is your portfolio." in page  # the email's text, decoded


def test_the_summary_shows_slack_messages_and_the_email_as_received() -> None:
    text = report.summary(run_data())

    assert '{"text": "Gone: 2 alerts", "blocks": [' in text
    assert "Subject: [churnwatch] Your portfolio on 2026-08-01" in text
    assert "Content-Transfer-Encoding: quoted-printable" in text
    assert "green 1 · yellow 0 · red 2" in text


def test_a_saved_run_renders_again(tmp_path: Path) -> None:
    path = tmp_path / "demo-run.json"
    collect.save(run_data(), path)

    assert report.main([str(path), "--out", str(tmp_path / "again.html")]) == 0
    assert (tmp_path / "again.html").read_text() == report.render_html(collect.load(path))


def test_alerts_per_person_per_week_count_every_week_from_monday_including_empty_ones() -> None:
    """Counted: Jul 15 (week of Jul 13), Aug 1 (week of Jul 27), Aug 10 (week of Aug 10)."""
    weeks, weekly = report.per_person_week(report.figures(run_data()))

    assert weeks == [
        date(2026, 7, 13),
        date(2026, 7, 20),
        date(2026, 7, 27),
        date(2026, 8, 3),
        date(2026, 8, 10),
    ]
    assert weekly == [("p_maria", [1, 0, 1, 0, 1])]
    text = report.summary(run_data())
    assert "Alerts per person per week" in text
    assert "Alerts per person per week" in report.render_html(run_data())
