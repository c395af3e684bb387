//! `journal`: double-entry lines for the general ledger,
//! `date,entry_id,account,debit,credit,currency,memo,source_type,source_id`, one entry per
//! business event, each balanced per currency:
//!
//! | event | debit | credit |
//! |---|---|---|
//! | invoice finalized | accounts receivable (total); customer credit applied | deferred revenue (its lines' recognisable amounts), tax payable (tax); accounts receivable (credit applied) |
//! | recognition (per invoice line and month, dated the month's last day) | deferred revenue | revenue |
//! | invoice paid | Stripe balance (cash out of band when paid outside Stripe) | accounts receivable |
//! | charge without invoice | Stripe balance | revenue |
//! | fee (a balance transaction's fee, Stripe's own fees) | processing fees | Stripe balance |
//! | refund | refunds (customer credit when a credit note covers it) | Stripe balance |
//! | dispute: funds withdrawn / lost / won | disputes pending / chargebacks / Stripe balance | Stripe balance / disputes pending / disputes pending |
//! | credit note | deferred revenue (excluding tax), tax payable | accounts receivable (pre-payment part), customer credit (post-payment), cash out of band (out of band) |
//! | invoice voided | deferred revenue (billed), tax payable, customer credit (applied) | accounts receivable (remaining) |
//! | invoice uncollectible | bad debt | accounts receivable (remaining) |
//! | payout paid | bank | Stripe balance |
//!
//! A refused, failed or reversed movement (a failed refund, a failed payout, a voided credit
//! note) is posted and reversed. A payment settled in another currency than the invoice's
//! goes through the FX clearing account, balanced in each currency, with the balance
//! transaction's exchange rate in the memo. Whatever of an invoice's amount its known lines
//! do not explain (lines not delivered, `lines.has_more`) goes to the unallocated account,
//! so every entry balances and deferred revenue always equals `revenue-recognition`'s.
//!
//! Entry ids are built from the source's ids (and the month for recognition), so the same
//! events always give the same journal, in any order. Accounts are codes from the
//! configuration ([`Accounts`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::TryStreamExt;
use schemas::facts::{
    BalanceTransactionRow, CreditNoteLineRow, CreditNoteRow, DisputeRow, InvoiceRow,
    LedgerCloseRow, LedgerClosedLineRow, PaymentRow, PayoutRow, RefundRow,
};
use warehouse::{AggregateQuery, Filter, GroupKey, Result, RowQuery, TimeRange, Warehouse};

use crate::calendar::{format_date, DAY};
use crate::recognition::{self, credit_note_untaxed};
use crate::{money, Month, Scope, Table};

pub const COLUMNS: &[&str] = &[
    "date",
    "entry_id",
    "account",
    "debit",
    "credit",
    "currency",
    "memo",
    "source_type",
    "source_id",
];

/// The ledger accounts revline posts to, by name, with their default codes.
pub const ACCOUNTS: &[(&str, &str)] = &[
    ("bank", "1000"),
    ("stripe_balance", "1010"),
    ("cash_out_of_band", "1020"),
    ("fx_clearing", "1090"),
    ("accounts_receivable", "1200"),
    ("disputes_pending", "1250"),
    ("tax_payable", "2200"),
    ("customer_credit", "2300"),
    ("deferred_revenue", "2400"),
    ("unallocated", "2990"),
    ("revenue", "4000"),
    ("refunds", "4900"),
    ("processing_fees", "6100"),
    ("chargebacks", "6150"),
    ("bad_debt", "6200"),
];

/// Account codes by name: the defaults of [`ACCOUNTS`], overridden by the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounts {
    codes: BTreeMap<&'static str, String>,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts {
            codes: ACCOUNTS
                .iter()
                .map(|(name, code)| (*name, (*code).to_owned()))
                .collect(),
        }
    }
}

impl Accounts {
    /// Sets the code of account `name`; an unknown name is an error naming the known ones.
    pub fn set(&mut self, name: &str, code: &str) -> std::result::Result<(), String> {
        let Some((known, _)) = ACCOUNTS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = ACCOUNTS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown ledger account {name:?} (known: {})",
                names.join(", ")
            ));
        };
        let code = code.trim();
        if code.is_empty() || code.len() > 64 || code.contains([',', '"', '\n', '\r']) {
            return Err(format!(
                "ledger account {name}: {code:?} is not a usable account code (1–64 characters, no commas, quotes or line breaks)"
            ));
        }
        self.codes.insert(known, code.to_owned());
        Ok(())
    }

    pub fn code(&self, name: &str) -> &str {
        self.codes.get(name).map_or("?", String::as_str)
    }
}

