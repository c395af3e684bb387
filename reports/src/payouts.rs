//! `payouts`: what landed in the bank and what it was made of. One row per payout arriving
//! in the period (by `arrival_date`), ordered by id:
//! `payout_id,arrival_utc,currency,amount,charges_gross,refunds,disputes,fees,other,missing,status,reconciled`.
//!
//! A payout's items are the balance transactions Stripe lists for it (`payout_items`, with
//! the transactions in `balance_transactions`), classified by type: charges and payments
//! (gross), refunds, disputes (and their reversals), fees (each item's `fee`, and Stripe's
//! own fee transactions), everything else. Money into the Stripe balance is positive, out
//! negative, so `charges_gross + refunds + disputes + fees + other + missing = amount`;
//! `missing` is what is not itemised yet, and `reconciled` is `true` when it is 0.
//!
//! Only automatic payouts can be itemised (Stripe lists the transactions of those alone),
//! once Stripe has finished reconciling them; every other payout shows its whole amount
//! under `missing`, and the report says why.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::TryStreamExt;
use schemas::facts::{
    BalanceTransactionRow, DisputeRow, PaymentRow, PayoutItemRow, PayoutRow, RefundRow,
};
use warehouse::{Filter, Result, RowQuery, TimeRange, Warehouse};

use crate::{instant, money, Scope, Table};

pub const COLUMNS: &[&str] = &[
    "payout_id",
    "arrival_utc",
    "currency",
    "amount",
    "charges_gross",
    "refunds",
    "disputes",
    "fees",
    "other",
    "missing",
    "status",
    "reconciled",
];

pub const DETAIL_COLUMNS: &[&str] = &[
    "payout_id",
    "balance_transaction_id",
    "currency",
    "type",
    "source_id",
    "invoice_id",
    "customer_id",
    "gross",
    "fee",
    "net",
];

/// Where a balance transaction's gross amount goes in the payout's breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Charges,
    Refunds,
    Disputes,
    Fees,
    Other,
}

/// The category of a balance transaction by its `type` and `reporting_category`.
pub fn category(kind: &str, reporting_category: Option<&str>) -> Category {
    match (kind, reporting_category) {
        ("charge" | "payment", _) => Category::Charges,
        ("refund" | "payment_refund" | "refund_failure" | "payment_failure_refund", _) => {
            Category::Refunds
        }
        (_, Some("dispute" | "dispute_reversal")) | ("dispute", None) => Category::Disputes,
        ("stripe_fee" | "application_fee" | "tax_fee", _) => Category::Fees,
        (_, Some("fee")) => Category::Fees,
        _ => Category::Other,
    }
}

/// One payout's breakdown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Breakdown {
    charges: i64,
    refunds: i64,
    disputes: i64,
    fees: i64,
    other: i64,
}

impl Breakdown {
    fn add(&mut self, bt: &BalanceTransactionRow) {
        let slot = match category(&bt.kind, bt.reporting_category.as_deref()) {
            Category::Charges => &mut self.charges,
            Category::Refunds => &mut self.refunds,
            Category::Disputes => &mut self.disputes,
            Category::Fees => &mut self.fees,
            Category::Other => &mut self.other,
        };
        *slot += bt.amount;
        self.fees -= bt.fee;
    }

    fn itemised(&self) -> i64 {
        self.charges + self.refunds + self.disputes + self.fees + self.other
    }
}

/// Why payouts are not (fully) itemised, counted for the warnings.
#[derive(Debug, Default)]
struct Unitemised {
    manual: usize,
    not_reconciled_yet: usize,
    not_fetched: usize,
    partly: usize,
}

