//! Money objects: charges (the `payments` table), invoice payments (`invoice_payments`,
//! links that also teach a charge its invoice), refunds, disputes
//! and balance transactions, plus the links they teach (charge → payment intent, payment
//! intent → invoice). A payment, refund or dispute whose invoice cannot be resolved yet is
//! kept pending and emitted again when the link arrives.

use schemas::facts::{BalanceTransactionRow, DisputeRow, InvoicePaymentRow, PaymentRow, RefundRow};
use schemas::stripe::{BalanceTransaction, Charge, Dispute, InvoicePayment, PaymentIntent, Refund};

use super::state::{ChargeLink, ParentKey, PendingKey, PendingRow, State};
use super::{ts, ts_opt, EventCtx, FactSet};
use crate::version::{grow, with_links};

/// The `kind` of a pending invoice payment (kept in the payment row shape in the state).
const INVOICE_PAYMENT: &str = "invoice_payment";

/// The `invoice_payments` row of a pending invoice payment.
fn invoice_payment_row(r: &PaymentRow) -> InvoicePaymentRow {
    InvoicePaymentRow {
        id: r.id.clone(),
        account: r.account.clone(),
        livemode: r.livemode,
        invoice_id: r.invoice_id.clone(),
        subscription_id: r.subscription_id.clone(),
        customer_id: r.customer_id.clone(),
        payment_intent_id: r.payment_intent_id.clone(),
        charge_id: r.charge_id.clone(),
        amount_requested: r.amount,
        amount_paid: r.amount_captured,
        currency: r.currency.clone(),
        status: r.status.clone(),
        created_at: r.created_at,
        paid_at: r.paid_at,
        source_event_id: r.source_event_id.clone(),
        version: r.version,
    }
}

/// Links found for a row.
struct Resolved {
    invoice: Option<String>,
    subscription: Option<String>,
    customer: Option<String>,
    /// The invoice and its own links are known: nothing more can arrive.
    complete: bool,
}

fn resolve(
    state: &State,
    charge: Option<&str>,
    pi: Option<&str>,
    invoice: Option<&str>,
    customer: Option<&str>,
) -> Resolved {
    let ch = charge.and_then(|c| state.charges.get(c));
    let pi = pi.or_else(|| ch.and_then(|l| l.payment_intent.as_deref()));
    let invoice = invoice
        .map(str::to_owned)
        .or_else(|| ch.and_then(|l| l.invoice.clone()))
        .or_else(|| pi.and_then(|p| state.pi_invoice.get(p).cloned()));
    let inv_link = invoice.as_deref().and_then(|i| state.invoices.get(i));
    Resolved {
        subscription: inv_link.and_then(|l| l.subscription.clone()),
        customer: customer
            .map(str::to_owned)
            .or_else(|| ch.and_then(|l| l.customer.clone()))
            .or_else(|| inv_link.and_then(|l| l.customer.clone())),
        complete: invoice.is_some() && inv_link.is_some(),
        invoice,
    }
}

/// The links mask of (invoice, subscription, customer).
fn mask(fields: [&Option<String>; 3]) -> u8 {
    crate::version::links_mask(
        fields[0].is_some(),
        fields[1].is_some(),
        fields[2].is_some(),
    )
}

fn fill(slot: &mut Option<String>, value: Option<String>) {
    if slot.is_none() {
        *slot = value;
    }
}

