"""alerts: what rules evaluated on time and the lifecycle need (issue 14 items 1-2)

- ``account_health``: what the rules read of the latest health (``signals``, ``warming_up``,
  ``model_version``) and ``next_eval_at``, the next moment time alone may change a verdict
  (indexed: the scheduler's due query). Existing rows are due at once, so each account is
  judged as time passes once after the upgrade (the scheduler works through them in pages).
- ``accounts.lifecycle_stage``: a churned account gets no alerts.
- ``model_rollouts``: re-baselined accounts counted per model version, summarised once.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "account_health",
        sa.Column(
            "signals",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        schema="alerts",
    )
    op.add_column(
        "account_health",
        sa.Column("warming_up", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        schema="alerts",
    )
    op.add_column("account_health", sa.Column("model_version", sa.Text()), schema="alerts")
    op.add_column("account_health", sa.Column("next_eval_at", TS), schema="alerts")
    op.execute("UPDATE alerts.account_health SET next_eval_at = now()")
    op.create_index(
        "account_health_next_eval_at", "account_health", ["next_eval_at"], schema="alerts"
    )
    op.add_column("accounts", sa.Column("lifecycle_stage", sa.Text()), schema="alerts")
    op.create_table(
        "model_rollouts",
        sa.Column("model_version", sa.Text(), primary_key=True),
        sa.Column("previous_version", sa.Text(), nullable=False),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("summary_due_at", TS, nullable=False),
        sa.Column("summarized_at", TS),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("worse", sa.Integer(), nullable=False),
        sa.Column("better", sa.Integer(), nullable=False),
        schema="alerts",
    )
    op.create_index(
        "model_rollouts_due",
        "model_rollouts",
        ["summary_due_at"],
        schema="alerts",
        postgresql_where=sa.text("summarized_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("model_rollouts", schema="alerts")
    op.drop_column("accounts", "lifecycle_stage", schema="alerts")
    op.drop_index("account_health_next_eval_at", "account_health", schema="alerts")
    for column in ("next_eval_at", "model_version", "warming_up", "signals"):
        op.drop_column("account_health", column, schema="alerts")
