//! Subscriptions and their items.
//!
//! The item is where MRR comes from: price, product, quantity and interval, read from `price`
//! or else the legacy `plan`. The current period moved from the subscription (acacia) to each
//! item (basil), where items of one subscription may have different periods.

use super::tree::Value;

use super::discount::{self, decimal_text};
use super::fields::{bool_at, get, i64_at, id_at, list_at, lower, pick, str_at, Fields};
use super::{Decoded, Scope};
use crate::stripe::{Generation, Subscription, SubscriptionItem};

pub(super) fn subscription(o: &Value<'_>, scope: &Scope<'_>) -> Decoded<Subscription> {
    let f = Fields::new(o, "subscription");
    let items = list_at(o, &["items"])
        .iter()
        .enumerate()
        .map(|(i, item)| {
            subscription_item(
                &f.child(item, format!("items.data[{i}]")),
                o,
                scope.generation,
            )
        })
        .collect::<Decoded<Vec<_>>>()?;
    let (discounts, mut discount_objects) =
        discount::discounts_at(o, &["discounts"], Some(&["discount"]))?;
    for item in list_at(o, &["items"]) {
        let (_, objects) = discount::discounts_at(item, &["discounts"], None)?;
        discount_objects.extend(objects);
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
        discount_objects,
    })
}

/// One of `items.data[]`; `subscription` is the object around it (old-generation periods).
fn subscription_item(
    f: &Fields<'_>,
    subscription: &Value<'_>,
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
        unit_amount_decimal: decimal_text(item, &["price", "unit_amount_decimal"])
            .or_else(|| decimal_text(item, &["plan", "amount_decimal"])),
        billing_scheme: str_at(item, &["price", "billing_scheme"])
            .or_else(|| str_at(item, &["plan", "billing_scheme"])),
        tiers_mode: str_at(item, &["price", "tiers_mode"])
            .or_else(|| str_at(item, &["plan", "tiers_mode"])),
        tiers: tiers(item),
        transform_divide_by: i64_at(item, &["price", "transform_quantity", "divide_by"])
            .or_else(|| i64_at(item, &["plan", "transform_usage", "divide_by"])),
        transform_round: str_at(item, &["price", "transform_quantity", "round"])
            .or_else(|| str_at(item, &["plan", "transform_usage", "round"])),
        discounts: discount::discounts_at(item, &["discounts"], None)?.0,
        current_period_start: period("current_period_start"),
        current_period_end: period("current_period_end"),
    })
}

/// `price.tiers` (or `plan.tiers`) when the payload carries them, as canonical JSON text:
/// `up_to` (null for the last tier), `unit` and `flat` as exact decimal text (from the
/// `*_decimal` field, else the integer one).
fn tiers(item: &Value<'_>) -> Option<String> {
    let list = get(item, &["price", "tiers"]).or_else(|| get(item, &["plan", "tiers"]))?;
    let tiers = list.as_array()?;
    let canonical: Vec<String> = tiers
        .iter()
        .map(|t| {
            let text = |decimal: &str, integer: &str| {
                decimal_text(t, &[decimal]).or_else(|| decimal_text(t, &[integer]))
            };
            let json = |v: Option<String>| serde_json::to_string(&v).expect("text serialises");
            format!(
                r#"{{"up_to":{},"unit":{},"flat":{}}}"#,
                serde_json::to_string(&i64_at(t, &["up_to"])).expect("a number serialises"),
                json(text("unit_amount_decimal", "unit_amount")),
                json(text("flat_amount_decimal", "flat_amount")),
            )
        })
        .collect();
    Some(format!("[{}]", canonical.join(",")))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{decode_object, fixture, ACACIA};
    use crate::stripe::{decode_event, SubscriptionItem};

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
                unit_amount_decimal: Some("2000".into()),
                billing_scheme: None,
                tiers_mode: None,
                tiers: None,
                transform_divide_by: None,
                transform_round: None,
                discounts: vec![],
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
}