/// Fills the row's links from the state, emits it, and keeps it pending while incomplete.
fn emit_resolving_links(
    state: &mut State,
    key: PendingKey,
    mut row: PendingRow,
    facts: &mut FactSet,
) {
    let complete = {
        let f = row.fields();
        let res = resolve(
            state,
            f.charge,
            f.payment_intent,
            f.invoice.as_deref(),
            f.customer.as_deref(),
        );
        fill(&mut *f.invoice, res.invoice);
        fill(&mut *f.subscription, res.subscription);
        fill(&mut *f.customer, res.customer);
        *f.version = with_links(
            *f.version,
            mask([&*f.invoice, &*f.subscription, &*f.customer]),
        );
        res.complete
    };
    match &row {
        PendingRow::Payment(r) if r.kind == INVOICE_PAYMENT => {
            facts.invoice_payments.push(invoice_payment_row(r));
        }
        PendingRow::Payment(r) => facts.payments.push(r.clone()),
        PendingRow::Refund(r) => facts.refunds.push(r.clone()),
        PendingRow::Dispute(r) => facts.disputes.push(r.clone()),
    }
    if complete {
        // A newer snapshot of the same object may be pending: it resolves now too.
        if let Some(newer) = state
            .pending
            .get(&key)
            .filter(|p| p.version() > row.version())
            .cloned()
        {
            emit_resolving_links(state, key, newer, facts);
            return;
        }
        state.clear_pending(&key);
    } else {
        state.set_pending(key, row);
    }
}

/// Emits again the pending rows one of the `learned` links may resolve.
pub(super) fn reemit_waiting(state: &mut State, learned: &[ParentKey], facts: &mut FactSet) {
    for parent in learned {
        for key in state.pending_for(parent) {
            reemit_pending(state, &key, facts);
        }
    }
}

/// Emits a pending row again if the state now resolves more of its links.
pub(super) fn reemit_pending(state: &mut State, key: &PendingKey, facts: &mut FactSet) {
    let Some(row) = state.pending.get(key).cloned() else {
        return;
    };
    let (charge, pi, invoice) = row.refs();
    let res = resolve(state, charge, pi, invoice, None);
    let before = crate::version::links_of(row.version());
    let [inv, sub, cus] = row.linked();
    let after = mask([
        &inv.clone().or(res.invoice.clone()),
        &sub.clone().or(res.subscription.clone()),
        &cus.clone().or(res.customer.clone()),
    ]);
    if after & !before != 0 || res.complete {
        state.resolving(|state| emit_resolving_links(state, key.clone(), row, facts));
    } else {
        // Nothing new to emit, but what it waits on may have changed (its charge's payment
        // intent became known): index it under the right parents.
        state.refresh_parents(key);
    }
}

fn charge_rank(ch: &Charge) -> u8 {
    match ch.status.as_str() {
        "pending" => 0,
        "failed" => 1,
        _ if ch.amount_refunded > 0 => 3,
        _ => 2,
    }
}

pub(super) fn charge(ctx: &mut EventCtx<'_>, state: &mut State, ch: &Charge) {
    let mut learned = Vec::new();
    if state.link_charge(
        &ch.id,
        ChargeLink {
            payment_intent: ch.payment_intent.clone(),
            customer: ch.customer.clone(),
            invoice: ch.invoice.clone(),
        },
    ) {
        learned.push(ParentKey::Charge(ch.id.clone()));
    }
    if let (Some(pi), Some(invoice)) = (&ch.payment_intent, &ch.invoice) {
        if state.link_payment_intent(pi, invoice) {
            learned.push(ParentKey::PaymentIntent(pi.clone()));
        }
    }
    let row = PaymentRow {
        id: ch.id.clone(),
        kind: "charge".into(),
        account: ctx.account(),
        livemode: ctx.livemode(),
        invoice_id: ch.invoice.clone(),
        subscription_id: None,
        customer_id: ch.customer.clone(),
        payment_intent_id: ch.payment_intent.clone(),
        charge_id: Some(ch.id.clone()),
        amount: ch.amount,
        amount_captured: ch.amount_captured,
        amount_refunded: ch.amount_refunded,
        currency: ch.currency.clone(),
        status: ch.status.clone(),
        failure_code: ch.failure_code.clone(),
        balance_transaction_id: ch.balance_transaction.clone(),
        created_at: ts(ch.created),
        paid_at: (ch.status == "succeeded").then(|| ts(ch.created)),
        source_event_id: ctx.event_id(),
        // Refunds only add up: the snapshot with more refunded is the later one.
        version: ctx.version_grown(charge_rank(ch), grow(ch.amount_refunded, 17)),
    };
    ctx.watch("charge", &row.id, row.version, &row);
    emit_resolving_links(
        state,
        PendingKey::Payment(ch.id.clone()),
        PendingRow::Payment(row),
        ctx.facts,
    );
    for re in &ch.refunds {
        refund(ctx, state, re);
    }
    if let Some(bt) = &ch.balance_transaction_object {
        balance_transaction(ctx, bt);
    }
    reemit_waiting(state, &learned, ctx.facts);
}

