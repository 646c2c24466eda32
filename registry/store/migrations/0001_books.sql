-- The books, version 1. One schema for SQLite and PostgreSQL: {{serial}}
-- and {{blob}} are filled in per engine (dialect.go). Money, token counts
-- and sequence numbers are BIGINT (Go's uint64 values, refused above
-- 2^63-1); times are Unix milliseconds UTC, 0 for none; durations are
-- nanoseconds.

CREATE TABLE allowed_images (
    hash     TEXT PRIMARY KEY,
    note     TEXT NOT NULL,
    added_ms BIGINT NOT NULL
);

CREATE TABLE prices (
    model      TEXT PRIMARY KEY,
    base_price BIGINT NOT NULL CHECK (base_price >= 0),
    min_price  BIGINT NOT NULL CHECK (min_price >= 0),
    max_price  BIGINT NOT NULL CHECK (max_price >= 0)
);

CREATE TABLE workers (
    id              TEXT PRIMARY KEY,
    public_key      TEXT NOT NULL,
    payout          TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    models          TEXT NOT NULL, -- JSON array of model names
    price           BIGINT NOT NULL CHECK (price >= 0),
    min_payout      BIGINT NOT NULL CHECK (min_payout >= 0),
    payout_every_ns BIGINT NOT NULL CHECK (payout_every_ns >= 0),
    certificate     {{blob}},
    evidence        {{blob}},      -- JSON, kept byte for byte
    registered_ms   BIGINT NOT NULL,
    cert_expires_ms BIGINT NOT NULL,
    last_seen_ms    BIGINT NOT NULL,
    heartbeats      BIGINT NOT NULL,
    served          BIGINT NOT NULL,
    failed          BIGINT NOT NULL,
    latency_ms      DOUBLE PRECISION NOT NULL
);

-- The invariant is a constraint, so no commit can break it.
CREATE TABLE balances (
    worker    TEXT PRIMARY KEY REFERENCES workers (id),
    earned    BIGINT NOT NULL,
    unpaid    BIGINT NOT NULL CHECK (unpaid >= 0),
    in_flight BIGINT NOT NULL CHECK (in_flight >= 0),
    paid      BIGINT NOT NULL CHECK (paid >= 0),
    CHECK (earned = unpaid + in_flight + paid)
);

CREATE TABLE receipts (
    worker TEXT NOT NULL REFERENCES workers (id),
    seq    BIGINT NOT NULL CHECK (seq >= 0),
    model  TEXT NOT NULL,
    tokens BIGINT NOT NULL CHECK (tokens >= 0),
    amount BIGINT NOT NULL CHECK (amount >= 0),
    end_ms BIGINT NOT NULL,
    signed {{blob}},
    PRIMARY KEY (worker, seq)
);

CREATE INDEX receipts_model_end ON receipts (model, end_ms);

CREATE TABLE batches (
    id            {{serial}},
    query_id      BIGINT NOT NULL CHECK (query_id >= 0 AND query_id < 8388608),
    created_ms    BIGINT NOT NULL, -- the message's created_at
    planned_ms    BIGINT NOT NULL, -- when it was planned: schedules count from here
    state         TEXT NOT NULL CHECK (state IN ('planned', 'signed', 'sent', 'confirmed', 'expired')),
    message       {{blob}},
    msg_hash      TEXT NOT NULL,
    sends         BIGINT NOT NULL CHECK (sends >= 0),
    fees          BIGINT NOT NULL CHECK (fees >= 0),
    tx_hash       TEXT NOT NULL,
    expire_reason TEXT NOT NULL,
    updated_ms    BIGINT NOT NULL
);

CREATE INDEX batches_state ON batches (state);

CREATE TABLE batch_items (
    batch_id BIGINT NOT NULL REFERENCES batches (id),
    worker   TEXT NOT NULL REFERENCES workers (id),
    address  TEXT NOT NULL,
    amount   BIGINT NOT NULL CHECK (amount > 0),
    PRIMARY KEY (batch_id, worker)
);

CREATE INDEX batch_items_worker ON batch_items (worker);

-- Counters that must survive restarts and be shared by every registry on
-- the database, e.g. the highload-v3 query id.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

INSERT INTO counters (name, value) VALUES ('query_id', 0);

CREATE TABLE events (
    id      {{serial}},
    at_ms   BIGINT NOT NULL,
    level   TEXT NOT NULL CHECK (level IN ('info', 'warn', 'error')),
    worker  TEXT NOT NULL,
    message TEXT NOT NULL
);

CREATE INDEX events_at ON events (at_ms, id);
