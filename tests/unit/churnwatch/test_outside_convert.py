"""The outside-data converters (churnwatch/outside): small hand-made sources in the real formats,
read back with churnwatch's own readers."""

from __future__ import annotations

import gzip
import itertools
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from churnwatch import files
from churnwatch.files import FormatError
from churnwatch.outside import cdnow, common, crm5, run
from shared.events import UsageEvent

NOW = datetime(2030, 1, 1, tzinfo=UTC)

# ---------------------------------------------------------------------------------------------
# CDNOW

CDNOW_HEADER = " customer_id  date number_of_cds  dollar_value\r\n"


def _cdnow(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "CDNOW_sample.txt"
    path.write_text(CDNOW_HEADER + "".join(f" {line}\r\n" for line in lines), encoding="ascii")
    return path


def test_cdnow_repeat_buyers_become_accounts_and_their_first_lapse_of_180_days_is_churn(
    tmp_path: Path,
) -> None:
    source = _cdnow(
        tmp_path,
        [
            "00001 19970101  1   11.77",  # once: left out
            "00002 19970112  1   12.00",  # repeat within 90 days, last 1997-03-01: churns
            "00002 19970112  5   77.00",
            "00002 19970301  2   20.00",
            "00003 19970102  2   20.76",  # gaps of 87, 174 and 171 days: never lapses
            "00003 19970330  2   20.76",
            "00003 19970920  1    9.99",
            "00003 19980310  1    9.99",
            "00004 19970105  1   10.00",  # second purchase after 100 days: left out
            "00004 19970415  1   10.00",
            "00005 19970110  1   10.00",  # two lines on one day only: left out
            "00005 19970110  3   30.00",
            "00006 19970105  1   10.00",  # lapses after 1997-02-01, won back in December: churned
            "00006 19970201  1   10.00",
            "00006 19971201  1   10.00",
            "00008 19970106  1   10.00",  # buys again on the 180th day (no lapse), then lapses
            "00008 19970206  1   10.00",
            "00008 19970805  1   10.00",
        ],
    )
    out = tmp_path / "out"
    summary = cdnow.convert(source, out)

    assert (summary.accounts, summary.churners, summary.events) == (4, 3, 13)
    assert summary.definition["churn"] == "first lapse"
    events = list(files.read_events(out / common.EVENT_FILE))
    assert all(isinstance(e, UsageEvent) for e in events)
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    first = next(e for e in events if e.account_id == "cdnow-00002")
    assert isinstance(first, UsageEvent)
    assert (first.account_id, first.user_id, first.type, first.feature, first.quantity) == (
        "cdnow-00002",
        "buyer",
        "purchase",
        None,
        1.0,
    )
    assert first.occurred_at == datetime(1997, 1, 12, 12, tzinfo=UTC)
    assert len({e.event_id for e in events}) == 13  # two purchases on one day stay two events
    # a customer won back keeps its later purchases (the shop saw them) ...
    assert max(e.occurred_at for e in events if e.account_id == "cdnow-00006") == datetime(
        1997, 12, 1, 12, tzinfo=UTC
    )

    labels = {t.account_id: t for t in files.read_labels(out / common.LABELS_FILE)}
    assert labels["cdnow-00002"].churn_date == date(1997, 8, 28)  # 1997-03-01 + 180 days
    assert not labels["cdnow-00003"].churned
    assert labels["cdnow-00006"].churn_date == date(1997, 7, 31)  # 1997-02-01 + 180: first lapse
    assert labels["cdnow-00008"].churn_date == date(1998, 2, 1)  # 1997-08-05 + 180
    observed = files.read_observed_until(out / common.LABELS_FILE)
    # ... but is never judged after its first lapse
    assert observed == {
        "cdnow-00002": date(1997, 8, 27),
        "cdnow-00003": date(1998, 6, 30),
        "cdnow-00006": date(1997, 7, 30),
        "cdnow-00008": date(1998, 1, 31),
    }

    records = files.read_accounts(out / common.ACCOUNTS_FILE, now=NOW)
    assert [r.account_id for r in records] == [
        "cdnow-00002",
        "cdnow-00003",
        "cdnow-00006",
        "cdnow-00008",
    ]
    assert records[0].updated_at == datetime(1997, 1, 12, tzinfo=UTC)
    people = {p.person_id for p in files.read_people(out / common.PEOPLE_FILE, now=NOW)}
    assert all(r.team.csm in people for r in records)


def test_cdnow_a_lapse_that_ends_after_the_data_is_not_churn(tmp_path: Path) -> None:
    source = _cdnow(
        tmp_path,
        [
            "00007 19970110  1   10.00",
            "00007 19970201  1   10.00",
            "00007 19970720  1   10.00",  # 169 days after the one before: no lapse
            "00007 19980102  1   10.00",  # 166 days after the one before: no lapse
        ],
    )
    summary = cdnow.convert(source, tmp_path / "out")
    # 1998-01-02 + 180 days = 1998-07-01, one day after the data's end
    assert (summary.accounts, summary.churners) == (1, 0)
    (label,) = files.read_labels(tmp_path / "out" / common.LABELS_FILE)
    assert label.churn_date is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("00001 1997-01-01  1   11.77", "date: '1997-01-01' is not YYYYMMDD"),
        ("00001 19970101  one   11.77", "number_of_cds: 'one' is not a count"),
        ("00001 19970101  1", "expected 4 fields, found 3"),
    ],
)
def test_cdnow_a_bad_line_is_refused_with_its_file_and_line(
    tmp_path: Path, line: str, reason: str
) -> None:
    source = _cdnow(tmp_path, ["00002 19970112  1   12.00", line])
    with pytest.raises(FormatError) as caught:
        cdnow.convert(source, tmp_path / "out")
    assert (caught.value.path, caught.value.line, caught.value.reason) == (source, 3, reason)