/// One line of an entry: positive amounts are debits, negative credits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Posting {
    account: &'static str,
    amount: i64,
    currency: String,
}

/// One balanced entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Unix seconds; printed as its UTC date.
    at: i64,
    id: String,
    memo: String,
    source_type: &'static str,
    source_id: String,
    postings: Vec<Posting>,
}

impl Entry {
    fn new(at: i64, id: String, memo: String, source_type: &'static str, source_id: &str) -> Self {
        Entry {
            at,
            id,
            memo,
            source_type,
            source_id: source_id.to_owned(),
            postings: Vec::new(),
        }
    }

    /// Debits `account` by `amount` (a negative amount credits it).
    fn dr(mut self, account: &'static str, amount: i64, currency: &str) -> Self {
        if amount != 0 {
            self.postings.push(Posting {
                account,
                amount,
                currency: currency.to_owned(),
            });
        }
        self
    }

    fn cr(self, account: &'static str, amount: i64, currency: &str) -> Self {
        self.dr(account, -amount, currency)
    }

    /// The same entry with every posting on the other side.
    fn reversed(&self, at: i64, id: String, memo: String) -> Entry {
        Entry {
            at,
            id,
            memo,
            source_type: self.source_type,
            source_id: self.source_id.clone(),
            postings: self
                .postings
                .iter()
                .map(|p| Posting {
                    amount: -p.amount,
                    ..p.clone()
                })
                .collect(),
        }
    }

    /// Whether debits equal credits in every currency.
    pub fn balanced(&self) -> bool {
        let mut sums: HashMap<&str, i64> = HashMap::new();
        for p in &self.postings {
            *sums.entry(&p.currency).or_default() += p.amount;
        }
        sums.values().all(|s| *s == 0)
    }
}

/// Everything the entries are built from that is read whole (far fewer rows than lines).
struct Sources {
    /// Σ recognisable amount of each invoice's lines.
    line_totals: HashMap<String, i64>,
    /// Credit notes by invoice, each with its untaxed amount.
    credit_notes: HashMap<String, Vec<(CreditNoteRow, i64)>>,
    /// Balance transactions by id.
    transactions: HashMap<String, BalanceTransactionRow>,
    /// Succeeded charges by invoice.
    charges_of: HashMap<String, Vec<PaymentRow>>,
}

pub async fn run<W: Warehouse>(w: &W, scope: &Scope, accounts: &Accounts) -> Result<Table> {
    let lines = lines(w, scope).await?;
    let mut table = Table::new(COLUMNS.to_vec());
    let from = scope
        .from
        .or_else(|| lines.iter().map(|l| l.month).min())
        .unwrap_or(scope.to);
    let mut rows: Vec<Vec<Option<String>>> = lines
        .into_iter()
        .filter(|l| l.month >= from && l.month <= scope.to)
        .map(|l| {
            let (debit, credit) = if l.amount >= 0 {
                (money(l.amount, &l.currency), None)
            } else {
                (None, money(-l.amount, &l.currency))
            };
            vec![
                Some(l.date),
                Some(l.entry_id),
                Some(accounts.code(&l.account).to_owned()),
                debit,
                credit,
                Some(l.currency),
                Some(l.memo),
                Some(l.source_type),
                Some(l.source_id),
            ]
        })
        .collect();
    rows.sort();
    table.rows = rows;
    Ok(table)
}

/// One printed journal line, its account by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub month: Month,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub entry_id: String,
    pub account: String,
    /// Debit positive, credit negative.
    pub amount: i64,
    pub currency: String,
    pub memo: String,
    pub source_type: String,
    pub source_id: String,
}

/// The key lines are compared by between a closed month and what is computed now.
type LineKey = (String, String, String);

fn key(l: &Line) -> LineKey {
    (l.entry_id.clone(), l.account.clone(), l.currency.clone())
}

