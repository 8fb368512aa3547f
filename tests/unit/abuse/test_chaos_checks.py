"""The judges of the chaos run (`chaos.ledger`, `chaos.checks`) catch what they exist to catch:
an acknowledged event lost or counted twice, a refused one counted, a notification lost,
doubled or delivered without a row, a poison message not dead-lettered, dead-lettered twice or
with the wrong code. A check that cannot fail proves nothing, so each is shown failing here."""

from __future__ import annotations

from typing import Any

from chaos.checks import Attempt, DeadLetter, Poison, Row, audit_deliveries, audit_poison
from chaos.ledger import Counts, Ledger, compare, counts_of


def usage(event_id: str, account: str, quantity: float = 1.0) -> dict[str, Any]:
    return {
        "event_type": "usage",
        "event_id": event_id,
        "account_id": account,
        "quantity": quantity,
    }


def ticket(event_id: str, account: str, action: str, priority: str = "normal") -> dict[str, Any]:
    return {
        "event_type": "ticket",
        "event_id": event_id,
        "account_id": account,
        "action": action,
        "priority": priority,
    }


def ledger_of(*items: dict[str, Any]) -> Ledger:
    ledger = Ledger()
    ledger.acknowledge(items)
    return ledger


# -- the ledger ---------------------------------------------------------------------------------


def test_counts_follow_what_scoring_aggregates() -> None:
    counts = counts_of(
        [
            usage("1", "a", 2.0),
            usage("2", "a"),
            ticket("3", "a", "opened", "urgent"),
            ticket("4", "a", "escalated"),
            ticket("5", "a", "solved"),
            {"event_type": "survey", "event_id": "6", "account_id": "a", "kind": "nps", "score": 7},
            {
                "event_type": "survey",
                "event_id": "7",
                "account_id": "a",
                "kind": "csat",
                "score": 4,
            },
        ]
    )
    assert counts == {
        "a": Counts(
            usage_events=2,
            usage_quantity=3.0,
            tickets_opened=1,
            high_urgent_opened=1,
            escalations=1,
            nps_answers=1,
            nps_sum=7,
        )
    }


def test_an_event_acknowledged_again_with_the_same_id_is_expected_once() -> None:
    ledger = ledger_of(usage("1", "a"), usage("1", "a"))
    assert ledger.expected()["a"].usage_events == 1


def test_the_same_counts_match() -> None:
    ledger = ledger_of(usage("1", "a"), usage("2", "b"))
    assert compare(ledger.expected(), counts_of(ledger.acknowledged.values())).ok


def test_a_lost_event_is_a_difference() -> None:
    ledger = ledger_of(usage("1", "a"), usage("2", "a"))
    comparison = compare(ledger.expected(), {"a": Counts(usage_events=1, usage_quantity=1.0)})
    assert not comparison.ok
    assert {d.column for d in comparison.differences} == {"usage_events", "usage_quantity"}


def test_an_event_counted_twice_is_a_difference() -> None:
    ledger = ledger_of(ticket("1", "a", "opened"))
    comparison = compare(ledger.expected(), {"a": Counts(tickets_opened=2)})
    assert [(d.column, d.expected, d.actual) for d in comparison.differences] == [
        ("tickets_opened", 1, 2)
    ]


def test_an_account_nobody_acknowledged_is_unexpected() -> None:
    comparison = compare(
        ledger_of(usage("1", "a")).expected(), counts_of([usage("1", "a"), usage("9", "z")])
    )
    assert comparison.unexpected_accounts == ("z",)
    assert not comparison.ok


def test_an_event_in_doubt_may_be_counted_or_not_but_not_twice() -> None:
    ledger = ledger_of(usage("1", "a"))
    ledger.doubt([usage("2", "a")])
    doubt = counts_of(ledger.in_doubt.values())
    once = Counts(usage_events=1, usage_quantity=1.0)
    both = Counts(usage_events=2, usage_quantity=2.0)
    thrice = Counts(usage_events=3, usage_quantity=3.0)
    assert compare(ledger.expected(), {"a": once}, uncertain=doubt).ok
    assert compare(ledger.expected(), {"a": both}, uncertain=doubt).ok
    assert not compare(ledger.expected(), {"a": thrice}, uncertain=doubt).ok


def test_accounts_with_only_refused_events_are_the_ones_scoring_must_not_know() -> None:
    ledger = ledger_of(usage("1", "a"))
    ledger.refuse([usage("2", "a"), usage("3", "probe")])
    assert ledger.refused_only_accounts() == {"probe"}


# -- notifications --------------------------------------------------------------------------------


def delivered(key: str, channel: str = "slack", *, timed_out: bool = False) -> Attempt:
    return Attempt(key, channel, True, "ok", timed_out=timed_out)


def refused(key: str, channel: str = "slack", reply: str = "500") -> Attempt:
    return Attempt(key, channel, False, reply)


