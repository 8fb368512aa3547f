"""The scoring service's database: its tables (schema ``scoring``) and every query it runs.

Tables are declared with SQLAlchemy Core (the migrations in ``migrations/versions`` create
them); queries go straight through asyncpg: every write is set-based over rows already
coalesced per key (a binary ``COPY`` into a staging table then one merge, or ``INSERT … SELECT
FROM unnest(…) ON CONFLICT …``). All
the service's SQL lives in this package, one module per concern:

- ``tables``: the table declarations and the advisory lock keys;
- ``connect``: the asyncpg pool;
- ``dedup``: an event's dedup key and claiming it (exactly-once consumption);
- ``writes``: applying a consumed batch — aggregates, account and person records;
- ``staging``: the per-connection staging tables those merges read (and empty);
- ``dirty``: the rescoring queue;
- ``facts_sql``: the live facts query (the offline twin is ``services.scoring.facts``);
- ``scores``: rescoring's lock on the current scores and its writes (scores, history, outbox);
- ``outbox``: the relay's reads and deletes; ``sweeps``: the sweep's lock, schedule and purge;
- ``read``: the read API's queries.

What each table holds:

- ``processed_events``: the dedup horizon — a 16-byte digest of every event taken (its source,
  account and id), kept while its ``occurred_at`` is inside the horizon (older events are
  refused);
- ``dedup_cutover``: where the dedup keys of before the scoping by source and account end
  (see ``dedup``);
- ``account_days`` / ``survey_days``: counters per account and day of ``occurred_at``;
- ``account_users`` / ``account_features``: per account and user (feature), a 62-day bitmask
  of the days it was active (see ``aggregate.DayMask``) — distinct counts stay exact;
- ``tickets``: each ticket's latest state; ``activity``: per account, when it was first seen
  and the day it was last active (the exact time is that day's ``account_days`` row);
- ``accounts`` / ``people``: the latest account and person records (compacted topics);
- ``dirty_accounts``: accounts whose aggregates changed and wait to be rescored;
- ``health``: the current score per account; ``health_history``: every published change and
  the first score of each day; ``outbox``: health changes committed but not yet on Kafka;
- ``sweeps``: when the time-driven sweep last ran (so several instances share one schedule).
"""

from services.scoring.store.tables import metadata

__all__ = ["metadata"]