/// The scope a close applies to: mode and Connect account (`live/platform`).
pub fn close_scope(scope: &Scope) -> String {
    let mode = if scope.livemode { "live" } else { "test" };
    match &scope.account {
        warehouse::Account::All => format!("{mode}/all"),
        warehouse::Account::Platform => format!("{mode}/platform"),
        warehouse::Account::One(id) => format!("{mode}/{id}"),
    }
}

/// The journal as printed, every month up to the scope's end: what the facts give, except
/// that a closed month shows exactly what it showed when it was closed, and the difference
/// (events that arrived after the close) is posted on the first day of the next open month,
/// under the entry id `<id>@<that month>`, the original date in the memo.
pub async fn lines<W: Warehouse>(w: &W, scope: &Scope) -> Result<Vec<Line>> {
    let mut computed: BTreeMap<Month, Vec<Line>> = BTreeMap::new();
    for e in entries(w, scope).await? {
        debug_assert!(e.balanced(), "unbalanced entry {}", e.id);
        let month = Month::of(e.at);
        for p in &e.postings {
            computed.entry(month).or_default().push(Line {
                month,
                date: format_date(e.at),
                entry_id: e.id.clone(),
                account: p.account.to_owned(),
                amount: p.amount,
                currency: p.currency.clone(),
                memo: e.memo.clone(),
                source_type: e.source_type.to_owned(),
                source_id: e.source_id.clone(),
            });
        }
    }
    let (closed, mut snapshots) = closes(w, scope).await?;
    let Some(first) = computed.keys().chain(closed.keys()).min().copied() else {
        return Ok(Vec::new());
    };
    let last = computed
        .keys()
        .chain(closed.keys())
        .max()
        .copied()
        .unwrap_or(first)
        .max(scope.to);
    let mut out = Vec::new();
    // Differences not posted yet, by the original entry's key.
    let mut carry: BTreeMap<LineKey, Line> = BTreeMap::new();
    for month in first.through(last) {
        let mut now: BTreeMap<LineKey, Line> = BTreeMap::new();
        for l in computed.remove(&month).unwrap_or_default() {
            now.entry(key(&l))
                .and_modify(|x| x.amount += l.amount)
                .or_insert(l);
        }
        for (_, mut l) in std::mem::take(&mut carry) {
            let original = l.entry_id.split('@').next().unwrap_or_default().to_owned();
            if !l.memo.contains("originally dated") {
                l.memo = format!("{}; originally dated {} in a closed month", l.memo, l.date);
            }
            l.entry_id = format!("{original}@{month}");
            l.month = month;
            l.date = format_date(month.start());
            now.entry(key(&l))
                .and_modify(|x| x.amount += l.amount)
                .or_insert(l);
        }
        if closed.contains_key(&month) {
            let shown = snapshots.remove(&month).unwrap_or_default();
            for l in &shown {
                let k = key(l);
                let diff = now.get(&k).map_or(0, |n| n.amount) - l.amount;
                let mut moved = now.remove(&k).unwrap_or_else(|| l.clone());
                if diff != 0 {
                    moved.amount = diff;
                    carry.insert(k, moved);
                }
            }
            // Lines the close did not have at all.
            for (k, l) in now {
                if l.amount != 0 {
                    carry.insert(k, l);
                }
            }
            out.extend(shown);
        } else {
            out.extend(now.into_values().filter(|l| l.amount != 0));
        }
    }
    Ok(out)
}

/// The closed months of the scope, and their lines as closed (in the scope's currency).
async fn closes<W: Warehouse>(
    w: &W,
    scope: &Scope,
) -> Result<(BTreeMap<Month, LedgerCloseRow>, BTreeMap<Month, Vec<Line>>)> {
    let of_scope = RowQuery {
        filter: Filter {
            conditions: vec![crate::eq("scope", &close_scope(scope))],
            ..Filter::default()
        },
        order_by: vec!["id"],
    };
    let closed: Vec<LedgerCloseRow> = w.rows::<LedgerCloseRow>(&of_scope).try_collect().await?;
    let closed: BTreeMap<Month, LedgerCloseRow> = closed
        .into_iter()
        .filter_map(|c| Some((Month::parse(&c.month)?, c)))
        .collect();
    let mut lines: BTreeMap<Month, Vec<Line>> = BTreeMap::new();
    if closed.is_empty() {
        return Ok((closed, lines));
    }
    let mut rows = w.rows::<LedgerClosedLineRow>(&of_scope);
    while let Some(r) = rows.try_next().await? {
        let Some(month) = Month::parse(&r.month) else {
            continue;
        };
        if scope.currency.as_ref().is_some_and(|c| *c != r.currency) {
            continue;
        }
        lines.entry(month).or_default().push(Line {
            month,
            date: r.date,
            entry_id: r.entry_id,
            account: r.ledger_account,
            amount: r.amount,
            currency: r.currency,
            memo: r.memo,
            source_type: r.source_type,
            source_id: r.source_id,
        });
    }
    Ok((closed, lines))
}