def test_a_row_sent_once_after_failures_is_exactly_once() -> None:
    audit = audit_deliveries(
        [Row("k", "slack", "sent", "m")], [refused("k", reply="429"), refused("k"), delivered("k")]
    )
    assert audit.ok
    assert audit.exactly_once == 1
    assert audit.attempts == {"slack 429": 1, "slack 500": 1, "slack ok": 1}


def test_a_row_sent_that_no_sink_received_is_lost() -> None:
    audit = audit_deliveries([Row("k", "slack", "sent", "m")], [refused("k")])
    assert audit.lost == ["k"]
    assert not audit.ok


def test_a_second_delivery_is_a_duplicate_unless_the_first_timed_out_or_went_unrecorded() -> None:
    rows = [Row("k", "slack", "sent", "m")]
    assert audit_deliveries(rows, [delivered("k"), delivered("k")]).unexplained_duplicates
    after_timeout = audit_deliveries(rows, [delivered("k", timed_out=True), delivered("k")])
    assert after_timeout.ok
    assert after_timeout.documented_duplicates == ["k ×2"]
    assert audit_deliveries(rows, [delivered("k"), delivered("k")], unrecorded={"k"}).ok


def test_a_fallback_needs_its_next_row() -> None:
    fallen = Row("k", "slack", "fallen_back", "m")
    mail = Row("k>email", "email", "sent", "m2")
    attempts = [refused("k", reply="channel_not_found"), delivered("k>email", "email")]
    assert audit_deliveries([fallen, mail], attempts).ok
    assert audit_deliveries([fallen], attempts[:1]).missing_fallback == ["k"]


def test_a_delivery_without_a_row_or_for_a_row_not_sent_is_a_phantom() -> None:
    assert audit_deliveries([], [delivered("k")]).phantom == ["k has no outbox row"]
    failed = audit_deliveries([Row("k", "slack", "failed", "m")], [delivered("k")])
    assert failed.phantom == ["k delivered but failed"]
    assert failed.failed == ["k"]


def test_a_row_still_pending_is_not_terminal() -> None:
    assert audit_deliveries([Row("k", "email", "pending", "m")], []).not_terminal == ["k (pending)"]


def test_an_email_offered_again_under_another_message_id_is_caught() -> None:
    attempts = [
        Attempt("k", "email", False, "451", message_id="<a@x>"),
        Attempt("k", "email", True, "250", message_id="<b@x>"),
    ]
    audit = audit_deliveries([Row("k", "email", "sent", "<b@x>")], attempts)
    assert audit.message_id_changed == ["k"]


# -- poison -------------------------------------------------------------------------------------


def poison(name: str, offset: int, expected_code: str | None = None) -> Poison:
    return Poison(name, "t", 0, offset, b"bad", ("dlq",), expected_code=expected_code)


def letter(offset: int, code: str = "undecodable", value: bytes = b"bad") -> DeadLetter:
    return DeadLetter(
        "dlq", value, {"dlq.origin": f"t/0/{offset}", "dlq.code": code, "dlq.reason": "r"}
    )


def test_each_poison_message_must_be_dead_lettered_once_with_its_code_reason_and_bytes() -> None:
    sent = [poison("once", 1), poison("twice", 2), poison("never", 3), poison("mangled", 4)]
    dead = [letter(1), letter(2), letter(2), letter(4, value=b"other")]
    outcomes = {o.poison.name: o for o in audit_poison(sent, dead)}
    assert outcomes["once"].ok
    assert outcomes["twice"].copies == 2
    assert not outcomes["twice"].ok
    assert outcomes["never"].copies == 0
    assert not outcomes["never"].ok
    assert not outcomes["mangled"].bytes_kept


def test_a_poison_message_expecting_a_code_fails_under_another() -> None:
    sent = [poison("overflow", 1, expected_code="unprocessable")]
    assert not audit_poison(sent, [letter(1, code="undecodable")])[0].ok
    assert audit_poison(sent, [letter(1, code="unprocessable")])[0].ok


def test_a_failed_row_is_as_designed_only_at_the_last_destination_after_a_permanent_refusal() -> (
    None
):
    team = "team@x.invalid"
    last = Row("k>email:team", "email", "failed", "m", team)
    refused_for_good = [Attempt("k>email:team", "email", False, "550")]
    assert audit_deliveries([last], refused_for_good, last_resort={team}).exhausted == [
        "k>email:team"
    ]
    assert audit_deliveries([last], refused_for_good, last_resort={team}).ok
    # A transient refusal is retried, not failed; a row with somewhere left to go falls back.
    transient = [Attempt("k>email:team", "email", False, "451")]
    assert not audit_deliveries([last], transient, last_resort={team}).ok
    not_last = Row("k", "email", "failed", "m", "csm@x.invalid")
    assert audit_deliveries(
        [not_last], [Attempt("k", "email", False, "550")], last_resort={team}
    ).failed == ["k"]
