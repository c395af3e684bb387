//! Coupons and discounts: what MRR needs to take forever discounts off.
//!
//! A discount names its coupon as `coupon` (an object, up to 2025-08-27.basil) or as
//! `source.coupon` (2025-09-30.clover and later, an id or an object). Subscriptions carry
//! discounts as the old single `discount` object or as `discounts[]` (ids, or objects when
//! expanded), and so do their items; the order of `discounts[]` is the order they apply in.
//! `percent_off` is a JSON number: it is kept as the shortest decimal text that reads back
//! as the same number, which is the text Stripe wrote (at most two decimals).

use super::tree::Value;

use super::fields::{bool_at, get, i64_at, id_at, list_at, lower, str_at, Fields};
use super::Decoded;
use crate::stripe::{Coupon, Discount};

/// A decimal written as a JSON number or string, as exact text (`12.5`, `"0.25"`).
pub(super) fn decimal_text(v: &Value<'_>, path: &[&str]) -> Option<String> {
    match get(v, path)? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s)
            if !s.is_empty()
                && s.trim_start_matches('-')
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.')
                && s.matches('.').count() <= 1 =>
        {
            Some(s.to_string())
        }
        _ => None,
    }
}

pub(super) fn coupon(o: &Value<'_>) -> Decoded<Coupon> {
    let f = Fields::new(o, "coupon");
    Ok(Coupon {
        id: f.id()?,
        percent_off: decimal_text(o, &["percent_off"]),
        amount_off: f.money(&["amount_off"])?,
        currency: lower(str_at(o, &["currency"])),
        duration: str_at(o, &["duration"]),
        duration_in_months: i64_at(o, &["duration_in_months"]),
        applies_to_products: list_at(o, &["applies_to", "products"])
            .iter()
            .filter_map(|p| id_at(p, &[]))
            .collect(),
        deleted: bool_at(o, &["deleted"]) == Some(true),
    })
}

pub(super) fn discount(o: &Value<'_>) -> Decoded<Discount> {
    let f = Fields::new(o, "discount");
    let coupon_value = get(o, &["coupon"])
        .filter(|c| c.is_object())
        .or_else(|| get(o, &["source", "coupon"]).filter(|c| c.is_object()));
    let coupon = coupon_value.map(coupon).transpose()?;
    Ok(Discount {
        id: f.id()?,
        coupon_id: id_at(o, &["coupon"]).or_else(|| id_at(o, &["source", "coupon"])),
        coupon,
        customer: id_at(o, &["customer"]),
        subscription: id_at(o, &["subscription"]),
        subscription_item: id_at(o, &["subscription_item"]),
        invoice: id_at(o, &["invoice"]),
        start: i64_at(o, &["start"]),
        end: i64_at(o, &["end"]),
    })
}

