//! Decoding an event body into [`DecodedEvent`].
//!
//! Approach: the body is parsed once into a [`serde_json::Value`] and every field is read
//! through small navigation helpers ([`get`], [`str_at`], [`id_at`], [`i64_at`],
//! [`bool_at`], [`list_at`]) that answer `None` for an absent, `null` or wrong-typed value, so
//! no payload shape can panic. On top of them, [`Fields`] reads one object and turns what its
//! fact cannot do without into [`DecodeError::BadObject`] with a short reason naming the field
//! (`missing currency`, `non-integer amount`, `missing lines.data[0].id`).
//!
//! - **Envelope** first: `object` (`v2.core.event` is a thin event), `id`, `type`, `created`,
//!   then `api_version`, which picks the [`Generation`]; only then `data.object`, dispatched on
//!   its own `object` field.
//! - **Generations**: a field whose path moved in basil reads the generation's path first and
//!   the other one as a fallback ([`pick`]). Fields basil removed (invoice `charge`,
//!   `payment_intent`, `paid_out_of_band`, top-level `quote`; `charge.invoice`;
//!   `payment_intent.invoice`; line `amount_excluding_tax`) are not read at all for basil, so
//!   they are `None`/`false` there whatever the payload holds.
//! - **Ids** are strings or expanded objects carrying an `id`: [`id_at`] accepts both.
//! - **Money** is `i64` only. A required amount that is missing or not an integer is a
//!   `BadObject`; an optional amount defaults (to 0 or `None`) when absent or `null`, but a
//!   present non-integer (a string, a float) is still a `BadObject`: a broken amount is never
//!   silently booked as zero. Non-money optional fields (timestamps, quantities, enums) are
//!   simply `None` when wrong-typed. Currencies are lowercased.
//! - **`exchange_rate`** must keep the JSON number's exact text, which `Value` has already
//!   lost (no `arbitrary_precision`), so the decoders that can meet a balance transaction
//!   re-read that one field from the body through [`RawValue`] ([`raw_at`]).

use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::Value;

use super::{
    BalanceTransaction, Charge, CheckoutSession, CreditNote, CreditNoteLine, Customer,
    DecodedEvent, Dispute, EventMeta, Generation, Invoice, InvoiceLine, InvoicePayment, LineSource,
    PaymentIntent, Quote, Refund, StripeObject, Subscription, SubscriptionItem,
};

/// Why an event body cannot be decoded into facts. The matcher dead-letters the event
/// with [`DecodeError::reason`] and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not UTF-8 JSON, or not a JSON object.
    NotJson(String),
    /// A snapshot envelope without a string `id`, `type` or integer `created`, or an
    /// `object` other than `event` / `v2.core.event`.
    NotAnEvent(String),
    /// `object: "v2.core.event"`: a thin event, which carries no snapshot.
    ThinEvent { event_type: String },
    /// `api_version` is `null` or absent: the payload shape cannot be known.
    NullApiVersion,
    /// `api_version` is not `YYYY-MM-DD…`.
    BadApiVersion(String),
    /// No `data.object`.
    MissingObject,
    /// `data.object` lacks what its facts need, or has a field of the wrong type.
    BadObject { object: String, reason: String },
}

impl DecodeError {
    /// Stable dead-letter reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "not_json",
            Self::NotAnEvent(_) => "not_an_event",
            Self::ThinEvent { .. } => "thin_event",
            Self::NullApiVersion => "null_api_version",
            Self::BadApiVersion(_) => "bad_api_version",
            Self::MissingObject => "missing_object",
            Self::BadObject { .. } => "bad_object",
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotJson(e) => write!(f, "the body is not a JSON object: {e}"),
            Self::NotAnEvent(e) => write!(f, "the body is not a Stripe event: {e}"),
            Self::ThinEvent { event_type } => {
                write!(f, "thin event {event_type} carries no snapshot")
            }
            Self::NullApiVersion => {
                f.write_str("api_version is null, so the payload shape is unknown")
            }
            Self::BadApiVersion(v) => write!(f, "api_version {v:?} is not a date-based version"),
            Self::MissingObject => f.write_str("the event has no data.object"),
            Self::BadObject { object, reason } => write!(f, "{object}: {reason}"),
        }
    }
}

impl std::error::Error for DecodeError {}

type Decoded<T> = Result<T, DecodeError>;

/// Decodes a snapshot event body (the raw bytes Stripe sent) into its envelope fields and a
/// typed view of `data.object`, reading each field at its path for the event's API
/// generation. Never panics, whatever the body.
pub fn decode_event(payload: &[u8]) -> Result<DecodedEvent, DecodeError> {
    let body = std::str::from_utf8(payload).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let root: Value =
        serde_json::from_str(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    if !root.is_object() {
        return Err(DecodeError::NotJson(format!(
            "the top level is {}, not an object",
            json_kind(&root)
        )));
    }
    let meta = envelope(&root)?;
    let object = get(&root, &["data", "object"])
        .filter(|o| o.is_object())
        .ok_or(DecodeError::MissingObject)?;
    let ctx = Ctx {
        generation: meta.generation,
        event_created: meta.created,
        body,
    };
    let object = decode_object(object, &ctx)?;
    Ok(DecodedEvent { meta, object })
}

/// What every object decoder needs from the event around it.
struct Ctx<'a> {
    generation: Generation,
    /// The event's `created`, for objects that carry none.
    event_created: i64,
    /// The whole body, re-read only for exact number text ([`Ctx::object_raw`]).
    body: &'a str,
}

impl<'a> Ctx<'a> {
    fn is_acacia(&self) -> bool {
        self.generation == Generation::Acacia
    }

    /// The raw text of `data.object`.
    fn object_raw(&self) -> Option<&'a RawValue> {
        let root: &'a RawValue = serde_json::from_str(self.body).ok()?;
        raw_at(root, &["data", "object"])
    }
}

// ----------------------------------------------------------------------------------------
// Envelope and dispatch

fn envelope(root: &Value) -> Decoded<EventMeta> {
    match root.get("object") {
        Some(Value::String(o)) if o == "event" => {}
        Some(Value::String(o)) if o == "v2.core.event" => {
            return Err(DecodeError::ThinEvent {
                event_type: str_at(root, &["type"]).unwrap_or_default(),
            });
        }
        Some(Value::String(o)) => {
            return Err(DecodeError::NotAnEvent(format!(
                "object is {o:?}, not \"event\""
            )))
        }
        Some(other) => {
            return Err(DecodeError::NotAnEvent(format!(
                "object is {}, not a string",
                json_kind(other)
            )))
        }
        None => return Err(DecodeError::NotAnEvent("no object field".into())),
    }
    let non_empty = |key: &str| str_at(root, &[key]).filter(|s| !s.is_empty());
    let id = non_empty("id").ok_or_else(|| DecodeError::NotAnEvent("no string id".into()))?;
    let event_type =
        non_empty("type").ok_or_else(|| DecodeError::NotAnEvent("no string type".into()))?;
    let created = i64_at(root, &["created"])
        .ok_or_else(|| DecodeError::NotAnEvent("no integer created".into()))?;
    let api_version = match get(root, &["api_version"]) {
        None => return Err(DecodeError::NullApiVersion),
        Some(Value::String(v)) => v.clone(),
        Some(other) => return Err(DecodeError::BadApiVersion(other.to_string())),
    };
    let generation = Generation::from_api_version(&api_version)
        .ok_or_else(|| DecodeError::BadApiVersion(api_version.clone()))?;
    Ok(EventMeta {
        id,
        event_type,
        created,
        livemode: bool_at(root, &["livemode"]).unwrap_or(false),
        account: str_at(root, &["account"]),
        api_version,
        generation,
    })
}

fn decode_object(o: &Value, ctx: &Ctx<'_>) -> Decoded<StripeObject> {
    let Some(kind) = str_ref(o, &["object"]) else {
        return Err(DecodeError::BadObject {
            object: "unknown".into(),
            reason: "missing object".into(),
        });
    };
    Ok(match kind {
        "invoice" => return invoice(o, ctx),
        "subscription" => StripeObject::Subscription(subscription(o, ctx)?),
        "charge" => StripeObject::Charge(charge(o, ctx)?),
        "payment_intent" => StripeObject::PaymentIntent(payment_intent(o, ctx)?),
        "invoice_payment" => StripeObject::InvoicePayment(invoice_payment(o, ctx)?),
        "refund" => StripeObject::Refund(refund(o, ctx)?),
        "dispute" => StripeObject::Dispute(dispute(o, ctx)?),
        "credit_note" => StripeObject::CreditNote(credit_note(o, ctx)?),
        "customer" => StripeObject::Customer(customer(o)?),
        "balance_transaction" => {
            StripeObject::BalanceTransaction(balance_transaction(o, ctx.object_raw(), ctx)?)
        }
        "checkout.session" => StripeObject::CheckoutSession(checkout_session(o, ctx)?),
        "quote" => StripeObject::Quote(quote(o)?),
        other => StripeObject::Other {
            object: other.to_string(),
            id: str_at(o, &["id"]),
        },
    })
}

