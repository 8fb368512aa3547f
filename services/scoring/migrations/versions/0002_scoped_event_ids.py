"""scoring: event ids scoped by source and account (the dedup cut-over)

Until this revision the dedup key in ``processed_events`` was a digest of the ``event_id``
alone, so two sources (or accounts) reusing an id dropped each other's events. From here on it
is a digest of ``(source, account_id, event_id)`` (``services.scoring.store.dedup``).

Exactly-once for what is already stored: the rows claimed before the cut-over keep their
legacy (unscoped) keys until the purge drops them at the dedup horizon; digests cannot be
re-keyed (the ids are not stored). This revision records ``legacy_until``, the latest
``occurred_at`` such a row can have: the newest stored one or now, whichever is later, plus
one day (events up to the future tolerance ahead of the clock, and instances of the previous
version still running during a rolling deploy, are covered). The consumer looks the legacy
key up too for an event that occurred up to ``legacy_until``; an event found there is a
duplicate and is not claimed again. A database that held no ids gets no cut-over row and never
looks legacy keys up. Once the horizon has passed ``legacy_until`` the lookup finds nothing
and is no longer made (no event that old is admitted).

Downgrade drops the cut-over; keys claimed since stay scoped, so going back loses
exactly-once for redeliveries of the events consumed in between (within the dedup horizon).
"""

from shared.migrations import run_script

revision: str = "0002"
down_revision: str | None = "0001"

UPGRADE = """
-- At most one row (the key is always true): where the legacy keys end.
CREATE TABLE scoring.dedup_cutover (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    cut_over_at timestamptz NOT NULL DEFAULT now(),
    legacy_until timestamptz NOT NULL
);
INSERT INTO scoring.dedup_cutover (legacy_until)
SELECT greatest(max(occurred_at), now()) + interval '1 day' FROM scoring.processed_events
HAVING count(*) > 0;
"""

DOWNGRADE = """
DROP TABLE scoring.dedup_cutover;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
