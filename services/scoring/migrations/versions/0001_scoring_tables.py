"""scoring: dedup horizon, daily aggregates, day masks, tickets, records, health, outbox"""

from shared.migrations import run_script

revision: str = "0001"
down_revision: str | None = None

UPGRADE = """
-- The dedup horizon: a 16-byte BLAKE2b digest of every event id taken (fixed width and
-- compared byte-wise: a cheaper index than the text ids), kept while its occurred_at is inside
-- the horizon. Keys in the hot tables compare byte-wise too (COLLATE "C"), like Python's sort.
CREATE TABLE scoring.processed_events (
    event_hash bytea PRIMARY KEY,
    occurred_at timestamptz NOT NULL
);
-- Ids arrive roughly in occurred_at order: a BRIN index makes the purge cheap to keep.
CREATE INDEX processed_events_occurred_at ON scoring.processed_events
    USING brin (occurred_at);

-- Tables updated in place batch after batch keep 20% of each page free, so an update can
-- stay on its page without touching the index (a HOT update).
CREATE TABLE scoring.account_days (
    account_id text COLLATE "C" NOT NULL,
    day date NOT NULL,
    usage_events integer NOT NULL,
    usage_quantity double precision NOT NULL,
    tickets_opened integer NOT NULL,
    high_urgent_opened integer NOT NULL,
    escalations integer NOT NULL,
    reopens integer NOT NULL,
    -- the newest usage (feature use) of the day: activity keeps only the day of the newest
    last_usage_at timestamptz,
    last_feature_at timestamptz,
    PRIMARY KEY (account_id, day)
) WITH (fillfactor = 80);

CREATE TABLE scoring.survey_days (
    account_id text COLLATE "C" NOT NULL,
    day date NOT NULL,
    nps_sum integer NOT NULL,
    nps_answers integer NOT NULL,
    nps_promoters integer NOT NULL,
    nps_detractors integer NOT NULL,
    csat_sum integer NOT NULL,
    csat_answers integer NOT NULL,
    PRIMARY KEY (account_id, day)
) WITH (fillfactor = 80);

CREATE TABLE scoring.account_users (
    account_id text COLLATE "C" NOT NULL,
    user_id text COLLATE "C" NOT NULL,
    anchor_day integer NOT NULL,
    days bigint NOT NULL,
    PRIMARY KEY (account_id, user_id)
) WITH (fillfactor = 80);

CREATE TABLE scoring.account_features (
    account_id text COLLATE "C" NOT NULL,
    feature text COLLATE "C" NOT NULL,
    anchor_day integer NOT NULL,
    days bigint NOT NULL,
    PRIMARY KEY (account_id, feature)
) WITH (fillfactor = 80);

CREATE TABLE scoring.tickets (
    account_id text COLLATE "C" NOT NULL,
    ticket_id text COLLATE "C" NOT NULL,
    priority text NOT NULL,
    status text NOT NULL,
    last_action text NOT NULL,
    updated_at timestamptz NOT NULL,
    event_id text NOT NULL,
    PRIMARY KEY (account_id, ticket_id)
) WITH (fillfactor = 80);

-- Per account, what changes rarely: a batch of usage moves last_usage_day at most once a day
-- (the exact newest time is account_days.last_usage_at of that day), so most batches leave
-- these rows alone.
CREATE TABLE scoring.activity (
    account_id text COLLATE "C" PRIMARY KEY,
    known_since timestamptz NOT NULL,
    first_usage_at timestamptz,
    last_usage_day date,
    first_feature_at timestamptz,
    last_feature_day date,
    last_ticket_at timestamptz,
    last_survey_at timestamptz,
    nps_latest smallint,
    nps_latest_at timestamptz,
    nps_latest_event_id text
) WITH (fillfactor = 80);

CREATE TABLE scoring.accounts (
    account_id text COLLATE "C" PRIMARY KEY,
    name text NOT NULL,
    tier text,
    seats integer,
    arr double precision,
    renewal_date date,
    lifecycle_stage text,
    csm text,
    account_executive text,
    renewal_owner text,
    updated_at timestamptz NOT NULL
);
CREATE INDEX ix_scoring_accounts_csm ON scoring.accounts (csm);
CREATE INDEX ix_scoring_accounts_account_executive ON scoring.accounts (account_executive);
CREATE INDEX ix_scoring_accounts_renewal_owner ON scoring.accounts (renewal_owner);

CREATE TABLE scoring.people (
    person_id text PRIMARY KEY,
    name text NOT NULL,
    email text,
    manager_id text,
    time_zone text NOT NULL,
    active boolean NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE scoring.dirty_accounts (
    account_id text COLLATE "C" PRIMARY KEY,
    marked_at timestamptz NOT NULL DEFAULT now()
);

-- fillfactor 50 leaves room for in-place (HOT) updates: every sweep rewrites each row.
CREATE TABLE scoring.health (
    account_id text COLLATE "C" PRIMARY KEY,
    model_version text NOT NULL,
    profile text NOT NULL,
    as_of timestamptz NOT NULL,
    score double precision NOT NULL,
    band text NOT NULL,
    band_since timestamptz NOT NULL,
    partial boolean NOT NULL,
    stale boolean NOT NULL,
    top_reason text,
    snapshot json NOT NULL
) WITH (fillfactor = 50);

CREATE TABLE scoring.health_history (
    account_id text COLLATE "C" NOT NULL,
    as_of timestamptz NOT NULL,
    model_version text NOT NULL,
    score double precision NOT NULL,
    band text NOT NULL,
    triggers text[] NOT NULL,
    change_id text,
    snapshot json NOT NULL,
    moved_by json,
    PRIMARY KEY (account_id, as_of)
);

CREATE TABLE scoring.outbox (
    seq bigserial PRIMARY KEY,
    change_id text NOT NULL UNIQUE,
    account_id text NOT NULL,
    payload bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE scoring.sweeps (
    name text PRIMARY KEY,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    as_of timestamptz NOT NULL,
    accounts integer NOT NULL,
    seconds double precision
);

-- Day masks: bit i is the day `anchor_day - i`, 62 days kept (bits 0..61).
-- shift_days moves a mask to a later anchor; older days fall off.
CREATE FUNCTION scoring.shift_days(days bigint, by_days integer) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN by_days >= 62 THEN 0::bigint
                WHEN by_days <= 0 THEN days
                ELSE (days << by_days) & 4611686018427387903 END
$$;

-- Whether a mask has a day between `newest` and `oldest` days before `as_of_day` (inclusive).
CREATE FUNCTION scoring.active_in(
    anchor_day integer, days bigint, as_of_day integer, newest integer, oldest integer
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN greatest(anchor_day - as_of_day + newest, 0)
             > least(anchor_day - as_of_day + oldest, 61) THEN false
        ELSE days & (((1::bigint << (least(anchor_day - as_of_day + oldest, 61)
                                     - greatest(anchor_day - as_of_day + newest, 0) + 1)) - 1)
                     << greatest(anchor_day - as_of_day + newest, 0)) <> 0
    END
$$;

-- Last writer wins by (time, id): whether the first pair is newer than the second.
CREATE FUNCTION scoring.newer(
    at1 timestamptz, id1 text, at2 timestamptz, id2 text
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT at1 IS NOT NULL AND (at2 IS NULL OR (at1, id1) > (at2, id2))
$$;
"""

DOWNGRADE = """
DROP FUNCTION scoring.newer(timestamptz, text, timestamptz, text);
DROP FUNCTION scoring.active_in(integer, bigint, integer, integer, integer);
DROP FUNCTION scoring.shift_days(bigint, integer);
DROP TABLE scoring.sweeps;
DROP TABLE scoring.outbox;
DROP TABLE scoring.health_history;
DROP TABLE scoring.health;
DROP TABLE scoring.dirty_accounts;
DROP TABLE scoring.people;
DROP TABLE scoring.accounts;
DROP TABLE scoring.activity;
DROP TABLE scoring.tickets;
DROP TABLE scoring.account_features;
DROP TABLE scoring.account_users;
DROP TABLE scoring.survey_days;
DROP TABLE scoring.account_days;
DROP TABLE scoring.processed_events;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
