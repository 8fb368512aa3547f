"""scoring: the sweep's due time per account (health.next_eval_at and its index)"""

from shared.migrations import run_script

revision: str = "0004"
down_revision: str | None = "0003"

UPGRADE = """
-- When the account's score can next change with time alone (services/scoring/due.py): the
-- sweep rescores only the accounts due (next_eval_at <= its as_of). Every write of a current
-- score sets it; a row written without one (and every row here before) is due at once.
ALTER TABLE scoring.health ADD COLUMN next_eval_at timestamptz NOT NULL DEFAULT '-infinity';
-- The sweep reads the due accounts in keyset order (next_eval_at, account_id): only the rows
-- due are scanned, however many accounts are not.
CREATE INDEX health_due ON scoring.health (next_eval_at, account_id)
"""

DOWNGRADE = """
DROP INDEX scoring.health_due;
ALTER TABLE scoring.health DROP COLUMN next_eval_at
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
