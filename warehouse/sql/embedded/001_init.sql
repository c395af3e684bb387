-- revline warehouse, embedded (SQLite). Version 1: the same tables and columns as
-- schemas/clickhouse/001_init.sql. Rows are upserted keeping the highest version per id.
-- Instants are Unix seconds (INTEGER), money INTEGER minor units next to a currency column.

CREATE TABLE IF NOT EXISTS stripe_events (
    id             TEXT PRIMARY KEY,
    event_type     TEXT,
    api_version    TEXT,
    created_at     INTEGER,
    livemode       INTEGER NOT NULL,
    account        TEXT,
    object_type    TEXT,
    object_id      TEXT,
    endpoint       TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    flag           TEXT,
    payload        TEXT NOT NULL,
    version        INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS dead_letters (
    id             TEXT PRIMARY KEY,
    event_type     TEXT,
    reason         TEXT NOT NULL,
    detail         TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    version        INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS invoices (
    id                               TEXT PRIMARY KEY,
    account                          TEXT,
    livemode                         INTEGER NOT NULL,
    customer_id                      TEXT,
    subscription_id                  TEXT,
    number                           TEXT,
    status                           TEXT,
    billing_reason                   TEXT,
    collection_method                TEXT,
    currency                         TEXT NOT NULL,
    subtotal                         INTEGER NOT NULL,
    total_discount                   INTEGER NOT NULL,
    total_tax                        INTEGER NOT NULL,
    total                            INTEGER NOT NULL,
    total_excluding_tax              INTEGER NOT NULL,
    amount_due                       INTEGER NOT NULL,
    amount_paid                      INTEGER NOT NULL,
    amount_remaining                 INTEGER NOT NULL,
    amount_overpaid                  INTEGER NOT NULL,
    starting_balance                 INTEGER NOT NULL,
    ending_balance                   INTEGER,
    pre_payment_credit_notes_amount  INTEGER NOT NULL,
    post_payment_credit_notes_amount INTEGER NOT NULL,
    period_start                     INTEGER,
    period_end                       INTEGER,
    created_at                       INTEGER NOT NULL,
    finalized_at                     INTEGER,
    due_date                         INTEGER,
    paid_at                          INTEGER,
    voided_at                        INTEGER,
    marked_uncollectible_at          INTEGER,
    paid_out_of_band                 INTEGER NOT NULL,
    quote_id                         TEXT,
    lines_complete                   INTEGER NOT NULL,
    source_event_id                  TEXT NOT NULL,
    event_created_at                 INTEGER NOT NULL,
    version                          INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS invoice_history (
    id               TEXT PRIMARY KEY,
    invoice_id       TEXT NOT NULL,
    account          TEXT,
    livemode         INTEGER NOT NULL,
    customer_id      TEXT,
    status           TEXT,
    currency         TEXT NOT NULL,
    total            INTEGER NOT NULL,
    amount_paid      INTEGER NOT NULL,
    amount_remaining INTEGER NOT NULL,
    due_date         INTEGER,
    finalized_at     INTEGER,
    valid_from       INTEGER NOT NULL,
    source_event_id  TEXT NOT NULL,
    version          INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS invoice_lines (
    id                   TEXT PRIMARY KEY,
    line_id              TEXT NOT NULL,
    invoice_id           TEXT NOT NULL,
    account              TEXT,
    livemode             INTEGER NOT NULL,
    customer_id          TEXT,
    subscription_id      TEXT,
    subscription_item_id TEXT,
    invoice_item_id      TEXT,
    price_id             TEXT,
    product_id           TEXT,
    source_type          TEXT NOT NULL,
    proration            INTEGER NOT NULL,
    quantity             INTEGER,
    unit_amount          INTEGER,
    currency             TEXT NOT NULL,
    amount               INTEGER NOT NULL,
    discount_amount      INTEGER NOT NULL,
    pretax_credit_amount INTEGER NOT NULL,
    inclusive_tax_amount INTEGER NOT NULL,
    exclusive_tax_amount INTEGER NOT NULL,
    recognizable_amount  INTEGER NOT NULL,
    period_start         INTEGER,
    period_end           INTEGER,
    invoice_finalized_at INTEGER,
    source_event_id      TEXT NOT NULL,
    version              INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS payments (
    id                     TEXT PRIMARY KEY,
    kind                   TEXT NOT NULL,
    account                TEXT,
    livemode               INTEGER NOT NULL,
    invoice_id             TEXT,
    subscription_id        TEXT,
    customer_id            TEXT,
    payment_intent_id      TEXT,
    charge_id              TEXT,
    amount                 INTEGER NOT NULL,
    amount_captured        INTEGER NOT NULL,
    amount_refunded        INTEGER NOT NULL,
    currency               TEXT NOT NULL,
    status                 TEXT NOT NULL,
    failure_code           TEXT,
    balance_transaction_id TEXT,
    created_at             INTEGER NOT NULL,
    paid_at                INTEGER,
    source_event_id        TEXT NOT NULL,
    version                INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS refunds (
    id                             TEXT PRIMARY KEY,
    account                        TEXT,
    livemode                       INTEGER NOT NULL,
    charge_id                      TEXT,
    payment_intent_id              TEXT,
    invoice_id                     TEXT,
    subscription_id                TEXT,
    customer_id                    TEXT,
    amount                         INTEGER NOT NULL,
    currency                       TEXT NOT NULL,
    status                         TEXT NOT NULL,
    reason                         TEXT,
    failure_reason                 TEXT,
    balance_transaction_id         TEXT,
    failure_balance_transaction_id TEXT,
    created_at                     INTEGER NOT NULL,
    source_event_id                TEXT NOT NULL,
    version                        INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS disputes (
    id                      TEXT PRIMARY KEY,
    account                 TEXT,
    livemode                INTEGER NOT NULL,
    charge_id               TEXT,
    payment_intent_id       TEXT,
    invoice_id              TEXT,
    subscription_id         TEXT,
    customer_id             TEXT,
    amount                  INTEGER NOT NULL,
    currency                TEXT NOT NULL,
    reason                  TEXT,
    status                  TEXT NOT NULL,
    outcome                 TEXT NOT NULL,
    balance_transaction_ids TEXT NOT NULL,
    created_at              INTEGER NOT NULL,
    closed_at               INTEGER,
    source_event_id         TEXT NOT NULL,
    version                 INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS balance_transactions (
    id                 TEXT PRIMARY KEY,
    account            TEXT,
    livemode           INTEGER NOT NULL,
    source_id          TEXT,
    kind               TEXT NOT NULL,
    reporting_category TEXT,
    amount             INTEGER NOT NULL,
    fee                INTEGER NOT NULL,
    net                INTEGER NOT NULL,
    currency           TEXT NOT NULL,
    exchange_rate      TEXT,
    status             TEXT,
    created_at         INTEGER NOT NULL,
    available_on       INTEGER,
    source_event_id    TEXT NOT NULL,
    version            INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS credit_notes (
    id                  TEXT PRIMARY KEY,
    account             TEXT,
    livemode            INTEGER NOT NULL,
    invoice_id          TEXT,
    customer_id         TEXT,
    number              TEXT,
    kind                TEXT,
    status              TEXT NOT NULL,
    reason              TEXT,
    currency            TEXT NOT NULL,
    amount              INTEGER NOT NULL,
    subtotal            INTEGER NOT NULL,
    total               INTEGER NOT NULL,
    total_excluding_tax INTEGER,
    discount_amount     INTEGER NOT NULL,
    pre_payment_amount  INTEGER NOT NULL,
    post_payment_amount INTEGER NOT NULL,
    out_of_band_amount  INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    voided_at           INTEGER,
    source_event_id     TEXT NOT NULL,
    version             INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS credit_note_lines (
    id                   TEXT PRIMARY KEY,
    credit_note_id       TEXT NOT NULL,
    line_id              TEXT NOT NULL,
    invoice_id           TEXT,
    invoice_line_id      TEXT,
    account              TEXT,
    livemode             INTEGER NOT NULL,
    currency             TEXT NOT NULL,
    amount               INTEGER NOT NULL,
    amount_excluding_tax INTEGER NOT NULL,
    tax_amount           INTEGER NOT NULL,
    quantity             INTEGER,
    created_at           INTEGER NOT NULL,
    source_event_id      TEXT NOT NULL,
    version              INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS subscription_items (
    id                   TEXT PRIMARY KEY,
    subscription_id      TEXT NOT NULL,
    item_id              TEXT NOT NULL,
    account              TEXT,
    livemode             INTEGER NOT NULL,
    customer_id          TEXT,
    status               TEXT NOT NULL,
    price_id             TEXT,
    product_id           TEXT,
    currency             TEXT,
    unit_amount          INTEGER,
    quantity             INTEGER NOT NULL,
    interval             TEXT,
    interval_count       INTEGER NOT NULL,
    usage_type           TEXT,
    cancel_at_period_end INTEGER NOT NULL,
    cancel_at            INTEGER,
    canceled_at          INTEGER,
    ended_at             INTEGER,
    trial_start          INTEGER,
    trial_end            INTEGER,
    pause_collection     TEXT,
    cancellation_reason  TEXT,
    discount_ids         TEXT NOT NULL,
    current_period_start INTEGER,
    current_period_end   INTEGER,
    valid_from           INTEGER NOT NULL,
    valid_to             INTEGER,
    source_event_id      TEXT NOT NULL,
    version              INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS customers (
    id              TEXT PRIMARY KEY,
    account         TEXT,
    livemode        INTEGER NOT NULL,
    country         TEXT,
    currency        TEXT,
    balance         INTEGER,
    created_at      INTEGER,
    deleted         INTEGER NOT NULL,
    source_event_id TEXT NOT NULL,
    version         INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS attributions (
    id                TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    account           TEXT,
    livemode          INTEGER NOT NULL,
    customer_id       TEXT,
    subscription_id   TEXT,
    invoice_id        TEXT,
    payment_intent_id TEXT,
    payment_link_id   TEXT,
    mode              TEXT,
    status            TEXT,
    amount_total      INTEGER,
    currency          TEXT,
    created_at        INTEGER NOT NULL,
    source_event_id   TEXT NOT NULL,
    version           INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS reconcile_state (
    id      TEXT PRIMARY KEY,
    value   TEXT NOT NULL,
    version INTEGER NOT NULL
);
