//! `revenue`: one row per month × currency of what was invoiced, collected, refunded and
//! lost to disputes, with Stripe's fees and the net. Never restated: every event counts in
//! the month it happens in (a void is a reversal in its own month, a refund in the month
//! it was made).
//!
//! All sums are integer `GROUP BY` aggregates in the warehouse. Fees are only shown for a
//! month and currency when the balance transaction of every succeeded charge of that month
//! and currency is known; that check is a merge of two id-ordered streams (charges by
//! balance transaction, balance transactions by id), so memory stays flat.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::TryStreamExt;
use schemas::facts::{BalanceTransactionRow, PaymentRow};
use warehouse::{
    AggregateQuery, Condition, Filter, GroupKey, Result, RowQuery, TimeRange, Warehouse,
};

use crate::{eq, money, month_key, Month, Scope, Table};

pub const COLUMNS: &[&str] = &[
    "month",
    "currency",
    "invoiced",
    "tax",
    "discounts",
    "collected",
    "refunded",
    "disputed",
    "fees",
    "net",
];

/// One month × currency.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Cell {
    invoiced: i64,
    tax: i64,
    discounts: i64,
    collected: i64,
    refunded: i64,
    disputed: i64,
    fees: i64,
    /// Some succeeded charge of this month and currency has no known balance transaction.
    fees_unknown: bool,
}

type Cells = BTreeMap<(Month, String), Cell>;

/// A grouped sum by (month of `time`, currency) over the rows of `table` that pass
/// `conditions`.
struct MonthlySum {
    table: &'static str,
    time: &'static str,
    sums: &'static [&'static str],
    conditions: Vec<Condition>,
}

impl MonthlySum {
    fn new(table: &'static str, time: &'static str, sums: &'static [&'static str]) -> Self {
        MonthlySum {
            table,
            time,
            sums,
            conditions: Vec::new(),
        }
    }

    fn when(mut self, condition: Condition) -> Self {
        self.conditions.push(condition);
        self
    }

    /// Runs the sum up to the scope's end and hands each group's sums to `add`.
    async fn into<W: Warehouse>(
        self,
        w: &W,
        scope: &Scope,
        cells: &mut Cells,
        add: impl Fn(&mut Cell, &[i64]),
    ) -> Result<()> {
        let query = AggregateQuery {
            table: self.table,
            group_by: vec![GroupKey::Month(self.time), GroupKey::Column("currency")],
            sums: self.sums.to_vec(),
            earliest: Vec::new(),
            filter: Filter {
                time: Some(TimeRange {
                    column: self.time,
                    from: None,
                    until: Some(scope.until()),
                }),
                conditions: self.conditions,
                ..scope.filter()
            },
        };
        for row in w.aggregate(&query).await? {
            let (Some(month), Some(currency)) = (month_key(&row.keys[0]), row.keys[1].clone())
            else {
                continue;
            };
            add(cells.entry((month, currency)).or_default(), &row.sums);
        }
        Ok(())
    }
}