// ----------------------------------------------------------------------------------------
// Invoices and their lines

fn invoice(o: &Value, ctx: &Ctx<'_>) -> Decoded<StripeObject> {
    if get(o, &["id"]).is_none() {
        // `invoice.upcoming` previews carry no id: nothing to book, the matcher ignores it.
        return Ok(StripeObject::Other {
            object: "invoice".into(),
            id: None,
        });
    }
    let f = Fields::new(o, "invoice");
    let g = ctx.generation;
    let acacia = ctx.is_acacia();
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
        amount_due: f.money_or_zero(&["amount_due"])?,
        amount_paid: f.money_or_zero(&["amount_paid"])?,
        amount_remaining: f.money_or_zero(&["amount_remaining"])?,
        amount_overpaid: f.money_or_zero(&["amount_overpaid"])?,
        starting_balance: f.money_or_zero(&["starting_balance"])?,
        ending_balance: f.money(&["ending_balance"])?,
        pre_payment_credit_notes_amount: f.money_or_zero(&["pre_payment_credit_notes_amount"])?,
        post_payment_credit_notes_amount: f.money_or_zero(&["post_payment_credit_notes_amount"])?,
        period_start: i64_at(o, &["period_start"]),
        period_end: i64_at(o, &["period_end"]),
        created: f.created(ctx),
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
fn line_details(line: &Value) -> Option<&Value> {
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

// ----------------------------------------------------------------------------------------
// Subscriptions

fn subscription(o: &Value, ctx: &Ctx<'_>) -> Decoded<Subscription> {
    let f = Fields::new(o, "subscription");
    let items = list_at(o, &["items"])
        .iter()
        .enumerate()
        .map(|(i, item)| {
            subscription_item(
                &f.child(item, format!("items.data[{i}]")),
                o,
                ctx.generation,
            )
        })
        .collect::<Decoded<Vec<_>>>()?;
    let mut discounts: Vec<String> = list_at(o, &["discounts"])
        .iter()
        .filter_map(|d| id_at(d, &[]))
        .collect();
    if let Some(old) = id_at(o, &["discount"]) {
        if !discounts.contains(&old) {
            discounts.push(old);
        }
    }
    Ok(Subscription {
        id: f.id()?,
        customer: id_at(o, &["customer"]),
        status: str_at(o, &["status"]).unwrap_or_default(),
        currency: lower(str_at(o, &["currency"])),
        items,
        cancel_at_period_end: bool_at(o, &["cancel_at_period_end"]) == Some(true),
        cancel_at: i64_at(o, &["cancel_at"]),
        canceled_at: i64_at(o, &["canceled_at"]),
        ended_at: i64_at(o, &["ended_at"]),
        trial_start: i64_at(o, &["trial_start"]),
        trial_end: i64_at(o, &["trial_end"]),
        pause_collection: str_at(o, &["pause_collection", "behavior"]),
        start_date: i64_at(o, &["start_date"]),
        created: i64_at(o, &["created"]),
        latest_invoice: id_at(o, &["latest_invoice"]),
        cancellation_reason: str_at(o, &["cancellation_details", "reason"]),
        discounts,
    })
}

/// One of `items.data[]`; `subscription` is the object around it (old-generation periods).
fn subscription_item(
    f: &Fields<'_>,
    subscription: &Value,
    g: Generation,
) -> Decoded<SubscriptionItem> {
    let item = f.v;
    // Everything comes from `price`, else from the legacy `plan` (same facts, older names).
    let period = |key: &str| pick(g, i64_at(subscription, &[key]), i64_at(item, &[key]));
    Ok(SubscriptionItem {
        id: f.id()?,
        price_id: id_at(item, &["price"]).or_else(|| id_at(item, &["plan"])),
        product_id: id_at(item, &["price", "product"])
            .or_else(|| id_at(item, &["plan", "product"])),
        unit_amount: i64_at(item, &["price", "unit_amount"])
            .or_else(|| i64_at(item, &["plan", "amount"])),
        currency: lower(
            str_at(item, &["price", "currency"]).or_else(|| str_at(item, &["plan", "currency"])),
        ),
        quantity: i64_at(item, &["quantity"]).unwrap_or(1),
        interval: str_at(item, &["price", "recurring", "interval"])
            .or_else(|| str_at(item, &["plan", "interval"])),
        interval_count: i64_at(item, &["price", "recurring", "interval_count"])
            .or_else(|| i64_at(item, &["plan", "interval_count"]))
            .unwrap_or(1),
        usage_type: str_at(item, &["price", "recurring", "usage_type"])
            .or_else(|| str_at(item, &["plan", "usage_type"])),
        current_period_start: period("current_period_start"),
        current_period_end: period("current_period_end"),
    })
}

// ----------------------------------------------------------------------------------------
// Money movement

/// `data.object` only: an expanded `balance_transaction` is re-read from the body's text.
fn charge(o: &Value, ctx: &Ctx<'_>) -> Decoded<Charge> {
    let f = Fields::new(o, "charge");
    let balance_transaction_object = match get(o, &["balance_transaction"]) {
        Some(bt @ Value::Object(_)) => {
            let raw = ctx
                .object_raw()
                .and_then(|r| raw_at(r, &["balance_transaction"]));
            balance_transaction(bt, raw, ctx).ok()
        }
        _ => None,
    };
    // Before 2022-11-15 the charge embeds its refunds (a list object; older still, an array).
    let refunds = list_at(o, &["refunds"])
        .iter()
        .filter_map(|r| refund(r, ctx).ok())
        .collect();
    Ok(Charge {
        id: f.id()?,
        amount: f.req_money(&["amount"])?,
        amount_captured: f.money_or_zero(&["amount_captured"])?,
        amount_refunded: f.money_or_zero(&["amount_refunded"])?,
        currency: f.currency()?,
        customer: id_at(o, &["customer"]),
        payment_intent: id_at(o, &["payment_intent"]),
        invoice: if ctx.is_acacia() {
            id_at(o, &["invoice"])
        } else {
            None
        },
        status: str_at(o, &["status"]).unwrap_or_default(),
        captured: bool_at(o, &["captured"]) == Some(true),
        paid: bool_at(o, &["paid"]) == Some(true),
        refunded: bool_at(o, &["refunded"]) == Some(true),
        disputed: bool_at(o, &["disputed"]) == Some(true),
        failure_code: str_at(o, &["failure_code"]),
        balance_transaction: id_at(o, &["balance_transaction"]),
        balance_transaction_object,
        created: f.created(ctx),
        refunds,
    })
}

fn payment_intent(o: &Value, ctx: &Ctx<'_>) -> Decoded<PaymentIntent> {
    let f = Fields::new(o, "payment_intent");
    Ok(PaymentIntent {
        id: f.id()?,
        amount: f.req_money(&["amount"])?,
        amount_received: f.money_or_zero(&["amount_received"])?,
        currency: f.currency()?,
        customer: id_at(o, &["customer"]),
        status: str_at(o, &["status"]).unwrap_or_default(),
        latest_charge: id_at(o, &["latest_charge"]),
        invoice: if ctx.is_acacia() {
            id_at(o, &["invoice"])
        } else {
            None
        },
        created: f.created(ctx),
    })
}

fn invoice_payment(o: &Value, ctx: &Ctx<'_>) -> Decoded<InvoicePayment> {
    let f = Fields::new(o, "invoice_payment");
    Ok(InvoicePayment {
        id: f.id()?,
        invoice: id_at(o, &["invoice"]).ok_or_else(|| f.bad("missing", &["invoice"]))?,
        amount_requested: f.req_money(&["amount_requested"])?,
        amount_paid: f.money(&["amount_paid"])?,
        currency: f.currency()?,
        is_default: bool_at(o, &["is_default"]) == Some(true),
        status: str_at(o, &["status"]).unwrap_or_default(),
        paid_at: i64_at(o, &["status_transitions", "paid_at"]),
        canceled_at: i64_at(o, &["status_transitions", "canceled_at"]),
        payment_type: str_at(o, &["payment", "type"]),
        payment_intent: id_at(o, &["payment", "payment_intent"]),
        charge: id_at(o, &["payment", "charge"]),
        created: f.created(ctx),
    })
}

fn refund(o: &Value, ctx: &Ctx<'_>) -> Decoded<Refund> {
    let f = Fields::new(o, "refund");
    Ok(Refund {
        id: f.id()?,
        amount: f.req_money(&["amount"])?,
        currency: f.currency()?,
        charge: id_at(o, &["charge"]),
        payment_intent: id_at(o, &["payment_intent"]),
        customer: id_at(o, &["customer"]),
        status: str_at(o, &["status"]).unwrap_or_default(),
        reason: str_at(o, &["reason"]),
        failure_reason: str_at(o, &["failure_reason"]),
        balance_transaction: id_at(o, &["balance_transaction"]),
        failure_balance_transaction: id_at(o, &["failure_balance_transaction"]),
        created: f.created(ctx),
    })
}

/// `data.object` only: expanded `balance_transactions[]` are re-read from the body's text.
fn dispute(o: &Value, ctx: &Ctx<'_>) -> Decoded<Dispute> {
    let f = Fields::new(o, "dispute");
    let entries = list_at(o, &["balance_transactions"]);
    let raws = if entries.iter().any(Value::is_object) {
        ctx.object_raw()
            .and_then(|r| raw_at(r, &["balance_transactions"]))
            .map(raw_items)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let balance_transactions = entries
        .iter()
        .enumerate()
        .filter(|(_, bt)| bt.is_object())
        .filter_map(|(i, bt)| balance_transaction(bt, raws.get(i).copied(), ctx).ok())
        .collect();
    Ok(Dispute {
        id: f.id()?,
        amount: f.req_money(&["amount"])?,
        currency: f.currency()?,
        charge: id_at(o, &["charge"]),
        payment_intent: id_at(o, &["payment_intent"]),
        reason: str_at(o, &["reason"]),
        status: str_at(o, &["status"]).unwrap_or_default(),
        is_charge_refundable: bool_at(o, &["is_charge_refundable"]) == Some(true),
        balance_transactions,
        created: f.created(ctx),
    })
}

/// `raw` is the same object's text, for the exact `exchange_rate`.
/// Decodes a balance transaction as `GET /v1/balance_transactions/{id}` returns it (API
/// objects, unlike events, carry no api_version: balance transactions are the same in
/// every generation).
pub fn decode_balance_transaction(body: &[u8]) -> Result<BalanceTransaction, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(DecodeError::NotJson("not a JSON object".into()));
    }
    let raw: Option<&RawValue> = serde_json::from_str(text).ok();
    let ctx = Ctx {
        generation: Generation::Basil,
        event_created: 0,
        body: text,
    };
    balance_transaction(&value, raw, &ctx)
}

fn balance_transaction(
    o: &Value,
    raw: Option<&RawValue>,
    ctx: &Ctx<'_>,
) -> Decoded<BalanceTransaction> {
    let f = Fields::new(o, "balance_transaction");
    Ok(BalanceTransaction {
        id: f.id()?,
        amount: f.req_money(&["amount"])?,
        fee: f.req_money(&["fee"])?,
        net: f.req_money(&["net"])?,
        currency: f.currency()?,
        exchange_rate: exchange_rate(o, raw),
        kind: str_at(o, &["type"]).unwrap_or_default(),
        reporting_category: str_at(o, &["reporting_category"]),
        source: id_at(o, &["source"]),
        status: str_at(o, &["status"]),
        created: f.created(ctx),
        available_on: i64_at(o, &["available_on"]),
    })
}

/// The number exactly as written (`1.234`, `0.8500`); `None` for `null` or a non-number.
fn exchange_rate(o: &Value, raw: Option<&RawValue>) -> Option<String> {
    let Value::Number(rate) = get(o, &["exchange_rate"])? else {
        return None;
    };
    let text = raw
        .and_then(|r| raw_at(r, &["exchange_rate"]))
        .map(|r| r.get().trim().to_string());
    // Without the raw text (never expected) the shortest round-trip form is the best left.
    Some(text.unwrap_or_else(|| rate.to_string()))
}

// ----------------------------------------------------------------------------------------
// Credit notes, customers, checkout sessions, quotes

fn credit_note(o: &Value, ctx: &Ctx<'_>) -> Decoded<CreditNote> {
    let f = Fields::new(o, "credit_note");
    let lines = list_at(o, &["lines"])
        .iter()
        .enumerate()
        .map(|(i, line)| {
            credit_note_line(&f.child(line, format!("lines.data[{i}]")), ctx.generation)
        })
        .collect::<Decoded<Vec<_>>>()?;
    Ok(CreditNote {
        id: f.id()?,
        number: str_at(o, &["number"]),
        invoice: id_at(o, &["invoice"]),
        customer: id_at(o, &["customer"]),
        currency: f.currency()?,
        amount: f.req_money(&["amount"])?,
        subtotal: f.money_or_zero(&["subtotal"])?,
        total: f.money_or_zero(&["total"])?,
        total_excluding_tax: f.money(&["total_excluding_tax"])?,
        discount_amount: f.sum(&["discount_amounts"], |_| true)?.unwrap_or(0),
        pre_payment_amount: f.money_or_zero(&["pre_payment_amount"])?,
        post_payment_amount: f.money_or_zero(&["post_payment_amount"])?,
        out_of_band_amount: f.money_or_zero(&["out_of_band_amount"])?,
        status: str_at(o, &["status"]).unwrap_or_default(),
        kind: str_at(o, &["type"]),
        reason: str_at(o, &["reason"]),
        created: f.created(ctx),
        voided_at: i64_at(o, &["voided_at"]),
        lines,
    })
}

fn credit_note_line(f: &Fields<'_>, g: Generation) -> Decoded<CreditNoteLine> {
    let line = f.v;
    let amount = f.money_or_zero(&["amount"])?;
    let tax_amount = pick(
        g,
        f.sum(&["tax_amounts"], |_| true)?,
        f.sum(&["taxes"], |_| true)?,
    )
    .unwrap_or(0);
    // A line's `amount` already excludes exclusive tax; only inclusive tax is inside it.
    let inclusive_tax = pick(
        g,
        f.sum(&["tax_amounts"], |t| {
            bool_at(t, &["inclusive"]) == Some(true)
        })?,
        f.sum(&["taxes"], |t| {
            str_at(t, &["tax_behavior"]).as_deref() == Some("inclusive")
        })?,
    )
    .unwrap_or(0);
    Ok(CreditNoteLine {
        id: f.id()?,
        amount,
        amount_excluding_tax: f
            .money(&["amount_excluding_tax"])?
            .unwrap_or(amount.saturating_sub(inclusive_tax)),
        quantity: i64_at(line, &["quantity"]),
        invoice_line_item: id_at(line, &["invoice_line_item"]),
        tax_amount,
    })
}

fn customer(o: &Value) -> Decoded<Customer> {
    let f = Fields::new(o, "customer");
    Ok(Customer {
        id: f.id()?,
        country: str_at(o, &["address", "country"])
            .or_else(|| str_at(o, &["shipping", "address", "country"])),
        currency: lower(str_at(o, &["currency"])),
        created: i64_at(o, &["created"]),
        deleted: bool_at(o, &["deleted"]) == Some(true),
        balance: f.money(&["balance"])?,
    })
}

fn checkout_session(o: &Value, ctx: &Ctx<'_>) -> Decoded<CheckoutSession> {
    let f = Fields::new(o, "checkout.session");
    Ok(CheckoutSession {
        id: f.id()?,
        customer: id_at(o, &["customer"]),
        subscription: id_at(o, &["subscription"]),
        invoice: id_at(o, &["invoice"]),
        payment_intent: id_at(o, &["payment_intent"]),
        payment_link: id_at(o, &["payment_link"]),
        mode: str_at(o, &["mode"]),
        amount_total: f.money(&["amount_total"])?,
        currency: lower(str_at(o, &["currency"])),
        status: str_at(o, &["status"]),
        created: f.created(ctx),
    })
}

fn quote(o: &Value) -> Decoded<Quote> {
    let f = Fields::new(o, "quote");
    Ok(Quote {
        id: f.id()?,
        customer: id_at(o, &["customer"]),
        subscription: id_at(o, &["subscription"]),
        invoice: id_at(o, &["invoice"]),
        status: str_at(o, &["status"]),
        amount_total: f.money(&["amount_total"])?,
        currency: lower(str_at(o, &["currency"])),
        created: i64_at(o, &["created"]),
    })
}

// ----------------------------------------------------------------------------------------
// Strict reads: what a fact needs, as `BadObject` errors

/// One object (or a line / item inside it) whose required fields become `BadObject` errors.
struct Fields<'v> {
    v: &'v Value,
    /// The `data.object.object` named in errors.
    object: &'static str,
    /// Where `v` sits inside that object (`lines.data[2].`), prefixed to field names.
    at: String,
}

