"""The words of the document that a run cannot measure: what each scenario means, and for each
target the profile findings and what it would take (kept here, next to the code that measures,
so the generated document and the harness never disagree).

Profiles were taken with py-spy (``bench/tools``) on the services while the scenarios ran on
this machine; their percentages are shares of the sampled process's busy time.
"""

from __future__ import annotations

PREAMBLE = """
`make bench` measures churnwatch against bare baselines, each in the same run on the same
machine; `make bench-quick` is a reduced run (under 3 minutes, written to
`reports/benchmarks-quick.md`). Every figure that matters is a ratio against its baseline,
plus CPU time per event, which carries over to pods sized in millicores. The harness lives in
`bench/` (`python -m bench --help`); it starts its own Kafka broker and PostgreSQL (devstack's,
on free ports, in a temporary directory) and stops them at the end, also on failure.

The machine is small and shared: every process of a scenario — the services, the baseline,
the load generator, Kafka, PostgreSQL — and other engineers' test runs share its 2 cores. The
load average is reported below; absolute rates move by ±20 % from run to run, ratios less.

Workload: usage events as the native API takes them (~265 bytes of JSON per item, ~330 bytes
as ingest writes them to Kafka) over 100,000 accounts, account *k* drawn with probability
∝ 1/*k* (Zipf, s = 1: the busiest account sees ~8 % of all events, most accounts a handful),
users within an account and features skewed the same way; topics with 6 partitions; seeded,
so ours and the baseline see the same events.
"""

S1 = """
At 1,000 events per request ingest does what the bare app does — decode the body once, hand
each partition one pre-built batch, await the acknowledgements — plus validation, the contract
structs, authentication and metrics, which cost little per event at that size: the two spend
about the same CPU per event, and ingest needed no change for this target.

At 1 event per request the ratio is lowest: ingest's fixed cost per request is ~250 µs of CPU
more than the bare app's. A profile of ingest at 1 event/request: ~60 % of its time in the
framework's request handling (Starlette/FastAPI routing, dependency injection for the API key
— `solve_dependencies` alone ~13 % — the middlewares of `shared.runner` and ingest, the
response), ~25 % in the route itself, most of it handing the message to the Kafka producer;
ingest's own checks are a few per cent. What it would take: `POST /v1/events` as a raw ASGI
endpoint mounted beside the FastAPI app (as the bare baseline is), keeping the same checks —
or clients batching, which the Segment libraries already do.
"""

S2 = """
**Where the time goes.** The baseline decodes an event in ~2–4 µs. The scoring process spends
~27–29 µs of its own CPU per consumed event, and PostgreSQL another ~21–28 µs (both measured
from `/proc`). A profile of the drain (py-spy on the scoring process, after this round):
rescoring 30–40 % of the samples (a quick run's backlog of ~5 s sits at the rescorer's give-way
threshold; in the full run it gives way), the consumer ~32 %, the relay ~5 %, idle the rest.
Within the consumer: waiting on or encoding PostgreSQL's `COPY`s and merges ~45 % (the
aggregates 21 %, the rescoring queue 10 %, the dedup claim 8 %), decoding ~14 %, aiokafka's
fetcher 5–7 %, the fold ~12 %, planning and keys ~5 %.

**Why the rows.** Exactly-once scoring writes, per event, one dedup id (a 16-byte digest,
claimed by one `COPY`), and per account touched in a batch one day row and one rescoring-queue
row, plus — the first time only — an activity row and a user and feature day mask: ~3 rows per
event with this workload (the Zipf tail means most accounts of a batch are new to it). This
PostgreSQL takes ~100–130k such rows/s with a core of its own (the raw-upsert baseline).

**What was done in this round** (each commit says what it bought; issue 16): Python's garbage
collector no longer promotes each batch's working set while a consumer loop runs (its youngest
generation waits for 50,000 allocations instead of 700: the collector had taken 2.8 s of a
6.7 s drain, with 100–160 ms full-heap passes); cheaper per-record objects (a slotted record,
a named-tuple day mask) and keys (computed once, BLAKE2b from a copied state); a backlog of
fresh records counts as a backlog, so rescoring gives way to it. Scoring CPU 34–38 → 27–29 µs
per event, measured back to back. Earlier rounds: hashed dedup keys claimed by one `COPY`,
binary `COPY` into staging tables merged with one statement per table, rows already written
left out, byte-wise key collation — from ~78 µs per event. Tried and dropped: two consumer
loops in one process, freezing the start-up heap out of the collector.

**What 0.25× would take** (60–110k events/s per process: ~10–15 µs of CPU per event, process
and database together, against ~55 today): (1) dedup by partition in memory, with PostgreSQL
as the durable record — the batch stores each partition's last offset (it fences a previous
owner in a rebalance and recognises a redelivery), the new events' digests go in as one row
per partition and batch, and the set is loaded per day on demand — which removes the
random-key index insert, one of the ~3 rows per event (designed, not built: it could not be
finished and proven under `make chaos` in this round); (2) no rescoring at all while behind;
(3) a columnar decode and fold (msgspec into per-account-and-day accumulators, or a native
extension), taking the consumer's Python from ~13 µs to a few; (4) folding batch N+1 while
batch N's transaction is in PostgreSQL; (5) PostgreSQL on cores of its own, as in production.
Throughput then scales out by partitions and processes, as designed.

**Database rows/s vs the raw upsert.** One consumer loop runs Python and database work one
after the other; the raw upsert only waits for the database. Overlapping them (step 4) is what
would close that ratio — on a machine with a core to spare.
"""

