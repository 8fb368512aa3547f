import csv
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from churnwatch import files
from churnwatch.files import FormatError
from churnwatch.simulator import GroundTruth, Simulation, simulate
from shared.events import AccountRecord, AccountTeam, PersonRecord, UsageEvent

START = date(2026, 7, 1)
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def small_run() -> Simulation:
    return simulate(4, accounts=25, days=35, start=START)


def header(path: Path) -> list[str]:
    with path.open(newline="") as source:
        return next(csv.reader(source))


# -- events ------------------------------------------------------------------------------------


def test_events_round_trip_through_jsonl(small_run: Simulation, tmp_path: Path) -> None:
    written = [item.event for item in small_run.events()]
    path = tmp_path / "events.jsonl"
    assert files.write_events(path, written) == len(written)
    assert list(files.read_events(path)) == written


def test_each_jsonl_line_is_one_v1_event_on_the_wire(small_run: Simulation, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    files.write_events(path, (item.event for item in small_run.events()))
    first = json.loads(path.read_text().splitlines()[0])
    assert first["event_type"] in ("usage", "ticket", "survey")
    assert first["schema_version"] == 1
    assert {"event_id", "account_id", "occurred_at", "received_at", "source"} <= set(first)


def login(event_id: str) -> UsageEvent:
    return UsageEvent(
        event_id=event_id,
        account_id="acme",
        occurred_at=NOW,
        received_at=NOW,
        source="native",
        user_id="u1",
        type="login",
    )


def test_reading_jsonl_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    files.write_events(path, [login("e1")])
    path.write_bytes(b"\n" + path.read_bytes() + b"\n  \n")
    assert list(files.read_events(path)) == [login("e1")]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("not json", "malformed"),
        ('{"event_type": "usage"}', "missing field(s) event_id, account_id, occurred_at, user_id"),
        ('{"event_type": "sky"}', "event_type: 'sky' (one of usage, ticket, survey)"),
        (
            '{"event_type": "survey", "event_id": "e", "account_id": "a", "occurred_at": '
            '"2026-01-01T00:00:00Z", "user_id": "u", "kind": "nps", "score": 11}',
            "$.score",
        ),
    ],
)
def test_a_bad_jsonl_line_is_reported_with_its_line_number(
    tmp_path: Path, bad: str, reason: str
) -> None:
    path = tmp_path / "events.jsonl"
    files.write_events(path, [login("e1")])
    path.write_bytes(path.read_bytes() + bad.encode() + b"\n")
    with pytest.raises(FormatError) as raised:
        list(files.read_events(path))
    assert raised.value.line == 2
    assert reason in raised.value.reason.lower()


# -- accounts and people -----------------------------------------------------------------------


def test_accounts_round_trip_through_csv(small_run: Simulation, tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    assert files.write_accounts(path, small_run.accounts) == len(small_run.accounts)
    assert header(path) == list(files.ACCOUNT_COLUMNS)
    assert files.read_accounts(path, now=NOW, source="crm-sync") == list(small_run.accounts)


def test_an_account_csv_may_leave_out_optional_columns_and_cells(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("account_id,name,seats,csm\nacme,Acme Inc,,p_maria\n")
    assert files.read_accounts(path, now=NOW) == [
        AccountRecord(
            account_id="acme",
            name="Acme Inc",
            team=AccountTeam(csm="p_maria"),
            updated_at=NOW,
            source=files.IMPORT_SOURCE,
        )
    ]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("acme,Acme,12,mature\nbeta,Beta,many,mature", "invalid literal for int"),
        ("acme,Acme,12,mature\nbeta,Beta,12,dormant", "unknown lifecycle stage"),
        ("acme,Acme,12,mature\nbeta,Beta,-3,mature", "seats"),
    ],
)
def test_a_bad_account_row_is_reported_with_its_line(tmp_path: Path, row: str, reason: str) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text(f"account_id,name,seats,lifecycle_stage\n{row}\n")
    with pytest.raises(FormatError) as raised:
        files.read_accounts(path, now=NOW)
    assert raised.value.line == 3
    assert reason in raised.value.reason


