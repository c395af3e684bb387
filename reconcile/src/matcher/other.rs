//! Credit notes (with their lines), customers, and attribution (checkout sessions from
//! payment links, quotes).

use schemas::facts::{AttributionRow, CreditNoteLineRow, CreditNoteRow, CustomerRow};
use schemas::stripe::{CheckoutSession, CreditNote, Customer, Quote};

use super::payments::reemit_waiting;
use super::state::{InvoiceLink, ParentKey, State};
use super::{ts, ts_opt, EventCtx};

pub(super) fn credit_note(ctx: &mut EventCtx<'_>, cn: &CreditNote) {
    let version = ctx.version(u8::from(cn.status == "void"), 0);
    ctx.facts.credit_notes.push(CreditNoteRow {
        id: cn.id.clone(),
        account: ctx.account(),
        livemode: ctx.livemode(),
        invoice_id: cn.invoice.clone(),
        customer_id: cn.customer.clone(),
        number: cn.number.clone(),
        kind: cn.kind.clone(),
        status: cn.status.clone(),
        reason: cn.reason.clone(),
        currency: cn.currency.clone(),
        amount: cn.amount,
        subtotal: cn.subtotal,
        total: cn.total,
        total_excluding_tax: cn.total_excluding_tax,
        discount_amount: cn.discount_amount,
        pre_payment_amount: cn.pre_payment_amount,
        post_payment_amount: cn.post_payment_amount,
        out_of_band_amount: cn.out_of_band_amount,
        created_at: ts(cn.created),
        voided_at: ts_opt(cn.voided_at),
        source_event_id: ctx.event_id(),
        version,
    });
    for line in &cn.lines {
        ctx.facts.credit_note_lines.push(CreditNoteLineRow {
            id: format!("{}/{}", cn.id, line.id),
            credit_note_id: cn.id.clone(),
            line_id: line.id.clone(),
            invoice_id: cn.invoice.clone(),
            invoice_line_id: line.invoice_line_item.clone(),
            account: ctx.account(),
            livemode: ctx.livemode(),
            currency: cn.currency.clone(),
            amount: line.amount,
            amount_excluding_tax: line.amount_excluding_tax,
            tax_amount: line.tax_amount,
            quantity: line.quantity,
            created_at: ts(cn.created),
            source_event_id: ctx.event_id(),
            version,
        });
    }
}

pub(super) fn customer(ctx: &mut EventCtx<'_>, c: &Customer) {
    let deleted = c.deleted || ctx.ev.meta.event_type == "customer.deleted";
    ctx.facts.customers.push(CustomerRow {
        id: c.id.clone(),
        account: ctx.account(),
        livemode: ctx.livemode(),
        country: c.country.clone(),
        currency: c.currency.clone(),
        balance: c.balance,
        created_at: ts_opt(c.created),
        deleted: u8::from(deleted),
        source_event_id: ctx.event_id(),
        version: ctx.version(u8::from(deleted), 0),
    });
}

pub(super) fn checkout_session(ctx: &mut EventCtx<'_>, state: &mut State, cs: &CheckoutSession) {
    let rank = match cs.status.as_deref() {
        Some("open") | None => 0,
        _ => 1,
    };
    ctx.facts.attributions.push(AttributionRow {
        id: cs.id.clone(),
        kind: "checkout_session".into(),
        account: ctx.account(),
        livemode: ctx.livemode(),
        customer_id: cs.customer.clone(),
        subscription_id: cs.subscription.clone(),
        invoice_id: cs.invoice.clone(),
        payment_intent_id: cs.payment_intent.clone(),
        payment_link_id: cs.payment_link.clone(),
        mode: cs.mode.clone(),
        status: cs.status.clone(),
        amount_total: cs.amount_total,
        currency: cs.currency.clone(),
        created_at: ts(cs.created),
        source_event_id: ctx.event_id(),
        version: ctx.version(rank, 0),
    });
    // A completed session names the invoice its payment paid.
    let mut learned = Vec::new();
    if let (Some(pi), Some(invoice)) = (&cs.payment_intent, &cs.invoice) {
        if state.link_payment_intent(pi, invoice) {
            learned.push(ParentKey::PaymentIntent(pi.clone()));
        }
    }
    if let (Some(invoice), Some(_)) = (&cs.invoice, &cs.subscription) {
        if state.link_invoice(
            invoice,
            InvoiceLink {
                customer: cs.customer.clone(),
                subscription: cs.subscription.clone(),
            },
        ) {
            learned.push(ParentKey::Invoice(invoice.clone()));
        }
    }
    reemit_waiting(state, &learned, ctx.facts);
}

pub(super) fn quote(ctx: &mut EventCtx<'_>, q: &Quote) {
    let rank = match q.status.as_deref() {
        Some("draft") | None => 0,
        Some("open") => 1,
        _ => 2,
    };
    ctx.facts.attributions.push(AttributionRow {
        id: q.id.clone(),
        kind: "quote".into(),
        account: ctx.account(),
        livemode: ctx.livemode(),
        customer_id: q.customer.clone(),
        subscription_id: q.subscription.clone(),
        invoice_id: q.invoice.clone(),
        payment_intent_id: None,
        payment_link_id: None,
        mode: None,
        status: q.status.clone(),
        amount_total: q.amount_total,
        currency: q.currency.clone(),
        created_at: ts(q.created.unwrap_or(ctx.created())),
        source_event_id: ctx.event_id(),
        version: ctx.version(rank, 0),
    });
}