/// Why a month cannot be closed.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Warehouse(#[from] warehouse::WarehouseError),
}

/// The rows that close `month` for the scope (every currency): the marker and the month's
/// lines as the journal prints them now. Refused for a month not over yet, or closed
/// already.
pub async fn close<W: Warehouse>(
    w: &W,
    scope: &Scope,
    month: Month,
) -> std::result::Result<(LedgerCloseRow, Vec<LedgerClosedLineRow>), CloseError> {
    if month.end() > scope.now {
        return Err(CloseError::Refused(format!(
            "{month} is not over yet: a month can be closed once it has ended"
        )));
    }
    let (closed, _) = closes(w, scope).await?;
    if let Some(c) = closed.get(&month) {
        return Err(CloseError::Refused(format!(
            "{month} is already closed for {} (on {})",
            c.scope,
            crate::calendar::format_utc(i64::from(c.closed_at))
        )));
    }
    let all = Scope {
        currency: None,
        to: month,
        ..scope.clone()
    };
    let scope_key = close_scope(scope);
    let version = u64::try_from(scope.now).unwrap_or(0);
    let lines: Vec<LedgerClosedLineRow> = lines(w, &all)
        .await?
        .into_iter()
        .filter(|l| l.month == month)
        .map(|l| LedgerClosedLineRow {
            id: format!(
                "{scope_key}/{month}/{}/{}/{}",
                l.entry_id, l.account, l.currency
            ),
            scope: scope_key.clone(),
            month: month.to_string(),
            date: l.date,
            entry_id: l.entry_id,
            ledger_account: l.account,
            currency: l.currency,
            amount: l.amount,
            memo: l.memo,
            source_type: l.source_type,
            source_id: l.source_id,
            version,
        })
        .collect();
    let marker = LedgerCloseRow {
        id: format!("{scope_key}/{month}"),
        scope: scope_key,
        month: month.to_string(),
        closed_at: u32::try_from(scope.now.max(0)).unwrap_or(u32::MAX),
        version,
    };
    Ok((marker, lines))
}

/// Every entry up to the scope's end, unordered.
pub async fn entries<W: Warehouse>(w: &W, scope: &Scope) -> Result<Vec<Entry>> {
    let until = scope.until();
    let sources = load(w, scope).await?;
    let mut out = Vec::new();
    invoices(w, scope, &sources, &mut out).await?;
    charges(w, scope, &sources, &mut out).await?;
    fees(scope, &sources, &mut out);
    refunds(w, scope, &sources, &mut out).await?;
    disputes(w, scope, &mut out).await?;
    credit_notes(&sources, &mut out);
    payouts(w, scope, &mut out).await?;
    // An event after "now" (a payment dated later than the report's clock) is not in yet.
    out.retain(|e| e.at < until && !e.postings.is_empty());
    // Recognition up to now, each month's dated its last day (the month in progress too).
    recognition::walk(w, scope, |line, month, _, recognised| {
        if recognised == 0 {
            return;
        }
        out.push(
            Entry::new(
                month.end() - DAY,
                format!("rec:{}/{}:{month}", line.invoice_id, line.line_id),
                format!(
                    "revenue of invoice {} line {} recognised in {month}",
                    line.invoice_id, line.line_id
                ),
                "invoice_line",
                &line.id,
            )
            .dr("deferred_revenue", recognised, &line.currency)
            .cr("revenue", recognised, &line.currency),
        );
    })
    .await?;
    Ok(out)
}

