//! The objects that book no money themselves: customers (country, currency, balance) and
//! the attribution sources, checkout sessions and quotes. None of them changed shape
//! between acacia and basil.

use super::tree::Value;

use super::fields::{bool_at, i64_at, id_at, lower, str_at, Fields};
use super::{Decoded, Scope};
use crate::stripe::{CheckoutSession, Customer, Quote};

pub(super) fn customer(o: &Value<'_>) -> Decoded<Customer> {
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

pub(super) fn checkout_session(o: &Value<'_>, scope: &Scope<'_>) -> Decoded<CheckoutSession> {
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
        created: f.created(scope),
    })
}

pub(super) fn quote(o: &Value<'_>) -> Decoded<Quote> {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{decode_object, BASIL};
    use super::*;

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
}
