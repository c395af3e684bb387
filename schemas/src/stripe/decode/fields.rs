//! Reading fields out of a parsed payload, shared by every family decoder.
//!
//! Two kinds of reads: the lenient helpers ([`get`], [`str_at`], [`id_at`], [`i64_at`],
//! [`bool_at`], [`list_at`], [`raw_at`]) answer `None` (or an empty list) for anything absent,
//! `null` or wrong-typed, so no payload shape can panic; [`Fields`] reads one object strictly
//! where its fact needs a value, and names the offending field in a
//! [`DecodeError::BadObject`]. [`pick`] chooses between a field's acacia and basil paths.

use std::collections::HashMap;

use super::tree::Value;
use serde_json::value::RawValue;

use super::{DecodeError, Decoded, Scope};
use crate::stripe::Generation;

// ----------------------------------------------------------------------------------------
// Strict reads: what a fact needs, as `BadObject` errors

/// One object (or a line / item inside it) whose required fields become `BadObject` errors.
pub(super) struct Fields<'v> {
    pub(super) v: &'v Value<'v>,
    /// The `data.object.object` named in errors.
    object: &'static str,
    /// Where `v` sits inside that object (`lines.data[2].`), prefixed to field names.
    at: String,
}

impl<'v> Fields<'v> {
    pub(super) fn new(v: &'v Value<'v>, object: &'static str) -> Self {
        Self {
            v,
            object,
            at: String::new(),
        }
    }

    /// A nested object (`lines.data[2]`), reported under the same object.
    pub(super) fn child<'c>(&self, v: &'c Value<'c>, at: String) -> Fields<'c> {
        Fields {
            v,
            object: self.object,
            at: format!("{}{at}.", self.at),
        }
    }

    /// `BadObject { reason: "<problem> <field path>" }`.
    pub(super) fn bad(&self, problem: &str, path: &[&str]) -> DecodeError {
        DecodeError::BadObject {
            object: self.object.to_string(),
            reason: format!("{problem} {}{}", self.at, path.join(".")),
        }
    }

    /// A non-empty string.
    fn required_str(&self, path: &[&str]) -> Decoded<String> {
        match get(self.v, path) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.to_string()),
            Some(Value::String(_)) | None => Err(self.bad("missing", path)),
            Some(_) => Err(self.bad("non-string", path)),
        }
    }

    pub(super) fn id(&self) -> Decoded<String> {
        self.required_str(&["id"])
    }

    /// A currency Stripe charges in, lowercased; any other code is a `BadObject` (its
    /// amounts could be neither formatted nor added up).
    pub(super) fn currency(&self) -> Decoded<String> {
        let code = self.required_str(&["currency"])?.to_ascii_lowercase();
        if crate::currency::is_known_currency(&code) {
            Ok(code)
        } else {
            Err(self.bad("unknown", &["currency"]))
        }
    }

    /// An optional amount: `None` when absent or `null`, an error when not an integer.
    pub(super) fn money(&self, path: &[&str]) -> Decoded<Option<i64>> {
        match get(self.v, path) {
            None => Ok(None),
            Some(value) => value
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.bad("non-integer", path)),
        }
    }

    /// An optional amount Stripe never makes negative (what was paid, refunded,
    /// disputed, captured): a negative one is a `BadObject`.
    pub(super) fn unsigned(&self, path: &[&str]) -> Decoded<Option<i64>> {
        match self.money(path)? {
            Some(amount) if amount < 0 => Err(self.bad("negative", path)),
            amount => Ok(amount),
        }
    }

    pub(super) fn unsigned_or_zero(&self, path: &[&str]) -> Decoded<i64> {
        Ok(self.unsigned(path)?.unwrap_or(0))
    }

    pub(super) fn req_unsigned(&self, path: &[&str]) -> Decoded<i64> {
        self.unsigned(path)?
            .ok_or_else(|| self.bad("missing", path))
    }

    pub(super) fn money_or_zero(&self, path: &[&str]) -> Decoded<i64> {
        Ok(self.money(path)?.unwrap_or(0))
    }

    pub(super) fn req_money(&self, path: &[&str]) -> Decoded<i64> {
        self.money(path)?.ok_or_else(|| self.bad("missing", path))
    }

    /// Σ `<path>[].amount` over the entries `keep` accepts; `None` when `<path>` is not an array.
    pub(super) fn sum(
        &self,
        path: &[&str],
        keep: impl Fn(&Value<'_>) -> bool,
    ) -> Decoded<Option<i64>> {
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
    pub(super) fn created(&self, scope: &Scope<'_>) -> i64 {
        i64_at(self.v, &["created"]).unwrap_or(scope.event_created)
    }
}

// ----------------------------------------------------------------------------------------
// Lenient reads: `None` for absent, `null` or wrong-typed values

/// The value at `path` through nested objects; `None` if any step is missing or not an
/// object, or the value is `null`.
pub(super) fn get<'v>(v: &'v Value<'v>, path: &[&str]) -> Option<&'v Value<'v>> {
    let mut current = v;
    for key in path {
        current = current.get(key)?;
    }
    (!current.is_null()).then_some(current)
}