/// The rows of `filter`, ordered by id.
fn by_id(filter: Filter) -> RowQuery {
    RowQuery {
        filter,
        order_by: vec!["id"],
    }
}

fn before(scope: &Scope, column: &'static str) -> Filter {
    Filter {
        time: Some(TimeRange {
            column,
            from: None,
            until: Some(scope.until()),
        }),
        ..scope.filter()
    }
}

async fn load<W: Warehouse>(w: &W, scope: &Scope) -> Result<Sources> {
    let query = AggregateQuery {
        group_by: vec![GroupKey::Column("invoice_id")],
        sums: vec!["recognizable_amount"],
        filter: before(scope, "invoice_finalized_at"),
        ..AggregateQuery::count("invoice_lines")
    };
    let line_totals = w
        .aggregate(&query)
        .await?
        .into_iter()
        .filter_map(|r| Some((r.keys[0].clone()?, r.sums[0])))
        .collect();

    let mut note_lines: HashMap<String, Vec<CreditNoteLineRow>> = HashMap::new();
    let mut rows = w.rows::<CreditNoteLineRow>(&by_id(before(scope, "created_at")));
    while let Some(line) = rows.try_next().await? {
        note_lines
            .entry(line.credit_note_id.clone())
            .or_default()
            .push(line);
    }
    let mut credit_notes: HashMap<String, Vec<(CreditNoteRow, i64)>> = HashMap::new();
    let mut rows = w.rows::<CreditNoteRow>(&by_id(before(scope, "created_at")));
    while let Some(note) = rows.try_next().await? {
        let untaxed = credit_note_untaxed(&note, note_lines.get(&note.id).map(Vec::as_slice));
        let invoice = note.invoice_id.clone().unwrap_or_default();
        credit_notes
            .entry(invoice)
            .or_default()
            .push((note, untaxed));
    }

    // Balance transactions settle in the account's currency, whatever the charge's.
    let any_currency = Filter {
        currency: None,
        ..before(scope, "created_at")
    };
    let mut transactions = HashMap::new();
    let mut rows = w.rows::<BalanceTransactionRow>(&by_id(any_currency));
    while let Some(bt) = rows.try_next().await? {
        transactions.insert(bt.id.clone(), bt);
    }
    let mut charges_of: HashMap<String, Vec<PaymentRow>> = HashMap::new();
    let mut rows = w.rows::<PaymentRow>(&by_id(before(scope, "created_at")));
    while let Some(charge) = rows.try_next().await? {
        if charge.status == "succeeded" {
            if let Some(invoice) = charge.invoice_id.clone() {
                charges_of.entry(invoice).or_default().push(charge);
            }
        }
    }
    Ok(Sources {
        line_totals,
        credit_notes,
        transactions,
        charges_of,
    })
}

/// The settlement of `amount` of `currency` received through `charges`: `Some` (the
/// balance transactions' currency, gross, memo) when they settled in another currency.
fn settlement(
    sources: &Sources,
    charges: &[PaymentRow],
    currency: &str,
) -> Option<(String, i64, String)> {
    let bts: Vec<&BalanceTransactionRow> = charges
        .iter()
        .filter_map(|c| {
            sources
                .transactions
                .get(c.balance_transaction_id.as_deref()?)
        })
        .collect();
    let first = bts.first()?;
    if first.currency == currency || bts.iter().any(|b| b.currency != first.currency) {
        return None;
    }
    let rate = first.exchange_rate.as_deref().unwrap_or("unknown");
    Some((
        first.currency.clone(),
        bts.iter().map(|b| b.amount).sum(),
        format!(
            "settled in {} at exchange rate {rate}",
            first.currency.to_uppercase()
        ),
    ))
}

/// Posts money received into the Stripe balance: directly, or through FX clearing when it
/// settled in another currency.
fn received(mut e: Entry, amount: i64, currency: &str, fx: Option<(String, i64, String)>) -> Entry {
    match fx {
        Some((settled, gross, memo)) => {
            e.memo = format!("{}; {memo}", e.memo);
            e.dr("fx_clearing", amount, currency)
                .dr("stripe_balance", gross, &settled)
                .cr("fx_clearing", gross, &settled)
        }
        None => e.dr("stripe_balance", amount, currency),
    }
}

