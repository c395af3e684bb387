//! Invoices: the latest state, one history row per version, and the lines of finalized
//! invoices (drafts book nothing). An invoice also links its subscription and customer,
//! and on acacia its charge and payment intent.

use schemas::facts::{InvoiceHistoryRow, InvoiceLineRow, InvoiceRow};
use schemas::stripe::{
    invoice_status_rank as rank, Invoice, InvoiceLine, InvoiceLinesPage, LineSource,
};

use super::payments::reemit_waiting;
use super::state::{ChargeLink, InvoiceLink, ParentKey, State};
use super::{ts, ts_opt, EventCtx};
use crate::version::grow;

pub(super) fn apply(ctx: &mut EventCtx<'_>, state: &mut State, inv: &Invoice) {
    let status = if ctx.ev.meta.event_type == "invoice.deleted" {
        "deleted".to_owned()
    } else {
        inv.status.clone().unwrap_or_default()
    };
    // Same second, same status: more paid, or more attempts, is the later snapshot.
    let progress = (grow(inv.amount_paid, 14) << 3) | inv.attempt_count.clamp(0, 7) as u32;
    let version = ctx.version_grown(rank(&status), progress);
    let event_id = ctx.event_id();

    let row = InvoiceRow {
        id: inv.id.clone(),
        account: ctx.account(),
        livemode: ctx.livemode(),
        customer_id: inv.customer.clone(),
        subscription_id: inv.subscription.clone(),
        number: inv.number.clone(),
        status: Some(status.clone()).filter(|s| !s.is_empty()),
        billing_reason: inv.billing_reason.clone(),
        collection_method: inv.collection_method.clone(),
        currency: inv.currency.clone(),
        subtotal: inv.subtotal,
        total_discount: inv.total_discount,
        total_tax: inv.total_tax,
        total: inv.total,
        total_excluding_tax: inv.total_excluding_tax,
        amount_due: inv.amount_due,
        amount_paid: inv.amount_paid,
        amount_remaining: inv.amount_remaining,
        amount_overpaid: inv.amount_overpaid,
        starting_balance: inv.starting_balance,
        ending_balance: inv.ending_balance,
        pre_payment_credit_notes_amount: inv.pre_payment_credit_notes_amount,
        post_payment_credit_notes_amount: inv.post_payment_credit_notes_amount,
        period_start: ts_opt(inv.period_start),
        period_end: ts_opt(inv.period_end),
        created_at: ts(inv.created),
        finalized_at: ts_opt(inv.finalized_at),
        due_date: ts_opt(inv.due_date),
        paid_at: ts_opt(inv.paid_at),
        voided_at: ts_opt(inv.voided_at),
        marked_uncollectible_at: ts_opt(inv.marked_uncollectible_at),
        paid_out_of_band: u8::from(inv.paid_out_of_band),
        quote_id: inv.quote.clone(),
        lines_complete: u8::from(!inv.lines_has_more),
        source_event_id: event_id.clone(),
        event_created_at: ts(ctx.created()),
        version,
    };
    ctx.watch("invoice", &inv.id, version, &row);
    ctx.facts.invoices.push(row);
    ctx.facts.invoice_history.push(InvoiceHistoryRow {
        id: format!("{}/{}", inv.id, event_id),
        invoice_id: inv.id.clone(),
        account: ctx.account(),
        livemode: ctx.livemode(),
        customer_id: inv.customer.clone(),
        status: Some(status.clone()).filter(|s| !s.is_empty()),
        currency: inv.currency.clone(),
        total: inv.total,
        amount_paid: inv.amount_paid,
        amount_remaining: inv.amount_remaining,
        due_date: ts_opt(inv.due_date),
        finalized_at: ts_opt(inv.finalized_at),
        valid_from: ts(ctx.created()),
        source_event_id: event_id.clone(),
        version: 1,
    });

    // Book nothing before finalization: a draft's lines can still change or be deleted.
    if !matches!(status.as_str(), "draft" | "deleted" | "") {
        for line in &inv.lines {
            let row = line_row(
                ctx,
                &inv.id,
                inv.customer.clone(),
                inv.subscription.clone(),
                ts_opt(inv.finalized_at),
                line,
                version,
            );
            ctx.facts.invoice_lines.push(row);
        }
    }

    let mut learned = Vec::new();
    if state.link_invoice(
        &inv.id,
        InvoiceLink {
            customer: inv.customer.clone(),
            subscription: inv.subscription.clone(),
        },
    ) {
        learned.push(ParentKey::Invoice(inv.id.clone()));
    }
    // Acacia invoices name their payment.
    if let Some(pi) = &inv.payment_intent {
        if state.link_payment_intent(pi, &inv.id) {
            learned.push(ParentKey::PaymentIntent(pi.clone()));
        }
    }
    if let Some(charge) = &inv.charge {
        if state.link_charge(
            charge,
            ChargeLink {
                payment_intent: inv.payment_intent.clone(),
                customer: inv.customer.clone(),
                invoice: Some(inv.id.clone()),
            },
        ) {
            learned.push(ParentKey::Charge(charge.clone()));
        }
    }
    reemit_waiting(state, &learned, ctx.facts);
}

/// A page of an invoice's lines fetched from the API (the webhook carried only the first):
/// rows like those of the invoice's own event.
pub(super) fn lines_page(ctx: &mut EventCtx<'_>, page: &InvoiceLinesPage) {
    let version = ctx.version(0, 0);
    let inv = &page.invoice;
    for line in &page.lines {
        let row = line_row(
            ctx,
            &inv.invoice,
            inv.customer.clone(),
            inv.subscription.clone(),
            ts_opt(inv.finalized_at),
            line,
            version,
        );
        ctx.facts.invoice_lines.push(row);
    }
}

fn line_row(
    ctx: &EventCtx<'_>,
    invoice: &str,
    customer: Option<String>,
    subscription: Option<String>,
    finalized_at: Option<u32>,
    line: &InvoiceLine,
    version: u64,
) -> InvoiceLineRow {
    InvoiceLineRow {
        id: format!("{invoice}/{}", line.id),
        line_id: line.id.clone(),
        invoice_id: invoice.to_owned(),
        account: ctx.account(),
        livemode: ctx.livemode(),
        customer_id: customer,
        subscription_id: line.subscription.clone().or(subscription),
        subscription_item_id: line.subscription_item.clone(),
        invoice_item_id: line.invoice_item.clone(),
        price_id: line.price_id.clone(),
        product_id: line.product_id.clone(),
        source_type: match line.source {
            LineSource::Subscription => "subscription",
            LineSource::InvoiceItem => "invoiceitem",
            LineSource::Other => "other",
        }
        .to_owned(),
        proration: u8::from(line.proration),
        quantity: line.quantity,
        unit_amount: line.unit_amount,
        currency: line.currency.clone(),
        amount: line.amount,
        discount_amount: line.discount_amount,
        pretax_credit_amount: line.pretax_credit_amount,
        inclusive_tax_amount: line.inclusive_tax_amount,
        exclusive_tax_amount: line.exclusive_tax_amount,
        recognizable_amount: line.recognizable_amount(),
        period_start: ts_opt(line.period_start),
        period_end: ts_opt(line.period_end),
        invoice_finalized_at: finalized_at,
        source_event_id: ctx.event_id(),
        version,
    }
}
