//! `ar-aging`: what customers owe, by how late it is, as it stood at the end of one day.
//!
//! Every invoice version is in `invoice_history` from its event's `created`, so a past day
//! is answered as it stood then, not as it is now: for each invoice, the latest version
//! by the end of the as-of day (ties within a second go to the further-along status, then
//! the larger `amount_paid`). An invoice counts when that version is `open`; its
//! `amount_remaining` falls into a bucket by `age_days` = the as-of date − the UTC date of
//! its due date (of its finalization when it has none); 0 or less is `current`.
//!
//! The history is streamed ordered by invoice, so memory holds one invoice's versions at a
//! time (plus one row per invoice in `--detail`).

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use schemas::facts::InvoiceHistoryRow;
use schemas::stripe::invoice_status_rank;
use warehouse::{Result, RowQuery, TimeRange, Warehouse};

use crate::calendar::DAY;
use crate::{instant, money, Scope, Table};

pub const COLUMNS: &[&str] = &[
    "currency",
    "current",
    "days_1_30",
    "days_31_60",
    "days_61_90",
    "days_91_120",
    "days_over_120",
    "total",
];

pub const DETAIL_COLUMNS: &[&str] = &[
    "invoice_id",
    "customer_id",
    "currency",
    "due_utc",
    "age_days",
    "amount_remaining",
];

/// Which bucket (index into the amount columns) an age falls in.
pub fn bucket(age_days: i64) -> usize {
    match age_days {
        ..=0 => 0,
        1..=30 => 1,
        31..=60 => 2,
        61..=90 => 3,
        91..=120 => 4,
        _ => 5,
    }
}

/// Whether version `a` of an invoice supersedes `b`.
fn later(a: &InvoiceHistoryRow, b: &InvoiceHistoryRow) -> bool {
    let key = |v: &InvoiceHistoryRow| {
        (
            v.valid_from,
            invoice_status_rank(v.status.as_deref().unwrap_or_default()),
            v.amount_paid,
        )
    };
    key(a) > key(b)
}

/// `Some((age_days, due instant))` when the invoice, as it stood then, was open.
fn open_age(inv: &InvoiceHistoryRow, as_of: i64) -> Option<(i64, i64)> {
    if inv.status.as_deref() != Some("open") {
        return None;
    }
    let due = i64::from(inv.due_date.or(inv.finalized_at)?);
    let due_day = due - due.rem_euclid(DAY);
    Some(((as_of - due_day) / DAY, due))
}

pub async fn run<W: Warehouse>(w: &W, scope: &Scope) -> Result<Table> {
    let as_of = scope.as_of;
    let query = RowQuery {
        filter: warehouse::Filter {
            time: Some(TimeRange {
                column: "valid_from",
                from: None,
                until: Some((as_of + DAY).min(scope.now + 1)),
            }),
            ..scope.filter()
        },
        order_by: vec!["invoice_id", "valid_from"],
    };
    let mut buckets: BTreeMap<String, [i64; 6]> = BTreeMap::new();
    let mut detail = Table::new(DETAIL_COLUMNS.to_vec());
    let mut versions = w.rows::<InvoiceHistoryRow>(&query);
    let mut current: Option<InvoiceHistoryRow> = None;
    loop {
        let next = versions.try_next().await?;
        if let (Some(c), Some(n)) = (&mut current, &next) {
            if c.invoice_id == n.invoice_id {
                if later(n, c) {
                    *c = next.expect("just matched");
                }
                continue;
            }
        }
        if let Some(inv) = current.take() {
            if inv.finalized_at.is_some() {
                buckets.entry(inv.currency.clone()).or_default();
            }
            if let Some((age, due)) = open_age(&inv, as_of) {
                buckets.entry(inv.currency.clone()).or_default()[bucket(age)] +=
                    inv.amount_remaining;
                if scope.detail {
                    detail.push(vec![
                        Some(inv.invoice_id.clone()),
                        inv.customer_id.clone(),
                        Some(inv.currency.clone()),
                        instant(u32::try_from(due).ok()),
                        Some(age.to_string()),
                        money(inv.amount_remaining, &inv.currency),
                    ]);
                }
            }
        }
        match next {
            Some(version) => current = Some(version),
            None => break,
        }
    }
    if scope.detail {
        return Ok(detail);
    }
    let mut table = Table::new(COLUMNS.to_vec());
    for (currency, amounts) in &buckets {
        let mut row = vec![Some(currency.clone())];
        row.extend(amounts.iter().map(|a| money(*a, currency)));
        row.push(money(amounts.iter().sum(), currency));
        table.push(row);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_fall_into_their_buckets_at_the_edges() {
        let cases = [
            (-5, 0),
            (0, 0),
            (1, 1),
            (30, 1),
            (31, 2),
            (60, 2),
            (61, 3),
            (90, 3),
            (91, 4),
            (120, 4),
            (121, 5),
        ];
        for (age, expected) in cases {
            assert_eq!(bucket(age), expected, "age {age}");
        }
    }
}
