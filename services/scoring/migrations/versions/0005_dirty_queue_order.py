"""scoring: the rescoring queue in claim order (dirty_accounts (marked_at, account_id))"""

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"

UPGRADE = """
-- The rescoring worker claims the oldest queued accounts (ORDER BY marked_at, account_id
-- LIMIT n FOR KEY SHARE SKIP LOCKED). Without an index in that order every claim read and
-- sorted the whole queue: ~0.3 s a claim with a million accounts queued (an import, a
-- backlog), once per chunk of 200.
CREATE INDEX dirty_accounts_order ON scoring.dirty_accounts (marked_at, account_id)
"""

DOWNGRADE = """
DROP INDEX scoring.dirty_accounts_order
"""


def _run(script: str) -> None:
    # One statement at a time: the driver prepares each, and a prepared statement holds one.
    bind = op.get_bind()
    for statement in script.split(";\n"):
        if statement.strip():
            bind.exec_driver_sql(statement)


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
