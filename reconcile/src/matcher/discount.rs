//! Discounts and coupons: the rows MRR reads to take forever discounts off.
//!
//! A discount row comes from `customer.discount.*` events and from every subscription
//! snapshot that carries the discount as an object; `customer.discount.deleted` marks it
//! deleted (its rank wins a same-second tie with the snapshot that still showed it). The
//! coupon's terms are copied onto the discount when the payload carried the coupon, and the
//! coupon gets a row of its own; a coupon known only by id gets its terms from `coupon.*`
//! events.

use schemas::facts::{CouponRow, DiscountRow};
use schemas::stripe::{Coupon, Discount};

use super::{ts, ts_opt, EventCtx};

/// A discount from a `customer.discount.*` event.
pub(super) fn discount_event(ctx: &mut EventCtx<'_>, d: &Discount) {
    let deleted = ctx.ev.meta.event_type == "customer.discount.deleted";
    discount(ctx, d, deleted);
}

/// A coupon from a `coupon.*` event.
pub(super) fn coupon_event(ctx: &mut EventCtx<'_>, c: &Coupon) {
    let deleted = c.deleted || ctx.ev.meta.event_type == "coupon.deleted";
    coupon(ctx, c, deleted);
}

/// Emits a discount (and its coupon, when the payload carried it).
pub(super) fn discount(ctx: &mut EventCtx<'_>, d: &Discount, deleted: bool) {
    let terms = d.coupon.as_ref();
    let row = DiscountRow {
        id: d.id.clone(),
        account: ctx.account(),
        livemode: ctx.livemode(),
        coupon_id: d.coupon_id.clone(),
        percent_off: terms.and_then(|c| c.percent_off.clone()),
        amount_off: terms.and_then(|c| c.amount_off),
        amount_off_currency: terms.and_then(|c| c.currency.clone()),
        duration: terms.and_then(|c| c.duration.clone()),
        duration_in_months: terms.and_then(|c| c.duration_in_months),
        applies_to_products: terms.map_or_else(String::new, |c| c.applies_to_products.join(",")),
        customer_id: d.customer.clone(),
        subscription_id: d.subscription.clone(),
        subscription_item_id: d.subscription_item.clone(),
        invoice_id: d.invoice.clone(),
        start_at: ts_opt(d.start),
        end_at: ts_opt(d.end),
        deleted_at: deleted.then(|| ts(ctx.created())),
        source_event_id: ctx.event_id(),
        version: ctx.version(u8::from(deleted), 0),
    };
    ctx.facts.discounts.push(row);
    if let Some(c) = terms {
        coupon(ctx, c, false);
    }
}

fn coupon(ctx: &mut EventCtx<'_>, c: &Coupon, deleted: bool) {
    let row = CouponRow {
        id: c.id.clone(),
        account: ctx.account(),
        livemode: ctx.livemode(),
        percent_off: c.percent_off.clone(),
        amount_off: c.amount_off,
        currency: c.currency.clone(),
        duration: c.duration.clone(),
        duration_in_months: c.duration_in_months,
        applies_to_products: c.applies_to_products.join(","),
        deleted_at: deleted.then(|| ts(ctx.created())),
        source_event_id: ctx.event_id(),
        version: ctx.version(u8::from(deleted), 0),
    };
    ctx.facts.coupons.push(row);
}
