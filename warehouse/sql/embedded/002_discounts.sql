-- 002: what MRR needs. Price details and the item's own discounts on subscription items
-- (SQLite adds columns only at the end, so the table is rebuilt to keep the column order of
-- the row type. Rows written before this migration have the new columns empty until
-- `revline replay` fills them), and two new tables, discounts and coupons.

CREATE TABLE subscription_items_002 (
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
    unit_amount_decimal  TEXT,
    billing_scheme       TEXT,
    tiers_mode           TEXT,
    tiers                TEXT,
    transform_divide_by  INTEGER,
    transform_round      TEXT,
    cancel_at_period_end INTEGER NOT NULL,
    cancel_at            INTEGER,
    canceled_at          INTEGER,
    ended_at             INTEGER,
    trial_start          INTEGER,
    trial_end            INTEGER,
    pause_collection     TEXT,
    cancellation_reason  TEXT,
    discount_ids         TEXT NOT NULL,
    item_discount_ids    TEXT NOT NULL,
    current_period_start INTEGER,
    current_period_end   INTEGER,
    valid_from           INTEGER NOT NULL,
    valid_to             INTEGER,
    source_event_id      TEXT NOT NULL,
    version              INTEGER NOT NULL
);

INSERT INTO subscription_items_002 (id, subscription_id, item_id, account, livemode, customer_id, status, price_id, product_id, currency, unit_amount, quantity, interval, interval_count, usage_type, cancel_at_period_end, cancel_at, canceled_at, ended_at, trial_start, trial_end, pause_collection, cancellation_reason, discount_ids, current_period_start, current_period_end, valid_from, valid_to, source_event_id, version, item_discount_ids)
SELECT id, subscription_id, item_id, account, livemode, customer_id, status, price_id, product_id, currency, unit_amount, quantity, interval, interval_count, usage_type, cancel_at_period_end, cancel_at, canceled_at, ended_at, trial_start, trial_end, pause_collection, cancellation_reason, discount_ids, current_period_start, current_period_end, valid_from, valid_to, source_event_id, version, '' FROM subscription_items;

DROP TABLE subscription_items;

ALTER TABLE subscription_items_002 RENAME TO subscription_items;

CREATE TABLE IF NOT EXISTS discounts (
    id                   TEXT PRIMARY KEY,
    account              TEXT,
    livemode             INTEGER NOT NULL,
    coupon_id            TEXT,
    percent_off          TEXT,
    amount_off           INTEGER,
    amount_off_currency  TEXT,
    duration             TEXT,
    duration_in_months   INTEGER,
    applies_to_products  TEXT NOT NULL,
    customer_id          TEXT,
    subscription_id      TEXT,
    subscription_item_id TEXT,
    invoice_id           TEXT,
    start_at             INTEGER,
    end_at               INTEGER,
    deleted_at           INTEGER,
    source_event_id      TEXT NOT NULL,
    version              INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS coupons (
    id                  TEXT PRIMARY KEY,
    account             TEXT,
    livemode            INTEGER NOT NULL,
    percent_off         TEXT,
    amount_off          INTEGER,
    currency            TEXT,
    duration            TEXT,
    duration_in_months  INTEGER,
    applies_to_products TEXT NOT NULL,
    deleted_at          INTEGER,
    source_event_id     TEXT NOT NULL,
    version             INTEGER NOT NULL
);
