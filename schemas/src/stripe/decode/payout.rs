//! Payouts: money leaving the Stripe balance for the bank (the shape did not change between
//! acacia and basil), and the pages of their balance transactions revline fetches
//! ([`crate::stripe::fetched`]).

use super::tree::Value;

use super::fields::{bool_at, i64_at, id_at, list_at, raw_at, raw_items, str_at, Fields};
use super::payments::balance_transaction;
use super::{DecodeError, Decoded, Scope, StripeObject};
use crate::stripe::{Payout, PayoutItems};

pub(super) fn payout(o: &Value<'_>, scope: &Scope<'_>) -> Decoded<Payout> {
    let f = Fields::new(o, "payout");
    Ok(Payout {
        id: f.id()?,
        amount: f.req_money(&["amount"])?,
        currency: f.currency()?,
        arrival_date: i64_at(o, &["arrival_date"]),
        status: str_at(o, &["status"]).unwrap_or_default(),
        method: str_at(o, &["method"]),
        kind: str_at(o, &["type"]),
        failure_code: str_at(o, &["failure_code"]),
        automatic: bool_at(o, &["automatic"]) == Some(true),
        reconciliation_status: str_at(o, &["reconciliation_status"]),
        balance_transaction: id_at(o, &["balance_transaction"]),
        failure_balance_transaction: id_at(o, &["failure_balance_transaction"]),
        created: f.created(scope),
    })
}

/// A fetched page: the payout from `revline.payout`, each listed balance transaction decoded
/// with its exact text (for the exchange rate).
pub(super) fn payout_items(
    root: &Value<'_>,
    list: &Value<'_>,
    scope: &Scope<'_>,
) -> Decoded<StripeObject> {
    let payout = str_at(root, &["revline", "payout"]).ok_or_else(|| DecodeError::BadObject {
        object: "list".into(),
        reason: "missing revline.payout".into(),
    })?;
    let raw = scope
        .object_raw()
        .and_then(|o| raw_at(o, &["data"]))
        .map(raw_items)
        .unwrap_or_default();
    let transactions = list_at(list, &["data"])
        .iter()
        .enumerate()
        .map(|(i, bt)| balance_transaction(bt, raw.get(i).copied(), scope))
        .collect::<Decoded<Vec<_>>>()?;
    Ok(StripeObject::PayoutItems(PayoutItems {
        payout,
        transactions,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{decode_err, decode_object, BASIL};
    use super::super::DecodeError;
    use super::*;

    #[test]
    fn a_payout_gives_its_amount_arrival_and_reconciliation() {
        let payout = expect!(
            decode_object(
                BASIL,
                "payout.reconciliation_completed",
                r#"{"id":"po_1","object":"payout","amount":12345,"currency":"USD","arrival_date":1767225600,
                    "status":"paid","method":"standard","type":"bank_account","failure_code":null,
                    "automatic":true,"reconciliation_status":"completed",
                    "balance_transaction":{"id":"txn_po_1","object":"balance_transaction"},"created":1767139200}"#
            ),
            Payout
        );
        assert_eq!(
            payout,
            Payout {
                id: "po_1".into(),
                amount: 12345,
                currency: "usd".into(),
                arrival_date: Some(1767225600),
                status: "paid".into(),
                method: Some("standard".into()),
                kind: Some("bank_account".into()),
                failure_code: None,
                automatic: true,
                reconciliation_status: Some("completed".into()),
                balance_transaction: Some("txn_po_1".into()),
                failure_balance_transaction: None,
                created: 1767139200,
            }
        );
    }

    #[test]
    fn a_fetched_page_gives_the_payout_and_its_transactions_with_exact_rates() {
        let list = r#"{"object":"list","url":"/v1/balance_transactions","has_more":false,"data":[
            {"id":"txn_1","object":"balance_transaction","amount":10000,"fee":320,"net":9680,
             "currency":"usd","exchange_rate":1.0850,"type":"charge","reporting_category":"charge",
             "source":"ch_1","status":"available","created":1767139200,"available_on":1767225600},
            {"id":"txn_po","object":"balance_transaction","amount":-9680,"fee":0,"net":-9680,
             "currency":"usd","exchange_rate":null,"type":"payout","reporting_category":"payout",
             "source":"po_1","status":"available","created":1767225600}]}"#;
        let body = crate::stripe::fetched::payout_items_event(
            "po_1",
            0,
            Some("acct_1"),
            true,
            1767300000,
            list,
        );
        let decoded = crate::stripe::decode_event(&body).expect("decodes");
        assert_eq!(decoded.meta.id, "rvl_po_1_bt_0");
        assert_eq!(decoded.meta.account.as_deref(), Some("acct_1"));
        let items = expect!(decoded.object, PayoutItems);
        assert_eq!(items.payout, "po_1");
        assert_eq!(items.transactions.len(), 2);
        assert_eq!(
            items.transactions[0].exchange_rate.as_deref(),
            Some("1.0850")
        );
        assert_eq!(items.transactions[1].kind, "payout");
        let envelope = crate::Envelope::parse(&body, None);
        assert_eq!(envelope.event_id, "rvl_po_1_bt_0");
        assert_eq!(envelope.flag, None, "an ordinary event to the log");
    }

    #[test]
    fn a_payout_without_an_integer_amount_is_refused() {
        let err = decode_err(
            BASIL,
            "payout.created",
            r#"{"id":"po_2","object":"payout","amount":"12.00","currency":"usd"}"#,
        );
        assert!(matches!(err, DecodeError::BadObject { .. }), "{err:?}");
    }
}
