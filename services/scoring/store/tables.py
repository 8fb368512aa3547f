"""The scoring service's tables (schema ``scoring``), declared with SQLAlchemy Core.

The migrations in ``migrations/versions`` create them; ``services.scoring.store`` describes
what each one holds.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON

metadata = MetaData(schema="scoring")

TZ = DateTime(timezone=True)
KEY = Text(collation="C")  # keys compare byte-wise, like Python sorts them

processed_events = Table(
    "processed_events",
    metadata,
    Column("event_hash", LargeBinary, primary_key=True),
    Column("occurred_at", TZ, nullable=False),
)
dedup_cutover = Table(  # where the legacy (unscoped) dedup keys end: see store.dedup
    "dedup_cutover",
    metadata,
    Column("one", Boolean, primary_key=True),
    Column("cut_over_at", TZ, nullable=False),
    Column("legacy_until", TZ, nullable=False),
)
account_days = Table(
    "account_days",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("usage_events", Integer, nullable=False),
    Column("usage_quantity", Float, nullable=False),
    Column("tickets_opened", Integer, nullable=False),
    Column("high_urgent_opened", Integer, nullable=False),
    Column("escalations", Integer, nullable=False),
    Column("reopens", Integer, nullable=False),
    Column("last_usage_at", TZ),
    Column("last_feature_at", TZ),
)
survey_days = Table(
    "survey_days",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("nps_sum", Integer, nullable=False),
    Column("nps_answers", Integer, nullable=False),
    Column("nps_promoters", Integer, nullable=False),
    Column("nps_detractors", Integer, nullable=False),
    Column("csat_sum", Integer, nullable=False),
    Column("csat_answers", Integer, nullable=False),
)
account_users = Table(
    "account_users",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("user_id", KEY, primary_key=True),
    Column("anchor_day", Integer, nullable=False),
    Column("days", BigInteger, nullable=False),
)
account_features = Table(
    "account_features",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("feature", KEY, primary_key=True),
    Column("anchor_day", Integer, nullable=False),
    Column("days", BigInteger, nullable=False),
)
tickets = Table(
    "tickets",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("ticket_id", KEY, primary_key=True),
    Column("priority", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("last_action", Text, nullable=False),
    Column("updated_at", TZ, nullable=False),
    Column("event_id", Text, nullable=False),
)
activity = Table(
    "activity",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("known_since", TZ, nullable=False),
    Column("first_usage_at", TZ),
    Column("last_usage_day", Date),
    Column("first_feature_at", TZ),
    Column("last_feature_day", Date),
    Column("last_ticket_at", TZ),
    Column("last_survey_at", TZ),
    Column("nps_latest", SmallInteger),
    Column("nps_latest_at", TZ),
    Column("nps_latest_event_id", Text),
)
accounts = Table(
    "accounts",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("name", Text, nullable=False),
    Column("tier", Text),
    Column("seats", Integer),
    Column("arr", Float),
    Column("renewal_date", Date),
    Column("lifecycle_stage", Text),
    Column("csm", Text, index=True),
    Column("account_executive", Text, index=True),
    Column("renewal_owner", Text, index=True),
    Column("updated_at", TZ, nullable=False),
)
people = Table(
    "people",
    metadata,
    Column("person_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("email", Text),
    Column("manager_id", Text),
    Column("time_zone", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("updated_at", TZ, nullable=False),
)
dirty_accounts = Table(
    "dirty_accounts",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("marked_at", TZ, nullable=False, server_default=func.now()),
)
health = Table(
    "health",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("model_version", Text, nullable=False),
    Column("profile", Text, nullable=False),
    Column("as_of", TZ, nullable=False),
    Column("score", Float, nullable=False),
    Column("band", Text, nullable=False),
    Column("band_since", TZ, nullable=False),
    Column("partial", Boolean, nullable=False),
    Column("stale", Boolean, nullable=False),
    Column("top_reason", Text),
    Column("snapshot", JSON, nullable=False),
    # when time alone can next change the score: the sweep rescores rows due (services/scoring/due)
    Column("next_eval_at", TZ, nullable=False, server_default="-infinity"),
    postgresql_with={"fillfactor": 50},
)
health_history = Table(
    "health_history",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("as_of", TZ, primary_key=True),
    Column("model_version", Text, nullable=False),
    Column("score", Float, nullable=False),
    Column("band", Text, nullable=False),
    Column("triggers", ARRAY(Text), nullable=False),
    Column("change_id", Text),
    Column("snapshot", JSON, nullable=False),
    Column("moved_by", JSON),
)
outbox = Table(
    "outbox",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("change_id", Text, nullable=False, unique=True),
    Column("account_id", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
)
sweeps = Table(
    "sweeps",
    metadata,
    Column("name", Text, primary_key=True),
    Column("started_at", TZ, nullable=False),
    Column("finished_at", TZ),
    Column("as_of", TZ, nullable=False),
    Column("accounts", Integer, nullable=False),
    Column("seconds", Float),
)
# What `churnwatch import-history` imported (store/imports.py): every event's dedup key, and a
# marker per committed chunk of input.
imported_events = Table(
    "imported_events",
    metadata,
    Column("event_hash", LargeBinary, primary_key=True),
    Column("occurred_at", TZ, nullable=False),
)
import_chunks = Table(
    "import_chunks",
    metadata,
    Column("chunk_hash", LargeBinary, primary_key=True),
    Column("events", Integer, nullable=False),
    Column("counted", Integer, nullable=False),
    Column("imported_at", TZ, nullable=False, server_default=func.now()),
)

# Keys of the advisory locks that make one instance at a time relay or sweep.
RELAY_LOCK = 0x5C0_0001
SWEEP_LOCK = 0x5C0_0002