pub(super) fn payment_intent(ctx: &mut EventCtx<'_>, state: &mut State, pi: &PaymentIntent) {
    let mut learned = Vec::new();
    if let Some(invoice) = &pi.invoice {
        if state.link_payment_intent(&pi.id, invoice) {
            learned.push(ParentKey::PaymentIntent(pi.id.clone()));
        }
    }
    if let Some(charge) = &pi.latest_charge {
        if state.link_charge(
            charge,
            ChargeLink {
                payment_intent: Some(pi.id.clone()),
                customer: pi.customer.clone(),
                invoice: pi.invoice.clone(),
            },
        ) {
            learned.push(ParentKey::Charge(charge.clone()));
        }
    }
    reemit_waiting(state, &learned, ctx.facts);
}

pub(super) fn invoice_payment(ctx: &mut EventCtx<'_>, state: &mut State, ip: &InvoicePayment) {
    let mut learned = Vec::new();
    if let Some(pi) = &ip.payment_intent {
        if state.link_payment_intent(pi, &ip.invoice) {
            learned.push(ParentKey::PaymentIntent(pi.clone()));
        }
    }
    if let Some(charge) = &ip.charge {
        if state.link_charge(
            charge,
            ChargeLink {
                payment_intent: ip.payment_intent.clone(),
                customer: None,
                invoice: Some(ip.invoice.clone()),
            },
        ) {
            learned.push(ParentKey::Charge(charge.clone()));
        }
    }
    let rank = match ip.status.as_str() {
        "open" => 0,
        "paid" => 1,
        _ => 2,
    };
    let row = PaymentRow {
        id: ip.id.clone(),
        kind: INVOICE_PAYMENT.into(),
        account: ctx.account(),
        livemode: ctx.livemode(),
        invoice_id: Some(ip.invoice.clone()),
        subscription_id: None,
        customer_id: None,
        payment_intent_id: ip.payment_intent.clone(),
        charge_id: ip.charge.clone(),
        amount: ip.amount_requested,
        amount_captured: ip.amount_paid.unwrap_or(0),
        amount_refunded: 0,
        currency: ip.currency.clone(),
        status: ip.status.clone(),
        failure_code: None,
        balance_transaction_id: None,
        created_at: ts(ip.created),
        paid_at: ts_opt(ip.paid_at),
        source_event_id: ctx.event_id(),
        version: ctx.version_grown(rank, grow(ip.amount_paid.unwrap_or(0), 17)),
    };
    ctx.watch("invoice_payment", &row.id, row.version, &row);
    emit_resolving_links(
        state,
        PendingKey::Payment(ip.id.clone()),
        PendingRow::Payment(row),
        ctx.facts,
    );
    reemit_waiting(state, &learned, ctx.facts);
}

