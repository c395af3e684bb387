//! Invoices and their lines.
//!
//! This is where acacia and basil differ most: the subscription, quote, tax and per-line
//! price, source and tax fields all moved in `2025-03-31.basil`, and the invoice's own links
//! to its payment (`charge`, `payment_intent`, `paid_out_of_band`) were removed. Each field is
//! read at the event's generation's path first (see [`pick`]).

use super::tree::Value;

use super::fields::{bool_at, get, i64_at, id_at, list_at, pick, str_at, str_ref, Fields};
use super::DecodeError;
use super::{Decoded, Scope};
use crate::stripe::fetched::InvoiceContext;
use crate::stripe::{Generation, Invoice, InvoiceLine, InvoiceLinesPage, LineSource, StripeObject};

/// A fetched page of an invoice's lines: the invoice from `revline`, the lines from the list.
pub(super) fn lines_page(
    root: &Value<'_>,
    list: &Value<'_>,
    scope: &Scope<'_>,
) -> Decoded<StripeObject> {
    let bad = |reason: &str| DecodeError::BadObject {
        object: "list".into(),
        reason: reason.into(),
    };
    let invoice =
        str_at(root, &["revline", "invoice"]).ok_or_else(|| bad("missing revline.invoice"))?;
    let currency = str_at(root, &["revline", "currency"])
        .map(|c| c.to_ascii_lowercase())
        .ok_or_else(|| bad("missing revline.currency"))?;
    let f = Fields::new(list, "list");
    let lines = list_at(list, &["data"])
        .iter()
        .enumerate()
        .map(|(i, line)| {
            invoice_line(
                &f.child(line, format!("data[{i}]")),
                scope.generation,
                &currency,
            )
        })
        .collect::<Decoded<Vec<_>>>()?;
    Ok(StripeObject::InvoiceLines(InvoiceLinesPage {
        invoice: InvoiceContext {
            invoice,
            customer: str_at(root, &["revline", "customer"]),
            subscription: str_at(root, &["revline", "subscription"]),
            currency,
            finalized_at: i64_at(root, &["revline", "finalized_at"]),
        },
        lines,
    }))
}

pub(super) fn invoice(o: &Value<'_>, scope: &Scope<'_>) -> Decoded<StripeObject> {
    if get(o, &["id"]).is_none() {
        // `invoice.upcoming` previews carry no id: nothing to book, the matcher ignores it.
        return Ok(StripeObject::Other {
            object: "invoice".into(),
            id: None,
        });
    }
    let f = Fields::new(o, "invoice");
    let g = scope.generation;
    let acacia = scope.is_acacia();
    let currency = f.currency()?;

    let old_tax = match f.money(&["tax"])? {
        Some(tax) => Some(tax),
        None => f.sum(&["total_tax_amounts"], |_| true)?,
    };
    let total_tax = pick(g, old_tax, f.sum(&["total_taxes"], |_| true)?).unwrap_or(0);
    let total = f.money_or_zero(&["total"])?;
    let total_excluding_tax = match f.money(&["total_excluding_tax"])? {
        Some(excluding) => excluding,
        None => total.saturating_sub(total_tax),
    };

    // New paths apply when `parent.type` names them (or is absent).
    let parent_type = str_ref(o, &["parent", "type"]);
    let parent_is = |kind: &str| parent_type.is_none_or(|t| t == kind);
    let new_subscription = if parent_is("subscription_details") {
        id_at(o, &["parent", "subscription_details", "subscription"])
    } else {
        None
    };
    let new_quote = if parent_is("quote_details") {
        id_at(o, &["parent", "quote_details", "quote"])
    } else {
        None
    };

    let lines = list_at(o, &["lines"])
        .iter()
        .enumerate()
        .map(|(i, line)| invoice_line(&f.child(line, format!("lines.data[{i}]")), g, &currency))
        .collect::<Decoded<Vec<_>>>()?;

    Ok(StripeObject::Invoice(Invoice {
        id: f.id()?,
        number: str_at(o, &["number"]),
        customer: id_at(o, &["customer"]),
        subscription: pick(g, id_at(o, &["subscription"]), new_subscription),
        status: str_at(o, &["status"]),
        billing_reason: str_at(o, &["billing_reason"]),
        collection_method: str_at(o, &["collection_method"]),
        currency,
        subtotal: f.money_or_zero(&["subtotal"])?,
        total,
        total_excluding_tax,
        total_discount: f.sum(&["total_discount_amounts"], |_| true)?.unwrap_or(0),
        total_tax,
        amount_due: f.unsigned_or_zero(&["amount_due"])?,
        amount_paid: f.unsigned_or_zero(&["amount_paid"])?,
        attempt_count: i64_at(o, &["attempt_count"]).unwrap_or(0),
        amount_remaining: f.unsigned_or_zero(&["amount_remaining"])?,
        amount_overpaid: f.unsigned_or_zero(&["amount_overpaid"])?,
        starting_balance: f.money_or_zero(&["starting_balance"])?,
        ending_balance: f.money(&["ending_balance"])?,
        pre_payment_credit_notes_amount: f.money_or_zero(&["pre_payment_credit_notes_amount"])?,
        post_payment_credit_notes_amount: f.money_or_zero(&["post_payment_credit_notes_amount"])?,
        period_start: i64_at(o, &["period_start"]),
        period_end: i64_at(o, &["period_end"]),
        created: f.created(scope),
        due_date: i64_at(o, &["due_date"]),
        finalized_at: i64_at(o, &["status_transitions", "finalized_at"]),
        paid_at: i64_at(o, &["status_transitions", "paid_at"]),
        voided_at: i64_at(o, &["status_transitions", "voided_at"]),
        marked_uncollectible_at: i64_at(o, &["status_transitions", "marked_uncollectible_at"]),
        charge: if acacia { id_at(o, &["charge"]) } else { None },
        payment_intent: if acacia {
            id_at(o, &["payment_intent"])
        } else {
            None
        },
        paid_out_of_band: acacia && bool_at(o, &["paid_out_of_band"]) == Some(true),
        quote: if acacia {
            id_at(o, &["quote"]).or(new_quote)
        } else {
            new_quote
        },
        lines,
        lines_has_more: bool_at(o, &["lines", "has_more"]) == Some(true),
    }))
}