S3 = """
**The path.** An event reaches Slack through two Kafka hops: ingest (acks=all) → scoring's
batch transaction, which — when the consumer is caught up (lag ≤ 2 s) and the batch touched
at most 200 accounts, or for a batch's ticket, survey and account-record accounts within that
limit — also rescores them and writes the outbox → the relay, woken by that commit, publishes
→ alerts' batch transaction (rules, alert, outbox) → its delivery workers, woken by that
commit → the Slack call. Before this round, the rescoring round's own transaction, the relay's
poll and a delivery claim after its poll sat in between. The floor adds up *one* produce →
consume round trip, *one* HTTP round trip and *one* commit: the path's structural minimum is
~2–3× that floor with nothing else running.

**What the breakdown showed, and what was done.** The consumer used to wait on the rescoring
queue: each rescoring chunk deleted its queued rows when its transaction began, and every batch
touching one of those accounts waited for that commit (71 % of scoring's database wait
samples). Now the worker claims rows `FOR KEY SHARE SKIP LOCKED` and deletes only the versions
it claimed (0 % waits); a caught-up batch rescores its accounts in its own transaction; every
outbox commit wakes the relay; alerts' batch wakes its delivery workers; rescoring chunks are
200 accounts (1,000 made the facts query spill to disk). In quick runs on the shared box:
alert p50 / p99 9–13 s / 11–16 s before, 0.9–1.3 s / 1.5–2.5 s after.

**What remains:** CPU contention on 2 cores shared by every
process of the pipeline, the load generator and both servers; and the alerts consumer working
through the health changes that the seeded portfolio's first rescorings publish (thousands of
band changes in the first seconds: batches of ~190 ms, and the measured change waits behind
one). At 5,000 events/s over a Zipf portfolio, ~2,000 distinct accounts a second need a new
score, at ~0.1–0.5 ms each — most of a core. **What it would take:** cheaper rescoring of
usage-only accounts (the facts query per chunk, then the model in Python), or cores for the
consumers: the path itself now waits for nothing but its own work.
"""

S4 = """
The scorer holds nothing per account beyond a bounded memory of rows it already wrote
(`services/scoring/known.py`, at most 20,000 entries per table, ~10 MB): its growth with the
number of accounts is that cache filling up plus the heap's high-water mark — Python does not
hand freed arenas back, and rescoring rounds and relay batches over more accounts leave a
higher mark. The baseline holds the accounts themselves, in the most compact form Python
offers. With more accounts the scorer's figure falls (its growth is bounded) while the
baseline's stays (it is linear). A figure at or below zero means the scorer did not grow at
all: the heap it reached while warming up was enough for five times as many accounts (the
garbage collector and the allocator reuse it), and RSS moves by a few MB either way.

The quick run measures the same 100,000 accounts as the full one (in one run instead of
three). It used to take 20,000 and scale the growth up by five, which multiplied the bounded
part — the cache filling up, the heap reaching its working size — as if it were per account:
110 MB "per 100k accounts" in a quick run against 24 MB in the full run. A bounded growth
cannot be extrapolated from a smaller run; only a run at the reported size measures it.
"""

S5 = """
**Proportional to what changed.** Scores change with data — the rescoring queue handles that —
and with time alone. A pass now rescores only the accounts whose `next_eval_at` has passed:
the next UTC midnight (the day windows roll, warm-up ends), or earlier in the day the exact
moment an input goes stale or the published silence reaches three days
(`services/scoring/due.py`, written with every score). They are read by an index range scan,
so five minutes after scoring almost nothing is due, whatever the number of accounts: the
target row. Measures that change continuously within a day (days since activity, days in
band) are refreshed at day granularity, as the issue asks; docs/scoring.md says what that
costs (at most a few score points a day under the shipped model).

**The day rollover** (no target) is the daily cost: every account is rescored once just after
00:00 UTC — facts per 2,000-account chunk (range scans on every table's primary key), scored
in Python, score, due time, history point and health change written — about what the old
every-interval sweep cost each time. It cannot skip writes: every account's days since
activity and history point move. Its CPU per account gives the accounts swept per hour per
core (the sizing table); the cost per day is one rescoring per account plus one per crossing,
instead of one per account every interval (every 5 minutes before: 288 a day). Two chunks are
in flight, so PostgreSQL works while Python scores; more cores (and a higher
`SCORING_SWEEP_CONCURRENCY`) shorten the burst. Memory does not grow with the number of
accounts (nothing is held between chunks).
"""

