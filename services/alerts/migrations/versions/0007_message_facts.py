"""alerts: what messages carry — the account's ARR and the change attribution (issue 14 item 3)"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"


def upgrade() -> None:
    op.add_column("accounts", sa.Column("arr", sa.Float()), schema="alerts")
    op.add_column(
        "account_health",
        sa.Column(
            "moved_by",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
        schema="alerts",
    )


def downgrade() -> None:
    op.drop_column("account_health", "moved_by", schema="alerts")
    op.drop_column("accounts", "arr", schema="alerts")