# ---------------------------------------------------------------------------------------------
# fightchurn crm5

SUB_HEADER = "account_id,product,start_date,end_date,mrr,quantity,units,bill_period_months,discount"


def _periods(account: int, plan: str, seats: int, mrr: float, edges: list[str]) -> list[str]:
    rows = []
    for start, end in itertools.pairwise(edges):
        rows += [
            f"{account},{plan},{start},{end},{mrr},{seats},users,1,0",
            f"{account},meetings,{start},{end},300,5000,schedule_meeting,1,0",
            f"{account},search_unlimited,{start},{end},200,5000,search,1,0",
        ]
    return rows


def _crm5(tmp_path: Path, subscriptions: list[str], events: list[str]) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    meta = {"model": "crm5", "start_date": "2022-01-01", "end_date": "2022-06-30"}
    (source / "meta.json").write_text(json.dumps(meta))
    accounts = sorted({int(row.split(",")[0]) for row in subscriptions})
    (source / "account.csv").write_text(
        "id,channel,date_of_birth,country\n"
        + "".join(f"{a},web,2000-01-01,CA\n" for a in [*accounts, 99])
    )
    (source / "subscription.csv").write_text(SUB_HEADER + "\n" + "\n".join(subscriptions) + "\n")
    (source / "event_type.csv").write_text(
        "event_type_id,event_type_name\n0,search\n4,win_opportunity\n11,add_contact\n"
    )
    with gzip.open(source / "event.csv.gz", "wt") as out:
        out.write("account_id,event_time,event_type_id,user_id,event_value\n")
        out.write("".join(f"{line}\n" for line in events))
    return source


def test_crm5_churn_is_the_end_of_the_last_billing_period_before_the_data_ends(
    tmp_path: Path,
) -> None:
    subscriptions = [
        # 1: three monthly periods, then nothing: churned on 2022-04-10
        *_periods(
            1, "basic_mthly", 10, 200, ["2022-01-10", "2022-02-10", "2022-03-10", "2022-04-10"]
        ),
        # 2: upgraded at its second renewal, renewed past the data's end: not churned
        *_periods(2, "starter_mthly", 5, 90, ["2022-05-03", "2022-06-03"]),
        *_periods(2, "premier_mthly", 100, 2000, ["2022-06-03", "2022-07-03"]),
        # 3: an annual plan ended mid-term: the simulator moves only the last row's end
        "3,advanced_annual,2022-01-20,2023-01-20,900,50,users,12,0",
        "3,meetings,2022-01-20,2023-01-20,300,5000,schedule_meeting,12,0",
        "3,search_unlimited,2022-01-20,2022-05-20,200,5000,search,12,0",
        # 4: starts after the data's end: left out
        *_periods(4, "basic_mthly", 10, 200, ["2022-07-05", "2022-08-05"]),
    ]
    source = _crm5(tmp_path, subscriptions, [])
    summary = crm5.convert(source, tmp_path / "out")

    assert (summary.accounts, summary.churners) == (3, 2)
    labels = {t.account_id: t for t in files.read_labels(tmp_path / "out" / common.LABELS_FILE)}
    assert labels["crm5-00001"].churn_date == date(2022, 4, 10)
    assert not labels["crm5-00002"].churned
    assert labels["crm5-00003"].churn_date == date(2022, 5, 20)
    observed = files.read_observed_until(tmp_path / "out" / common.LABELS_FILE)
    assert observed["crm5-00001"] == date(2022, 4, 9)
    assert observed["crm5-00002"] == date(2022, 6, 30)


