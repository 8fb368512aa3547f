"""scoring: exactly-once by partition (placeholder: H16c fills it, or leaves it empty)"""

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"

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
