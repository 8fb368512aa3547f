"""alerts: Slack interactivity and feedback on alerts (issue 14 items 4-5)

- ``outbox.provider_channel``: the Slack channel id a delivered message landed in (a DM's
  channel differs from the user id it was addressed to); with ``provider_ref`` (its ``ts``) it
  is what ``chat.update`` needs to rewrite the message in place;
- ``feedback``: each person's verdict on an alert (useful, not useful, already known), kept
  with the alert's rule and account so per-rule precision outlives the alert's purge.
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("outbox", sa.Column("provider_channel", sa.Text()), schema="alerts")
    op.create_index(
        "outbox_slack_messages",
        "outbox",
        ["account_id"],
        schema="alerts",
        postgresql_where=sa.text("channel = 'slack' AND provider_channel IS NOT NULL"),
    )
    op.create_table(
        "feedback",
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("given_by", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("verdict", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("given_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("alert_id", "given_by"),
        sa.CheckConstraint("verdict IN ('useful', 'not_useful', 'known')", name="feedback_verdict"),
        sa.CheckConstraint("source IN ('slack', 'email', 'api')", name="feedback_source"),
        schema="alerts",
    )
    op.create_index("feedback_rule_given_at", "feedback", ["rule", "given_at"], schema="alerts")


def downgrade() -> None:
    op.drop_index("feedback_rule_given_at", table_name="feedback", schema="alerts")
    op.drop_table("feedback", schema="alerts")
    op.drop_index("outbox_slack_messages", table_name="outbox", schema="alerts")
    op.drop_column("outbox", "provider_channel", schema="alerts")
