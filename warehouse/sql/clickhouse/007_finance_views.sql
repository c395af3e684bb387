-- 007: views for finance dashboards. `receivables`: every invoice open now, with what it
-- still owes and the day its age counts from (due date, else finalization). `payouts_monthly`:
-- payouts paid to the bank per arrival month. Amounts in minor units; `account` is '' for
-- the platform's own data.

CREATE VIEW IF NOT EXISTS receivables AS
SELECT id AS invoice_id, customer_id, currency, livemode, ifNull(account, '') AS account,
       amount_remaining,
       if(isNull(due_date), finalized_at, due_date) AS due_at
FROM invoices FINAL
WHERE status = 'open';

CREATE VIEW IF NOT EXISTS payouts_monthly AS
SELECT substring(toString(assumeNotNull(arrival_date), 'UTC'), 1, 7) AS month, currency, livemode,
       ifNull(account, '') AS account,
       count() AS payouts, sum(amount) AS paid_out
FROM payouts FINAL
WHERE status = 'paid' AND isNotNull(arrival_date)
GROUP BY month, currency, livemode, account;