async fn invoices<W: Warehouse>(
    w: &W,
    scope: &Scope,
    sources: &Sources,
    out: &mut Vec<Entry>,
) -> Result<()> {
    let query = by_id(before(scope, "finalized_at"));
    let mut rows = w.rows::<InvoiceRow>(&query);
    while let Some(inv) = rows.try_next().await? {
        let Some(finalized) = inv.finalized_at.map(i64::from) else {
            continue;
        };
        let c = inv.currency.as_str();
        let name = inv.number.clone().unwrap_or_else(|| inv.id.clone());
        let lines = sources.line_totals.get(&inv.id).copied().unwrap_or(0);
        let unallocated = inv.total - inv.total_tax - lines;
        // Customer balance applied at finalization (a credit is negative in Stripe's sign).
        let applied =
            (inv.ending_balance.unwrap_or(inv.starting_balance) - inv.starting_balance).max(0);
        out.push(
            Entry::new(
                finalized,
                format!("inv:{}", inv.id),
                format!("invoice {name} finalized"),
                "invoice",
                &inv.id,
            )
            .dr("accounts_receivable", inv.total, c)
            .cr("deferred_revenue", lines, c)
            .cr("tax_payable", inv.total_tax, c)
            .cr("unallocated", unallocated, c)
            .dr("customer_credit", applied, c)
            .cr("accounts_receivable", applied, c),
        );
        if inv.amount_paid > 0 {
            let at = inv
                .paid_at
                .map_or(i64::from(inv.event_created_at), i64::from);
            let e = Entry::new(
                at,
                format!("pay:{}", inv.id),
                format!("invoice {name} paid"),
                "invoice",
                &inv.id,
            )
            .cr("accounts_receivable", inv.amount_paid, c);
            out.push(if inv.paid_out_of_band == 1 {
                e.dr("cash_out_of_band", inv.amount_paid, c)
            } else {
                let charges = sources
                    .charges_of
                    .get(&inv.id)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                received(e, inv.amount_paid, c, settlement(sources, charges, c))
            });
        }
        if let Some(voided) = inv.voided_at.map(i64::from) {
            let notes: Vec<&(CreditNoteRow, i64)> = sources
                .credit_notes
                .get(&inv.id)
                .into_iter()
                .flatten()
                .filter(|(n, _)| i64::from(n.created_at) <= voided && n.voided_at.is_none())
                .collect();
            let credited: i64 = notes.iter().map(|(_, u)| *u).sum();
            let credited_tax: i64 = notes.iter().map(|(n, u)| n.total - u).sum();
            let billed = lines - credited;
            let tax = inv.total_tax - credited_tax;
            let remaining = inv.amount_remaining;
            out.push(
                Entry::new(
                    voided,
                    format!("void:{}", inv.id),
                    format!("invoice {name} voided"),
                    "invoice",
                    &inv.id,
                )
                .dr("deferred_revenue", billed, c)
                .dr("tax_payable", tax, c)
                .dr("customer_credit", -applied, c)
                .dr("unallocated", remaining - billed - tax + applied, c)
                .cr("accounts_receivable", remaining, c),
            );
        }
        if inv.status.as_deref() == Some("uncollectible") {
            if let Some(at) = inv.marked_uncollectible_at.map(i64::from) {
                out.push(
                    Entry::new(
                        at,
                        format!("unc:{}", inv.id),
                        format!("invoice {name} marked uncollectible"),
                        "invoice",
                        &inv.id,
                    )
                    .dr("bad_debt", inv.amount_remaining, c)
                    .cr("accounts_receivable", inv.amount_remaining, c),
                );
            }
        }
    }
    Ok(())
}

async fn charges<W: Warehouse>(
    w: &W,
    scope: &Scope,
    sources: &Sources,
    out: &mut Vec<Entry>,
) -> Result<()> {
    let query = by_id(before(scope, "created_at"));
    let mut rows = w.rows::<PaymentRow>(&query);
    while let Some(ch) = rows.try_next().await? {
        if ch.status != "succeeded" || ch.invoice_id.is_some() || ch.amount_captured == 0 {
            continue;
        }
        let c = ch.currency.as_str();
        let e = Entry::new(
            i64::from(ch.created_at),
            format!("ch:{}", ch.id),
            format!("charge {} without an invoice", ch.id),
            "charge",
            &ch.id,
        )
        .cr("revenue", ch.amount_captured, c);
        let fx = settlement(sources, std::slice::from_ref(&ch), c);
        out.push(received(e, ch.amount_captured, c, fx));
    }
    Ok(())
}