fn invoice_line(f: &Fields<'_>, g: Generation, invoice_currency: &str) -> Decoded<InvoiceLine> {
    let line = f.v;
    let acacia = g == Generation::Acacia;
    let details = line_details(line);
    let from_details = |key: &str| details.and_then(|d| id_at(d, &[key]));
    let price_details = if str_ref(line, &["pricing", "type"]).is_none_or(|t| t == "price_details")
    {
        get(line, &["pricing", "price_details"])
    } else {
        None
    };

    let old_source = str_ref(line, &["type"]).map(|t| match t {
        "subscription" => LineSource::Subscription,
        "invoiceitem" => LineSource::InvoiceItem,
        _ => LineSource::Other,
    });
    let new_source = str_ref(line, &["parent", "type"]).map(|t| match t {
        "subscription_item_details" => LineSource::Subscription,
        "invoice_item_details" => LineSource::InvoiceItem,
        _ => LineSource::Other,
    });

    let old_tax = |inclusive: bool| {
        f.sum(&["tax_amounts"], |t| {
            (bool_at(t, &["inclusive"]) == Some(true)) == inclusive
        })
    };
    let new_tax = |behavior: &str| {
        f.sum(&["taxes"], |t| {
            str_ref(t, &["tax_behavior"]) == Some(behavior)
        })
    };

    Ok(InvoiceLine {
        id: f.id()?,
        currency: str_at(line, &["currency"])
            .map(|c| c.to_ascii_lowercase())
            .unwrap_or_else(|| invoice_currency.to_string()),
        amount: f.money_or_zero(&["amount"])?,
        amount_excluding_tax: if acacia {
            f.money(&["amount_excluding_tax"])?
        } else {
            None
        },
        quantity: i64_at(line, &["quantity"]),
        period_start: i64_at(line, &["period", "start"]),
        period_end: i64_at(line, &["period", "end"]),
        proration: pick(
            g,
            bool_at(line, &["proration"]),
            details.and_then(|d| bool_at(d, &["proration"])),
        )
        .unwrap_or(false),
        price_id: pick(
            g,
            id_at(line, &["price"]).or_else(|| id_at(line, &["plan"])),
            price_details.and_then(|p| id_at(p, &["price"])),
        ),
        product_id: pick(
            g,
            id_at(line, &["price", "product"]).or_else(|| id_at(line, &["plan", "product"])),
            price_details
                .and_then(|p| id_at(p, &["product"]).or_else(|| id_at(p, &["price", "product"]))),
        ),
        unit_amount: pick(
            g,
            i64_at(line, &["price", "unit_amount"]).or_else(|| i64_at(line, &["plan", "amount"])),
            str_ref(line, &["pricing", "unit_amount_decimal"]).and_then(whole_number),
        ),
        source: pick(g, old_source, new_source).unwrap_or(LineSource::Other),
        subscription: pick(
            g,
            id_at(line, &["subscription"]),
            from_details("subscription"),
        ),
        subscription_item: pick(
            g,
            id_at(line, &["subscription_item"]),
            from_details("subscription_item"),
        ),
        invoice_item: pick(
            g,
            id_at(line, &["invoice_item"]),
            from_details("invoice_item"),
        ),
        discount_amount: f.sum(&["discount_amounts"], |_| true)?.unwrap_or(0),
        pretax_credit_amount: f
            .sum(&["pretax_credit_amounts"], |c| {
                str_ref(c, &["type"]) == Some("credit_balance_transaction")
            })?
            .unwrap_or(0),
        inclusive_tax_amount: pick(g, old_tax(true)?, new_tax("inclusive")?).unwrap_or(0),
        exclusive_tax_amount: pick(g, old_tax(false)?, new_tax("exclusive")?).unwrap_or(0),
    })
}

