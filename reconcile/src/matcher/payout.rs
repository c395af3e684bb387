//! Payouts: one row per payout, its latest version. A payout moves pending → in_transit →
//! paid, and may still fail or be canceled after that; `payout.reconciliation_completed`
//! marks the moment Stripe can list the balance transactions it carried, which the
//! enrichment then fetches and appends to the log as pages ([`PayoutItems`]): each listed
//! transaction becomes a `balance_transactions` row and a `payout_items` link.

use schemas::facts::{PayoutItemRow, PayoutRow};
use schemas::stripe::{Payout, PayoutItems};

use super::payments::balance_transaction_row;
use super::{ts, ts_opt, EventCtx};

/// Same-second ordering: further along in the life of a payout wins, and a completed
/// reconciliation outranks the same status without it.
fn rank(p: &Payout) -> u8 {
    let status = match p.status.as_str() {
        "pending" => 0,
        "in_transit" => 1,
        "paid" => 2,
        "canceled" => 3,
        "failed" => 4,
        _ => 0,
    };
    status * 2 + u8::from(p.reconciliation_status.as_deref() == Some("completed"))
}

pub(super) fn apply(ctx: &mut EventCtx<'_>, p: &Payout) {
    let version = ctx.version(rank(p), 0);
    ctx.facts.payouts.push(PayoutRow {
        id: p.id.clone(),
        account: ctx.account(),
        livemode: ctx.livemode(),
        amount: p.amount,
        currency: p.currency.clone(),
        arrival_date: ts_opt(p.arrival_date),
        status: p.status.clone(),
        method: p.method.clone(),
        payout_type: p.kind.clone(),
        failure_code: p.failure_code.clone(),
        automatic: u8::from(p.automatic),
        reconciliation_status: p.reconciliation_status.clone(),
        balance_transaction_id: p.balance_transaction.clone(),
        created_at: ts(p.created),
        source_event_id: ctx.event_id(),
        version,
    });
}

pub(super) fn items(ctx: &mut EventCtx<'_>, page: &PayoutItems) {
    let version = ctx.version(0, 0);
    for bt in &page.transactions {
        ctx.facts.payout_items.push(PayoutItemRow {
            id: format!("{}/{}", page.payout, bt.id),
            payout_id: page.payout.clone(),
            balance_transaction_id: bt.id.clone(),
            account: ctx.account(),
            livemode: ctx.livemode(),
            source_event_id: ctx.event_id(),
            version,
        });
        let row = balance_transaction_row(bt, ctx.account(), ctx.livemode(), ctx.event_id());
        ctx.facts.balance_transactions.push(row);
    }
}