impl<'v> Fields<'v> {
    fn new(v: &'v Value, object: &'static str) -> Self {
        Self {
            v,
            object,
            at: String::new(),
        }
    }

    /// A nested object (`lines.data[2]`), reported under the same object.
    fn child<'c>(&self, v: &'c Value, at: String) -> Fields<'c> {
        Fields {
            v,
            object: self.object,
            at: format!("{}{at}.", self.at),
        }
    }

    /// `BadObject { reason: "<problem> <field path>" }`.
    fn bad(&self, problem: &str, path: &[&str]) -> DecodeError {
        DecodeError::BadObject {
            object: self.object.to_string(),
            reason: format!("{problem} {}{}", self.at, path.join(".")),
        }
    }

    /// A non-empty string.
    fn required_str(&self, path: &[&str]) -> Decoded<String> {
        match get(self.v, path) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::String(_)) | None => Err(self.bad("missing", path)),
            Some(_) => Err(self.bad("non-string", path)),
        }
    }

    fn id(&self) -> Decoded<String> {
        self.required_str(&["id"])
    }

    fn currency(&self) -> Decoded<String> {
        Ok(self.required_str(&["currency"])?.to_ascii_lowercase())
    }

    /// An optional amount: `None` when absent or `null`, an error when not an integer.
    fn money(&self, path: &[&str]) -> Decoded<Option<i64>> {
        match get(self.v, path) {
            None => Ok(None),
            Some(value) => value
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.bad("non-integer", path)),
        }
    }

    fn money_or_zero(&self, path: &[&str]) -> Decoded<i64> {
        Ok(self.money(path)?.unwrap_or(0))
    }

    fn req_money(&self, path: &[&str]) -> Decoded<i64> {
        self.money(path)?.ok_or_else(|| self.bad("missing", path))
    }

    /// Σ `<path>[].amount` over the entries `keep` accepts; `None` when `<path>` is not an array.
    fn sum(&self, path: &[&str], keep: impl Fn(&Value) -> bool) -> Decoded<Option<i64>> {
        let Some(Value::Array(entries)) = get(self.v, path) else {
            return Ok(None);
        };
        let mut total = 0i64;
        for (i, entry) in entries.iter().enumerate().filter(|(_, e)| keep(e)) {
            let amount = match get(entry, &["amount"]) {
                None => 0,
                Some(amount) => amount.as_i64().ok_or_else(|| {
                    self.bad("non-integer", &[&format!("{}[{i}].amount", path.join("."))])
                })?,
            };
            total = total
                .checked_add(amount)
                .ok_or_else(|| self.bad("overflowing", path))?;
        }
        Ok(Some(total))
    }

    /// The object's `created`, else the event's.
    fn created(&self, ctx: &Ctx<'_>) -> i64 {
        i64_at(self.v, &["created"]).unwrap_or(ctx.event_created)
    }
}

