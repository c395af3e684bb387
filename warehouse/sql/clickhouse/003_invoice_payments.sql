-- 003: payments holds one row per money movement (a charge). Invoice payments, which are
-- links between an invoice and the charge paying it and were rows of payments with kind
-- 'invoice_payment', move to a table of their own, so that summing payments never counts
-- the same money twice. Replay alone would not do it (it overwrites by id and never
-- deletes), hence this migration. Every step may run again after an interruption: rows
-- are copied by id into a ReplacingMergeTree and the delete is a no-op once done (revline
-- waits for the delete to finish before it records the migration).

CREATE TABLE IF NOT EXISTS invoice_payments
(
    id                String,
    account           Nullable(String),
    livemode          UInt8,
    invoice_id        Nullable(String),
    subscription_id   Nullable(String),
    customer_id       Nullable(String),
    payment_intent_id Nullable(String),
    charge_id         Nullable(String),
    amount_requested  Int64,
    amount_paid       Int64,
    currency          String,
    status            String,
    created_at        DateTime,
    paid_at           Nullable(DateTime),
    source_event_id   String,
    version           UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

INSERT INTO invoice_payments (id, account, livemode, invoice_id, subscription_id, customer_id, payment_intent_id, charge_id, amount_requested, amount_paid, currency, status, created_at, paid_at, source_event_id, version)
SELECT id, account, livemode, invoice_id, subscription_id, customer_id, payment_intent_id, charge_id, amount, amount_captured, currency, status, created_at, paid_at, source_event_id, version FROM payments FINAL WHERE kind = 'invoice_payment';

ALTER TABLE payments DELETE WHERE kind = 'invoice_payment';
