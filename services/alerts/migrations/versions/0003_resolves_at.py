"""alerts: an alert whose condition cleared stays open until resolves_at (keep_firing_for)"""

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    op.add_column("alerts", sa.Column("resolves_at", sa.DateTime(timezone=True)), schema="alerts")


def downgrade() -> None:
    op.drop_column("alerts", "resolves_at", schema="alerts")
