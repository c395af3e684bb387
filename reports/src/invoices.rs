//! `invoices`: the invoice register, one row per invoice created in the period (by
//! `created`), ordered by id, each in its latest known state.

use futures_util::TryStreamExt;
use schemas::facts::InvoiceRow;
use warehouse::{Result, RowQuery, TimeRange, Warehouse};

use crate::{instant, money, Scope, Table};

pub const COLUMNS: &[&str] = &[
    "invoice_id",
    "number",
    "customer_id",
    "subscription_id",
    "status",
    "currency",
    "subtotal",
    "discounts",
    "tax",
    "total",
    "amount_paid",
    "amount_remaining",
    "created_utc",
    "finalized_utc",
    "due_utc",
    "paid_utc",
    "voided_utc",
];

pub async fn run<W: Warehouse>(w: &W, scope: &Scope) -> Result<Table> {
    let mut filter = scope.filter();
    filter.time = Some(TimeRange {
        column: "created_at",
        from: scope.from.map(|m| m.start()),
        until: Some(scope.until()),
    });
    let query = RowQuery {
        filter,
        order_by: vec!["id"],
    };
    let mut table = Table::new(COLUMNS.to_vec());
    let mut rows = w.rows::<InvoiceRow>(&query);
    while let Some(inv) = rows.try_next().await? {
        let c = inv.currency.as_str();
        table.push(vec![
            Some(inv.id.clone()),
            inv.number.clone(),
            inv.customer_id.clone(),
            inv.subscription_id.clone(),
            inv.status.clone(),
            Some(inv.currency.clone()),
            money(inv.subtotal, c),
            money(inv.total_discount, c),
            money(inv.total_tax, c),
            money(inv.total, c),
            money(inv.amount_paid, c),
            money(inv.amount_remaining, c),
            instant(Some(inv.created_at)),
            instant(inv.finalized_at),
            instant(inv.due_date),
            instant(inv.paid_at),
            instant(inv.voided_at),
        ]);
    }
    Ok(table)
}