/// The discounts at `list` (`discounts[]`: ids or objects) followed by the single object
/// at `single` (older versions), in order and without repeats: their ids, and those given
/// as objects decoded (an id listed in `discounts[]` may come as an object only under
/// `discount`).
pub(super) fn discounts_at(
    o: &Value<'_>,
    list: &[&str],
    single: Option<&[&str]>,
) -> Decoded<(Vec<String>, Vec<Discount>)> {
    let mut ids: Vec<String> = Vec::new();
    let mut objects = Vec::new();
    let single = single.and_then(|path| get(o, path));
    for entry in list_at(o, list).iter().chain(single) {
        let Some(id) = id_at(entry, &[]) else {
            continue;
        };
        let is_object =
            entry.is_object() && entry.get("object").and_then(Value::as_str) == Some("discount");
        if is_object && !objects.iter().any(|d: &Discount| d.id == id) {
            objects.push(discount(entry)?);
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok((ids, objects))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{decode_object, BASIL};
    use crate::stripe::Coupon;

    const CLOVER: &str = "2025-09-30.clover";

    #[test]
    fn a_customer_discount_with_its_coupon_object() {
        let d = expect!(
            decode_object(
                BASIL,
                "customer.discount.created",
                r#"{"id":"di_1","object":"discount","customer":"cus_1","subscription":"sub_1",
                    "subscription_item":null,"invoice":null,"start":1769904000,"end":null,
                    "coupon":{"id":"SAVE12","object":"coupon","percent_off":12.5,"amount_off":null,
                      "currency":null,"duration":"forever","duration_in_months":null,
                      "applies_to":{"products":["prod_a","prod_b"]}}}"#,
            ),
            Discount
        );
        assert_eq!(d.id, "di_1");
        assert_eq!(d.coupon_id.as_deref(), Some("SAVE12"));
        assert_eq!(
            (d.customer.as_deref(), d.subscription.as_deref()),
            (Some("cus_1"), Some("sub_1"))
        );
        assert_eq!((d.start, d.end), (Some(1769904000), None));
        assert_eq!(
            d.coupon,
            Some(Coupon {
                id: "SAVE12".into(),
                percent_off: Some("12.5".into()),
                amount_off: None,
                currency: None,
                duration: Some("forever".into()),
                duration_in_months: None,
                applies_to_products: vec!["prod_a".into(), "prod_b".into()],
                deleted: false,
            })
        );
    }

    #[test]
    fn clover_names_the_coupon_under_source_as_an_id_or_an_object() {
        let by_id = expect!(
            decode_object(
                CLOVER,
                "customer.discount.created",
                r#"{"id":"di_2","object":"discount","customer":"cus_1","start":1769904000,
                    "source":{"type":"coupon","coupon":"TENOFF"}}"#,
            ),
            Discount
        );
        assert_eq!(by_id.coupon_id.as_deref(), Some("TENOFF"));
        assert_eq!(by_id.coupon, None, "terms come from coupon.* events");
        let by_object = expect!(
            decode_object(
                CLOVER,
                "customer.discount.updated",
                r#"{"id":"di_3","object":"discount","customer":"cus_1",
                    "source":{"type":"coupon","coupon":{"id":"TENOFF","object":"coupon",
                      "amount_off":1000,"currency":"USD","duration":"repeating","duration_in_months":3}}}"#,
            ),
            Discount
        );
        let coupon = by_object.coupon.unwrap();
        assert_eq!(
            (coupon.amount_off, coupon.currency.as_deref()),
            (Some(1000), Some("usd"))
        );
        assert_eq!(coupon.duration_in_months, Some(3));
        assert!(coupon.applies_to_products.is_empty());
    }

    #[test]
    fn coupons_and_their_deletion() {
        let c = expect!(
            decode_object(
                BASIL,
                "coupon.deleted",
                r#"{"id":"OLD","object":"coupon","percent_off":20,"duration":"once","deleted":true}"#,
            ),
            Coupon
        );
        assert_eq!(c.percent_off.as_deref(), Some("20"));
        assert!(c.deleted);
        let broken = super::super::test_support::decode_err(
            BASIL,
            "coupon.created",
            r#"{"id":"BAD","object":"coupon","amount_off":"ten","duration":"once"}"#,
        );
        assert_eq!(
            broken.reason(),
            "bad_object",
            "a non-integer amount_off is refused"
        );
    }

    #[test]
    fn subscription_discounts_keep_their_order_and_objects() {
        let sub = expect!(
            decode_object(
                BASIL,
                "customer.subscription.updated",
                r#"{"id":"sub_1","object":"subscription","customer":"cus_1","status":"active",
                    "discounts":["di_b", {"id":"di_a","object":"discount","customer":"cus_1",
                        "subscription":"sub_1","coupon":{"id":"HALF","object":"coupon","percent_off":50,
                        "duration":"forever"}}],
                    "discount":{"id":"di_b","object":"discount","coupon":{"id":"X","object":"coupon",
                        "percent_off":5,"duration":"forever"}},
                    "items":{"object":"list","data":[{"id":"si_1","object":"subscription_item","quantity":2,
                      "discounts":["di_item"],
                      "price":{"id":"price_1","product":"prod_a","unit_amount":null,
                        "unit_amount_decimal":"1250.5","currency":"usd","billing_scheme":"tiered",
                        "tiers_mode":"graduated",
                        "tiers":[{"up_to":10,"unit_amount_decimal":"500","flat_amount_decimal":null},
                                 {"up_to":null,"unit_amount":400,"flat_amount":1000}],
                        "transform_quantity":{"divide_by":5,"round":"up"},
                        "recurring":{"interval":"month","interval_count":1,"usage_type":"licensed"}}}]}}"#,
            ),
            Subscription
        );
        assert_eq!(
            sub.discounts,
            ["di_b", "di_a"],
            "discounts[] order, no repeat"
        );
        let objects: Vec<&str> = sub.discount_objects.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(objects, ["di_a", "di_b"], "objects in the order met");
        let item = &sub.items[0];
        assert_eq!(item.discounts, ["di_item"]);
        assert_eq!(item.unit_amount_decimal.as_deref(), Some("1250.5"));
        assert_eq!(
            (item.billing_scheme.as_deref(), item.tiers_mode.as_deref()),
            (Some("tiered"), Some("graduated"))
        );
        assert_eq!(
            item.tiers.as_deref(),
            Some(
                r#"[{"up_to":10,"unit":"500","flat":null},{"up_to":null,"unit":"400","flat":"1000"}]"#
            )
        );
        assert_eq!(
            (item.transform_divide_by, item.transform_round.as_deref()),
            (Some(5), Some("up"))
        );
    }
}
