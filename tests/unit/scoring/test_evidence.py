"""The change attribution carries its evidence: which facts moved each component."""

from services.scoring.health import moved_by
from shared.events import ComponentScore, HealthSnapshot, Signals


def snapshot(
    activity: float,
    support: float,
    *,
    wau: int,
    days: float,
    tickets: list[str] | None = None,
    opened: int = 0,
    activity_detail: str | None = None,
) -> HealthSnapshot:
    return HealthSnapshot(
        score=activity + support,
        band="yellow",
        components=[
            ComponentScore(
                name="activity",
                raw=days,
                points=activity * 2,
                weight=50,
                contribution=activity,
                detail=activity_detail,
            ),
            ComponentScore(
                name="support",
                raw=float(len(tickets or [])),
                points=support * 2,
                weight=50,
                contribution=support,
            ),
        ],
        signals=Signals(
            active_users_7d=wau,
            open_high_urgent_tickets=len(tickets or []),
            open_high_urgent_ticket_ids=tickets,
            high_urgent_opened_7d=opened,
        ),
    )


def test_each_move_names_the_facts_that_changed_from_before_to_after() -> None:
    before = snapshot(40, 45, wau=12, days=5)
    after = snapshot(15, 30, wau=4, days=2, tickets=["4512", "4519", "4533"], opened=3)
    activity, support = moved_by(before, after)
    assert (activity.name, activity.delta_points) == ("activity", -25.0)
    assert activity.evidence == ["weekly active users 12 → 4", "active days per week 5 → 2"]
    assert (support.name, support.delta_points) == ("support", -15.0)
    assert support.evidence == [
        "high/urgent tickets opened per week 0 → 3",
        "3 high/urgent tickets open: #4512, #4519, #4533",
    ]


def test_an_unchanged_fact_is_not_evidence_and_the_sentence_stands_in() -> None:
    said = "weekly active users down 62% vs the 4-week baseline"
    before = snapshot(40, 45, wau=12, days=5)
    after = snapshot(30, 45, wau=12, days=5, activity_detail=said)
    [activity] = moved_by(before, after)
    assert activity.evidence == [said]


def test_a_first_score_states_the_values_alone_and_more_tickets_than_named_are_counted() -> None:
    ids = [f"T-{i}" for i in range(10)]
    after = snapshot(15, 30, wau=4, days=2, tickets=ids)
    after.signals.open_high_urgent_tickets = 12
    support, activity = moved_by(None, after)
    assert activity.evidence == ["weekly active users 4", "active days per week 2"]
    assert support.evidence[-1] == (
        "12 high/urgent tickets open: " + ", ".join(ids) + " and 2 more"
    )
