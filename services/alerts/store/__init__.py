"""The alerts service's store: every statement it runs against its schema (``alerts``).

One module per concern, re-exported here so callers write ``store.enqueue(...)``:

- ``tables``     the schema (SQLAlchemy ``Table`` objects; Alembic migrations change it)
- ``ownership``  accounts and people (from the compacted topics), per-account advisory locks
- ``health``     the dedup set of health changes, latest health, score history, when each
                 account is next due a time-driven evaluation, model rollouts
- ``alerts``     alerts and silences: load, save, due, the API's listings, used links
- ``outbox``     the transactional outbox: enqueue, claim (with Slack pacing), record, threads
- ``digests``    the people due a digest, their portfolios and held alerts
- ``attention``  each person's daily count of new risk alerts; alerts diverted to their digest
- ``retention``  the purge of old rows, in bounded batches
- ``feedback``   verdicts on alerts and per-rule figures; the person behind a Slack user id and
                 the delivered Slack messages carrying an alert (in-place updates)

Rows cross the boundary as dataclasses (``PersonRow``, ``ClaimedRow``, ``Alert``…), never as
dicts. Writes are set-based: one statement per table per batch (multi-row INSERT … ON
CONFLICT, or an executemany of one prepared UPDATE). Work on one account is serialised by a
transaction-scoped advisory lock on the account id (:func:`lock_accounts`).
"""

from services.alerts.store.alerts import (
    AlertQuery,
    active_silences,
    alert_from_row,
    create_silence,
    due_accounts,
    expire_silence,
    list_alerts,
    list_silences,
    load_alerts,
    load_open_alerts,
    mark_notified,
    matcher_json,
    open_counts,
    save_alerts,
    silence_from_row,
    use_link,
    wake,
)
from services.alerts.store.attention import (
    DigestItem,
    add_digest_items,
    clear_digest_items,
    count_budget,
    over_budget_counts,
)
from services.alerts.store.digests import (
    claim_due_people,
    held_alerts,
    portfolios,
    set_next_digests,
)
from services.alerts.store.feedback import (
    FeedbackRow,
    RuleFeedback,
    SlackMessage,
    feedback_for,
    list_feedback,
    managers,
    person_by_slack_id,
    record_feedback,
    rule_feedback,
    slack_messages,
)
from services.alerts.store.health import (
    Rollout,
    claim_changes,
    claim_due_rollouts,
    count_rollouts,
    due_evaluations,
    evaluate_soon,
    insert_history,
    load_health,
    load_history,
    reset_history,
    set_next_evaluations,
    still_due,
    upsert_health,
)
from services.alerts.store.outbox import (
    OUTBOX_CHANNEL,
    Candidate,
    ClaimedRow,
    Outcome,
    candidates,
    depth,
    enqueue,
    expire_leases,
    hold_channels,
    next_due,
    record,
    take,
    unsent_heads,
)
from services.alerts.store.ownership import (
    AccountRow,
    OwnedAccount,
    PersonRow,
    accounts_owned_by,
    delete_accounts,
    delete_people,
    load_people,
    load_teams,
    lock_accounts,
    try_lock_accounts,
    upsert_accounts,
    upsert_people,
    with_open_alerts,
)
from services.alerts.store.retention import purge_batch
from services.alerts.store.tables import metadata

__all__ = [  # noqa: RUF022 (grouped: the attention and retention names first)
    "DigestItem",
    "add_digest_items",
    "clear_digest_items",
    "count_budget",
    "over_budget_counts",
    "purge_batch",
    "OUTBOX_CHANNEL",
    "AccountRow",
    "AlertQuery",
    "Candidate",
    "ClaimedRow",
    "FeedbackRow",
    "Outcome",
    "OwnedAccount",
    "PersonRow",
    "Rollout",
    "RuleFeedback",
    "SlackMessage",
    "accounts_owned_by",
    "active_silences",
    "alert_from_row",
    "candidates",
    "claim_changes",
    "claim_due_people",
    "claim_due_rollouts",
    "count_rollouts",
    "create_silence",
    "delete_accounts",
    "delete_people",
    "depth",
    "due_accounts",
    "due_evaluations",
    "enqueue",
    "evaluate_soon",
    "expire_leases",
    "expire_silence",
    "feedback_for",
    "held_alerts",
    "hold_channels",
    "insert_history",
    "list_alerts",
    "list_feedback",
    "list_silences",
    "load_alerts",
    "load_health",
    "load_history",
    "load_open_alerts",
    "load_people",
    "load_teams",
    "lock_accounts",
    "managers",
    "mark_notified",
    "matcher_json",
    "metadata",
    "next_due",
    "open_counts",
    "person_by_slack_id",
    "portfolios",
    "record",
    "record_feedback",
    "reset_history",
    "rule_feedback",
    "save_alerts",
    "set_next_digests",
    "set_next_evaluations",
    "silence_from_row",
    "slack_messages",
    "still_due",
    "take",
    "try_lock_accounts",
    "unsent_heads",
    "upsert_accounts",
    "upsert_health",
    "upsert_people",
    "use_link",
    "wake",
    "with_open_alerts",
]
