"""scoring: the rescoring queue in claim order (dirty_accounts (marked_at, account_id))"""

from shared.migrations import run_script

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


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
