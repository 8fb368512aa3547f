"""alerts: people's hours, channel preference, daily budget and retention (issue 14 items 6-7)

- ``people``: ``working_hours`` (``mon,tue,wed,thu,fri 09:00-18:00``), ``quiet_hours``
  (``22:00-07:00``), ``alert_channel`` (slack, email, digest) and ``daily_alert_budget``, each
  NULL when the person record leaves it to the service's defaults;
- ``outbox.not_before``: a message held until the recipient's working hours (clock time);
- ``alert_budget``: per person and local day, how many new risk alerts were counted;
- ``digest_items``: alerts that go to a person's digest instead of a direct message (over the
  daily budget, or a digest-only person), until the digest shows them;
- ``alerts_resolved_at``: the retention purge finds old resolved alerts by it.
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("people", sa.Column("working_hours", sa.Text()), schema="alerts")
    op.add_column("people", sa.Column("quiet_hours", sa.Text()), schema="alerts")
    op.add_column("people", sa.Column("alert_channel", sa.Text()), schema="alerts")
    op.add_column("people", sa.Column("daily_alert_budget", sa.Integer()), schema="alerts")
    op.add_column("outbox", sa.Column("not_before", TS), schema="alerts")
    op.create_table(
        "alert_budget",
        sa.Column("person_id", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("person_id", "day"),
        schema="alerts",
    )
    op.create_table(
        "digest_items",
        sa.Column("person_id", sa.Text(), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("person_id", "alert_id"),
        sa.CheckConstraint("reason IN ('over_budget', 'digest_only')", name="digest_items_reason"),
        schema="alerts",
    )
    op.create_index("digest_items_created_at", "digest_items", ["created_at"], schema="alerts")
    op.create_index(
        "alerts_resolved_at",
        "alerts",
        ["resolved_at"],
        schema="alerts",
        postgresql_where=sa.text("state = 'resolved'"),
    )


def downgrade() -> None:
    op.drop_index("alerts_resolved_at", table_name="alerts", schema="alerts")
    op.drop_index("digest_items_created_at", table_name="digest_items", schema="alerts")
    op.drop_table("digest_items", schema="alerts")
    op.drop_table("alert_budget", schema="alerts")
    op.drop_column("outbox", "not_before", schema="alerts")
    for column in ("daily_alert_budget", "alert_channel", "quiet_hours", "working_hours"):
        op.drop_column("people", column, schema="alerts")
