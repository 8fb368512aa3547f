"""scoring: the history points that published a change, indexed (lock_health's lookup)"""

from shared.migrations import run_script

revision: str = "0006"
down_revision: str | None = "0005"

UPGRADE = """
-- Rescoring reads each account's last published change (its newest history point with a
-- change_id): backwards through the account's history, point by point, until one has a
-- change_id. A steady account gets a point a day and no change: 200 such days cost ~125 µs of
-- PostgreSQL per account locked instead of ~10. Only the points with a change are indexed.
CREATE INDEX health_history_changes ON scoring.health_history (account_id, as_of)
    WHERE change_id IS NOT NULL
"""

DOWNGRADE = """
DROP INDEX scoring.health_history_changes
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