pub async fn run<W: Warehouse>(w: &W, scope: &Scope) -> Result<Table> {
    // Tables without a currency column are read for the mode and account only.
    let any_currency = Filter {
        currency: None,
        ..scope.filter()
    };
    let query = RowQuery {
        filter: Filter {
            time: Some(TimeRange {
                column: "arrival_date",
                from: scope.from.map(|m| m.start()),
                until: Some(scope.until()),
            }),
            ..scope.filter()
        },
        order_by: vec!["id"],
    };
    let payouts: Vec<PayoutRow> = w.rows::<PayoutRow>(&query).try_collect().await?;
    let wanted: HashSet<&str> = payouts.iter().map(|p| p.id.as_str()).collect();

    let mut items: HashMap<String, Vec<String>> = HashMap::new();
    let query = RowQuery {
        filter: any_currency.clone(),
        order_by: vec!["id"],
    };
    let mut rows = w.rows::<PayoutItemRow>(&query);
    while let Some(item) = rows.try_next().await? {
        if wanted.contains(item.payout_id.as_str()) {
            items
                .entry(item.payout_id)
                .or_default()
                .push(item.balance_transaction_id);
        }
    }
    let needed: HashSet<&str> = items.values().flatten().map(String::as_str).collect();
    let mut transactions: HashMap<String, BalanceTransactionRow> = HashMap::new();
    let query = RowQuery {
        filter: any_currency.clone(),
        order_by: vec!["id"],
    };
    let mut rows = w.rows::<BalanceTransactionRow>(&query);
    while let Some(bt) = rows.try_next().await? {
        if needed.contains(bt.id.as_str()) {
            transactions.insert(bt.id.clone(), bt);
        }
    }

    if scope.detail {
        return detail(w, &any_currency, &payouts, &items, &transactions).await;
    }
    let mut table = Table::new(COLUMNS.to_vec());
    let mut why = Unitemised::default();
    for p in &payouts {
        let mut breakdown = Breakdown::default();
        let listed = items.get(&p.id);
        let mut unknown = 0;
        for id in listed.into_iter().flatten() {
            match transactions.get(id) {
                Some(bt) if !own(p, bt) => breakdown.add(bt),
                Some(_) => {}
                None => unknown += 1,
            }
        }
        let missing = p.amount - breakdown.itemised();
        if missing != 0 {
            if listed.is_none() {
                if p.automatic == 0 {
                    why.manual += 1;
                } else if p.reconciliation_status.as_deref() != Some("completed") {
                    why.not_reconciled_yet += 1;
                } else {
                    why.not_fetched += 1;
                }
            } else if unknown > 0 {
                why.partly += 1;
            }
        }
        let c = p.currency.as_str();
        table.push(vec![
            Some(p.id.clone()),
            instant(p.arrival_date),
            Some(p.currency.clone()),
            money(p.amount, c),
            money(breakdown.charges, c),
            money(breakdown.refunds, c),
            money(breakdown.disputes, c),
            money(breakdown.fees, c),
            money(breakdown.other, c),
            money(missing, c),
            Some(p.status.clone()),
            Some((missing == 0).to_string()),
        ]);
    }
    warn(&mut table, &why);
    Ok(table)
}

/// Whether `bt` is the payout's own debit of the balance (Stripe lists it with the items),
/// which is the payout itself, not one of its items.
fn own(p: &PayoutRow, bt: &BalanceTransactionRow) -> bool {
    bt.kind == "payout" || p.balance_transaction_id.as_deref() == Some(bt.id.as_str())
}

fn warn(table: &mut Table, why: &Unitemised) {
    if why.manual > 0 {
        table.warn(format!(
            "{} manual payout(s): Stripe itemises automatic payouts only, so their amount \
             is under missing",
            why.manual
        ));
    }
    if why.not_reconciled_yet > 0 {
        table.warn(format!(
            "{} payout(s) not reconciled by Stripe yet (reconciliation_status is not \
             completed): their amount is under missing until then",
            why.not_reconciled_yet
        ));
    }
    if why.not_fetched > 0 {
        table.warn(format!(
            "{} payout(s) reconciled by Stripe have no itemised balance transactions in the \
             warehouse: their amount is under missing",
            why.not_fetched
        ));
    }
    if why.partly > 0 {
        table.warn(format!(
            "{} payout(s) name balance transactions not in the warehouse yet: those are \
             under missing",
            why.partly
        ));
    }
}

