"""The scoring service's Prometheus metrics (``churnwatch_scoring_*``).

The shared consumer loop adds ``churnwatch_consumer_*`` (records by outcome, batch seconds,
handler failures, and ``churnwatch_consumer_lag`` per partition) and
``churnwatch_dead_letters_total``, labelled with the scoring group.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "churnwatch_scoring_events_consumed_total",
    "Events taken into the aggregates (new event ids), by kind",
    ["kind"],
)
EVENTS_DUPLICATE = Counter(
    "churnwatch_scoring_events_duplicate_total",
    "Events skipped because their event_id was already processed",
)
RECORDS_CONSUMED = Counter(
    "churnwatch_scoring_records_consumed_total",
    "Account and person records applied (tombstones included)",
    ["kind"],
)
DEAD_LETTERED = Counter(
    "churnwatch_scoring_dead_lettered_total",
    "Messages sent to the scoring dead-letter topic, by reason code",
    ["code"],
)
ROWS_WRITTEN = Counter(
    "churnwatch_scoring_rows_written_total",
    "Rows the consumer handed to the database (dedup ids, aggregates, records, rescoring queue)",
)
BATCH_SECONDS = Histogram(
    "churnwatch_scoring_batch_seconds",
    "Time to make one consumed batch durable (one database transaction)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ACCOUNTS_SCORED = Counter(
    "churnwatch_scoring_accounts_scored_total",
    "Account scores computed, by what caused them (events, inline, sweep)",
    ["cause"],
)
TOUCHED_ACCOUNTS = Counter(
    "churnwatch_scoring_touched_accounts_total",
    "Accounts a consumed batch touched, by where they were rescored: inline (in the batch's "
    "transaction) or queued (the rescoring worker), and why (caught_up, behind, too_many, off)",
    ["path", "reason"],
)
SCORES_WARMING_UP = Counter(
    "churnwatch_scoring_scores_warming_up_total",
    "Account scores computed while the account was still warming up (too little history)",
)
HEALTH_CHANGES = Counter(
    "churnwatch_scoring_health_changes_total",
    "Health changes decided (written to the outbox), by trigger",
    ["trigger"],
)
RESCORE_QUEUE = Gauge(
    "churnwatch_scoring_rescore_queue",
    "Accounts whose aggregates changed and wait to be rescored",
)
OUTBOX_PUBLISHED = Counter(
    "churnwatch_scoring_outbox_published_total",
    "Health changes published to Kafka from the outbox",
)
OUTBOX_PENDING = Gauge(
    "churnwatch_scoring_outbox_pending",
    "Health changes committed but not yet published",
)
SWEEP_SECONDS = Histogram(
    "churnwatch_scoring_sweep_seconds",
    "Duration of one time-driven sweep over the accounts due",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
)
SWEEP_ACCOUNTS = Gauge(
    "churnwatch_scoring_sweep_accounts",
    "Accounts rescored by the last sweep",
)
SWEEP_DUE = Gauge(
    "churnwatch_scoring_sweep_accounts_due",
    "Accounts due (next_eval_at at or before its as_of) when the last sweep read them",
)
ACCOUNTS_PER_BAND = Gauge(
    "churnwatch_scoring_accounts",
    "Scored accounts per band (refreshed after a sweep, at most every 5 minutes)",
    ["band"],
)