/// New generation: the line's `parent.<parent.type>` object (`subscription_item_details` or
/// `invoice_item_details`), or whichever of the two is present when `type` is missing.
fn line_details<'v>(line: &'v Value<'v>) -> Option<&'v Value<'v>> {
    let parent = get(line, &["parent"])?;
    let details = match str_ref(parent, &["type"]) {
        Some(kind) => get(parent, &[kind]),
        None => get(parent, &["subscription_item_details"])
            .or_else(|| get(parent, &["invoice_item_details"])),
    };
    details.filter(|d| d.is_object())
}

/// `"2000"` (or `"2000.000"`) → 2000; a fractional or malformed decimal string → `None`.
fn whole_number(text: &str) -> Option<i64> {
    let int = match text.split_once('.') {
        Some((int, fraction)) if !fraction.is_empty() && fraction.bytes().all(|b| b == b'0') => int,
        Some(_) => return None,
        None => text,
    };
    let digits = int.strip_prefix('-').unwrap_or(int);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    int.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{decode_object, fixture, ACACIA, BASIL};
    use super::*;
    use crate::stripe::decode_event;

    #[test]
    fn both_invoice_paid_fixtures_decode_to_the_same_business_facts() {
        let acacia = decode_event(&fixture("invoice.paid__2025-02-24.acacia.json")).unwrap();
        let basil = decode_event(&fixture("invoice.paid__2025-03-31.basil.json")).unwrap();
        assert_eq!(acacia.meta.generation, Generation::Acacia);
        assert_eq!(basil.meta.generation, Generation::Basil);
        assert_eq!(basil.meta.id, "evt_1ExampleInvoicePaidBasil");
        assert_eq!(basil.meta.event_type, "invoice.paid");
        assert_eq!(basil.meta.created, 1769907602);
        assert_eq!(basil.meta.api_version, "2025-03-31.basil");
        assert!(!basil.meta.livemode);
        assert_eq!(basil.meta.account, None);

        let old = expect!(acacia.object, Invoice);
        let new = expect!(basil.object, Invoice);
        for (invoice, generation) in [(&old, "Acacia"), (&new, "Basil")] {
            let sub = format!("sub_1Example{generation}0001");
            assert_eq!(invoice.id, format!("in_1Example{generation}0001"));
            assert_eq!(invoice.customer.as_deref(), Some("cus_ExampleCustomer1"));
            assert_eq!(invoice.subscription.as_deref(), Some(sub.as_str()));
            assert_eq!(invoice.status.as_deref(), Some("paid"));
            assert_eq!(
                invoice.billing_reason.as_deref(),
                Some("subscription_cycle")
            );
            assert_eq!(
                invoice.collection_method.as_deref(),
                Some("charge_automatically")
            );
            assert_eq!(invoice.currency, "usd");
            assert_eq!(
                (
                    invoice.subtotal,
                    invoice.total,
                    invoice.total_excluding_tax,
                    invoice.total_tax,
                    invoice.total_discount
                ),
                (2000, 2000, 2000, 0, 0)
            );
            assert_eq!(
                (
                    invoice.amount_due,
                    invoice.amount_paid,
                    invoice.amount_remaining
                ),
                (2000, 2000, 0)
            );
            assert_eq!(invoice.amount_overpaid, 0);
            assert_eq!(
                (invoice.period_start, invoice.period_end),
                (Some(1767225600), Some(1769904000))
            );
            assert_eq!(invoice.created, 1769904000);
            assert_eq!(invoice.finalized_at, Some(1769907600));
            assert_eq!(invoice.paid_at, Some(1769907602));
            assert_eq!(
                (invoice.voided_at, invoice.marked_uncollectible_at),
                (None, None)
            );
            assert!(!invoice.paid_out_of_band);
            assert_eq!(invoice.quote, None);
            assert!(!invoice.lines_has_more);

            assert_eq!(invoice.lines.len(), 1);
            let line = &invoice.lines[0];
            assert_eq!(line.id, format!("il_1Example{generation}0001"));
            assert_eq!(line.source, LineSource::Subscription);
            assert_eq!(line.currency, "usd");
            assert_eq!(
                (line.period_start, line.period_end),
                (Some(1769904000), Some(1772323200))
            );
            assert_eq!(line.price_id.as_deref(), Some("price_1ExamplePro"));
            assert_eq!(line.product_id.as_deref(), Some("prod_ExamplePro"));
            assert_eq!(line.unit_amount, Some(2000));
            assert_eq!(line.quantity, Some(1));
            assert!(!line.proration);
            assert_eq!(line.subscription.as_deref(), Some(sub.as_str()));
            assert_eq!(
                line.subscription_item,
                Some(format!("si_Example{generation}0001"))
            );
            assert_eq!(line.invoice_item, None);
            assert_eq!(line.amount, 2000);
            assert_eq!(line.recognizable_amount(), 2000);
        }
        assert_eq!(old.number.as_deref(), Some("EXMPL-0002"));
        assert_eq!(new.number.as_deref(), Some("EXMPL-0001"));
        // Only the old shape links the invoice to its payment.
        assert_eq!(old.charge.as_deref(), Some("ch_1ExampleAcacia0001"));
        assert_eq!(old.payment_intent.as_deref(), Some("pi_1ExampleAcacia0001"));
        assert_eq!((new.charge, new.payment_intent), (None, None));
        assert_eq!(old.lines[0].amount_excluding_tax, Some(2000));
        assert_eq!(new.lines[0].amount_excluding_tax, None);
        assert_eq!(new.ending_balance, Some(0));
        assert_eq!(old.ending_balance, None);
    }

    #[test]
    fn a_basil_invoice_ignores_removed_acacia_fields_and_reads_its_quote_from_the_parent() {
        let invoice = expect!(
            decode_object(
                BASIL,
                "invoice.finalized",
                r#"{"id":"in_q","object":"invoice","currency":"EUR","status":"open","total":1190,
                    "charge":"ch_stale","payment_intent":"pi_stale","paid_out_of_band":true,"quote":"qt_stale",
                    "parent":{"type":"quote_details","quote_details":{"quote":"qt_new"},"subscription_details":null},
                    "total_taxes":[{"amount":190,"tax_behavior":"exclusive"}],
                    "lines":{"object":"list","data":[],"has_more":true}}"#
            ),
            Invoice
        );
        assert_eq!(invoice.currency, "eur");
        assert_eq!(invoice.quote.as_deref(), Some("qt_new"));
        assert_eq!(invoice.subscription, None);
        assert_eq!(
            (
                invoice.charge,
                invoice.payment_intent,
                invoice.paid_out_of_band
            ),
            (None, None, false)
        );
        assert_eq!(invoice.total_tax, 190);
        assert_eq!(
            invoice.total_excluding_tax, 1000,
            "total − total_tax when total_excluding_tax is absent"
        );
        assert_eq!(
            invoice.created, 1769907602,
            "falls back to the event's created"
        );
        assert!(invoice.lines_has_more);
        assert!(invoice.lines.is_empty());
    }

    #[test]
    fn an_acacia_invoice_reads_tax_quote_and_out_of_band_payment_from_the_old_fields() {
        let invoice = expect!(
            decode_object(
                ACACIA,
                "invoice.paid",
                r#"{"id":"in_oob","object":"invoice","currency":"usd","status":"paid","total":1100,"subtotal":1000,
                    "tax":100,"total_tax_amounts":[{"amount":999,"inclusive":false}],
                    "total_discount_amounts":[{"amount":50,"discount":"di_1"},{"amount":25,"discount":"di_2"}],
                    "paid":true,"paid_out_of_band":true,"quote":{"id":"qt_old","object":"quote"},
                    "starting_balance":-300,"ending_balance":null,"due_date":1770000000}"#
            ),
            Invoice
        );
        assert_eq!(
            invoice.total_tax, 100,
            "`tax` wins over Σ total_tax_amounts"
        );
        assert_eq!(invoice.total_excluding_tax, 1000);
        assert_eq!(invoice.total_discount, 75);
        assert!(invoice.paid_out_of_band);
        assert_eq!(invoice.quote.as_deref(), Some("qt_old"));
        assert_eq!(invoice.starting_balance, -300);
        assert_eq!(invoice.ending_balance, None);
        assert_eq!(invoice.due_date, Some(1770000000));

        let summed = expect!(
            decode_object(
                ACACIA,
                "invoice.finalized",
                r#"{"id":"in_sum","object":"invoice","currency":"usd","total":1210,"tax":null,
                    "total_tax_amounts":[{"amount":100,"inclusive":false},{"amount":110,"inclusive":true}]}"#
            ),
            Invoice
        );
        assert_eq!(summed.total_tax, 210);
    }

    // ------------------------------------------------------------------------------------
    // Invoice lines

    #[test]
    fn a_basil_line_with_inclusive_tax_discount_and_pretax_credit_nets_them_all_out() {
        let invoice = expect!(
            decode_object(
                BASIL,
                "invoice.finalized",
                r#"{"id":"in_tax","object":"invoice","currency":"eur","total":10000,
                    "lines":{"object":"list","has_more":false,"data":[{
                      "id":"il_tax","object":"line_item","amount":12000,"currency":"eur","quantity":2,
                      "period":{"start":1769904000,"end":1772323200},
                      "discount_amounts":[{"amount":1200,"discount":"di_1"}],
                      "pretax_credit_amounts":[
                        {"amount":1200,"type":"discount","discount":"di_1"},
                        {"amount":800,"type":"credit_balance_transaction","credit_balance_transaction":"cbtxn_1"}],
                      "taxes":[
                        {"amount":1667,"tax_behavior":"inclusive","type":"tax_rate_details","taxable_amount":8333},
                        {"amount":50,"tax_behavior":"exclusive","type":"tax_rate_details","taxable_amount":1000}],
                      "parent":{"type":"subscription_item_details","invoice_item_details":null,
                        "subscription_item_details":{"proration":false,"subscription":"sub_1","subscription_item":"si_1",
                          "invoice_item":null}},
                      "pricing":{"type":"price_details","unit_amount_decimal":"6000.000",
                        "price_details":{"price":"price_1","product":"prod_1"}}}]}}"#
            ),
            Invoice
        );
        let line = &invoice.lines[0];
        assert_eq!(line.discount_amount, 1200);
        assert_eq!(
            line.pretax_credit_amount, 800,
            "only credit_balance_transaction credits count"
        );
        assert_eq!(line.inclusive_tax_amount, 1667);
        assert_eq!(line.exclusive_tax_amount, 50);
        assert_eq!(line.amount_excluding_tax, None);
        assert_eq!(line.recognizable_amount(), 12000 - 1200 - 800 - 1667);
        assert_eq!(line.unit_amount, Some(6000));
        assert_eq!(line.quantity, Some(2));
    }

    #[test]
    fn an_acacia_line_uses_amount_excluding_tax_and_inclusive_tax_amounts() {
        let invoice = expect!(
            decode_object(
                ACACIA,
                "invoice.finalized",
                r#"{"id":"in_old_tax","object":"invoice","currency":"gbp","total":2400,
                    "lines":{"object":"list","data":[{
                      "id":"il_old_tax","object":"line_item","amount":2400,"amount_excluding_tax":1800,"currency":"gbp",
                      "quantity":1,"type":"subscription","proration":false,"subscription":"sub_old",
                      "subscription_item":"si_old","invoice_item":null,
                      "discount_amounts":[{"amount":200,"discount":"di_1"}],
                      "tax_amounts":[{"amount":400,"inclusive":true,"tax_rate":"txr_1"},
                                     {"amount":30,"inclusive":false,"tax_rate":"txr_2"}],
                      "price":{"id":"price_old","object":"price","product":"prod_old","unit_amount":2400},
                      "plan":{"id":"price_old","object":"plan","product":"prod_old","amount":2400}}]}}"#
            ),
            Invoice
        );
        let line = &invoice.lines[0];
        assert_eq!(line.amount_excluding_tax, Some(1800));
        assert_eq!(line.inclusive_tax_amount, 400);
        assert_eq!(line.exclusive_tax_amount, 30);
        assert_eq!(line.discount_amount, 200);
        assert_eq!(line.recognizable_amount(), 1800 - 200);
        assert_eq!(line.subscription.as_deref(), Some("sub_old"));
        assert_eq!(line.subscription_item.as_deref(), Some("si_old"));
        assert_eq!(line.price_id.as_deref(), Some("price_old"));
        assert_eq!(line.unit_amount, Some(2400));
    }

    #[test]
    fn a_proration_line_is_negative_and_flagged_in_both_generations() {
        let basil = expect!(
            decode_object(
                BASIL,
                "invoice.finalized",
                r#"{"id":"in_pro","object":"invoice","currency":"usd","billing_reason":"subscription_update",
                    "total":-1000,"amount_due":0,"ending_balance":-1000,
                    "lines":{"data":[{"id":"il_pro","amount":-1000,"currency":"usd",
                      "period":{"start":1770508800,"end":1772323200},
                      "parent":{"type":"subscription_item_details","subscription_item_details":{
                        "proration":true,"subscription":"sub_1","subscription_item":"si_1","invoice_item":"ii_pro",
                        "proration_details":{"credited_items":{"invoice":"in_prev","invoice_line_items":["il_prev"]}}}},
                      "pricing":{"type":"price_details","unit_amount_decimal":"-1000",
                        "price_details":{"price":"price_1","product":"prod_1"}},"taxes":[]}]}}"#
            ),
            Invoice
        );
        let acacia = expect!(
            decode_object(
                ACACIA,
                "invoice.finalized",
                r#"{"id":"in_pro_old","object":"invoice","currency":"usd","billing_reason":"subscription_update",
                    "total":-1000,"ending_balance":-1000,
                    "lines":{"data":[{"id":"il_pro_old","amount":-1000,"amount_excluding_tax":-1000,"currency":"usd",
                      "period":{"start":1770508800,"end":1772323200},"type":"invoiceitem","proration":true,
                      "invoice_item":"ii_pro","subscription":"sub_1","subscription_item":"si_1",
                      "price":{"id":"price_1","product":"prod_1","unit_amount":2000},"tax_amounts":[]}]}}"#
            ),
            Invoice
        );
        for invoice in [&basil, &acacia] {
            let line = &invoice.lines[0];
            assert!(line.proration);
            assert_eq!(line.amount, -1000);
            assert_eq!(line.recognizable_amount(), -1000);
            assert_eq!(line.invoice_item.as_deref(), Some("ii_pro"));
            assert_eq!(line.subscription.as_deref(), Some("sub_1"));
            assert_eq!(line.subscription_item.as_deref(), Some("si_1"));
            assert_eq!(invoice.ending_balance, Some(-1000));
        }
        assert_eq!(basil.lines[0].source, LineSource::Subscription);
        assert_eq!(acacia.lines[0].source, LineSource::InvoiceItem);
        assert_eq!(basil.lines[0].unit_amount, Some(-1000));
    }

    #[test]
    fn an_invoice_item_line_is_read_from_the_invoice_item_details() {
        let basil = expect!(
            decode_object(
                BASIL,
                "invoice.finalized",
                r#"{"id":"in_ii","object":"invoice","currency":"usd","total":4999,
                    "lines":{"data":[{"id":"il_ii","amount":4999,"currency":"usd","quantity":1,
                      "parent":{"type":"invoice_item_details","subscription_item_details":null,
                        "invoice_item_details":{"invoice_item":"ii_setup","proration":false,"subscription":null}},
                      "pricing":{"type":"price_details","unit_amount_decimal":"4999.5",
                        "price_details":{"price":"price_setup","product":"prod_setup"}}}]}}"#
            ),
            Invoice
        );
        let line = &basil.lines[0];
        assert_eq!(line.source, LineSource::InvoiceItem);
        assert_eq!(line.invoice_item.as_deref(), Some("ii_setup"));
        assert_eq!(
            (
                line.subscription.as_deref(),
                line.subscription_item.as_deref()
            ),
            (None, None)
        );
        assert!(!line.proration);
        assert_eq!(line.price_id.as_deref(), Some("price_setup"));
        assert_eq!(
            line.unit_amount, None,
            "a fractional unit_amount_decimal is not an integer amount"
        );

        let acacia = expect!(
            decode_object(
                ACACIA,
                "invoice.finalized",
                r#"{"id":"in_ii_old","object":"invoice","currency":"usd",
                    "lines":{"data":[{"id":"il_ii_old","amount":4999,"type":"invoiceitem","invoice_item":"ii_setup",
                      "proration":false,"price":{"id":"price_setup","product":"prod_setup","unit_amount":4999}}]}}"#
            ),
            Invoice
        );
        let line = &acacia.lines[0];
        assert_eq!(line.source, LineSource::InvoiceItem);
        assert_eq!(line.invoice_item.as_deref(), Some("ii_setup"));
        assert_eq!(
            line.currency, "usd",
            "a line without currency takes the invoice's"
        );
        assert_eq!(line.recognizable_amount(), 4999);
    }

    #[test]
    fn whole_number_accepts_only_integral_decimal_strings() {
        assert_eq!(whole_number("2000"), Some(2000));
        assert_eq!(whole_number("-150"), Some(-150));
        assert_eq!(whole_number("2000.000000000000"), Some(2000));
        assert_eq!(whole_number("2000.5"), None);
        assert_eq!(whole_number("2000."), None);
        assert_eq!(whole_number(""), None);
        assert_eq!(whole_number("-"), None);
        assert_eq!(whole_number("1e3"), None);
        assert_eq!(whole_number("+5"), None);
        assert_eq!(whole_number("99999999999999999999"), None);
    }

    #[test]
    fn expanded_ids_give_their_ids() {
        let acacia = expect!(
            decode_object(
                ACACIA,
                "invoice.paid",
                r#"{"id":"in_exp","object":"invoice","currency":"usd",
                    "customer":{"id":"cus_exp","object":"customer","address":{"country":"FR"}},
                    "subscription":{"id":"sub_exp","object":"subscription"},
                    "charge":{"id":"ch_exp","object":"charge"},"payment_intent":{"id":"pi_exp"},
                    "lines":{"data":[{"id":"il_exp","amount":100,"type":"subscription",
                      "subscription":{"id":"sub_exp"},
                      "price":{"id":"price_exp","object":"price","unit_amount":100,
                        "product":{"id":"prod_exp","object":"product","name":"Pro"}}}]}}"#
            ),
            Invoice
        );
        assert_eq!(acacia.customer.as_deref(), Some("cus_exp"));
        assert_eq!(acacia.subscription.as_deref(), Some("sub_exp"));
        assert_eq!(acacia.charge.as_deref(), Some("ch_exp"));
        assert_eq!(acacia.payment_intent.as_deref(), Some("pi_exp"));
        assert_eq!(acacia.lines[0].price_id.as_deref(), Some("price_exp"));
        assert_eq!(acacia.lines[0].product_id.as_deref(), Some("prod_exp"));
        assert_eq!(acacia.lines[0].subscription.as_deref(), Some("sub_exp"));

        // clover+: `pricing.price_details.price` can arrive expanded, product inside it.
        let basil = expect!(
            decode_object(
                "2025-12-15.clover",
                "invoice.paid",
                r#"{"id":"in_exp2","object":"invoice","currency":"usd","customer":{"id":"cus_exp"},
                    "parent":{"type":"subscription_details","subscription_details":{"subscription":{"id":"sub_exp"}}},
                    "lines":{"data":[{"id":"il_exp2","amount":100,
                      "pricing":{"type":"price_details","price_details":{
                        "price":{"id":"price_exp","object":"price","product":{"id":"prod_exp","object":"product"}}}}}]}}"#
            ),
            Invoice
        );
        assert_eq!(basil.customer.as_deref(), Some("cus_exp"));
        assert_eq!(basil.subscription.as_deref(), Some("sub_exp"));
        assert_eq!(basil.lines[0].price_id.as_deref(), Some("price_exp"));
        assert_eq!(basil.lines[0].product_id.as_deref(), Some("prod_exp"));
    }
}