S6 = """
The baseline does two things per event: decode the line, and hand one tuple to a binary
`COPY` into a table without an index — ~2.3 µs of Python and ~0.9 µs of PostgreSQL per event,
~5.5 µs of wall time. At 0.5× that leaves ~11 µs for everything the import does. A profile
(py-spy and cProfile, 150,000 events) of what it does, per event: its Python is ~15–17 µs on
one interpreter — the reader thread (~76 % of the samples: decode 1.6 µs, dedup key 1 µs,
`aggregate.coalesce` ~4 µs on history spread over months, sorting the claims 0.4 µs, the
history step's spill 0.3 µs) and the database side (the merge rows built and encoded for
`COPY`, ~3–4 µs) — plus PostgreSQL's ~5 µs, of which the per-event primary-key claim in
`imported_events` (what makes overlapping exports count once) is ~2–3 µs.

**What was done:** the spill keeps the JSON line as read instead of encoding each event again;
the claims inside the live dedup horizon are picked in the reader thread; an all-new chunk (the
common case) builds no per-event lists on the database side; claims are sorted by key alone:
−16 % of the import's Python per event, measured back to back (17.7 → 15.1 µs).

**Measured and dropped:** the fold in SQL (`COPY` the raw rows, derive the day rows and masks
with `GROUP BY`): PostgreSQL alone then spends ~8 µs per event on the day rows and masks, and
its one session caps the load at ~58k events/s before the other tables; a reading process
instead of the thread (pickling a chunk's coalesced rows costs ~7 µs per event, more than the
fold); larger chunks (no gain, 310–510 MB resident at 100–200k events).

**What it would take:** several processes each importing whole chunks on their own connection
(the merges are commutative and the chunk markers tolerate commits out of order), on more than
the 2 shared cores here, and a vectorised fold. The history step (no target) is the offline
scorer's cost per account and day (~0.5–1 ms: the facts of every window, then the model),
linear in accounts × days; `--no-history` leaves it out.
"""

S7 = """
The target is absolute (p95 ≤ 150 ms per page, 200 accounts); the baseline only says how much
of a page's time is the console's work rather than HTTP and the bytes. Every console request
checks the signed session, reads the person's reports from scoring, then asks scoring and alerts
over HTTP for what the page shows (the portfolio: scoring's summaries of the 200 accounts with
their 30-day lines, and alerts' open alerts of those accounts) and renders the template with one
inline SVG sparkline per row — 158 KiB of HTML for 200 accounts. The figures are sequential
requests on a 2-core machine shared with Kafka, PostgreSQL, the three other services and other
engineers' test runs, so they move with the load: the first full-size measurement (`python -m
bench --only S7`, load average ~5–6) gave p95 69 ms for the portfolio, 31 ms for an account,
32 ms for its brief, 61 ms for the alerts and 44 ms for the team page; quick runs at busier
moments put the portfolio's p95 at 116–172 ms, the only page near the target.
"""

SIZING = """
**How to size a pod.** A pod given *m* millicores handles *m* ÷ 1,000 × the figure above, as
long as Kafka and PostgreSQL keep up; the last column is the PostgreSQL CPU the same load costs
(its writes and merges), to size the database by. The figures are this run's medians on this
machine's shared cores: plan at about 60 % of them, for bursts, garbage collection, and the
work that runs beside the measured one (rescoring, the sweep, the relay). Scale out by
processes, up to one per partition of the consumed topic (6 by default).

**Beside streaming engines.** The published Nexmark results for Apache Flink (Flink 1.13,
8 task managers of one slot, exactly-once checkpoints every 3 minutes, RocksDB state,
mini-batch aggregation; "Benchmark Results" in the README of
[nexmark/nexmark](https://github.com/nexmark/nexmark)) give throughput per core of 155k
events/s for q0 (pass-through), 34.3k for q4 (a keyed average), 22.1k for q5 (hot items: a
keyed sliding-window count) and 75.7k for q12 (a keyed count per processing-time window).
Those jobs generate their events in-process and throw the results away; S2 decodes every event
from Kafka and makes every effect durable in PostgreSQL in the transaction that records it as
processed — exactly-once that covers the database, which neither Flink's checkpoints nor Kafka
Streams' transactions do. Compare S2's "one CPU handles" with those, and with the process and
PostgreSQL together (both CPU columns) for a whole-system figure. We found no published
per-core figure for a keyed aggregation in Kafka Streams that we could check, so none is
quoted.
"""

FINDINGS: dict[str, str] = {
    "S1": S1,
    "S2": S2,
    "S3": S3,
    "S4": S4,
    "S5": S5,
    "S6": S6,
    "S7": S7,
}