pub(super) fn refund(ctx: &mut EventCtx<'_>, state: &mut State, re: &Refund) {
    let rank = match re.status.as_str() {
        "pending" | "requires_action" => 0,
        "succeeded" => 1,
        _ => 2,
    };
    let row = RefundRow {
        id: re.id.clone(),
        account: ctx.account(),
        livemode: ctx.livemode(),
        charge_id: re.charge.clone(),
        payment_intent_id: re.payment_intent.clone(),
        invoice_id: None,
        subscription_id: None,
        customer_id: re.customer.clone(),
        amount: re.amount,
        currency: re.currency.clone(),
        status: re.status.clone(),
        reason: re.reason.clone(),
        failure_reason: re.failure_reason.clone(),
        balance_transaction_id: re.balance_transaction.clone(),
        failure_balance_transaction_id: re.failure_balance_transaction.clone(),
        created_at: ts(re.created),
        source_event_id: ctx.event_id(),
        version: ctx.version(rank, 0),
    };
    emit_resolving_links(
        state,
        PendingKey::Refund(re.id.clone()),
        PendingRow::Refund(row),
        ctx.facts,
    );
}

pub(super) fn dispute(ctx: &mut EventCtx<'_>, state: &mut State, dp: &Dispute) {
    let closed = matches!(
        dp.status.as_str(),
        "won" | "lost" | "warning_closed" | "prevented"
    );
    let rank = match dp.status.as_str() {
        "warning_needs_response" | "needs_response" => 0,
        "warning_under_review" | "under_review" => 1,
        _ if closed => 2,
        _ => 0,
    };
    let mut bt_ids: Vec<&str> = dp
        .balance_transactions
        .iter()
        .map(|bt| bt.id.as_str())
        .collect();
    bt_ids.sort_unstable();
    let row = DisputeRow {
        id: dp.id.clone(),
        account: ctx.account(),
        livemode: ctx.livemode(),
        charge_id: dp.charge.clone(),
        payment_intent_id: dp.payment_intent.clone(),
        invoice_id: None,
        subscription_id: None,
        customer_id: None,
        amount: dp.amount,
        currency: dp.currency.clone(),
        reason: dp.reason.clone(),
        status: dp.status.clone(),
        outcome: if closed {
            dp.status.clone()
        } else {
            String::new()
        },
        balance_transaction_ids: bt_ids.join(","),
        created_at: ts(dp.created),
        closed_at: closed.then(|| ts(ctx.created())),
        source_event_id: ctx.event_id(),
        // Withdrawal, then reinstatement: the list of its transactions only grows.
        version: ctx.version_grown(rank, bt_ids.len().min(7) as u32),
    };
    ctx.watch("dispute", &row.id, row.version, &row);
    emit_resolving_links(
        state,
        PendingKey::Dispute(dp.id.clone()),
        PendingRow::Dispute(row),
        ctx.facts,
    );
    for bt in &dp.balance_transactions {
        balance_transaction(ctx, bt);
    }
}

pub(super) fn balance_transaction(ctx: &mut EventCtx<'_>, bt: &BalanceTransaction) {
    ctx.facts.balance_transactions.push(balance_transaction_row(
        bt,
        ctx.account(),
        ctx.livemode(),
        ctx.event_id(),
    ));
}

/// A balance transaction row; also used for the ones fetched from Stripe's API.
pub fn balance_transaction_row(
    bt: &BalanceTransaction,
    account: Option<String>,
    livemode: u8,
    source_event_id: String,
) -> BalanceTransactionRow {
    let rank = u8::from(bt.status.as_deref() == Some("available"));
    BalanceTransactionRow {
        id: bt.id.clone(),
        account,
        livemode,
        source_id: bt.source.clone(),
        kind: bt.kind.clone(),
        reporting_category: bt.reporting_category.clone(),
        amount: bt.amount,
        fee: bt.fee,
        net: bt.net,
        currency: bt.currency.clone(),
        exchange_rate: bt.exchange_rate.clone(),
        status: bt.status.clone(),
        created_at: ts(bt.created),
        available_on: ts_opt(bt.available_on),
        // Immutable except pending → available; the event hash breaks ties between events
        // that carry the same transaction.
        version: crate::version::version(bt.created, rank, 0, 0, &source_event_id),
        source_event_id,
    }
}
