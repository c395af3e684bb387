-- 005: payouts, and which balance transactions each payout carried (payout_items).

CREATE TABLE IF NOT EXISTS payouts
(
    id                     String,
    account                Nullable(String),
    livemode               UInt8,
    amount                 Int64,
    currency               String,
    arrival_date           Nullable(DateTime),
    status                 String,
    method                 Nullable(String),
    payout_type            Nullable(String),
    failure_code           Nullable(String),
    automatic              UInt8,
    reconciliation_status  Nullable(String),
    balance_transaction_id Nullable(String),
    created_at             DateTime,
    source_event_id        String,
    version                UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS payout_items
(
    id                     String,
    payout_id              String,
    balance_transaction_id String,
    account                Nullable(String),
    livemode               UInt8,
    source_event_id        String,
    version                UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;
