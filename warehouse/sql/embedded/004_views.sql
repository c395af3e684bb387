-- 004: views for analysts, where SQL can express a report. Amounts are integers in the
-- currency's minor unit (cents, whole yen); months are 'YYYY-MM' in UTC; `account` is ''
-- for the platform's own data. docs/analysts.md documents them.

CREATE VIEW IF NOT EXISTS invoice_register AS
SELECT id, number, customer_id, subscription_id, status, currency, livemode,
       coalesce(account, '') AS account,
       subtotal, total_discount, total_tax, total, amount_paid, amount_remaining,
       created_at, finalized_at, due_date, paid_at, voided_at,
       strftime('%Y-%m', finalized_at, 'unixepoch') AS finalized_month,
       strftime('%Y-%m', paid_at, 'unixepoch') AS paid_month
FROM invoices;

CREATE VIEW IF NOT EXISTS revenue_monthly AS
SELECT month, currency, livemode, account,
       sum(invoiced) AS invoiced, sum(tax) AS tax, sum(discounts) AS discounts,
       sum(collected) AS collected, sum(refunded) AS refunded, sum(disputed) AS disputed
FROM
(
    SELECT strftime('%Y-%m', finalized_at, 'unixepoch') AS month, currency, livemode, coalesce(account, '') AS account,
           total - total_tax AS invoiced, total_tax AS tax, total_discount AS discounts,
           0 AS collected, 0 AS refunded, 0 AS disputed
    FROM invoices WHERE finalized_at IS NOT NULL
    UNION ALL
    SELECT strftime('%Y-%m', voided_at, 'unixepoch'), currency, livemode, coalesce(account, ''),
           total_tax - total, -total_tax, -total_discount, 0, 0, 0
    FROM invoices WHERE voided_at IS NOT NULL
    UNION ALL
    SELECT strftime('%Y-%m', paid_at, 'unixepoch'), currency, livemode, coalesce(account, ''),
           0, 0, 0, amount_paid, 0, 0
    FROM invoices WHERE paid_at IS NOT NULL
    UNION ALL
    SELECT strftime('%Y-%m', created_at, 'unixepoch'), currency, livemode, coalesce(account, ''),
           0, 0, 0, amount_captured, 0, 0
    FROM payments WHERE kind = 'charge' AND status = 'succeeded' AND invoice_id IS NULL
    UNION ALL
    SELECT strftime('%Y-%m', created_at, 'unixepoch'), currency, livemode, coalesce(account, ''),
           0, 0, 0, 0, amount, 0
    FROM refunds WHERE status = 'succeeded'
    UNION ALL
    SELECT strftime('%Y-%m', closed_at, 'unixepoch'), currency, livemode, coalesce(account, ''),
           0, 0, 0, 0, 0, amount
    FROM disputes WHERE outcome = 'lost' AND closed_at IS NOT NULL
)
GROUP BY month, currency, livemode, account;