fn fees(scope: &Scope, sources: &Sources, out: &mut Vec<Entry>) {
    let mut ids: Vec<&String> = sources.transactions.keys().collect();
    ids.sort();
    for id in ids {
        let bt = &sources.transactions[id];
        if scope.currency.as_ref().is_some_and(|c| *c != bt.currency) {
            continue;
        }
        let own_fee = matches!(
            bt.kind.as_str(),
            "stripe_fee" | "application_fee" | "tax_fee"
        );
        let fee = bt.fee + if own_fee { -bt.amount } else { 0 };
        if fee == 0 {
            continue;
        }
        out.push(
            Entry::new(
                i64::from(bt.created_at),
                format!("fee:{}", bt.id),
                format!(
                    "Stripe fees on {} {}",
                    bt.kind,
                    bt.source_id.as_deref().unwrap_or(&bt.id)
                ),
                "balance_transaction",
                &bt.id,
            )
            .dr("processing_fees", fee, &bt.currency)
            .cr("stripe_balance", fee, &bt.currency),
        );
    }
}

async fn refunds<W: Warehouse>(
    w: &W,
    scope: &Scope,
    sources: &Sources,
    out: &mut Vec<Entry>,
) -> Result<()> {
    // Invoices whose refunds a post-payment credit note already took out of revenue.
    let covered: HashSet<&str> = sources
        .credit_notes
        .iter()
        .filter(|(_, notes)| {
            notes
                .iter()
                .any(|(n, _)| n.post_payment_amount > 0 && n.status != "void")
        })
        .map(|(invoice, _)| invoice.as_str())
        .collect();
    let query = by_id(before(scope, "created_at"));
    let mut rows = w.rows::<RefundRow>(&query);
    while let Some(re) = rows.try_next().await? {
        if !matches!(re.status.as_str(), "succeeded" | "failed" | "pending") {
            continue;
        }
        let c = re.currency.as_str();
        let at = i64::from(re.created_at);
        let account = if re
            .invoice_id
            .as_deref()
            .is_some_and(|i| covered.contains(i))
        {
            "customer_credit"
        } else {
            "refunds"
        };
        let e = Entry::new(
            at,
            format!("re:{}", re.id),
            format!("refund {}", re.id),
            "refund",
            &re.id,
        )
        .dr(account, re.amount, c)
        .cr("stripe_balance", re.amount, c);
        if re.status == "failed" {
            out.push(e.reversed(
                at,
                format!("re_failed:{}", re.id),
                format!("refund {} failed", re.id),
            ));
        }
        out.push(e);
    }
    Ok(())
}

async fn disputes<W: Warehouse>(w: &W, scope: &Scope, out: &mut Vec<Entry>) -> Result<()> {
    let query = by_id(before(scope, "created_at"));
    let mut rows = w.rows::<DisputeRow>(&query);
    while let Some(dp) = rows.try_next().await? {
        // Inquiries (`warning_…`) withdraw no funds.
        if dp.status.starts_with("warning") {
            continue;
        }
        let c = dp.currency.as_str();
        out.push(
            Entry::new(
                i64::from(dp.created_at),
                format!("dp:{}", dp.id),
                format!("dispute {} opened: funds withdrawn", dp.id),
                "dispute",
                &dp.id,
            )
            .dr("disputes_pending", dp.amount, c)
            .cr("stripe_balance", dp.amount, c),
        );
        let Some(closed) = dp.closed_at.map(i64::from) else {
            continue;
        };
        let e = Entry::new(
            closed,
            format!("dp_{}:{}", dp.outcome, dp.id),
            format!("dispute {} {}", dp.id, dp.outcome),
            "dispute",
            &dp.id,
        );
        out.push(match dp.outcome.as_str() {
            "lost" => e
                .dr("chargebacks", dp.amount, c)
                .cr("disputes_pending", dp.amount, c),
            "won" => e
                .dr("stripe_balance", dp.amount, c)
                .cr("disputes_pending", dp.amount, c),
            _ => continue,
        });
    }
    Ok(())
}

