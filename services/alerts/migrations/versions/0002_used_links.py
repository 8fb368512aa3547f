"""alerts: one-click links act once (used_links)"""

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"


def upgrade() -> None:
    op.create_table(
        "used_links",
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
        schema="alerts",
    )
    op.create_index(
        "used_links_expires_at", "used_links", ["expires_at"], unique=False, schema="alerts"
    )


def downgrade() -> None:
    op.drop_index("used_links_expires_at", table_name="used_links", schema="alerts")
    op.drop_table("used_links", schema="alerts")
