//! `customers`: one row per customer × currency of lifetime figures as of the end of the
//! period: when the customer first paid, their MRR then, and what was collected from them,
//! refunded to them and lost to their disputes.
//!
//! The money columns are integer `GROUP BY customer_id, currency` sums in the warehouse,
//! booked the way `revenue` books them (an invoice's `amount_paid` by `paid_at`, a charge
//! attached to no invoice by its creation, succeeded refunds by their creation, lost
//! disputes by their closing), so a currency's column totals equal the sum of `revenue`'s
//! months. `mrr_now` is the customer's last MRR movement before the period's end (the same
//! per-customer computation as `mrr`). Memory holds one row per customer × currency.

use std::collections::{BTreeMap, BTreeSet};

use warehouse::{AggregateQuery, Condition, Filter, GroupKey, Result, TimeRange, Warehouse};

use crate::calendar::format_utc;
use crate::{eq, money, mrr, Scope, Table};

pub const COLUMNS: &[&str] = &[
    "customer_id",
    "currency",
    "first_paid_utc",
    "mrr_now",
    "collected",
    "refunded",
    "disputed",
    "net",
];

/// One customer × currency.
#[derive(Debug, Default)]
struct Cell {
    first_paid: Option<i64>,
    mrr_now: i64,
    collected: i64,
    refunded: i64,
    disputed: i64,
}

type Cells = BTreeMap<(String, String), Cell>;

/// A sum per (customer, currency) of one table's rows up to the period's end.
struct CustomerSum {
    table: &'static str,
    /// What the rows are called in a warning about rows without a customer.
    what: &'static str,
    time: &'static str,
    sum: &'static str,
    conditions: Vec<Condition>,
}

impl CustomerSum {
    /// Adds each group's sum (and earliest `time` when `first_paid`) to its cell.
    async fn into<W: Warehouse>(
        self,
        w: &W,
        scope: &Scope,
        cells: &mut Cells,
        warnings: &mut BTreeSet<String>,
        add: impl Fn(&mut Cell, i64, Option<i64>),
    ) -> Result<()> {
        let query = AggregateQuery {
            table: self.table,
            group_by: vec![
                GroupKey::Column("customer_id"),
                GroupKey::Column("currency"),
            ],
            sums: vec![self.sum],
            earliest: vec![self.time],
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
            match (&row.keys[0], &row.keys[1]) {
                (Some(customer), Some(currency)) => add(
                    cells
                        .entry((customer.clone(), currency.clone()))
                        .or_default(),
                    row.sums[0],
                    row.earliest[0],
                ),
                (None, Some(currency)) => {
                    warnings.insert(format!(
                        "{} {} in {currency} ({}) name no customer: they are in `revenue` but \
                         in no row here",
                        row.count,
                        self.what,
                        money(row.sums[0], currency).unwrap_or_default()
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn earlier(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub async fn run<W: Warehouse>(w: &W, scope: &Scope) -> Result<Table> {
    let mut cells = Cells::new();
    let mut warnings = BTreeSet::new();
    let until = scope.until();
    mrr::for_each_customer(w, scope, &mut warnings, |customer, movements| {
        let mut last: BTreeMap<&str, i64> = BTreeMap::new();
        for m in movements.iter().filter(|m| m.at < until) {
            last.insert(&m.currency, m.after);
        }
        for (currency, value) in last {
            cells
                .entry((customer.to_owned(), currency.to_owned()))
                .or_default()
                .mrr_now = value;
        }
    })
    .await?;
    let paid = |c: &mut Cell, sum: i64, first: Option<i64>| {
        c.collected += sum;
        c.first_paid = earlier(c.first_paid, first);
    };
    CustomerSum {
        table: "invoices",
        what: "paid invoices",
        time: "paid_at",
        sum: "amount_paid",
        conditions: vec![Condition::Positive("amount_paid")],
    }
    .into(w, scope, &mut cells, &mut warnings, paid)
    .await?;
    // Charges that pay an invoice are counted through the invoice's amount_paid.
    CustomerSum {
        table: "payments",
        what: "charges",
        time: "created_at",
        sum: "amount_captured",
        conditions: vec![
            eq("kind", "charge"),
            eq("status", "succeeded"),
            Condition::IsNull("invoice_id"),
            Condition::Positive("amount_captured"),
        ],
    }
    .into(w, scope, &mut cells, &mut warnings, paid)
    .await?;
    CustomerSum {
        table: "refunds",
        what: "refunds",
        time: "created_at",
        sum: "amount",
        conditions: vec![eq("status", "succeeded")],
    }
    .into(w, scope, &mut cells, &mut warnings, |c, sum, _| {
        c.refunded += sum
    })
    .await?;
    CustomerSum {
        table: "disputes",
        what: "lost disputes",
        time: "closed_at",
        sum: "amount",
        conditions: vec![eq("outcome", "lost")],
    }
    .into(w, scope, &mut cells, &mut warnings, |c, sum, _| {
        c.disputed += sum
    })
    .await?;

    let mut table = Table::new(COLUMNS.to_vec());
    for ((customer, currency), cell) in cells {
        let c = currency.as_str();
        table.push(vec![
            Some(customer),
            Some(currency.clone()),
            cell.first_paid.map(format_utc),
            money(cell.mrr_now, c),
            money(cell.collected, c),
            money(cell.refunded, c),
            money(cell.disputed, c),
            money(cell.collected - cell.refunded - cell.disputed, c),
        ]);
    }
    for warning in warnings {
        table.warn(warning);
    }
    Ok(table)
}