fn credit_notes(sources: &Sources, out: &mut Vec<Entry>) {
    for notes in sources.credit_notes.values() {
        for (cn, untaxed) in notes {
            let c = cn.currency.as_str();
            let post = cn.post_payment_amount - cn.out_of_band_amount;
            let rest = cn.total - cn.pre_payment_amount - cn.post_payment_amount;
            let name = cn.number.clone().unwrap_or_else(|| cn.id.clone());
            let e = Entry::new(
                i64::from(cn.created_at),
                format!("cn:{}", cn.id),
                format!("credit note {name}"),
                "credit_note",
                &cn.id,
            )
            .dr("deferred_revenue", *untaxed, c)
            .dr("tax_payable", cn.total - untaxed, c)
            .cr("accounts_receivable", cn.pre_payment_amount, c)
            .cr("customer_credit", post + rest, c)
            .cr("cash_out_of_band", cn.out_of_band_amount, c);
            if let Some(voided) = cn.voided_at.map(i64::from) {
                out.push(e.reversed(
                    voided,
                    format!("cn_void:{}", cn.id),
                    format!("credit note {name} voided"),
                ));
            }
            out.push(e);
        }
    }
}

async fn payouts<W: Warehouse>(w: &W, scope: &Scope, out: &mut Vec<Entry>) -> Result<()> {
    let query = by_id(before(scope, "arrival_date"));
    let mut rows = w.rows::<PayoutRow>(&query);
    while let Some(po) = rows.try_next().await? {
        let (Some(arrival), true) = (
            po.arrival_date.map(i64::from),
            matches!(po.status.as_str(), "paid" | "failed"),
        ) else {
            continue;
        };
        let c = po.currency.as_str();
        let e = Entry::new(
            arrival,
            format!("po:{}", po.id),
            format!("payout {} to the bank", po.id),
            "payout",
            &po.id,
        )
        .dr("bank", po.amount, c)
        .cr("stripe_balance", po.amount, c);
        if po.status == "failed" {
            out.push(e.reversed(
                arrival,
                format!("po_failed:{}", po.id),
                format!("payout {} failed", po.id),
            ));
        }
        out.push(e);
    }
    Ok(())
}

/// The balance of every account per currency over `entries` dated before `until`.
pub fn balances(entries: &[Entry], until: i64) -> BTreeMap<(&'static str, String), i64> {
    let mut out = BTreeMap::new();
    for e in entries.iter().filter(|e| e.at < until) {
        for p in &e.postings {
            *out.entry((p.account, p.currency.clone())).or_default() += p.amount;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_balance_and_reverse() {
        let e = Entry::new(0, "x".into(), "m".into(), "invoice", "in_1")
            .dr("accounts_receivable", 1100, "usd")
            .cr("deferred_revenue", 1000, "usd")
            .cr("tax_payable", 100, "usd")
            .cr("unallocated", 0, "usd");
        assert!(e.balanced());
        assert_eq!(e.postings.len(), 3, "zero postings are left out");
        let r = e.reversed(5, "y".into(), "r".into());
        assert!(r.balanced());
        assert_eq!(r.postings[0].amount, -1100);
        let fx = received(
            Entry::new(0, "p".into(), "m".into(), "invoice", "in_1").cr(
                "accounts_receivable",
                1000,
                "eur",
            ),
            1000,
            "eur",
            Some((
                "usd".into(),
                1085,
                "settled in USD at exchange rate 1.085".into(),
            )),
        );
        assert!(fx.balanced(), "each currency balances through FX clearing");
        assert!(!Entry::new(0, "z".into(), "m".into(), "charge", "ch")
            .dr("bank", 5, "usd")
            .balanced());
    }

    #[test]
    fn account_codes_come_from_the_configuration_and_unknown_names_are_refused() {
        let mut a = Accounts::default();
        assert_eq!(a.code("revenue"), "4000");
        a.set("revenue", "4010-SaaS").unwrap();
        assert_eq!(a.code("revenue"), "4010-SaaS");
        assert!(a.set("revenu", "1").unwrap_err().contains("known: bank"));
        assert!(a.set("bank", "10,00").is_err());
        assert!(a.set("bank", " ").is_err());
    }
}