/// One row per item: the balance transaction with the invoice and customer of its source
/// (a charge, a refund or a dispute).
async fn detail<W: Warehouse>(
    w: &W,
    any_currency: &Filter,
    payouts: &[PayoutRow],
    items: &HashMap<String, Vec<String>>,
    transactions: &HashMap<String, BalanceTransactionRow>,
) -> Result<Table> {
    let sources: HashSet<&str> = transactions
        .values()
        .filter_map(|bt| bt.source_id.as_deref())
        .collect();
    // source id → (invoice, customer)
    let mut owners: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
    let query = RowQuery {
        filter: any_currency.clone(),
        order_by: vec!["id"],
    };
    let mut rows = w.rows::<PaymentRow>(&query);
    while let Some(r) = rows.try_next().await? {
        if sources.contains(r.id.as_str()) {
            owners.insert(r.id, (r.invoice_id, r.customer_id));
        }
    }
    let mut rows = w.rows::<RefundRow>(&query);
    while let Some(r) = rows.try_next().await? {
        if sources.contains(r.id.as_str()) {
            owners.insert(r.id, (r.invoice_id, r.customer_id));
        }
    }
    let mut rows = w.rows::<DisputeRow>(&query);
    while let Some(r) = rows.try_next().await? {
        if sources.contains(r.id.as_str()) {
            owners.insert(r.id, (r.invoice_id, r.customer_id));
        }
    }
    let mut table = Table::new(DETAIL_COLUMNS.to_vec());
    let mut sorted: BTreeMap<(&str, &str), &BalanceTransactionRow> = BTreeMap::new();
    for p in payouts {
        for id in items.get(&p.id).into_iter().flatten() {
            match transactions.get(id) {
                Some(bt) if !own(p, bt) => {
                    sorted.insert((p.id.as_str(), bt.id.as_str()), bt);
                }
                _ => {}
            }
        }
    }
    for ((payout, _), bt) in sorted {
        let (invoice, customer) = bt
            .source_id
            .as_ref()
            .and_then(|s| owners.get(s).cloned())
            .unwrap_or_default();
        let c = bt.currency.as_str();
        table.push(vec![
            Some(payout.to_owned()),
            Some(bt.id.clone()),
            Some(bt.currency.clone()),
            Some(bt.kind.clone()),
            bt.source_id.clone(),
            invoice,
            customer,
            money(bt.amount, c),
            money(bt.fee, c),
            money(bt.net, c),
        ]);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_transactions_fall_into_their_categories() {
        assert_eq!(category("charge", Some("charge")), Category::Charges);
        assert_eq!(category("payment", None), Category::Charges);
        assert_eq!(category("refund", Some("refund")), Category::Refunds);
        assert_eq!(category("adjustment", Some("dispute")), Category::Disputes);
        assert_eq!(
            category("adjustment", Some("dispute_reversal")),
            Category::Disputes
        );
        assert_eq!(category("stripe_fee", Some("fee")), Category::Fees);
        assert_eq!(
            category("adjustment", Some("other_adjustment")),
            Category::Other
        );
        assert_eq!(category("transfer", None), Category::Other);
    }

    #[test]
    fn fees_come_from_every_item_and_the_parts_add_up() {
        let bt = |kind: &str, amount: i64, fee: i64| BalanceTransactionRow {
            id: format!("txn_{kind}_{amount}"),
            account: None,
            livemode: 1,
            source_id: None,
            kind: kind.into(),
            reporting_category: None,
            amount,
            fee,
            net: amount - fee,
            currency: "usd".into(),
            exchange_rate: None,
            status: None,
            created_at: 0,
            available_on: None,
            source_event_id: "evt".into(),
            version: 1,
        };
        let mut b = Breakdown::default();
        for t in [
            bt("charge", 10000, 320),
            bt("refund", -2000, 0),
            bt("stripe_fee", -150, 0),
        ] {
            b.add(&t);
        }
        assert_eq!(
            (b.charges, b.refunds, b.fees, b.other),
            (10000, -2000, -470, 0)
        );
        assert_eq!(
            b.itemised(),
            10000 - 320 - 2000 - 150,
            "the sum of the nets"
        );
    }
}
