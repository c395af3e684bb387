-- 005: payouts, and which balance transactions each payout carried (payout_items).

CREATE TABLE IF NOT EXISTS payouts (
    id                     TEXT PRIMARY KEY,
    account                TEXT,
    livemode               INTEGER NOT NULL,
    amount                 INTEGER NOT NULL,
    currency               TEXT NOT NULL,
    arrival_date           INTEGER,
    status                 TEXT NOT NULL,
    method                 TEXT,
    payout_type            TEXT,
    failure_code           TEXT,
    automatic              INTEGER NOT NULL,
    reconciliation_status  TEXT,
    balance_transaction_id TEXT,
    created_at             INTEGER NOT NULL,
    source_event_id        TEXT NOT NULL,
    version                INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS payout_items (
    id                     TEXT PRIMARY KEY,
    payout_id              TEXT NOT NULL,
    balance_transaction_id TEXT NOT NULL,
    account                TEXT,
    livemode               INTEGER NOT NULL,
    source_event_id        TEXT NOT NULL,
    version                INTEGER NOT NULL
);