def test_an_account_csv_without_its_key_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("name,seats\nAcme,3\n")
    with pytest.raises(FormatError, match="missing column"):
        files.read_accounts(path, now=NOW)


def test_people_round_trip_through_csv(small_run: Simulation, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    assert files.write_people(path, small_run.people) == len(small_run.people)
    assert header(path) == list(files.PEOPLE_COLUMNS)
    assert files.read_people(path, now=NOW, source="hr-sync") == list(small_run.people)


def test_an_inactive_person_stays_inactive_and_defaults_fill_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("person_id,name,active\np_lucas,Lucas Ferreira,false\n")
    assert files.read_people(path, now=NOW) == [
        PersonRecord(
            person_id="p_lucas",
            name="Lucas Ferreira",
            active=False,
            updated_at=NOW,
            source=files.IMPORT_SOURCE,
        )
    ]


def test_a_person_with_an_unknown_time_zone_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("person_id,name,time_zone\np_x,X,Mars/Olympus\n")
    with pytest.raises(FormatError, match="unknown time zone") as raised:
        files.read_people(path, now=NOW)
    assert raised.value.line == 2


# -- labels and organizations ------------------------------------------------------------------


def test_labels_round_trip_with_exactly_the_documented_columns(
    small_run: Simulation, tmp_path: Path
) -> None:
    path = tmp_path / "labels.csv"
    assert files.write_labels(path, small_run.truth) == len(small_run.truth)
    assert header(path) == ["account_id", "churned", "churn_date", "story", "opportunity_date"]
    assert files.read_labels(path) == list(small_run.truth)


def test_labels_from_elsewhere_need_no_story(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("account_id,churned,churn_date\nacme,true,2026-09-30\nbeta,false,\n")
    assert files.read_labels(path) == [
        GroundTruth("acme", "", churned=True, churn_date=date(2026, 9, 30), opportunity_date=None),
        GroundTruth("beta", "", churned=False, churn_date=None, opportunity_date=None),
    ]


def test_a_churned_label_without_a_churn_date_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("account_id,churned,churn_date\nacme,true,\n")
    with pytest.raises(FormatError, match="churn_date"):
        files.read_labels(path)


def test_zendesk_organizations_round_trip(small_run: Simulation, tmp_path: Path) -> None:
    path = tmp_path / "zendesk-organizations.csv"
    files.write_organizations(path, small_run.zendesk_organizations)
    assert files.read_organizations(path) == dict(small_run.zendesk_organizations)


# -- a whole run -------------------------------------------------------------------------------


def test_write_simulation_writes_every_file_of_a_run(small_run: Simulation, tmp_path: Path) -> None:
    written = files.write_simulation(small_run, tmp_path / "run")
    days = list(small_run)
    assert written.events == sum(len(d.events) for d in days)
    assert written.account_changes == sum(len(d.accounts) for d in days[1:])
    assert written.people_changes == sum(len(d.people) for d in days[1:])
    assert sorted(p.name for p in written.directory.iterdir()) == [
        "account-changes.csv",
        "accounts.csv",
        "events.jsonl",
        "labels.csv",
        "people-changes.csv",
        "people.csv",
        "zendesk-organizations.csv",
    ]
    assert list(files.read_events(written.events_path)) == [
        item.event for d in days for item in d.events
    ]
    assert files.read_labels(written.directory / "labels.csv") == list(small_run.truth)


def test_the_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    first = files.write_simulation(simulate(8, accounts=20, days=32, start=START), tmp_path / "a")
    second = files.write_simulation(simulate(8, accounts=20, days=32, start=START), tmp_path / "b")
    for path in sorted(first.directory.iterdir()):
        assert path.read_bytes() == (second.directory / path.name).read_bytes(), path.name


def test_csv_events_are_read_with_received_at_and_source_filled_in(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "event_type,event_id,account_id,occurred_at,user_id,type,quantity\n"
        "usage,e1,acme,2026-07-01T09:00:00Z,u1,login,2\n"
    )
    [event] = files.read_events(path)
    assert isinstance(event, UsageEvent)
    assert (event.event_id, event.account_id, event.quantity) == ("e1", "acme", 2.0)
    assert event.received_at == event.occurred_at
    assert event.source == files.READ_SOURCE


def test_a_csv_event_missing_fields_names_them_all_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "event_type,event_id,account_id,occurred_at,ticket_id,priority\n"
        "ticket,e1,acme,2026-07-01T09:00:00Z,t1,high\n"
    )
    with pytest.raises(FormatError) as raised:
        list(files.read_events(path))
    assert raised.value.line == 2
    assert raised.value.reason == "ticket event: missing field(s) action, status"


def test_a_csv_events_file_with_an_unknown_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("event_type,colour\nusage,red\n")
    with pytest.raises(FormatError, match="unknown: colour"):
        list(files.read_events(path))


def test_labels_may_say_until_when_an_account_is_observed(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "account_id,churned,churn_date,observed_until\na,false,,2026-08-31\nb,true,2026-08-01,\n"
    )
    assert [t.account_id for t in files.read_labels(path)] == ["a", "b"]
    assert files.read_observed_until(path) == {"a": date(2026, 8, 31)}
    path.write_text("account_id,churned,observed_until\na,false,soon\n")
    with pytest.raises(FormatError, match="observed_until: 'soon' is not a date"):
        files.read_observed_until(path)


def test_with_an_error_list_bad_lines_are_collected_and_the_good_ones_read(
    tmp_path: Path,
) -> None:
    events = tmp_path / "events.csv"
    events.write_text(
        "event_type,event_id,account_id,occurred_at,user_id,type\n"
        "usage,e1,acme,2026-07-01T09:00:00Z,u1,login\n"
        "usage,e2,acme,2026-07-01T09:00:00Z,,\n"
        "usage,e3,acme,2026-07-01T10:00:00Z,u1,login\n"
    )
    errors: list[FormatError] = []
    assert [e.event_id for e in files.read_events(events, errors=errors)] == ["e1", "e3"]
    assert [(e.line, e.reason) for e in errors] == [
        (3, "usage event: missing field(s) user_id, type")
    ]
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account_id,name,seats\na1,A,3\na2,B,many\n")
    errors = []
    now = datetime(2026, 7, 1, tzinfo=UTC)
    read = files.read_accounts(accounts, now=now, errors=errors)
    assert [r.account_id for r in read] == ["a1"]
    assert [e.line for e in errors] == [3]


def test_events_in_any_order_are_read_back_in_time_order_through_month_files(
    tmp_path: Path,
) -> None:
    stamps = ["2026-08-03T10:00:00Z", "2026-07-09T10:00:00Z", "2026-08-01T09:00:00Z"]
    path = tmp_path / "events.csv"
    path.write_text(
        "event_type,event_id,account_id,occurred_at,user_id,type\n"
        + "".join(f"usage,e{i},acme,{at},u1,login\n" for i, at in enumerate(stamps))
    )
    spill = tmp_path / "spill"
    spill.mkdir()
    ordered = list(files.read_events_in_time_order(path, spill))
    assert [e.event_id for e in ordered] == ["e1", "e2", "e0"]
    assert sorted(p.name for p in spill.iterdir()) == ["2026-07.jsonl", "2026-08.jsonl"]


def test_a_bad_label_row_names_every_bad_field_at_once(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("account_id,churned,churn_date\n,perhaps,2026-13-01\n")
    with pytest.raises(FormatError) as raised:
        files.read_labels(path)
    assert raised.value.line == 2
    assert raised.value.reason == (
        "account_id is empty; churned: not a boolean: 'perhaps' (true or false); "
        "churn_date: '2026-13-01' is not a date (2026-07-01)"
    )
