//! Subscriptions: item history as validity intervals (SCD type 2).
//!
//! Each subscription snapshot (any `customer.subscription.*` event) opens one interval per
//! item at its event's `created`; the interval ends where the next snapshot (by version)
//! begins. A late event that lands between two known snapshots closes the earlier one's
//! rows sooner, so those rows are emitted again; their version is "earlier close wins"
//! (see [`crate::version::interval_version`]), which makes the final rows independent of
//! arrival order.

use schemas::facts::SubscriptionItemRow;
use schemas::stripe::{DecodedEvent, Subscription};

use super::state::{Snapshot, State};
use super::{ts, ts_opt, EventCtx, FactSet};
use crate::version::interval_version;

fn rank(status: &str) -> u8 {
    match status {
        "incomplete" => 0,
        "trialing" => 1,
        "active" => 2,
        "past_due" => 3,
        "unpaid" | "paused" => 4,
        "canceled" | "incomplete_expired" => 5,
        _ => 0,
    }
}

/// The version of the snapshot a subscription event makes: what [`apply`] keys it by,
/// and what a bounded state reads the neighbouring snapshots around.
pub(super) fn snapshot_version(ev: &DecodedEvent, sub: &Subscription) -> u64 {
    crate::version::snapshot_version(ev.meta.created, rank(&sub.status), &ev.meta.id)
}

pub(super) fn apply(ctx: &mut EventCtx<'_>, state: &mut State, sub: &Subscription) {
    let snapshot_version = snapshot_version(ctx.ev, sub);
    let created = ts(ctx.created());
    for d in &sub.discount_objects {
        super::discount::discount(ctx, d, false);
    }
    let rows = sub
        .items
        .iter()
        .map(|item| SubscriptionItemRow {
            id: format!("{}/{}/{snapshot_version:016x}", sub.id, item.id),
            subscription_id: sub.id.clone(),
            item_id: item.id.clone(),
            account: ctx.account(),
            livemode: ctx.livemode(),
            customer_id: sub.customer.clone(),
            status: sub.status.clone(),
            price_id: item.price_id.clone(),
            product_id: item.product_id.clone(),
            currency: item.currency.clone().or_else(|| sub.currency.clone()),
            unit_amount: item.unit_amount,
            quantity: item.quantity,
            interval: item.interval.clone(),
            interval_count: item.interval_count,
            usage_type: item.usage_type.clone(),
            unit_amount_decimal: item.unit_amount_decimal.clone(),
            billing_scheme: item.billing_scheme.clone(),
            tiers_mode: item.tiers_mode.clone(),
            tiers: item.tiers.clone(),
            transform_divide_by: item.transform_divide_by,
            transform_round: item.transform_round.clone(),
            cancel_at_period_end: u8::from(sub.cancel_at_period_end),
            cancel_at: ts_opt(sub.cancel_at),
            canceled_at: ts_opt(sub.canceled_at),
            ended_at: ts_opt(sub.ended_at),
            trial_start: ts_opt(sub.trial_start),
            trial_end: ts_opt(sub.trial_end),
            pause_collection: sub.pause_collection.clone(),
            cancellation_reason: sub.cancellation_reason.clone(),
            // In the order they apply (MRR takes them off one after the other).
            discount_ids: sub.discounts.join(","),
            item_discount_ids: item.discounts.join(","),
            current_period_start: ts_opt(item.current_period_start),
            current_period_end: ts_opt(item.current_period_end),
            valid_from: created,
            valid_to: None,
            source_event_id: ctx.event_id(),
            version: interval_version(None),
        })
        .collect();
    state.add_snapshot(
        &sub.id,
        Snapshot {
            version: snapshot_version,
            created,
            rows,
        },
    );

    let snapshots = &state.subscriptions[&sub.id];
    let at = snapshots
        .binary_search_by_key(&snapshot_version, |s| s.version)
        .expect("just added");
    let next_start = snapshots.get(at + 1).map(|s| s.created);
    emit(&snapshots[at], next_start, ctx.facts);
    if at > 0 {
        emit(&snapshots[at - 1], Some(created), ctx.facts);
    }
}

/// Emits a snapshot's rows closed at `valid_to`.
fn emit(snapshot: &Snapshot, valid_to: Option<u32>, facts: &mut FactSet) {
    for row in &snapshot.rows {
        facts.subscription_items.push(SubscriptionItemRow {
            valid_to,
            version: interval_version(valid_to),
            ..row.clone()
        });
    }
}
