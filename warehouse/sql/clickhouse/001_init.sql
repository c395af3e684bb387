-- revline warehouse, ClickHouse. Version 1.
-- Applied by `revline migrate` in the configured database. Written in the SQL subset that
-- ClickHouse 18.16 and current ClickHouse both accept (checked by tests on both).
-- Every table keeps the highest `version` per `id`: read with FINAL (or argMax).
-- Instants are DateTime (UTC), money Int64 minor units next to a currency column.

CREATE TABLE IF NOT EXISTS stripe_events
(
    id             String,
    event_type     Nullable(String),
    api_version    Nullable(String),
    created_at     Nullable(DateTime),
    livemode       UInt8,
    account        Nullable(String),
    object_type    Nullable(String),
    object_id      Nullable(String),
    endpoint       String,
    received_at_ms Int64,
    flag           Nullable(String),
    payload        String,
    version        UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS dead_letters
(
    id             String,
    event_type     Nullable(String),
    reason         String,
    detail         String,
    received_at_ms Int64,
    version        UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS invoices
(
    id                               String,
    account                          Nullable(String),
    livemode                         UInt8,
    customer_id                      Nullable(String),
    subscription_id                  Nullable(String),
    number                           Nullable(String),
    status                           Nullable(String),
    billing_reason                   Nullable(String),
    collection_method                Nullable(String),
    currency                         String,
    subtotal                         Int64,
    total_discount                   Int64,
    total_tax                        Int64,
    total                            Int64,
    total_excluding_tax              Int64,
    amount_due                       Int64,
    amount_paid                      Int64,
    amount_remaining                 Int64,
    amount_overpaid                  Int64,
    starting_balance                 Int64,
    ending_balance                   Nullable(Int64),
    pre_payment_credit_notes_amount  Int64,
    post_payment_credit_notes_amount Int64,
    period_start                     Nullable(DateTime),
    period_end                       Nullable(DateTime),
    created_at                       DateTime,
    finalized_at                     Nullable(DateTime),
    due_date                         Nullable(DateTime),
    paid_at                          Nullable(DateTime),
    voided_at                        Nullable(DateTime),
    marked_uncollectible_at          Nullable(DateTime),
    paid_out_of_band                 UInt8,
    quote_id                         Nullable(String),
    lines_complete                   UInt8,
    source_event_id                  String,
    event_created_at                 DateTime,
    version                          UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS invoice_history
(
    id               String,
    invoice_id       String,
    account          Nullable(String),
    livemode         UInt8,
    customer_id      Nullable(String),
    status           Nullable(String),
    currency         String,
    total            Int64,
    amount_paid      Int64,
    amount_remaining Int64,
    due_date         Nullable(DateTime),
    finalized_at     Nullable(DateTime),
    valid_from       DateTime,
    source_event_id  String,
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS invoice_lines
(
    id                   String,
    line_id              String,
    invoice_id           String,
    account              Nullable(String),
    livemode             UInt8,
    customer_id          Nullable(String),
    subscription_id      Nullable(String),
    subscription_item_id Nullable(String),
    invoice_item_id      Nullable(String),
    price_id             Nullable(String),
    product_id           Nullable(String),
    source_type          String,
    proration            UInt8,
    quantity             Nullable(Int64),
    unit_amount          Nullable(Int64),
    currency             String,
    amount               Int64,
    discount_amount      Int64,
    pretax_credit_amount Int64,
    inclusive_tax_amount Int64,
    exclusive_tax_amount Int64,
    recognizable_amount  Int64,
    period_start         Nullable(DateTime),
    period_end           Nullable(DateTime),
    invoice_finalized_at Nullable(DateTime),
    source_event_id      String,
    version              UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS payments
(
    id                     String,
    kind                   String,
    account                Nullable(String),
    livemode               UInt8,
    invoice_id             Nullable(String),
    subscription_id        Nullable(String),
    customer_id            Nullable(String),
    payment_intent_id      Nullable(String),
    charge_id              Nullable(String),
    amount                 Int64,
    amount_captured        Int64,
    amount_refunded        Int64,
    currency               String,
    status                 String,
    failure_code           Nullable(String),
    balance_transaction_id Nullable(String),
    created_at             DateTime,
    paid_at                Nullable(DateTime),
    source_event_id        String,
    version                UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS refunds
(
    id                             String,
    account                        Nullable(String),
    livemode                       UInt8,
    charge_id                      Nullable(String),
    payment_intent_id              Nullable(String),
    invoice_id                     Nullable(String),
    subscription_id                Nullable(String),
    customer_id                    Nullable(String),
    amount                         Int64,
    currency                       String,
    status                         String,
    reason                         Nullable(String),
    failure_reason                 Nullable(String),
    balance_transaction_id         Nullable(String),
    failure_balance_transaction_id Nullable(String),
    created_at                     DateTime,
    source_event_id                String,
    version                        UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS disputes
(
    id                      String,
    account                 Nullable(String),
    livemode                UInt8,
    charge_id               Nullable(String),
    payment_intent_id       Nullable(String),
    invoice_id              Nullable(String),
    subscription_id         Nullable(String),
    customer_id             Nullable(String),
    amount                  Int64,
    currency                String,
    reason                  Nullable(String),
    status                  String,
    outcome                 String,
    balance_transaction_ids String,
    created_at              DateTime,
    closed_at               Nullable(DateTime),
    source_event_id         String,
    version                 UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS balance_transactions
(
    id                 String,
    account            Nullable(String),
    livemode           UInt8,
    source_id          Nullable(String),
    kind               String,
    reporting_category Nullable(String),
    amount             Int64,
    fee                Int64,
    net                Int64,
    currency           String,
    exchange_rate      Nullable(String),
    status             Nullable(String),
    created_at         DateTime,
    available_on       Nullable(DateTime),
    source_event_id    String,
    version            UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS credit_notes
(
    id                  String,
    account             Nullable(String),
    livemode            UInt8,
    invoice_id          Nullable(String),
    customer_id         Nullable(String),
    number              Nullable(String),
    kind                Nullable(String),
    status              String,
    reason              Nullable(String),
    currency            String,
    amount              Int64,
    subtotal            Int64,
    total               Int64,
    total_excluding_tax Nullable(Int64),
    discount_amount     Int64,
    pre_payment_amount  Int64,
    post_payment_amount Int64,
    out_of_band_amount  Int64,
    created_at          DateTime,
    voided_at           Nullable(DateTime),
    source_event_id     String,
    version             UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS credit_note_lines
(
    id                   String,
    credit_note_id       String,
    line_id              String,
    invoice_id           Nullable(String),
    invoice_line_id      Nullable(String),
    account              Nullable(String),
    livemode             UInt8,
    currency             String,
    amount               Int64,
    amount_excluding_tax Int64,
    tax_amount           Int64,
    quantity             Nullable(Int64),
    created_at           DateTime,
    source_event_id      String,
    version              UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS subscription_items
(
    id                   String,
    subscription_id      String,
    item_id              String,
    account              Nullable(String),
    livemode             UInt8,
    customer_id          Nullable(String),
    status               String,
    price_id             Nullable(String),
    product_id           Nullable(String),
    currency             Nullable(String),
    unit_amount          Nullable(Int64),
    quantity             Int64,
    interval             Nullable(String),
    interval_count       Int64,
    usage_type           Nullable(String),
    cancel_at_period_end UInt8,
    cancel_at            Nullable(DateTime),
    canceled_at          Nullable(DateTime),
    ended_at             Nullable(DateTime),
    trial_start          Nullable(DateTime),
    trial_end            Nullable(DateTime),
    pause_collection     Nullable(String),
    cancellation_reason  Nullable(String),
    discount_ids         String,
    current_period_start Nullable(DateTime),
    current_period_end   Nullable(DateTime),
    valid_from           DateTime,
    valid_to             Nullable(DateTime),
    source_event_id      String,
    version              UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS customers
(
    id              String,
    account         Nullable(String),
    livemode        UInt8,
    country         Nullable(String),
    currency        Nullable(String),
    balance         Nullable(Int64),
    created_at      Nullable(DateTime),
    deleted         UInt8,
    source_event_id String,
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS attributions
(
    id                String,
    kind              String,
    account           Nullable(String),
    livemode          UInt8,
    customer_id       Nullable(String),
    subscription_id   Nullable(String),
    invoice_id        Nullable(String),
    payment_intent_id Nullable(String),
    payment_link_id   Nullable(String),
    mode              Nullable(String),
    status            Nullable(String),
    amount_total      Nullable(Int64),
    currency          Nullable(String),
    created_at        DateTime,
    source_event_id   String,
    version           UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- The matcher's state cache reads this table by thousands of exact ids per batch, spread
-- over the whole key: each id costs ClickHouse a granule per part, so granules are small.
-- Added after the first releases; an older warehouse keeps 8192 until rebuilt
-- (docs/operations.md, Matcher state).
CREATE TABLE IF NOT EXISTS reconcile_state
(
    id      String,
    value   String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id
SETTINGS index_granularity = 256;
