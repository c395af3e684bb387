//! What the enrichment still has to fetch from Stripe's API, asked through the port: the
//! raw events table is the record of what was fetched already (each fetched page is an
//! event of its own, see [`schemas::stripe::fetched`]), so the to-do list survives a crash
//! and a replay, and a page with nothing in it still counts as fetched.

use std::collections::HashSet;

use futures_util::TryStreamExt;
use schemas::facts::{InvoiceRow, PayoutRow, TieRow};
use schemas::stripe::fetched::{INVOICE_LINES, PAYOUT_ITEMS, REFETCHED};

use crate::{AggregateQuery, Condition, Filter, GroupKey, Result, RowQuery, Warehouse};

/// The objects (`object_id`) that have a fetched record of `event_type`.
async fn fetched<W: Warehouse>(
    w: &W,
    event_type: &str,
    filter: &Filter,
) -> Result<HashSet<String>> {
    let query = AggregateQuery {
        group_by: vec![GroupKey::Column("object_id")],
        filter: Filter {
            currency: None,
            time: None,
            conditions: vec![Condition::Eq("event_type", event_type.to_owned())],
            ..filter.clone()
        },
        ..AggregateQuery::count("stripe_events")
    };
    Ok(w.aggregate(&query)
        .await?
        .into_iter()
        .filter_map(|r| r.keys.into_iter().next().flatten())
        .collect())
}

/// Finalized invoices of `filter` whose webhook carried only the first page of their lines
/// (`lines_complete = 0`) and whose other lines were not fetched yet.
pub async fn invoices_missing_lines<W: Warehouse>(
    w: &W,
    filter: &Filter,
) -> Result<Vec<InvoiceRow>> {
    let mut conditions = filter.conditions.clone();
    conditions.extend([
        Condition::Zero("lines_complete"),
        Condition::NotNull("finalized_at"),
    ]);
    let query = RowQuery {
        filter: Filter {
            conditions,
            ..filter.clone()
        },
        order_by: vec!["id"],
    };
    let incomplete: Vec<InvoiceRow> = w.rows::<InvoiceRow>(&query).try_collect().await?;
    if incomplete.is_empty() {
        return Ok(incomplete);
    }
    let done = fetched(w, INVOICE_LINES, filter).await?;
    Ok(incomplete
        .into_iter()
        .filter(|i| !done.contains(&i.id))
        .collect())
}

/// Automatic payouts Stripe has reconciled whose balance transactions were not fetched yet.
pub async fn payouts_to_itemise<W: Warehouse>(w: &W) -> Result<Vec<PayoutRow>> {
    let query = RowQuery {
        filter: Filter {
            conditions: vec![
                Condition::Eq("reconciliation_status", "completed".into()),
                Condition::Positive("automatic"),
            ],
            ..Filter::default()
        },
        order_by: vec!["id"],
    };
    let payouts: Vec<PayoutRow> = w.rows::<PayoutRow>(&query).try_collect().await?;
    if payouts.is_empty() {
        return Ok(payouts);
    }
    let done = fetched(w, PAYOUT_ITEMS, &Filter::default()).await?;
    Ok(payouts
        .into_iter()
        .filter(|p| !done.contains(&p.id))
        .collect())
}

/// Same-second ties not settled yet: no object fetched again since the second they are from.
pub async fn ties_to_refetch<W: Warehouse>(w: &W) -> Result<Vec<TieRow>> {
    let query = RowQuery {
        filter: Filter::default(),
        order_by: vec!["id"],
    };
    let ties: Vec<TieRow> = w.rows::<TieRow>(&query).try_collect().await?;
    if ties.is_empty() {
        return Ok(ties);
    }
    // The latest refetch of each object (few: one per tie).
    let mut latest: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let query = RowQuery {
        filter: Filter {
            conditions: vec![Condition::Eq("event_type", REFETCHED.to_owned())],
            ..Filter::default()
        },
        order_by: vec!["id"],
    };
    let mut rows = w.rows::<schemas::facts::EventRow>(&query);
    while let Some(e) = rows.try_next().await? {
        if let (Some(object), Some(created)) = (e.object_id, e.created_at) {
            let at = latest.entry(object).or_default();
            *at = (*at).max(i64::from(created));
        }
    }
    Ok(ties
        .into_iter()
        .filter(|t| {
            latest
                .get(&t.object_id)
                .is_none_or(|at| *at < i64::from(t.created_at))
        })
        .collect())
}
