"""alerts: ownership view, health, alerts, silences, outbox"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None


def upgrade() -> None:
    op.create_table(
        "account_health",
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("band", sa.Text(), nullable=False),
        sa.Column("before_score", sa.Float(), nullable=True),
        sa.Column("before_band", sa.Text(), nullable=True),
        sa.Column("reasons", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("days_since_activity", sa.Float(), nullable=True),
        sa.Column("change_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
        schema="alerts",
    )
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("tier", sa.Text(), nullable=True),
        sa.Column("seats", sa.Integer(), nullable=True),
        sa.Column("renewal_date", sa.Date(), nullable=True),
        sa.Column("csm", sa.Text(), nullable=True),
        sa.Column("account_executive", sa.Text(), nullable=True),
        sa.Column("renewal_owner", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
        schema="alerts",
    )
    op.create_index(
        "accounts_account_executive",
        "accounts",
        ["account_executive"],
        unique=False,
        schema="alerts",
    )
    op.create_index("accounts_csm", "accounts", ["csm"], unique=False, schema="alerts")
    op.create_index(
        "accounts_renewal_owner", "accounts", ["renewal_owner"], unique=False, schema="alerts"
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("motion", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("delivery", sa.Text(), nullable=False),
        sa.Column("send_resolved", sa.Boolean(), nullable=False),
        sa.Column("route", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_severity", sa.Text(), nullable=True),
        sa.Column("first_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_to", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.Text(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Text(), nullable=True),
        sa.Column("resolve_notice_due", sa.Boolean(), nullable=False),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalation_path", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("muted", sa.Text(), nullable=True),
        sa.Column("wake_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema="alerts",
    )
    op.create_index(
        "alerts_account_state", "alerts", ["account_id", "state"], unique=False, schema="alerts"
    )
    op.create_index(
        "alerts_one_open_per_rule",
        "alerts",
        ["account_id", "rule"],
        unique=True,
        schema="alerts",
        postgresql_where=sa.text("state <> 'resolved'"),
    )
    op.create_index("alerts_updated_at", "alerts", ["updated_at"], unique=False, schema="alerts")
    op.create_index(
        "alerts_wake_at",
        "alerts",
        ["wake_at"],
        unique=False,
        schema="alerts",
        postgresql_where=sa.text("state <> 'resolved'"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("mention", sa.Text(), nullable=True),
        sa.Column("fallbacks", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("thread_key", sa.Text(), nullable=True),
        sa.Column("depends_on", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("provider_ref", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
        schema="alerts",
    )
    op.create_index("outbox_created_at", "outbox", ["created_at"], unique=False, schema="alerts")
    op.create_index(
        "outbox_due",
        "outbox",
        ["next_attempt_at"],
        unique=False,
        schema="alerts",
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "outbox_leased",
        "outbox",
        ["claimed_until"],
        unique=False,
        schema="alerts",
        postgresql_where=sa.text("state = 'sending'"),
    )
    op.create_table(
        "pacing",
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address"),
        schema="alerts",
    )
    op.create_table(
        "people",
        sa.Column("person_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("slack_user_id", sa.Text(), nullable=True),
        sa.Column("manager_id", sa.Text(), nullable=True),
        sa.Column("time_zone", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_digest_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("person_id"),
        schema="alerts",
    )
    op.create_index(
        "people_next_digest_at", "people", ["next_digest_at"], unique=False, schema="alerts"
    )
    op.create_table(
        "processed_changes",
        sa.Column("change_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("change_id"),
        schema="alerts",
    )
    op.create_table(
        "score_history",
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "as_of"),
        schema="alerts",
    )
    op.create_table(
        "silences",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("matchers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="alerts",
    )
    op.create_index("silences_ends_at", "silences", ["ends_at"], unique=False, schema="alerts")
    op.create_table(
        "threads",
        sa.Column("thread_key", sa.Text(), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("thread_key"),
        schema="alerts",
    )


def downgrade() -> None:
    op.drop_table("threads", schema="alerts")
    op.drop_table("silences", schema="alerts")
    op.drop_table("score_history", schema="alerts")
    op.drop_table("processed_changes", schema="alerts")
    op.drop_table("people", schema="alerts")
    op.drop_table("pacing", schema="alerts")
    op.drop_table("outbox", schema="alerts")
    op.drop_table("alerts", schema="alerts")
    op.drop_table("accounts", schema="alerts")
    op.drop_table("account_health", schema="alerts")
