"""What the CLI reads from files before anything is sent, and the demo's service settings."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

import pytest

from churnwatch import cli, demo


def test_jsonl_rows_drop_what_ingest_sets_and_name_lines_that_are_not_objects(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"event_type":"usage","account_id":"a","received_at":"x","source":"native"}\n\nnope\n[1]\n'
    )
    rows = list(cli.event_rows(path))

    assert [r.line for r in rows] == [1, 3, 4]
    assert rows[0].body is not None
    assert json.loads(rows[0].body) == {"event_type": "usage", "account_id": "a"}
    assert rows[1].problem is not None
    assert rows[1].problem.startswith("not JSON")
    assert rows[2].problem == "not a JSON object"


def test_csv_rows_become_typed_objects_and_a_bad_number_names_its_field(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "event_type,event_id,account_id,occurred_at,user_id,type,quantity,kind,score\n"
        "usage,e1,a,2026-07-01T10:00:00Z,u1,session,12.5,,\n"
        "survey,e2,a,2026-07-01T11:00:00Z,u1,,,nps,9\n"
        "survey,e3,a,2026-07-01T11:00:00Z,u1,,,nps,nine\n"
    )
    rows = list(cli.event_rows(path))

    assert rows[0].body is not None
    assert json.loads(rows[0].body)["quantity"] == 12.5
    assert rows[1].body is not None
    assert json.loads(rows[1].body) == {
        "event_type": "survey",
        "event_id": "e2",
        "account_id": "a",
        "occurred_at": "2026-07-01T11:00:00Z",
        "user_id": "u1",
        "kind": "nps",
        "score": 9,
    }
    assert (rows[2].line, rows[2].problem) == (4, "score: 'nine' is not a whole number")
    assert cli.count_lines(path) == 3


def test_a_csv_with_unknown_columns_is_refused_as_a_whole(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("event_type,colour\nusage,blue\n")
    with pytest.raises(cli.InputError, match=r"events\.csv:1: .*unknown: colour"):
        list(cli.event_rows(path))


def test_batches_respect_the_count_and_the_body_size() -> None:
    rows = (cli.Row(n, b"x" * 100) for n in range(10))
    assert [len(b) for b in cli.batches(rows, 4, 10_000)] == [4, 4, 2]
    rows = (cli.Row(n, b"x" * 100) for n in range(10))
    assert [len(b) for b in cli.batches(rows, 100, 350)] == [3, 3, 3, 1]


def test_without_an_api_key_the_cli_says_which_variable_to_set() -> None:
    err = io.StringIO()
    assert cli.main(["alerts", "list"], env={}, err=err) == cli.BAD_INPUT
    assert "CHURNWATCH_API_KEY" in err.getvalue()


def test_a_missing_import_file_is_a_bad_input(tmp_path: Path) -> None:
    err = io.StringIO()
    code = cli.main(
        ["accounts", "import", str(tmp_path / "nope.csv")],
        env={"CHURNWATCH_API_KEY": "k", "INGEST_URL": "http://127.0.0.1:9"},
        err=err,
    )
    assert code == cli.BAD_INPUT
    assert "nope.csv" in err.getvalue()


def test_the_demo_runs_its_services_on_one_scaled_clock_with_fitting_tolerances() -> None:
    options = demo.Options(days=120, history_days=20, drive_seconds=240.0, start=date(2026, 7, 1))
    settings = demo.run_settings(options, "demo1.", anchor=1_800_000_000.0)

    # the 100 live days (after 20 imported as history) pass in 240 s, from the history's end
    assert options.speed == 36_000
    assert settings["CLOCK_SIM_START"] == "2026-07-21T00:00:00Z"
    assert settings["CLOCK_REAL_ANCHOR"] == "1800000000.000"
    assert float(settings["CLOCK_SPEED"]) == 36_000
    # a Zendesk signature stays fresh for a minute of real time, whatever the speed
    assert float(settings["INGEST_ZENDESK_MAX_SIGNATURE_AGE_SECONDS"]) == 60 * 36_000
    assert settings["TOPIC_PREFIX"] == "demo1."
    assert settings["SCORING_CONSUMER_GROUP"] == "demo1.scoring"
    assert settings["ALERTS_CONSUMER_GROUP"] == "demo1.alerts"


def test_demo_keep_comes_from_the_flag_or_demo_keep() -> None:
    assert demo.parse([], {}).keep is True
    assert demo.parse([], {"DEMO_KEEP": "0"}).keep is False
    assert demo.parse(["--keep"], {"DEMO_KEEP": "0"}).keep is True
    assert demo.parse(["--no-keep"], {}).keep is False
    assert demo.parse(["--days", "30"], {}).history_days == 15
    assert demo.parse([], {}).history_days == 42
