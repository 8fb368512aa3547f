"""The alerts service's tables (schema ``alerts``).

Tables: the service's own view of ownership (``accounts``, ``people``, fed by the compacted
topics), the latest health and a short score history per account, the ``processed_changes``
dedup set, ``alerts`` (one open alert per account and rule, enforced by a partial unique
index), ``silences``, and the delivery side: the ``outbox`` (one row per message to one
destination), per-channel Slack ``pacing`` and per-account ``threads``.

The queries live beside this module, one module per concern (see ``store/__init__.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    any_,
    bindparam,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import ColumnElement

T = TypeVar("T")


def from_row(cls: type[T], row: RowMapping, **values: Any) -> T:
    """The dataclass ``cls`` from a row: each field from the column of its name, unless given
    in ``values``; a field with a default may be absent from the row."""
    given = {
        f.name: values[f.name] if f.name in values else row[f.name]
        for f in fields(cls)  # type: ignore[arg-type]
        if f.name in values or f.name in row
    }
    return cls(**given)


def grouped(
    rows: Iterable[RowMapping],
    key: str,
    make: Callable[[RowMapping], T],
    *,
    keys: Iterable[str] = (),
) -> dict[str, list[T]]:
    """Each row made by ``make``, listed under its ``key`` column in query order; each of
    ``keys`` is listed even with no row."""
    found: dict[str, list[T]] = {k: [] for k in keys}
    for row in rows:
        found.setdefault(row[key], []).append(make(row))
    return found


def one_of(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """``column = ANY(:values)``, the values bound as one array: the same SQL text whatever
    their number (``IN (…)`` renders a parameter per value — a statement to prepare for each
    batch size)."""
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))


metadata = MetaData(schema="alerts")

TS = DateTime(timezone=True)

processed_changes = Table(
    "processed_changes",
    metadata,
    Column("change_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("processed_at", TS, nullable=False, server_default=func.now()),
)

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("tier", Text),
    Column("seats", Integer),
    Column("renewal_date", Date),
    Column("lifecycle_stage", Text),  # AccountRecord.lifecycle_stage; "churned": no alerts
    Column("arr", Float),  # annual recurring revenue, shown in messages
    Column("csm", Text),
    Column("account_executive", Text),
    Column("renewal_owner", Text),
    Column("updated_at", TS, nullable=False),
    Index("accounts_csm", "csm"),
    Index("accounts_account_executive", "account_executive"),
    Index("accounts_renewal_owner", "renewal_owner"),
)

people = Table(
    "people",
    metadata,
    Column("person_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("email", Text),
    Column("slack_user_id", Text),
    Column("manager_id", Text),
    Column("time_zone", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("next_digest_at", TS),
    # How alerts reach the person (NULL: the service's default): see services/alerts/hours.py
    Column("working_hours", Text),  # "mon,tue,wed,thu,fri 09:00-18:00"
    Column("quiet_hours", Text),  # "22:00-07:00"
    Column("alert_channel", Text),  # slack, email, digest
    Column("daily_alert_budget", Integer),
    Index("people_next_digest_at", "next_digest_at"),
)

account_health = Table(
    "account_health",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("as_of", TS, nullable=False),
    Column("score", Float, nullable=False),
    Column("band", Text, nullable=False),
    Column("before_score", Float),
    Column("before_band", Text),
    Column("reasons", JSONB, nullable=False),
    Column("days_since_activity", Float),
    Column("change_id", Text, nullable=False),
    # which components moved the score: [{"name", "delta_points", "evidence": [...]}]
    Column("moved_by", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    # what the rules read of the latest health, to judge it again as time passes (0004)
    Column("signals", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("warming_up", Boolean, nullable=False, server_default=text("false")),
    Column("model_version", Text),
    # the next moment time alone may change a verdict (rules.next_evaluation); NULL: never
    Column("next_eval_at", TS),
    Index("account_health_next_eval_at", "next_eval_at"),
)

# One row per model version seen in health changes that re-baselined accounts (a rollout):
# counted as the changes arrive, summarised once to CS ops after ``summary_due_at``.
model_rollouts = Table(
    "model_rollouts",
    metadata,
    Column("model_version", Text, primary_key=True),
    Column("previous_version", Text, nullable=False),
    Column("first_seen_at", TS, nullable=False),
    Column("summary_due_at", TS, nullable=False),
    Column("summarized_at", TS),
    Column("accounts", Integer, nullable=False),
    Column("worse", Integer, nullable=False),
    Column("better", Integer, nullable=False),
    Index("model_rollouts_due", "summary_due_at", postgresql_where=text("summarized_at IS NULL")),
)

score_history = Table(
    "score_history",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("as_of", TS, primary_key=True),
    Column("score", Float, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("account_id", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("motion", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("delivery", Text, nullable=False),
    Column("send_resolved", Boolean, nullable=False),
    Column("route", JSONB, nullable=False),
    Column("started_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("pending_since", TS),
    Column("notified_at", TS),
    Column("notified_severity", Text),
    Column("first_notified_at", TS),
    Column("notified_to", JSONB, nullable=False),
    Column("snoozed_until", TS),
    Column("acknowledged_at", TS),
    Column("acknowledged_by", Text),
    Column("resolved_at", TS),
    Column("resolved_by", Text),
    Column("resolve_notice_due", Boolean, nullable=False),
    Column("escalated_at", TS),
    Column("escalation_path", JSONB, nullable=False),
    Column("muted", Text),
    Column("resolves_at", TS),
    Column("wake_at", TS),
    Index(
        "alerts_one_open_per_rule",
        "account_id",
        "rule",
        unique=True,
        postgresql_where=text("state <> 'resolved'"),
    ),
    Index("alerts_wake_at", "wake_at", postgresql_where=text("state <> 'resolved'")),
    Index("alerts_account_state", "account_id", "state"),
    Index("alerts_updated_at", "updated_at"),
    Index("alerts_resolved_at", "resolved_at", postgresql_where=text("state = 'resolved'")),
)

silences = Table(
    "silences",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("matchers", JSONB, nullable=False),
    Column("starts_at", TS, nullable=False),
    Column("ends_at", TS, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Index("silences_ends_at", "ends_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False),
    Column("account_id", Text),
    Column("channel", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("mention", Text),
    Column("fallbacks", JSONB, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("message_id", Text, nullable=False),
    Column("thread_key", Text),
    Column("depends_on", BigInteger),
    Column("state", Text, nullable=False),  # pending, sending, sent, failed, fallen_back
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", TS, nullable=False),
    Column("claimed_by", Text),
    Column("claimed_until", TS),
    Column("created_at", TS, nullable=False),
    Column("sent_at", TS),
    Column("last_error", Text),
    Column("provider_ref", Text),
    Column("not_before", TS),  # held until then (clock time): the recipient's working hours
    Column("provider_channel", Text),  # Slack: the channel id a message landed in (0005)
    Index("outbox_due", "next_attempt_at", postgresql_where=text("state = 'pending'")),
    Index("outbox_leased", "claimed_until", postgresql_where=text("state = 'sending'")),
    Index("outbox_created_at", "created_at"),
    Index(
        "outbox_slack_messages",
        "account_id",
        postgresql_where=text("channel = 'slack' AND provider_channel IS NOT NULL"),
    ),
)

# Each person's verdict on an alert (0005); the rule and account are kept so per-rule precision
# outlives the alert's purge.
feedback = Table(
    "feedback",
    metadata,
    Column("alert_id", BigInteger, primary_key=True),
    Column("given_by", Text, primary_key=True),  # a person id, or slack:<user id>, api:<key>
    Column("account_id", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("verdict", Text, nullable=False),  # useful, not_useful, known
    Column("source", Text, nullable=False),  # slack, email, api
    Column("given_at", TS, nullable=False),
    Index("feedback_rule_given_at", "rule", "given_at"),
)

pacing = Table(
    "pacing",
    metadata,
    Column("address", Text, primary_key=True),
    Column("next_at", TS, nullable=False),
)

threads = Table(
    "threads",
    metadata,
    Column("thread_key", Text, primary_key=True),
    Column("ref", Text, nullable=False),
    Column("updated_at", TS, nullable=False),
)

# One-click links already acted on (a SHA-256 of the token), until the retention purge removes
# them after they expired (ALERTS_RETAIN_USED_LINKS_DAYS): a link acts once, so a captured link
# cannot be replayed (e.g. to keep an alert snoozed).
used_links = Table(
    "used_links",
    metadata,
    Column("digest", LargeBinary, primary_key=True),
    Column("used_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Index("used_links_expires_at", "expires_at"),
)

# Per person and local day: the new risk alerts counted against the daily budget.
alert_budget = Table(
    "alert_budget",
    metadata,
    Column("person_id", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("used", Integer, nullable=False),
)

# Alerts a person gets in their next digest instead of a direct message: over their daily
# budget (``over_budget``) or because they want only the digest (``digest_only``).
digest_items = Table(
    "digest_items",
    metadata,
    Column("person_id", Text, primary_key=True),
    Column("alert_id", BigInteger, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("day", Date, nullable=False),
    Column("created_at", TS, nullable=False),
    Index("digest_items_created_at", "created_at"),
)

OUTBOX_CHANNEL = "alerts_outbox"  # NOTIFY channel that wakes the delivery workers