// ----------------------------------------------------------------------------------------
// Lenient reads: `None` for absent, `null` or wrong-typed values

/// The value at `path` through nested objects; `None` if any step is missing or not an
/// object, or the value is `null`.
fn get<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    let mut current = v;
    for key in path {
        current = current.get(*key)?;
    }
    (!current.is_null()).then_some(current)
}

fn str_ref<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    get(v, path)?.as_str()
}

fn str_at(v: &Value, path: &[&str]) -> Option<String> {
    str_ref(v, path).map(str::to_string)
}

/// An id written either as a string or as an expanded object with a string `id`.
fn id_at(v: &Value, path: &[&str]) -> Option<String> {
    match get(v, path)? {
        Value::String(id) => Some(id.clone()),
        object @ Value::Object(_) => str_at(object, &["id"]),
        _ => None,
    }
}

fn i64_at(v: &Value, path: &[&str]) -> Option<i64> {
    get(v, path)?.as_i64()
}

fn bool_at(v: &Value, path: &[&str]) -> Option<bool> {
    get(v, path)?.as_bool()
}

/// The entries of a list at `path`: a list object's `data`, or a bare array; empty otherwise.
fn list_at<'v>(v: &'v Value, path: &[&str]) -> &'v [Value] {
    let list = get(v, path);
    match list.and_then(|l| {
        if l.is_array() {
            Some(l)
        } else {
            get(l, &["data"])
        }
    }) {
        Some(Value::Array(entries)) => entries,
        _ => &[],
    }
}

fn lower(s: Option<String>) -> Option<String> {
    s.map(|s| s.to_ascii_lowercase())
}

/// The generation's own path wins; the other generation's path is the fallback.
fn pick<T>(generation: Generation, old: Option<T>, new: Option<T>) -> Option<T> {
    match generation {
        Generation::Acacia => old.or(new),
        Generation::Basil => new.or(old),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The raw text at `path` through nested objects (each step re-parses one level).
fn raw_at<'a>(raw: &'a RawValue, path: &[&str]) -> Option<&'a RawValue> {
    let mut current = raw;
    for key in path {
        let mut fields: HashMap<String, &'a RawValue> = serde_json::from_str(current.get()).ok()?;
        current = fields.remove(*key)?;
    }
    Some(current)
}

