"""scoring: the sweep's due time per account (placeholder: H16a fills it)"""

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"

UPGRADE = """
"""

DOWNGRADE = """
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
