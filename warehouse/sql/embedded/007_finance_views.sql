-- 007: views for finance dashboards. `receivables`: every invoice open now, with what it
-- still owes and the day its age counts from (due date, else finalization). `payouts_monthly`:
-- payouts paid to the bank per arrival month. Amounts in minor units; `account` is '' for
-- the platform's own data.

CREATE VIEW IF NOT EXISTS receivables AS
SELECT id AS invoice_id, customer_id, currency, livemode, coalesce(account, '') AS account,
       amount_remaining,
       coalesce(due_date, finalized_at) AS due_at
FROM invoices
WHERE status = 'open';

CREATE VIEW IF NOT EXISTS payouts_monthly AS
SELECT strftime('%Y-%m', arrival_date, 'unixepoch') AS month, currency, livemode,
       coalesce(account, '') AS account,
       count(*) AS payouts, sum(amount) AS paid_out
FROM payouts
WHERE status = 'paid' AND arrival_date IS NOT NULL
GROUP BY month, currency, livemode, account;