def test_crm5_each_billing_period_is_an_account_record_and_churn_ends_them(
    tmp_path: Path,
) -> None:
    subscriptions = [
        *_periods(1, "basic_mthly", 10, 190, ["2022-01-10", "2022-02-10"]),
        *_periods(1, "standard_mthly", 25, 475, ["2022-02-10", "2022-03-10"]),
        *_periods(1, "standard_mthly", 25, 475, ["2022-04-15", "2022-05-15"]),
    ]
    out = tmp_path / "out"
    crm5.convert(_crm5(tmp_path, subscriptions, []), out)
    (first,) = files.read_accounts(out / common.ACCOUNTS_FILE, now=NOW)
    changes = files.read_accounts(out / common.CHANGES_FILE, now=NOW)

    assert (first.tier, first.seats, first.arr, first.renewal_date) == (
        "basic",
        10,
        12 * (190 + 300 + 200),
        date(2022, 2, 10),
    )
    assert first.lifecycle_stage == "onboarding"
    assert first.updated_at == datetime(2022, 1, 10, tzinfo=UTC)
    assert [(c.tier, c.seats, c.lifecycle_stage) for c in changes] == [
        ("standard", 25, "onboarding"),
        ("standard", 25, "mature"),  # 95 days after the start
        ("standard", 25, "churned"),
    ]
    assert changes[-1].updated_at == datetime(2022, 5, 15, tzinfo=UTC)
    assert {first.team.csm} == {c.team.csm for c in changes}


def test_crm5_events_become_one_usage_event_per_account_user_type_and_day(
    tmp_path: Path,
) -> None:
    subscriptions = _periods(1, "basic_mthly", 10, 200, ["2022-01-10", "2022-07-10"])
    events = [
        "1,2022-01-10 08:00:00,11,0,",
        "1,2022-01-10 09:30:00,11,0,",  # same user, action and day: counted in one event
        "1,2022-01-10 10:00:00,11,3,",
        "1,2022-01-10 11:00:00,4,3,5000.5",
        "1,2022-01-11 00:00:01,0,0,",
        "1,2022-07-01 00:00:00,0,0,",  # after the data's end (2022-06-30): dropped
    ]
    source = _crm5(tmp_path, subscriptions, events)
    out = tmp_path / "out"
    summary = crm5.convert(source, out)

    assert summary.events == 4
    read = [e for e in files.read_events(out / common.EVENT_FILE) if isinstance(e, UsageEvent)]
    assert [(e.user_id, e.feature, e.quantity) for e in read] == [
        ("u0", "add_contact", 2.0),
        ("u3", "add_contact", 1.0),
        ("u3", "win_opportunity", 1.0),
        ("u0", "search", 1.0),
    ]
    assert read[0].occurred_at == datetime(2022, 1, 10, 8, tzinfo=UTC)
    assert all(e.type == "feature_used" and e.account_id == "crm5-00001" for e in read)

    by_event = crm5.convert(source, tmp_path / "by-event", grain="event")
    assert by_event.events == 5
    values = [
        e.quantity
        for e in files.read_events(tmp_path / "by-event" / common.EVENT_FILE)
        if isinstance(e, UsageEvent)
    ]
    assert values == [1.0, 1.0, 1.0, 5000.5, 1.0]  # the value, when the event has one


def test_crm5_an_unknown_event_type_is_refused_with_its_line(tmp_path: Path) -> None:
    subscriptions = _periods(1, "basic_mthly", 10, 200, ["2022-01-10", "2022-02-10"])
    source = _crm5(
        tmp_path, subscriptions, ["1,2022-01-10 08:00:00,0,0,", "1,2022-01-10 09:00:00,7,0,"]
    )
    with pytest.raises(FormatError) as caught:
        crm5.convert(source, tmp_path / "out")
    assert caught.value.line == 3
    assert "event_type_id 7" in caught.value.reason


# ---------------------------------------------------------------------------------------------
# The invented team and the stage cache


def test_csms_are_one_per_hundred_accounts_and_an_account_keeps_its_csm() -> None:
    team = common.team(640)
    assert len(team) == 6
    assert len({person for person, _ in team}) == 6
    picks = [common.csm_for(f"crm5-{i:05d}", team) for i in range(640)]
    assert picks == [common.csm_for(f"crm5-{i:05d}", team) for i in range(640)]
    assert min(picks.count(person) for person, _ in team) > 60  # spread over the whole team


def test_a_stage_runs_again_only_when_its_key_changes(tmp_path: Path) -> None:
    stages = run.Stages(tmp_path / "stages")
    calls: list[int] = []

    def produce() -> dict[str, object]:
        calls.append(1)
        return {"value": len(calls)}

    key = run.digest_of(["a", 1])
    assert stages.run("fit", key, produce, force=False)["value"] == 1
    assert stages.run("fit", key, produce, force=False)["value"] == 1
    assert stages.run("fit", run.digest_of(["a", 2]), produce, force=False)["value"] == 2
    assert stages.run("fit", run.digest_of(["a", 2]), produce, force=True)["value"] == 3
    assert run.digest_of(["a"], ["churnwatch/outside/common.py"]) != run.digest_of(["a"])
