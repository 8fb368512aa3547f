"""scoring: what `churnwatch import-history` imported (event digests and chunk markers)"""

from shared.migrations import run_script

revision: str = "0003"
down_revision: str | None = "0002"

UPGRADE = """
-- Every event an import counted (the same 16-byte digest as processed_events), whatever its
-- age: a second import of the same event — a re-run, a resumed run, an overlapping export —
-- finds it here and counts nothing. Kept as long as the daily rows it went into
-- (SCORING_DAILY_ROWS_RETENTION_DAYS); the importer drops older digests when it starts.
CREATE TABLE scoring.imported_events (
    event_hash bytea PRIMARY KEY,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX imported_events_occurred_at ON scoring.imported_events USING brin (occurred_at);

-- One row per chunk of input an import committed, keyed by a digest of the chunk's events:
-- a re-run skips a committed chunk whole, without claiming its events one by one.
CREATE TABLE scoring.import_chunks (
    chunk_hash bytea PRIMARY KEY,
    events integer NOT NULL,
    counted integer NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);
"""

DOWNGRADE = """
DROP TABLE scoring.import_chunks;
DROP TABLE scoring.imported_events;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
