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
**Where the time goes.** The baseline decodes an event in ~2 µs. The drain row is the scoring
process as it runs — consumer, rescoring worker, relay, sweep; the *consumer alone* row is the
same drain with rescoring held off, so the two rows split the cost. Back to back in quick runs
(80,000 events over 100,000 accounts, 6,000–6,800 rescorings during the drain): the drain
21–23k events/s at 23–24 µs of Python and 24–27 µs of PostgreSQL per event; the consumer alone
27–35k events/s at 13–18 µs and 13–16 µs. The rescorings beside the consumer take about half the
process's CPU and two fifths of PostgreSQL's during a drain: a Zipf tail means most events touch
an account no other event of the drain touched, so nearly every event costs a rescoring later
anyway (~80–110 µs of Python and ~90–120 µs of PostgreSQL per account, measured per chunk of
200 after this round; `services/scoring/scorer.py`). The consumer's own cost is ~3 rows per
event — its 16-byte dedup digest (one `COPY`), one day row and one rescoring-queue row per
account of the batch, plus the first time a user and feature day mask and an activity row —
and the Python around them: decoding ~2 µs, fold, keys and planning ~4 µs, encoding the
`COPY`s and merges, aiokafka's fetcher.

**Python and PostgreSQL take turns.** Process CPU plus PostgreSQL CPU per event is about the
wall time per event (this run: 24 + 26 µs against 1 / 21,500 s = 46 µs): one consumer loop
decodes and folds a batch, then waits for its transaction, while PostgreSQL waits for the next
batch — one of the two cores idles through the drain.

**This round** (each commit says what it bought; issue 16): the facts query reads each table
per account through its key, whatever plan PostgreSQL settles on (the generic plan it switches
to after five runs had joined every pair of a chunk's accounts), rows convert to facts
positionally, a partial index finds each account's last published change, and the model's
findings and the change's evidence cost less — per account rescored, in chunks of 200: Python
140 → 105 µs, PostgreSQL 183 → 122 µs (a harness over the 100,000-account seed, best of 3).
The staging tables now outlive a transaction: `ON COMMIT DELETE ROWS` truncated all seven at
every commit (2.2–3.2 ms of server time per transaction, against 0.2 ms) — no measurable change
in the drain (three pairs back to back: 21.0–23.2k events/s before, 21.1–22.4k after), since at
2,000 records a batch that is ~1 µs per event; it counts at the small batches of a caught-up
consumer. Earlier rounds: Python's collector no longer promotes each batch's working set,
hashed dedup keys claimed by one `COPY`, binary `COPY` into staging tables merged with one
statement per table, rows already written left out, byte-wise key collation — from ~78 µs per
event of Python.

**Measured and dropped:** (1) no dedup claim at all — the most that dedup by partition in
memory could buy: the consumer alone 37.5–41.5k against 30–32k events/s, 3 µs of Python and
3.5 µs of PostgreSQL less per event (~20 %), not worth a second exactly-once mechanism in this
round; (2) batches of 10,000 records instead of 2,000: PostgreSQL's CPU per event fell by 40 %
for the consumer alone (13–14 → 8–9 µs), but the drain with its rescorings ran slower (14–16k
against 19–20k events/s).

**What 0.25× would take** (~100k events/s: ~10 µs of CPU per event, process and database
together, against ~33 for the consumer alone and ~50 with its rescorings in this run): far fewer
rows than ~3 per event (dedup by partition in memory, with PostgreSQL as the durable record,
−6.5 µs), no rescoring while behind, a columnar or native decode and fold (the consumer's Python
from ~13 µs to a few), folding batch N+1 while batch N's transaction is in PostgreSQL (up to
~1.8× while a core idles), and PostgreSQL on cores of its own, as in production. A Python
consumer writing rows per event through PostgreSQL transactions does not get there on 2 shared
cores; throughput scales out by partitions and processes instead, as designed — the sizing table
gives the cost per event to size by.

**Database rows/s vs the raw upsert.** One consumer loop runs Python and database work one
after the other; the raw upsert only waits for the database. Overlapping them is what would
close that ratio — on a machine with a core to spare.
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

**The hops after the health commit** (this round). The breakdown now also times the relay's
publish (the change's Kafka timestamp), a reader of the health topic receiving it, alerts'
batch committing and a delivery worker claiming the alert, and counts the health changes the
topic carried during the run (~4,000–5,600 in a quick run: the seeded portfolio's accounts
touched by the load). It showed alerts' own consumer as the bottleneck, not the relay (+10–60
ms) nor delivery (claim → Slack under 10 ms): the measured change waited behind alerts'
batches of 300–900 ms. py-spy put ~30 % of the alerts process in SQLAlchemy compiling a new
multi-row `INSERT` for every batch size, and most batches prepared their reads again (`IN (…)`
makes one SQL text per number of accounts). Alerts' batch now binds one array per column
(`unnest` writes, `= ANY` reads): fixed SQL texts, prepared once per connection. Quick runs back
to back, before / after: event → alert p50 / p99 1,299 / 1,714 and 2,716 / 4,116 ms → 350 / 883
and 302 / 719 ms; alerts' batch 300–900 → 30–70 ms; alerts' CPU over the load 2.9 → 1.5–1.6 s.
Slack's one-message-a-second pacing per channel is kept; each alert here goes to its own CSM's
direct messages, so it adds nothing to this path. The load generator's one `599` of the last
runs was its own: a keep-alive connection reused after the services' 5 s idle timeout (no
answer; ingest never saw it) — it no longer reuses a connection the server closed or idle over
4 s.

**What remains:** the first hop — ingest → scoring's batch committed — now sets the p99 (360–870
ms in quick runs, moving with the box's load); then CPU contention on 2 cores shared by every
process of the pipeline, the load generator and both servers; alerts spends ~300–400 µs of CPU
per health change (its rules ~15 %, decoding ~5 %).

**The 20 %-of-S1 row is overload, not the path.** It offers a fifth of what ingest alone took
in S1 (44,000 events/s this run, 34,900 in the last), against a scoring drain of ~21,500 events/s
(S2) with every process on the same 2 cores: the queues grow for the whole run, so its latency
is the backlog's age (event → alert p50 79 s), and ingest itself falls behind (HTTP 202 p50
17 s; 3,811 requests got no answer — connections reset by the overloaded server, counted since
this round — and 54 were refused with 503). The target is at 5,000 events/s; this row shows
what past capacity looks like on this machine, and why the sizing table, not this row, is the
figure to size by.
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

**This round:** the facts query passes a chunk's ids through a sub-select, so every plan is the
cheap generic one (a fresh connection planning for 2,000 given ids had switched JIT on — 45 ms
a chunk — and hash-joined the newest-day lookups over all of `account_days`); the last
published change of each account is found through a partial index on the history points that
published one (migration 0006), instead of walking back through every daily point — 125 →
12.5 µs of PostgreSQL per account with 200 change-less days, a cost that grew with an
account's age and that a fresh bench database never shows.
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
