//! Money movement: charges, payment intents, invoice payments, refunds, disputes and
//! balance transactions.
//!
//! Balance transactions also arrive embedded (a charge's expanded `balance_transaction`, a
//! dispute's `balance_transactions[]`) and, outside events, from the API
//! ([`decode_balance_transaction`]); every path keeps `exchange_rate` as the number's exact
//! text by re-reading it from the body.

use super::tree::Value;
use serde_json::value::RawValue;

use super::fields::{bool_at, get, i64_at, id_at, list_at, raw_at, raw_items, str_at, Fields};
use super::{DecodeError, Decoded, Scope};
use crate::stripe::{
    BalanceTransaction, Charge, Dispute, Generation, InvoicePayment, PaymentIntent, Refund,
};

/// `data.object` only: an expanded `balance_transaction` is re-read from the body's text.
pub(super) fn charge(o: &Value<'_>, scope: &Scope<'_>) -> Decoded<Charge> {
    let f = Fields::new(o, "charge");
    let balance_transaction_object = match get(o, &["balance_transaction"]) {
        Some(bt @ Value::Object(_)) => {
            let raw = scope
                .object_raw()
                .and_then(|r| raw_at(r, &["balance_transaction"]));
            balance_transaction(bt, raw, scope).ok()
        }
        _ => None,
    };
    // Before 2022-11-15 the charge embeds its refunds (a list object; older still, an array).
    let refunds = list_at(o, &["refunds"])
        .iter()
        .filter_map(|r| refund(r, scope).ok())
        .collect();
    Ok(Charge {
        id: f.id()?,
        amount: f.req_unsigned(&["amount"])?,
        amount_captured: f.unsigned_or_zero(&["amount_captured"])?,
        amount_refunded: f.unsigned_or_zero(&["amount_refunded"])?,
        currency: f.currency()?,
        customer: id_at(o, &["customer"]),
        payment_intent: id_at(o, &["payment_intent"]),
        invoice: if scope.is_acacia() {
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
        created: f.created(scope),
        refunds,
    })
}

pub(super) fn payment_intent(o: &Value<'_>, scope: &Scope<'_>) -> Decoded<PaymentIntent> {
    let f = Fields::new(o, "payment_intent");
    Ok(PaymentIntent {
        id: f.id()?,
        amount: f.req_unsigned(&["amount"])?,
        amount_received: f.unsigned_or_zero(&["amount_received"])?,
        currency: f.currency()?,
        customer: id_at(o, &["customer"]),
        status: str_at(o, &["status"]).unwrap_or_default(),
        latest_charge: id_at(o, &["latest_charge"]),
        invoice: if scope.is_acacia() {
            id_at(o, &["invoice"])
        } else {
            None
        },
        created: f.created(scope),
    })
}

pub(super) fn invoice_payment(o: &Value<'_>, scope: &Scope<'_>) -> Decoded<InvoicePayment> {
    let f = Fields::new(o, "invoice_payment");
    Ok(InvoicePayment {
        id: f.id()?,
        invoice: id_at(o, &["invoice"]).ok_or_else(|| f.bad("missing", &["invoice"]))?,
        amount_requested: f.req_unsigned(&["amount_requested"])?,
        amount_paid: f.unsigned(&["amount_paid"])?,
        currency: f.currency()?,
        is_default: bool_at(o, &["is_default"]) == Some(true),
        status: str_at(o, &["status"]).unwrap_or_default(),
        paid_at: i64_at(o, &["status_transitions", "paid_at"]),
        canceled_at: i64_at(o, &["status_transitions", "canceled_at"]),
        payment_type: str_at(o, &["payment", "type"]),
        payment_intent: id_at(o, &["payment", "payment_intent"]),
        charge: id_at(o, &["payment", "charge"]),
        created: f.created(scope),
    })
}

pub(super) fn refund(o: &Value<'_>, scope: &Scope<'_>) -> Decoded<Refund> {
    let f = Fields::new(o, "refund");
    Ok(Refund {
        id: f.id()?,
        amount: f.req_unsigned(&["amount"])?,
        currency: f.currency()?,
        charge: id_at(o, &["charge"]),
        payment_intent: id_at(o, &["payment_intent"]),
        customer: id_at(o, &["customer"]),
        status: str_at(o, &["status"]).unwrap_or_default(),
        reason: str_at(o, &["reason"]),
        failure_reason: str_at(o, &["failure_reason"]),
        balance_transaction: id_at(o, &["balance_transaction"]),
        failure_balance_transaction: id_at(o, &["failure_balance_transaction"]),
        created: f.created(scope),
    })
}

/// `data.object` only: expanded `balance_transactions[]` are re-read from the body's text.
pub(super) fn dispute(o: &Value<'_>, scope: &Scope<'_>) -> Decoded<Dispute> {
    let f = Fields::new(o, "dispute");
    let entries = list_at(o, &["balance_transactions"]);
    let raws = if entries.iter().any(Value::is_object) {
        scope
            .object_raw()
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
        .filter_map(|(i, bt)| balance_transaction(bt, raws.get(i).copied(), scope).ok())
        .collect();
    Ok(Dispute {
        id: f.id()?,
        amount: f.req_unsigned(&["amount"])?,
        currency: f.currency()?,
        charge: id_at(o, &["charge"]),
        payment_intent: id_at(o, &["payment_intent"]),
        reason: str_at(o, &["reason"]),
        status: str_at(o, &["status"]).unwrap_or_default(),
        is_charge_refundable: bool_at(o, &["is_charge_refundable"]) == Some(true),
        balance_transactions,
        created: f.created(scope),
    })
}

/// Decodes a balance transaction as `GET /v1/balance_transactions/{id}` returns it (API
/// objects, unlike events, carry no api_version: balance transactions are the same in
/// every generation).
pub fn decode_balance_transaction(body: &[u8]) -> Result<BalanceTransaction, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let value: Value<'_> =
        serde_json::from_str(text).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(DecodeError::NotJson("not a JSON object".into()));
    }
    let raw: Option<&RawValue> = serde_json::from_str(text).ok();
    let scope = Scope {
        generation: Generation::Basil,
        event_created: 0,
        body: text,
    };
    balance_transaction(&value, raw, &scope)
}

/// `raw` is the same object's text, for the exact `exchange_rate`.
pub(super) fn balance_transaction(
    o: &Value<'_>,
    raw: Option<&RawValue>,
    scope: &Scope<'_>,
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
        created: f.created(scope),
        available_on: i64_at(o, &["available_on"]),
    })
}

/// The number exactly as written (`1.234`, `0.8500`); `None` for `null` or a non-number.
fn exchange_rate(o: &Value<'_>, raw: Option<&RawValue>) -> Option<String> {
    let Value::Number(rate) = get(o, &["exchange_rate"])? else {
        return None;
    };
    let text = raw
        .and_then(|r| raw_at(r, &["exchange_rate"]))
        .map(|r| r.get().trim().to_string());
    // Without the raw text (never expected) the shortest round-trip form is the best left.
    Some(text.unwrap_or_else(|| rate.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::test_support::{decode_object, fixture, ACACIA, BASIL};
    use super::*;
    use crate::stripe::decode_event;

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
}
