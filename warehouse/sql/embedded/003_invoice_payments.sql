-- 003: payments holds one row per money movement (a charge). Invoice payments, which are
-- links between an invoice and the charge paying it and were rows of payments with kind
-- 'invoice_payment', move to a table of their own, so that summing payments never counts
-- the same money twice. Replay alone would not do it (it overwrites by id and never
-- deletes), hence this migration, which runs in one transaction.

CREATE TABLE IF NOT EXISTS invoice_payments (
    id                TEXT PRIMARY KEY,
    account           TEXT,
    livemode          INTEGER NOT NULL,
    invoice_id        TEXT,
    subscription_id   TEXT,
    customer_id       TEXT,
    payment_intent_id TEXT,
    charge_id         TEXT,
    amount_requested  INTEGER NOT NULL,
    amount_paid       INTEGER NOT NULL,
    currency          TEXT NOT NULL,
    status            TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    paid_at           INTEGER,
    source_event_id   TEXT NOT NULL,
    version           INTEGER NOT NULL
);

INSERT OR REPLACE INTO invoice_payments (id, account, livemode, invoice_id, subscription_id, customer_id, payment_intent_id, charge_id, amount_requested, amount_paid, currency, status, created_at, paid_at, source_event_id, version)
SELECT id, account, livemode, invoice_id, subscription_id, customer_id, payment_intent_id, charge_id, amount, amount_captured, currency, status, created_at, paid_at, source_event_id, version FROM payments WHERE kind = 'invoice_payment';

DELETE FROM payments WHERE kind = 'invoice_payment';