/// The raw texts of an array's entries.
fn raw_items(raw: &RawValue) -> Vec<&RawValue> {
    serde_json::from_str(raw.get()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/stripe-events/");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}{name}")).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    }

    /// A snapshot event around `object` (inline JSON text).
    fn event(api_version: &str, event_type: &str, object: &str) -> Vec<u8> {
        format!(
            r#"{{"id":"evt_test_1","object":"event","api_version":"{api_version}","created":1769907602,
                "livemode":false,"pending_webhooks":1,"request":{{"id":null,"idempotency_key":null}},
                "type":"{event_type}","data":{{"object":{object}}}}}"#
        )
        .into_bytes()
    }

    fn decode_object(api_version: &str, event_type: &str, object: &str) -> StripeObject {
        decode_event(&event(api_version, event_type, object))
            .expect("decodes")
            .object
    }

    fn decode_err(api_version: &str, event_type: &str, object: &str) -> DecodeError {
        decode_event(&event(api_version, event_type, object)).expect_err("must not decode")
    }

    macro_rules! expect {
        ($object:expr, $variant:ident) => {
            match $object {
                StripeObject::$variant(inner) => inner,
                other => panic!("expected {}, got {other:?}", stringify!($variant)),
            }
        };
    }

    const ACACIA: &str = "2025-02-24.acacia";
    const BASIL: &str = "2025-03-31.basil";

    // ------------------------------------------------------------------------------------
    // Invoices

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

    // ------------------------------------------------------------------------------------
    // Subscriptions

    #[test]
    fn the_basil_renewal_fixture_has_per_item_periods_and_recurring_prices() {
        let decoded = decode_event(&fixture(
            "customer.subscription.updated__2025-03-31.basil__renewal.json",
        ))
        .unwrap();
        assert_eq!(decoded.meta.event_type, "customer.subscription.updated");
        let sub = expect!(decoded.object, Subscription);
        assert_eq!(sub.id, "sub_1ExampleBasil0001");
        assert_eq!(sub.customer.as_deref(), Some("cus_ExampleCustomer1"));
        assert_eq!(sub.status, "active");
        assert_eq!(sub.currency.as_deref(), Some("usd"));
        assert_eq!(sub.latest_invoice.as_deref(), Some("in_1ExampleBasil0001"));
        assert_eq!(
            (sub.start_date, sub.created),
            (Some(1764547200), Some(1764547200))
        );
        assert!(!sub.cancel_at_period_end);
        assert_eq!(
            (sub.cancel_at, sub.canceled_at, sub.ended_at),
            (None, None, None)
        );
        assert_eq!(
            (
                sub.trial_start,
                sub.trial_end,
                sub.pause_collection.as_deref()
            ),
            (None, None, None)
        );
        assert_eq!(sub.cancellation_reason, None);
        assert!(sub.discounts.is_empty());
        assert_eq!(
            sub.items,
            vec![SubscriptionItem {
                id: "si_ExampleBasil0001".into(),
                price_id: Some("price_1ExamplePro".into()),
                product_id: Some("prod_ExamplePro".into()),
                unit_amount: Some(2000),
                currency: Some("usd".into()),
                quantity: 1,
                interval: Some("month".into()),
                interval_count: 1,
                usage_type: Some("licensed".into()),
                current_period_start: Some(1769904000),
                current_period_end: Some(1772323200),
            }]
        );
    }

    #[test]
    fn basil_items_keep_their_own_periods_even_when_they_differ() {
        let sub = expect!(
            decode_object(
                "2025-09-30.clover",
                "customer.subscription.updated",
                r#"{"id":"sub_two","object":"subscription","status":"active","customer":"cus_1",
                    "current_period_start":1,"current_period_end":2,
                    "items":{"data":[
                      {"id":"si_a","current_period_start":1769904000,"current_period_end":1772323200,
                       "price":{"id":"price_m","recurring":{"interval":"month"}}},
                      {"id":"si_b","current_period_start":1767225600,"current_period_end":1798761600,
                       "price":{"id":"price_y","recurring":{"interval":"year","interval_count":1}}}]}}"#
            ),
            Subscription
        );
        let periods: Vec<_> = sub
            .items
            .iter()
            .map(|i| (i.current_period_start, i.current_period_end))
            .collect();
        assert_eq!(
            periods,
            [
                (Some(1769904000), Some(1772323200)),
                (Some(1767225600), Some(1798761600))
            ]
        );
        assert_eq!(sub.items[0].interval_count, 1, "defaults to 1");
        assert_eq!(sub.items[0].quantity, 1, "defaults to 1");
    }

    #[test]
    fn an_acacia_subscription_copies_its_period_onto_each_item() {
        let sub = expect!(
            decode_object(
                ACACIA,
                "customer.subscription.updated",
                r#"{"id":"sub_old","object":"subscription","status":"past_due","currency":"USD",
                    "customer":{"id":"cus_1","object":"customer"},
                    "current_period_start":1769904000,"current_period_end":1772323200,
                    "cancel_at_period_end":true,"cancel_at":1772323200,"canceled_at":1770000000,
                    "cancellation_details":{"reason":"cancellation_requested","feedback":"too_expensive"},
                    "pause_collection":{"behavior":"keep_as_draft","resumes_at":null},
                    "trial_start":1764547200,"trial_end":1765756800,
                    "latest_invoice":{"id":"in_latest","object":"invoice"},
                    "discount":{"id":"di_old","object":"discount"},"discounts":["di_old",{"id":"di_other"}],
                    "items":{"object":"list","data":[
                      {"id":"si_seats","quantity":5,
                       "price":{"id":"price_seat","product":{"id":"prod_seat"},"unit_amount":1500,"currency":"usd",
                         "recurring":{"interval":"month","interval_count":3,"usage_type":"licensed"}}},
                      {"id":"si_api","price":null,
                       "plan":{"id":"plan_api","product":"prod_api","amount":0,"currency":"usd",
                         "interval":"month","interval_count":1,"usage_type":"metered"}}]}}"#
            ),
            Subscription
        );
        assert_eq!(sub.customer.as_deref(), Some("cus_1"));
        assert_eq!(sub.status, "past_due");
        assert_eq!(sub.currency.as_deref(), Some("usd"));
        assert!(sub.cancel_at_period_end);
        assert_eq!(
            (sub.cancel_at, sub.canceled_at),
            (Some(1772323200), Some(1770000000))
        );
        assert_eq!(
            sub.cancellation_reason.as_deref(),
            Some("cancellation_requested")
        );
        assert_eq!(sub.pause_collection.as_deref(), Some("keep_as_draft"));
        assert_eq!(
            (sub.trial_start, sub.trial_end),
            (Some(1764547200), Some(1765756800))
        );
        assert_eq!(sub.latest_invoice.as_deref(), Some("in_latest"));
        assert_eq!(sub.discounts, ["di_old", "di_other"]);
        assert_eq!(sub.created, None, "an optional created stays None");

        for item in &sub.items {
            assert_eq!(
                (item.current_period_start, item.current_period_end),
                (Some(1769904000), Some(1772323200))
            );
        }
        let seats = &sub.items[0];
        assert_eq!(seats.quantity, 5);
        assert_eq!(seats.product_id.as_deref(), Some("prod_seat"));
        assert_eq!(seats.unit_amount, Some(1500));
        assert_eq!(
            (seats.interval.as_deref(), seats.interval_count),
            (Some("month"), 3)
        );
        let api = &sub.items[1];
        assert_eq!(
            api.price_id.as_deref(),
            Some("plan_api"),
            "plan when there is no price"
        );
        assert_eq!(api.product_id.as_deref(), Some("prod_api"));
        assert_eq!(api.usage_type.as_deref(), Some("metered"));
        assert_eq!(api.unit_amount, Some(0));
    }

    // ------------------------------------------------------------------------------------
    // Charges, refunds, payment intents, invoice payments, disputes

    #[test]
    fn the_partial_refund_fixture_is_a_charge_with_a_running_refunded_amount() {
        let charge = expect!(
            decode_event(&fixture("charge.refunded__2025-03-31.basil__partial.json"))
                .unwrap()
                .object,
            Charge
        );
        assert_eq!(charge.id, "ch_1ExampleCharge0001");
        assert_eq!(
            (
                charge.amount,
                charge.amount_captured,
                charge.amount_refunded
            ),
            (2000, 2000, 500)
        );
        assert!(!charge.refunded, "partial refunds leave refunded false");
        assert!(charge.captured && charge.paid && !charge.disputed);
        assert_eq!(charge.status, "succeeded");
        assert_eq!(charge.currency, "usd");
        assert_eq!(charge.customer.as_deref(), Some("cus_ExampleCustomer1"));
        assert_eq!(
            charge.payment_intent.as_deref(),
            Some("pi_1ExampleBasil0001")
        );
        assert_eq!(charge.invoice, None);
        assert_eq!(charge.failure_code, None);
        assert_eq!(
            charge.balance_transaction.as_deref(),
            Some("txn_1ExampleCharge0001")
        );
        assert_eq!(charge.balance_transaction_object, None);
        assert_eq!(charge.created, 1769907600);
        assert!(charge.refunds.is_empty());
    }

    #[test]
    fn the_refund_created_fixture_decodes_every_refund_fact() {
        let refund = expect!(
            decode_event(&fixture("refund.created__2025-03-31.basil.json"))
                .unwrap()
                .object,
            Refund
        );
        assert_eq!(
            refund,
            Refund {
                id: "re_1ExampleRefund0001".into(),
                amount: 500,
                currency: "usd".into(),
                charge: Some("ch_1ExampleCharge0001".into()),
                payment_intent: Some("pi_1ExampleBasil0001".into()),
                customer: Some("cus_ExampleCustomer1".into()),
                status: "succeeded".into(),
                reason: Some("requested_by_customer".into()),
                failure_reason: None,
                balance_transaction: Some("txn_1ExampleRefund0001".into()),
                failure_balance_transaction: None,
                created: 1769994002,
            }
        );
    }

    #[test]
    fn an_old_charge_carries_its_invoice_refunds_and_expanded_balance_transaction() {
        let charge = expect!(
            decode_object(
                "2022-08-01",
                "charge.refunded",
                r#"{"id":"ch_old","object":"charge","amount":1000,"amount_captured":1000,"amount_refunded":1000,
                    "currency":"EUR","refunded":true,"status":"succeeded","invoice":{"id":"in_old"},
                    "failure_code":null,"created":1650000000,
                    "balance_transaction":{"id":"txn_ch","object":"balance_transaction","amount":1234,"fee":66,
                      "net":1168,"currency":"usd","exchange_rate":1.234,"type":"charge","reporting_category":"charge",
                      "source":"ch_old","status":"available","created":1650000000,"available_on":1650500000},
                    "refunds":{"object":"list","has_more":false,"data":[
                      {"id":"re_a","object":"refund","amount":400,"currency":"eur","charge":"ch_old",
                       "status":"succeeded","balance_transaction":"txn_re_a","created":1650100000},
                      {"id":"re_broken","object":"refund","currency":"eur"},
                      {"id":"re_b","object":"refund","amount":600,"currency":"eur","charge":"ch_old",
                       "status":"failed","failure_reason":"expired_or_canceled_card",
                       "failure_balance_transaction":"txn_re_b_fail"}]}}"#
            ),
            Charge
        );
        assert_eq!(charge.currency, "eur");
        assert_eq!(charge.invoice.as_deref(), Some("in_old"));
        assert!(charge.refunded);
        assert_eq!(charge.balance_transaction.as_deref(), Some("txn_ch"));
        let bt = charge
            .balance_transaction_object
            .expect("expanded balance transaction");
        assert_eq!(
            (bt.amount, bt.fee, bt.net, bt.currency.as_str()),
            (1234, 66, 1168, "usd")
        );
        assert_eq!(bt.exchange_rate.as_deref(), Some("1.234"));
        let refunds: Vec<_> = charge
            .refunds
            .iter()
            .map(|r| (r.id.as_str(), r.amount, r.status.as_str()))
            .collect();
        assert_eq!(
            refunds,
            [("re_a", 400, "succeeded"), ("re_b", 600, "failed")],
            "the broken refund is skipped"
        );
        assert_eq!(
            charge.refunds[1].failure_balance_transaction.as_deref(),
            Some("txn_re_b_fail")
        );
        assert_eq!(
            charge.refunds[1].created, 1769907602,
            "created falls back to the event's"
        );

        let basil = expect!(
            decode_object(
                BASIL,
                "charge.succeeded",
                r#"{"id":"ch_new","object":"charge","amount":10,"currency":"usd","invoice":"in_stale"}"#
            ),
            Charge
        );
        assert_eq!(basil.invoice, None, "charge.invoice is acacia-only");
    }

    #[test]
    fn a_payment_intent_links_its_invoice_only_in_acacia() {
        let object = r#"{"id":"pi_1","object":"payment_intent","amount":2000,"amount_received":2000,"currency":"usd",
            "customer":"cus_1","status":"succeeded","latest_charge":{"id":"ch_1","object":"charge"},
            "invoice":"in_1","created":1769907600}"#;
        let old = expect!(
            decode_object(ACACIA, "payment_intent.succeeded", object),
            PaymentIntent
        );
        assert_eq!(old.invoice.as_deref(), Some("in_1"));
        assert_eq!(old.latest_charge.as_deref(), Some("ch_1"));
        assert_eq!(
            (old.amount, old.amount_received, old.created),
            (2000, 2000, 1769907600)
        );
        assert_eq!(old.status, "succeeded");

        let new = expect!(
            decode_object(
                BASIL,
                "payment_intent.succeeded",
                r#"{"id":"pi_2","object":"payment_intent","amount":2000,"amount_received":0,"currency":"usd",
                    "status":"processing","latest_charge":"ch_2"}"#
            ),
            PaymentIntent
        );
        assert_eq!(new.invoice, None);
        assert_eq!(new.latest_charge.as_deref(), Some("ch_2"));
        assert_eq!(new.customer, None);
        // A basil payload that still carried `invoice` would not be trusted either.
        let stale = expect!(
            decode_object(BASIL, "payment_intent.succeeded", object),
            PaymentIntent
        );
        assert_eq!(stale.invoice, None);
    }

    #[test]
    fn an_invoice_payment_decodes_amounts_status_transitions_and_payment() {
        let payment = expect!(
            decode_object(
                "2025-05-28.basil",
                "invoice_payment.paid",
                r#"{"id":"inpay_1","object":"invoice_payment","amount_paid":1500,"amount_requested":2000,
                    "created":1769907600,"currency":"usd","invoice":"in_1ExampleBasil0001","is_default":false,
                    "livemode":false,"payment":{"type":"payment_intent","payment_intent":"pi_1","charge":null},
                    "status":"paid","status_transitions":{"canceled_at":null,"paid_at":1769907602}}"#
            ),
            InvoicePayment
        );
        assert_eq!(
            payment,
            InvoicePayment {
                id: "inpay_1".into(),
                invoice: "in_1ExampleBasil0001".into(),
                amount_requested: 2000,
                amount_paid: Some(1500),
                currency: "usd".into(),
                is_default: false,
                status: "paid".into(),
                paid_at: Some(1769907602),
                canceled_at: None,
                payment_type: Some("payment_intent".into()),
                payment_intent: Some("pi_1".into()),
                charge: None,
                created: 1769907600,
            }
        );

        let open = expect!(
            decode_object(
                "2025-05-28.basil",
                "invoice_payment.paid",
                r#"{"id":"inpay_2","object":"invoice_payment","amount_paid":null,"amount_requested":500,
                    "currency":"usd","invoice":{"id":"in_2","object":"invoice"},"is_default":true,"status":"open",
                    "payment":{"type":"charge","charge":{"id":"ch_9"}}}"#
            ),
            InvoicePayment
        );
        assert_eq!(open.amount_paid, None);
        assert_eq!(open.invoice, "in_2");
        assert_eq!(open.charge.as_deref(), Some("ch_9"));
        assert!(open.is_default);
    }

    #[test]
    fn a_dispute_decodes_its_expanded_balance_transactions_and_skips_bare_ids() {
        let dispute = expect!(
            decode_object(
                BASIL,
                "charge.dispute.funds_withdrawn",
                r#"{"id":"dp_1","object":"dispute","amount":2000,"currency":"usd","charge":"ch_1",
                    "payment_intent":{"id":"pi_1"},"reason":"fraudulent","status":"needs_response",
                    "is_charge_refundable":false,"created":1770000000,
                    "balance_transactions":[
                      "txn_bare",
                      {"id":"txn_dp","object":"balance_transaction","amount":-2000,"fee":1500,"net":-3500,
                       "currency":"usd","exchange_rate":null,"type":"adjustment","reporting_category":"dispute",
                       "source":"dp_1","status":"pending","created":1770000000,"available_on":1770500000},
                      {"id":"txn_fx","object":"balance_transaction","amount":-1700,"fee":0,"net":-1700,
                       "currency":"eur","exchange_rate":0.8500,"type":"adjustment","source":{"id":"dp_1"}}]}"#
            ),
            Dispute
        );
        assert_eq!(
            (
                dispute.amount,
                dispute.currency.as_str(),
                dispute.status.as_str()
            ),
            (2000, "usd", "needs_response")
        );
        assert_eq!(dispute.charge.as_deref(), Some("ch_1"));
        assert_eq!(dispute.payment_intent.as_deref(), Some("pi_1"));
        assert_eq!(dispute.reason.as_deref(), Some("fraudulent"));
        assert!(!dispute.is_charge_refundable);
        let ids: Vec<_> = dispute
            .balance_transactions
            .iter()
            .map(|bt| bt.id.as_str())
            .collect();
        assert_eq!(ids, ["txn_dp", "txn_fx"]);
        let withdrawal = &dispute.balance_transactions[0];
        assert_eq!(
            (withdrawal.amount, withdrawal.fee, withdrawal.net),
            (-2000, 1500, -3500)
        );
        assert_eq!(withdrawal.reporting_category.as_deref(), Some("dispute"));
        assert_eq!(withdrawal.exchange_rate, None);
        let fx = &dispute.balance_transactions[1];
        assert_eq!(
            fx.exchange_rate.as_deref(),
            Some("0.8500"),
            "the rate's text is kept as written"
        );
        assert_eq!(fx.source.as_deref(), Some("dp_1"));
        assert_eq!(fx.created, 1769907602);
    }

    // ------------------------------------------------------------------------------------
    // Balance transactions, credit notes, customers, checkout sessions, quotes

    #[test]
    fn a_balance_transaction_keeps_the_exchange_rate_text() {
        let bt = expect!(
            decode_object(
                BASIL,
                "balance_transaction.created",
                r#"{"id":"txn_fx","object":"balance_transaction","amount":1234,"fee":66,"net":1168,"currency":"usd",
                    "exchange_rate":1.234,"type":"charge","reporting_category":"charge","source":"ch_eur",
                    "status":"pending","created":1769907600,"available_on":1770080400}"#
            ),
            BalanceTransaction
        );
        assert_eq!(bt.exchange_rate.as_deref(), Some("1.234"));
        assert_eq!(bt.kind, "charge");
        assert_eq!(bt.available_on, Some(1770080400));

        for (written, kept) in [
            ("1.10", "1.10"),
            ("0.000012345678901234567", "0.000012345678901234567"),
            ("1", "1"),
        ] {
            let object = format!(
                r#"{{"id":"txn_x","object":"balance_transaction","amount":1,"fee":0,"net":1,"currency":"usd",
                    "exchange_rate": {written} }}"#
            );
            let bt = expect!(
                decode_object(BASIL, "balance_transaction.created", &object),
                BalanceTransaction
            );
            assert_eq!(bt.exchange_rate.as_deref(), Some(kept));
        }
    }

    #[test]
    fn the_balance_transaction_fixtures_decode_with_a_null_exchange_rate() {
        let file: HashMap<String, Box<RawValue>> =
            serde_json::from_slice(&fixture("api_object__balance_transactions.json")).unwrap();
        let charge_bt = expect!(
            decode_object(BASIL, "test.fixture", file["charge_bt"].get()),
            BalanceTransaction
        );
        assert_eq!(
            charge_bt,
            BalanceTransaction {
                id: "txn_1ExampleCharge0001".into(),
                amount: 2000,
                fee: 88,
                net: 1912,
                currency: "usd".into(),
                exchange_rate: None,
                kind: "charge".into(),
                reporting_category: Some("charge".into()),
                source: Some("ch_1ExampleCharge0001".into()),
                status: Some("pending".into()),
                created: 1769907600,
                available_on: Some(1770080402),
            }
        );
        let refund_bt = expect!(
            decode_object(BASIL, "test.fixture", file["refund_bt"].get()),
            BalanceTransaction
        );
        assert_eq!(
            (refund_bt.amount, refund_bt.fee, refund_bt.net),
            (-500, 0, -500)
        );
        assert_eq!(refund_bt.reporting_category.as_deref(), Some("refund"));
        assert_eq!(refund_bt.exchange_rate, None);
    }

    #[test]
    fn credit_note_lines_sum_acacia_tax_amounts_and_basil_taxes() {
        let acacia = expect!(
            decode_object(
                ACACIA,
                "credit_note.created",
                r#"{"id":"cn_old","object":"credit_note","number":"EXMPL-0002-CN-01","invoice":"in_1",
                    "customer":{"id":"cus_1"},"currency":"usd","amount":1100,"subtotal":1000,"total":1100,
                    "total_excluding_tax":1000,"discount_amounts":[{"amount":0,"discount":"di_1"}],
                    "pre_payment_amount":0,"post_payment_amount":1100,"out_of_band_amount":0,"status":"issued",
                    "type":"post_payment","reason":"product_unsatisfactory","created":1770000000,"voided_at":null,
                    "tax_amounts":[{"amount":100,"inclusive":false}],
                    "lines":{"object":"list","data":[
                      {"id":"cnli_1","amount":1000,"quantity":1,"invoice_line_item":"il_1",
                       "tax_amounts":[{"amount":60,"inclusive":false},{"amount":40,"inclusive":false}]},
                      {"id":"cnli_2","amount":500,"amount_excluding_tax":450,"tax_amounts":[]}]}}"#
            ),
            CreditNote
        );
        assert_eq!(acacia.number.as_deref(), Some("EXMPL-0002-CN-01"));
        assert_eq!(
            (acacia.invoice.as_deref(), acacia.customer.as_deref()),
            (Some("in_1"), Some("cus_1"))
        );
        assert_eq!(
            (
                acacia.amount,
                acacia.subtotal,
                acacia.total,
                acacia.total_excluding_tax
            ),
            (1100, 1000, 1100, Some(1000))
        );
        assert_eq!(
            (
                acacia.pre_payment_amount,
                acacia.post_payment_amount,
                acacia.out_of_band_amount
            ),
            (0, 1100, 0)
        );
        assert_eq!(
            (acacia.status.as_str(), acacia.kind.as_deref()),
            ("issued", Some("post_payment"))
        );
        assert_eq!(acacia.reason.as_deref(), Some("product_unsatisfactory"));
        assert_eq!(acacia.created, 1770000000);
        assert_eq!(
            acacia.lines,
            vec![
                CreditNoteLine {
                    id: "cnli_1".into(),
                    amount: 1000,
                    // The 100 of tax is exclusive: `amount` never contained it.
                    amount_excluding_tax: 1000,
                    quantity: Some(1),
                    invoice_line_item: Some("il_1".into()),
                    tax_amount: 100,
                },
                CreditNoteLine {
                    id: "cnli_2".into(),
                    amount: 500,
                    amount_excluding_tax: 450,
                    quantity: None,
                    invoice_line_item: None,
                    tax_amount: 0,
                },
            ]
        );

        let basil = expect!(
            decode_object(
                BASIL,
                "credit_note.voided",
                r#"{"id":"cn_new","object":"credit_note","invoice":"in_2","currency":"EUR","amount":1190,
                    "subtotal":1000,"total":1190,"discount_amounts":[{"amount":100},{"amount":20}],
                    "pre_payment_amount":1190,"status":"void","type":"pre_payment","voided_at":1770100000,
                    "total_taxes":[{"amount":190,"tax_behavior":"exclusive"}],
                    "lines":{"data":[{"id":"cnli_3","amount":1190,"invoice_line_item":"il_2",
                      "taxes":[{"amount":190,"tax_behavior":"inclusive","type":"tax_rate_details"}]}]}}"#
            ),
            CreditNote
        );
        assert_eq!(basil.currency, "eur");
        assert_eq!(basil.discount_amount, 120);
        assert_eq!(basil.total_excluding_tax, None);
        assert_eq!(
            (basil.status.as_str(), basil.voided_at),
            ("void", Some(1770100000))
        );
        assert_eq!(basil.created, 1769907602);
        assert_eq!(
            (
                basil.lines[0].tax_amount,
                basil.lines[0].amount_excluding_tax
            ),
            (190, 1000)
        );
    }

    #[test]
    fn a_customer_gives_its_country_and_deleted_flag() {
        let customer = expect!(
            decode_object(
                BASIL,
                "customer.updated",
                r#"{"id":"cus_1","object":"customer","address":{"country":"DE","city":"Berlin"},
                    "shipping":{"address":{"country":"FR"}},"currency":"EUR","created":1764547200,"balance":-500}"#
            ),
            Customer
        );
        assert_eq!(
            customer,
            Customer {
                id: "cus_1".into(),
                country: Some("DE".into()),
                currency: Some("eur".into()),
                created: Some(1764547200),
                deleted: false,
                balance: Some(-500),
            }
        );

        let shipping = expect!(
            decode_object(
                BASIL,
                "customer.updated",
                r#"{"id":"cus_2","object":"customer","address":null,"shipping":{"address":{"country":"FR"}}}"#
            ),
            Customer
        );
        assert_eq!(shipping.country.as_deref(), Some("FR"));
        assert_eq!(
            (shipping.currency, shipping.created, shipping.balance),
            (None, None, None)
        );

        let deleted = expect!(
            decode_object(
                BASIL,
                "customer.deleted",
                r#"{"id":"cus_3","object":"customer","deleted":true}"#
            ),
            Customer
        );
        assert!(deleted.deleted);
        assert_eq!(deleted.country, None);
    }

    #[test]
    fn a_checkout_session_and_a_quote_give_their_links() {
        let session = expect!(
            decode_object(
                BASIL,
                "checkout.session.completed",
                r#"{"id":"cs_1","object":"checkout.session","customer":"cus_1","subscription":"sub_1","invoice":"in_1",
                    "payment_intent":null,"payment_link":{"id":"plink_1","object":"payment_link"},"mode":"subscription",
                    "amount_total":2000,"currency":"USD","status":"complete","created":1769900000}"#
            ),
            CheckoutSession
        );
        assert_eq!(
            session,
            CheckoutSession {
                id: "cs_1".into(),
                customer: Some("cus_1".into()),
                subscription: Some("sub_1".into()),
                invoice: Some("in_1".into()),
                payment_intent: None,
                payment_link: Some("plink_1".into()),
                mode: Some("subscription".into()),
                amount_total: Some(2000),
                currency: Some("usd".into()),
                status: Some("complete".into()),
                created: 1769900000,
            }
        );

        let quote = expect!(
            decode_object(
                BASIL,
                "quote.accepted",
                r#"{"id":"qt_1","object":"quote","customer":"cus_1","subscription":{"id":"sub_1"},"invoice":"in_1",
                    "status":"accepted","amount_total":24000,"currency":"usd","created":1769000000}"#
            ),
            Quote
        );
        assert_eq!(
            quote,
            Quote {
                id: "qt_1".into(),
                customer: Some("cus_1".into()),
                subscription: Some("sub_1".into()),
                invoice: Some("in_1".into()),
                status: Some("accepted".into()),
                amount_total: Some(24000),
                currency: Some("usd".into()),
                created: Some(1769000000),
            }
        );
    }

    // ------------------------------------------------------------------------------------
    // Envelope and errors

    #[test]
    fn the_envelope_gives_livemode_and_the_connected_account() {
        let body = br#"{"id":"evt_c","object":"event","api_version":"2024-06-20","created":1700000000,"livemode":true,
            "account":"acct_123","type":"payout.paid","data":{"object":{"id":"po_1","object":"payout","amount":5}}}"#;
        let decoded = decode_event(body).unwrap();
        assert_eq!(
            decoded.meta,
            EventMeta {
                id: "evt_c".into(),
                event_type: "payout.paid".into(),
                created: 1700000000,
                livemode: true,
                account: Some("acct_123".into()),
                api_version: "2024-06-20".into(),
                generation: Generation::Acacia,
            }
        );
        assert_eq!(
            decoded.object,
            StripeObject::Other {
                object: "payout".into(),
                id: Some("po_1".into())
            }
        );
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_not_json() {
        for body in [
            &b""[..],
            b"{",
            b"not json",
            b"\xff\xfe{}",
            b"[]",
            b"[{\"id\":\"evt_1\"}]",
            b"42",
            b"null",
            b"\"event\"",
        ] {
            let err = decode_event(body).expect_err("must fail");
            assert!(matches!(err, DecodeError::NotJson(_)), "{body:?} → {err:?}");
            assert_eq!(err.reason(), "not_json");
        }
    }

    #[test]
    fn envelopes_without_id_type_created_or_event_object_are_not_events() {
        let cases = [
            r#"{"object":"event","type":"invoice.paid","created":1,"api_version":"2025-03-31","data":{"object":{}}}"#,
            r#"{"id":"","object":"event","type":"invoice.paid","created":1,"api_version":"2025-03-31"}"#,
            r#"{"id":7,"object":"event","type":"invoice.paid","created":1,"api_version":"2025-03-31"}"#,
            r#"{"id":"evt_1","object":"event","created":1,"api_version":"2025-03-31"}"#,
            r#"{"id":"evt_1","object":"event","type":"invoice.paid","api_version":"2025-03-31"}"#,
            r#"{"id":"evt_1","object":"event","type":"invoice.paid","created":"1769907602","api_version":"2025-03-31"}"#,
            r#"{"id":"evt_1","object":"event","type":"invoice.paid","created":1.5,"api_version":"2025-03-31"}"#,
            r#"{"id":"evt_1","type":"invoice.paid","created":1,"api_version":"2025-03-31"}"#,
            r#"{"id":"acct_1","object":"account","type":"x","created":1}"#,
            r#"{"id":"evt_1","object":null,"type":"invoice.paid","created":1}"#,
        ];
        for body in cases {
            let err = decode_event(body.as_bytes()).expect_err("must fail");
            assert!(
                matches!(err, DecodeError::NotAnEvent(_)),
                "{body} → {err:?}"
            );
            assert_eq!(err.reason(), "not_an_event");
        }
    }

    #[test]
    fn a_thin_event_is_reported_with_its_type() {
        let err = decode_event(&fixture(
            "thin__v1.billing.meter.error_report_triggered.json",
        ))
        .unwrap_err();
        assert_eq!(
            err,
            DecodeError::ThinEvent {
                event_type: "v1.billing.meter.error_report_triggered".into()
            }
        );
        assert_eq!(err.reason(), "thin_event");
    }

    #[test]
    fn a_null_absent_or_malformed_api_version_is_rejected() {
        let with = |api_version: &str| {
            format!(
                r#"{{"id":"evt_1","object":"event","type":"invoice.paid","created":1{api_version},
                    "data":{{"object":{{"id":"in_1","object":"invoice","currency":"usd"}}}}}}"#
            )
        };
        assert_eq!(
            decode_event(with(r#","api_version":null"#).as_bytes()),
            Err(DecodeError::NullApiVersion)
        );
        assert_eq!(
            decode_event(with("").as_bytes()),
            Err(DecodeError::NullApiVersion)
        );
        assert_eq!(
            decode_event(with(r#","api_version":"latest""#).as_bytes()),
            Err(DecodeError::BadApiVersion("latest".into()))
        );
        assert_eq!(
            decode_event(with(r#","api_version":"2025-3-31.basil""#).as_bytes()),
            Err(DecodeError::BadApiVersion("2025-3-31.basil".into()))
        );
        assert_eq!(
            decode_event(with(r#","api_version":"ééééé-basil""#).as_bytes()),
            Err(DecodeError::BadApiVersion("ééééé-basil".into()))
        );
        assert_eq!(
            decode_event(with(r#","api_version":20250331"#).as_bytes()),
            Err(DecodeError::BadApiVersion("20250331".into()))
        );
    }

    #[test]
    fn an_event_without_a_data_object_is_missing_its_object() {
        let envelope = r#"{"id":"evt_1","object":"event","type":"invoice.paid","created":1,"api_version":"2025-03-31.basil""#;
        for rest in [
            "}",
            r#","data":null}"#,
            r#","data":{}}"#,
            r#","data":{"object":null}}"#,
            r#","data":{"object":"in_1"}}"#,
            r#","data":[]}"#,
        ] {
            let body = format!("{envelope}{rest}");
            assert_eq!(
                decode_event(body.as_bytes()),
                Err(DecodeError::MissingObject),
                "{body}"
            );
        }
    }

    #[test]
    fn objects_missing_what_their_facts_need_are_bad_objects() {
        let bad = |api: &str, object: &str| match decode_err(api, "x.y", object) {
            DecodeError::BadObject { object, reason } => (object, reason),
            other => panic!("expected BadObject, got {other:?}"),
        };
        let (object, reason) = bad(BASIL, r#"{"id":"in_1","object":"invoice","total":100}"#);
        assert_eq!(
            (object.as_str(), reason.as_str()),
            ("invoice", "missing currency")
        );
        assert_eq!(
            bad(
                BASIL,
                r#"{"id":"ch_1","object":"charge","amount":"2000","currency":"usd"}"#
            )
            .1,
            "non-integer amount"
        );
        assert_eq!(
            bad(
                BASIL,
                r#"{"id":"ch_1","object":"charge","amount":20.5,"currency":"usd"}"#
            )
            .1,
            "non-integer amount"
        );
        assert_eq!(
            bad(BASIL, r#"{"id":"ch_1","object":"charge","currency":"usd"}"#).1,
            "missing amount"
        );
        assert_eq!(
            bad(BASIL, r#"{"object":"charge","amount":1,"currency":"usd"}"#).1,
            "missing id"
        );
        assert_eq!(
            bad(
                BASIL,
                r#"{"id":5,"object":"refund","amount":1,"currency":"usd"}"#
            )
            .1,
            "non-string id"
        );
        assert_eq!(
            bad(BASIL, r#"{"id":"in_1","object":"invoice","currency":5}"#).1,
            "non-string currency"
        );
        assert_eq!(
            bad(
                BASIL,
                r#"{"id":"in_1","object":"invoice","currency":"usd","amount_paid":"0"}"#
            )
            .1,
            "non-integer amount_paid"
        );
        assert_eq!(
            bad(BASIL, r#"{"id":"in_1","object":"invoice","currency":"usd","lines":{"data":[{"amount":1}]}}"#).1,
            "missing lines.data[0].id"
        );
        assert_eq!(
            bad(
                BASIL,
                r#"{"id":"in_1","object":"invoice","currency":"usd","lines":{"data":[{"id":"il_1",
                    "taxes":[{"amount":1},{"amount":"2","tax_behavior":"inclusive"}]}]}}"#
            )
            .1,
            "non-integer lines.data[0].taxes[1].amount"
        );
        assert_eq!(
            bad(BASIL, r#"{"id":"in_1","object":"invoice","currency":"usd","total_taxes":[{"amount":9223372036854775807},{"amount":1}]}"#).1,
            "overflowing total_taxes"
        );
        let (object, reason) = bad(
            BASIL,
            r#"{"id":"inpay_1","object":"invoice_payment","amount_requested":1,"currency":"usd"}"#,
        );
        assert_eq!(
            (object.as_str(), reason.as_str()),
            ("invoice_payment", "missing invoice")
        );
        assert_eq!(
            bad(
                BASIL,
                r#"{"id":"inpay_1","object":"invoice_payment","invoice":"in_1","currency":"usd"}"#
            )
            .1,
            "missing amount_requested"
        );
        assert_eq!(bad(BASIL, r#"{"id":"txn_1","object":"balance_transaction","amount":1,"net":1,"currency":"usd"}"#).1, "missing fee");
        assert_eq!(
            bad(BASIL, r#"{"id":"dp_1","object":"dispute","amount":1}"#).1,
            "missing currency"
        );
        assert_eq!(
            bad(
                BASIL,
                r#"{"id":"pi_1","object":"payment_intent","currency":"usd"}"#
            )
            .1,
            "missing amount"
        );
        assert_eq!(
            bad(
                BASIL,
                r#"{"id":"cn_1","object":"credit_note","currency":"usd"}"#
            )
            .1,
            "missing amount"
        );
        assert_eq!(
            bad(BASIL, r#"{"object":"subscription","status":"active"}"#).1,
            "missing id"
        );
        assert_eq!(
            bad(
                BASIL,
                r#"{"id":"sub_1","object":"subscription","items":{"data":[{"price":"price_1"}]}}"#
            )
            .1,
            "missing items.data[0].id"
        );
        assert_eq!(
            bad(BASIL, r#"{"id":"x"}"#),
            ("unknown".to_string(), "missing object".to_string())
        );
        let err = decode_err(BASIL, "x.y", r#"{"id":"in_1","object":"invoice"}"#);
        assert_eq!(err.reason(), "bad_object");
        assert_eq!(err.to_string(), "invoice: missing currency");
    }

    #[test]
    fn unknown_objects_and_upcoming_invoices_without_id_are_other() {
        assert_eq!(
            decode_object(
                BASIL,
                "payout.paid",
                r#"{"id":"po_1","object":"payout","amount":"whatever"}"#
            ),
            StripeObject::Other {
                object: "payout".into(),
                id: Some("po_1".into())
            }
        );
        assert_eq!(
            decode_object(
                BASIL,
                "balance.available",
                r#"{"object":"balance","available":[]}"#
            ),
            StripeObject::Other {
                object: "balance".into(),
                id: None
            }
        );
        assert_eq!(
            decode_object(
                BASIL,
                "invoice.upcoming",
                r#"{"object":"invoice","currency":"usd","amount_due":2000,"billing_reason":"upcoming",
                    "lines":{"data":[{"id":"il_tmp_1","amount":2000}]}}"#
            ),
            StripeObject::Other {
                object: "invoice".into(),
                id: None
            }
        );
        assert_eq!(
            decode_object(
                BASIL,
                "invoice.upcoming",
                r#"{"id":null,"object":"invoice"}"#
            ),
            StripeObject::Other {
                object: "invoice".into(),
                id: None
            }
        );
    }

    #[test]
    fn wrong_typed_optional_fields_are_ignored_without_panicking() {
        let invoice = expect!(
            decode_object(
                BASIL,
                "invoice.updated",
                r#"{"id":"in_odd","object":"invoice","currency":"usd","customer":42,"number":[],"status":{},
                    "parent":"sub_1","status_transitions":[1,2],"period_start":"yesterday","due_date":1.5,
                    "lines":"nope","total_taxes":{"amount":5},"paid_out_of_band":"yes",
                    "discounts":7,"unknown_field":{"deep":[{"x":null}]}}"#
            ),
            Invoice
        );
        assert_eq!(
            (invoice.customer, invoice.number, invoice.status),
            (None, None, None)
        );
        assert_eq!(
            (invoice.period_start, invoice.due_date, invoice.paid_at),
            (None, None, None)
        );
        assert!(invoice.lines.is_empty());
        assert_eq!(invoice.total_tax, 0);

        let sub = expect!(
            decode_object(
                ACACIA,
                "customer.subscription.updated",
                r#"{"id":"sub_odd","object":"subscription","status":5,"items":{"data":"x"},"discounts":"di_1",
                    "discount":7,"current_period_start":"now","cancel_at_period_end":"true","pause_collection":"x"}"#
            ),
            Subscription
        );
        assert_eq!(sub.status, "");
        assert!(sub.items.is_empty() && sub.discounts.is_empty() && !sub.cancel_at_period_end);
        assert_eq!(sub.pause_collection, None);

        let charge = expect!(
            decode_object(
                ACACIA,
                "charge.succeeded",
                r#"{"id":"ch_odd","object":"charge","amount":1,"currency":"usd","refunds":{"data":[1,"re_1",null]},
                    "balance_transaction":{"id":"txn_partial"},"created":"today"}"#
            ),
            Charge
        );
        assert!(charge.refunds.is_empty());
        assert_eq!(charge.balance_transaction.as_deref(), Some("txn_partial"));
        assert_eq!(
            charge.balance_transaction_object, None,
            "an incomplete expansion is not a balance transaction"
        );
        assert_eq!(charge.created, 1769907602);
    }
}