pub async fn run<W: Warehouse>(w: &W, scope: &Scope) -> Result<Table> {
    let mut cells = Cells::new();
    const INVOICE: &[&str] = &["total", "total_tax", "total_discount"];
    MonthlySum::new("invoices", "finalized_at", INVOICE)
        .into(w, scope, &mut cells, |c, s| {
            c.invoiced += s[0] - s[1];
            c.tax += s[1];
            c.discounts += s[2];
        })
        .await?;
    // A void is a reversal in its own month.
    MonthlySum::new("invoices", "voided_at", INVOICE)
        .into(w, scope, &mut cells, |c, s| {
            c.invoiced -= s[0] - s[1];
            c.tax -= s[1];
            c.discounts -= s[2];
        })
        .await?;
    MonthlySum::new("invoices", "paid_at", &["amount_paid"])
        .into(w, scope, &mut cells, |c, s| c.collected += s[0])
        .await?;
    // Charges that pay an invoice are counted through the invoice's amount_paid.
    MonthlySum::new("payments", "created_at", &["amount_captured"])
        .when(eq("kind", "charge"))
        .when(eq("status", "succeeded"))
        .when(Condition::IsNull("invoice_id"))
        .into(w, scope, &mut cells, |c, s| c.collected += s[0])
        .await?;
    MonthlySum::new("refunds", "created_at", &["amount"])
        .when(eq("status", "succeeded"))
        .into(w, scope, &mut cells, |c, s| c.refunded += s[0])
        .await?;
    MonthlySum::new("disputes", "closed_at", &["amount"])
        .when(eq("outcome", "lost"))
        .into(w, scope, &mut cells, |c, s| c.disputed += s[0])
        .await?;
    MonthlySum::new("balance_transactions", "created_at", &["fee"])
        .into(w, scope, &mut cells, |c, s| c.fees += s[0])
        .await?;
    // Succeeded charges whose balance transaction is not even named yet.
    MonthlySum::new("payments", "created_at", &[])
        .when(eq("kind", "charge"))
        .when(eq("status", "succeeded"))
        .when(Condition::IsNull("balance_transaction_id"))
        .into(w, scope, &mut cells, |c, _| c.fees_unknown = true)
        .await?;
    mark_unknown_fees(w, scope, &mut cells).await?;

    let currencies = currencies(w, scope, &cells).await?;
    let to = scope.to;
    let from = scope
        .from
        .or_else(|| cells.keys().map(|(m, _)| *m).filter(|m| *m <= to).min())
        .unwrap_or(to);
    let mut table = Table::new(COLUMNS.to_vec());
    let mut any_unknown = false;
    for month in from.through(to) {
        for currency in &currencies {
            let cell = cells
                .get(&(month, currency.clone()))
                .cloned()
                .unwrap_or_default();
            any_unknown |= cell.fees_unknown;
            let fees = (!cell.fees_unknown).then_some(cell.fees);
            let net = cell.collected - cell.refunded - cell.disputed - fees.unwrap_or(0);
            let c = currency.as_str();
            table.push(vec![
                Some(month.to_string()),
                Some(currency.clone()),
                money(cell.invoiced, c),
                money(cell.tax, c),
                money(cell.discounts, c),
                money(cell.collected, c),
                money(cell.refunded, c),
                money(cell.disputed, c),
                fees.and_then(|f| money(f, c)),
                money(net, c),
            ]);
        }
    }
    if any_unknown {
        table.warn(
            "fees are empty where the balance transaction of some succeeded charge is not \
             known yet (set STRIPE_API_KEY to fetch them); net counts those fees as 0",
        );
    }
    Ok(table)
}

/// Marks the month × currency of every succeeded charge whose named balance transaction is
/// not in the warehouse: charges ordered by balance transaction id merged with balance
/// transactions ordered by id.
async fn mark_unknown_fees<W: Warehouse>(w: &W, scope: &Scope, cells: &mut Cells) -> Result<()> {
    let charges = RowQuery {
        filter: Filter {
            time: Some(TimeRange {
                column: "created_at",
                from: None,
                until: Some(scope.until()),
            }),
            conditions: vec![
                eq("kind", "charge"),
                eq("status", "succeeded"),
                Condition::NotNull("balance_transaction_id"),
            ],
            ..scope.filter()
        },
        order_by: vec!["balance_transaction_id"],
    };
    // Balance transactions in any currency: a charge settles in its account's currency.
    let known = RowQuery {
        filter: Filter {
            currency: None,
            ..scope.filter()
        },
        order_by: vec!["id"],
    };
    let mut charges = w.rows::<PaymentRow>(&charges);
    let mut known = w.rows::<BalanceTransactionRow>(&known);
    let mut next_known = known.try_next().await?;
    while let Some(charge) = charges.try_next().await? {
        let bt = charge.balance_transaction_id.as_deref().unwrap_or_default();
        while next_known.as_ref().is_some_and(|k| k.id.as_str() < bt) {
            next_known = known.try_next().await?;
        }
        if next_known.as_ref().is_none_or(|k| k.id != bt) {
            let key = (
                Month::of(i64::from(charge.created_at)),
                charge.currency.clone(),
            );
            cells.entry(key).or_default().fees_unknown = true;
        }
    }
    Ok(())
}

/// Every currency with an invoice, payment, refund, dispute or fee up to the scope's end,
/// sorted.
async fn currencies<W: Warehouse>(w: &W, scope: &Scope, cells: &Cells) -> Result<Vec<String>> {
    let mut set: BTreeSet<String> = cells.keys().map(|(_, c)| c.clone()).collect();
    let query = AggregateQuery {
        group_by: vec![GroupKey::Column("currency")],
        filter: Filter {
            time: Some(TimeRange {
                column: "created_at",
                from: None,
                until: Some(scope.until()),
            }),
            ..scope.filter()
        },
        ..AggregateQuery::count("invoices")
    };
    for row in w.aggregate(&query).await? {
        set.extend(row.keys[0].clone());
    }
    Ok(set.into_iter().collect())
}