pub(super) fn str_ref<'v>(v: &'v Value<'v>, path: &[&str]) -> Option<&'v str> {
    get(v, path)?.as_str()
}

pub(super) fn str_at(v: &Value<'_>, path: &[&str]) -> Option<String> {
    str_ref(v, path).map(str::to_string)
}

/// An id written either as a string or as an expanded object with a string `id`.
pub(super) fn id_at(v: &Value<'_>, path: &[&str]) -> Option<String> {
    match get(v, path)? {
        Value::String(id) => Some(id.to_string()),
        object @ Value::Object(_) => str_at(object, &["id"]),
        _ => None,
    }
}

pub(super) fn i64_at(v: &Value<'_>, path: &[&str]) -> Option<i64> {
    get(v, path)?.as_i64()
}

pub(super) fn bool_at(v: &Value<'_>, path: &[&str]) -> Option<bool> {
    get(v, path)?.as_bool()
}

/// The entries of a list at `path`: a list object's `data`, or a bare array; empty otherwise.
pub(super) fn list_at<'v>(v: &'v Value<'v>, path: &[&str]) -> &'v [Value<'v>] {
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

pub(super) fn lower(s: Option<String>) -> Option<String> {
    s.map(|s| s.to_ascii_lowercase())
}

/// The generation's own path wins; the other generation's path is the fallback.
pub(super) fn pick<T>(generation: Generation, old: Option<T>, new: Option<T>) -> Option<T> {
    match generation {
        Generation::Acacia => old.or(new),
        Generation::Basil => new.or(old),
    }
}

pub(super) fn json_kind(v: &Value<'_>) -> &'static str {
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
pub(super) fn raw_at<'a>(raw: &'a RawValue, path: &[&str]) -> Option<&'a RawValue> {
    let mut current = raw;
    for key in path {
        let mut fields: HashMap<String, &'a RawValue> = serde_json::from_str(current.get()).ok()?;
        current = fields.remove(*key)?;
    }
    Some(current)
}

/// The raw texts of an array's entries.
pub(super) fn raw_items(raw: &RawValue) -> Vec<&RawValue> {
    serde_json::from_str(raw.get()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{decode_err, decode_object, ACACIA, BASIL};
    use crate::stripe::DecodeError;

    #[test]
    fn negative_amounts_stripe_never_sends_and_unknown_currencies_are_bad_objects() {
        let reason = |object: &str| match decode_err(BASIL, "x.y", object) {
            DecodeError::BadObject { reason, .. } => reason,
            other => panic!("expected BadObject, got {other:?}"),
        };
        let cases = [
            (
                r#"{"id":"in_1","object":"invoice","currency":"usd","amount_paid":-2000}"#,
                "negative amount_paid",
            ),
            (
                r#"{"id":"in_1","object":"invoice","currency":"usd","amount_due":-1}"#,
                "negative amount_due",
            ),
            (
                r#"{"id":"ch_1","object":"charge","amount":-5,"currency":"usd"}"#,
                "negative amount",
            ),
            (
                r#"{"id":"ch_1","object":"charge","amount":5,"amount_refunded":-5,"currency":"usd"}"#,
                "negative amount_refunded",
            ),
            (
                r#"{"id":"re_1","object":"refund","amount":-100,"currency":"usd","charge":"ch_1"}"#,
                "negative amount",
            ),
            (
                r#"{"id":"du_1","object":"dispute","amount":-100,"currency":"usd","charge":"ch_1"}"#,
                "negative amount",
            ),
            (
                r#"{"id":"inpay_1","object":"invoice_payment","invoice":"in_1","amount_requested":5,"amount_paid":-5,"currency":"usd"}"#,
                "negative amount_paid",
            ),
            (
                r#"{"id":"cn_1","object":"credit_note","currency":"usd","amount":-10}"#,
                "negative amount",
            ),
            (
                r#"{"id":"in_1","object":"invoice","currency":"xyz","amount_paid":2000}"#,
                "unknown currency",
            ),
            (
                r#"{"id":"ch_1","object":"charge","amount":5,"currency":"usdollar"}"#,
                "unknown currency",
            ),
        ];
        for (object, expected) in cases {
            assert_eq!(reason(object), expected, "{object}");
        }
        // What may be negative stays accepted: a credit balance, a negative line (a
        // proration credit), an upper-case known currency.
        decode_object(
            BASIL,
            "x.y",
            r#"{"id":"in_1","object":"invoice","currency":"USD","starting_balance":-500,"total":-100,
                "lines":{"data":[{"id":"il_1","amount":-100,"currency":"usd"}]}}"#,
        );
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
