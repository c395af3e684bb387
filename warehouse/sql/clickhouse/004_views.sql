-- 004: views for analysts, where SQL can express a report. Amounts are integers in the
-- currency's minor unit (cents, whole yen); months are 'YYYY-MM' in UTC; `account` is ''
-- for the platform's own data. docs/analysts.md documents them.

CREATE VIEW IF NOT EXISTS invoice_register AS
SELECT id, number, customer_id, subscription_id, status, currency, livemode,
       ifNull(account, '') AS account,
       subtotal, total_discount, total_tax, total, amount_paid, amount_remaining,
       created_at, finalized_at, due_date, paid_at, voided_at,
       if(isNull(finalized_at), NULL, substring(toString(assumeNotNull(finalized_at), 'UTC'), 1, 7)) AS finalized_month,
       if(isNull(paid_at), NULL, substring(toString(assumeNotNull(paid_at), 'UTC'), 1, 7)) AS paid_month
FROM invoices FINAL;

CREATE VIEW IF NOT EXISTS revenue_monthly AS
SELECT month, currency, livemode, account,
       sum(invoiced) AS invoiced, sum(tax) AS tax, sum(discounts) AS discounts,
       sum(collected) AS collected, sum(refunded) AS refunded, sum(disputed) AS disputed
FROM
(
    SELECT substring(toString(assumeNotNull(finalized_at), 'UTC'), 1, 7) AS month, currency, livemode, ifNull(account, '') AS account,
           total - total_tax AS invoiced, total_tax AS tax, total_discount AS discounts,
           toInt64(0) AS collected, toInt64(0) AS refunded, toInt64(0) AS disputed
    FROM invoices FINAL WHERE isNotNull(finalized_at)
    UNION ALL
    SELECT substring(toString(assumeNotNull(voided_at), 'UTC'), 1, 7) AS month, currency, livemode, ifNull(account, '') AS account,
           total_tax - total AS invoiced, -total_tax AS tax, -total_discount AS discounts,
           toInt64(0) AS collected, toInt64(0) AS refunded, toInt64(0) AS disputed
    FROM invoices FINAL WHERE isNotNull(voided_at)
    UNION ALL
    SELECT substring(toString(assumeNotNull(paid_at), 'UTC'), 1, 7) AS month, currency, livemode, ifNull(account, '') AS account,
           toInt64(0) AS invoiced, toInt64(0) AS tax, toInt64(0) AS discounts,
           amount_paid AS collected, toInt64(0) AS refunded, toInt64(0) AS disputed
    FROM invoices FINAL WHERE isNotNull(paid_at)
    UNION ALL
    SELECT substring(toString(created_at, 'UTC'), 1, 7) AS month, currency, livemode, ifNull(account, '') AS account,
           toInt64(0) AS invoiced, toInt64(0) AS tax, toInt64(0) AS discounts,
           amount_captured AS collected, toInt64(0) AS refunded, toInt64(0) AS disputed
    FROM payments FINAL WHERE kind = 'charge' AND status = 'succeeded' AND isNull(invoice_id)
    UNION ALL
    SELECT substring(toString(created_at, 'UTC'), 1, 7) AS month, currency, livemode, ifNull(account, '') AS account,
           toInt64(0) AS invoiced, toInt64(0) AS tax, toInt64(0) AS discounts,
           toInt64(0) AS collected, amount AS refunded, toInt64(0) AS disputed
    FROM refunds FINAL WHERE status = 'succeeded'
    UNION ALL
    SELECT substring(toString(assumeNotNull(closed_at), 'UTC'), 1, 7) AS month, currency, livemode, ifNull(account, '') AS account,
           toInt64(0) AS invoiced, toInt64(0) AS tax, toInt64(0) AS discounts,
           toInt64(0) AS collected, toInt64(0) AS refunded, amount AS disputed
    FROM disputes FINAL WHERE outcome = 'lost' AND isNotNull(closed_at)
)
GROUP BY month, currency, livemode, account;
