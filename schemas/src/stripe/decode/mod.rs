//! Decoding an event body into [`DecodedEvent`].
//!
//! Approach: the body is parsed once into a JSON tree ([`tree::Value`], which borrows its
//! strings from the body where it can) and every field is read
//! through small navigation helpers ([`get`](fields::get), [`str_at`](fields::str_at),
//! [`id_at`](fields::id_at), [`i64_at`](fields::i64_at), [`bool_at`](fields::bool_at),
//! [`list_at`](fields::list_at)) that answer `None` for an absent, `null` or wrong-typed
//! value, so no payload shape can panic. On top of them, [`Fields`](fields::Fields) reads one
//! object and turns what its fact cannot do without into [`DecodeError::BadObject`] with a
//! short reason naming the field (`missing currency`, `non-integer amount`,
//! `missing lines.data[0].id`).
//!
//! - **Envelope** first: `object` (`v2.core.event` is a thin event), `id`, `type`, `created`,
//!   then `api_version`, which picks the [`Generation`]; only then `data.object`, dispatched on
//!   its own `object` field.
//! - **Generations**: a field whose path moved in basil reads the generation's path first and
//!   the other one as a fallback ([`pick`](fields::pick)). Fields basil removed (invoice
//!   `charge`, `payment_intent`, `paid_out_of_band`, top-level `quote`; `charge.invoice`;
//!   `payment_intent.invoice`; line `amount_excluding_tax`) are not read at all for basil, so
//!   they are `None`/`false` there whatever the payload holds.
//! - **Ids** are strings or expanded objects carrying an `id`: [`id_at`](fields::id_at)
//!   accepts both.
//! - **Money** is `i64` only. A required amount that is missing or not an integer is a
//!   `BadObject`; an optional amount defaults (to 0 or `None`) when absent or `null`, but a
//!   present non-integer (a string, a float) is still a `BadObject`: a broken amount is never
//!   silently booked as zero. Non-money optional fields (timestamps, quantities, enums) are
//!   simply `None` when wrong-typed. Currencies are lowercased.
//! - **`exchange_rate`** must keep the JSON number's exact text, which `Value` has already
//!   lost (no `arbitrary_precision`), so the decoders that can meet a balance transaction
//!   re-read that one field from the body through [`RawValue`] ([`raw_at`](fields::raw_at)).
//!
//! `docs/stripe-events.md` describes the two payload generations in prose.
//!
//! Layout, one file per object family so each decoder sits next to its tests: this file holds
//! the error type, the envelope, the dispatch on `data.object.object` and the [`Scope`] every
//! family decoder reads; [`tree`] the JSON tree; [`fields`] the navigation helpers; [`invoice`], [`subscription`],
//! [`payments`], [`payout`], [`credit_note`], [`discount`] and [`other`] one family each. The tests of each family are
//! at the bottom of its file; their shared helpers are in `test_support`.

#[cfg(test)]
#[macro_use]
mod test_support;

mod credit_note;
mod discount;
mod fields;
mod invoice;
mod other;
mod payments;
mod payout;
mod subscription;
mod tree;

use serde_json::value::RawValue;
use tree::Value;

use super::{DecodedEvent, EventMeta, Generation, StripeObject};
use fields::{bool_at, get, i64_at, json_kind, raw_at, str_at, str_ref};

pub use payments::decode_balance_transaction;

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
    let root: Value<'_> =
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
    let scope = Scope {
        generation: meta.generation,
        event_created: meta.created,
        body,
    };
    let object = if meta.event_type == super::fetched::PAYOUT_ITEMS {
        payout::payout_items(&root, object, &scope)?
    } else if meta.event_type == super::fetched::INVOICE_LINES {
        invoice::lines_page(&root, object, &scope)?
    } else {
        decode_object(object, &scope)?
    };
    Ok(DecodedEvent { meta, object })
}

/// What every object decoder needs from the event around it: the generation that picks
/// the field paths, the event's `created` and the body.
struct Scope<'a> {
    generation: Generation,
    /// The event's `created`, for objects that carry none.
    event_created: i64,
    /// The whole body, re-read only for exact number text ([`Scope::object_raw`]).
    body: &'a str,
}

impl<'a> Scope<'a> {
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

fn envelope(root: &Value<'_>) -> Decoded<EventMeta> {
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
        Some(Value::String(v)) => v.to_string(),
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

fn decode_object(o: &Value<'_>, scope: &Scope<'_>) -> Decoded<StripeObject> {
    let Some(kind) = str_ref(o, &["object"]) else {
        return Err(DecodeError::BadObject {
            object: "unknown".into(),
            reason: "missing object".into(),
        });
    };
    Ok(match kind {
        "invoice" => return invoice::invoice(o, scope),
        "subscription" => StripeObject::Subscription(subscription::subscription(o, scope)?),
        "charge" => StripeObject::Charge(payments::charge(o, scope)?),
        "payment_intent" => StripeObject::PaymentIntent(payments::payment_intent(o, scope)?),
        "invoice_payment" => StripeObject::InvoicePayment(payments::invoice_payment(o, scope)?),
        "refund" => StripeObject::Refund(payments::refund(o, scope)?),
        "dispute" => StripeObject::Dispute(payments::dispute(o, scope)?),
        "credit_note" => StripeObject::CreditNote(credit_note::credit_note(o, scope)?),
        "customer" => StripeObject::Customer(other::customer(o)?),
        "balance_transaction" => StripeObject::BalanceTransaction(payments::balance_transaction(
            o,
            scope.object_raw(),
            scope,
        )?),
        "checkout.session" => StripeObject::CheckoutSession(other::checkout_session(o, scope)?),
        "quote" => StripeObject::Quote(other::quote(o)?),
        "discount" => StripeObject::Discount(discount::discount(o)?),
        "coupon" => StripeObject::Coupon(discount::coupon(o)?),
        "payout" => StripeObject::Payout(payout::payout(o, scope)?),
        other => StripeObject::Other {
            object: other.to_string(),
            id: str_at(o, &["id"]),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::test_support::{decode_object, fixture, BASIL};
    use super::*;

    #[test]
    fn the_envelope_gives_livemode_and_the_connected_account() {
        let body = br#"{"id":"evt_c","object":"event","api_version":"2024-06-20","created":1700000000,"livemode":true,
            "account":"acct_123","type":"transfer.created","data":{"object":{"id":"tr_1","object":"transfer","amount":5}}}"#;
        let decoded = decode_event(body).unwrap();
        assert_eq!(
            decoded.meta,
            EventMeta {
                id: "evt_c".into(),
                event_type: "transfer.created".into(),
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
                object: "transfer".into(),
                id: Some("tr_1".into())
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
    fn unknown_objects_and_upcoming_invoices_without_id_are_other() {
        assert_eq!(
            decode_object(
                BASIL,
                "transfer.created",
                r#"{"id":"tr_1","object":"transfer","amount":"whatever"}"#
            ),
            StripeObject::Other {
                object: "transfer".into(),
                id: Some("tr_1".into())
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
}
