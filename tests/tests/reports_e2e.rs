//! Reports end to end: signed Stripe events posted to the real binary, reconciled into the
//! embedded warehouse and into ClickHouse, and the reports read back through the admin
//! listener and `revline report`. Every expected figure is worked out by hand below; both
//! warehouses must print the same bytes, whatever the order and duplication of delivery.

use std::time::Duration;

use e2e::clickhouse::{url as clickhouse_url, TestDb};
use e2e::stripe::{
    event, on_both_warehouses, post_all, report, reporting, shuffled_with_duplicates, t,
    wait_for_report,
};
use e2e::{minor, run_to_exit, wait_until_async, Options, Revline};
use serde_json::{json, Value};

/// Reports are as of this instant (`REVLINE_REPORT_NOW`).
const NOW: &str = "2026-03-10T12:00:00Z";
const TOKEN: &str = "admin-token-0123456789";

/// A basil invoice without lines of note: totals, tax, discount and status transitions.
#[allow(clippy::too_many_arguments)]
fn invoice(
    id: &str,
    currency: &str,
    status: &str,
    subtotal: i64,
    tax: i64,
    discount: i64,
    paid: i64,
    created: &str,
    transitions: Value,
) -> Value {
    let total = subtotal - discount + tax;
    json!({
        "id": id, "object": "invoice", "customer": "cus_1", "currency": currency, "status": status,
        "billing_reason": "manual", "collection_method": "charge_automatically",
        "number": format!("N-{id}"), "created": t(created),
        "subtotal": subtotal, "total": total, "total_excluding_tax": total - tax,
        "amount_due": total, "amount_paid": paid, "amount_remaining": total - paid,
        "total_discount_amounts": if discount > 0 { json!([{"amount": discount, "discount": "di_1"}]) } else { json!([]) },
        "total_taxes": if tax > 0 { json!([{"amount": tax, "tax_behavior": "exclusive"}]) } else { json!([]) },
        "status_transitions": transitions,
        "lines": {"object": "list", "has_more": false, "data": []}
    })
}

fn transitions(finalized: &str, paid: Option<&str>, voided: Option<&str>) -> Value {
    json!({
        "finalized_at": t(finalized), "paid_at": paid.map(t), "voided_at": voided.map(t),
        "marked_uncollectible_at": null
    })
}

fn charge(id: &str, pi: &str, currency: &str, amount: i64, created: &str, bt: Value) -> Value {
    json!({
        "id": id, "object": "charge", "amount": amount, "amount_captured": amount,
        "amount_refunded": 0, "currency": currency, "customer": "cus_1", "payment_intent": pi,
        "status": "succeeded", "captured": true, "paid": true, "refunded": false,
        "disputed": false, "balance_transaction": bt, "created": t(created)
    })
}

fn invoice_payment(
    id: &str,
    invoice: &str,
    pi: &str,
    currency: &str,
    amount: i64,
    at: &str,
) -> Value {
    json!({
        "id": id, "object": "invoice_payment", "invoice": invoice, "amount_requested": amount,
        "amount_paid": amount, "currency": currency, "is_default": true, "status": "paid",
        "created": t(at), "livemode": true,
        "status_transitions": {"paid_at": t(at), "canceled_at": null},
        "payment": {"type": "payment_intent", "payment_intent": pi}
    })
}

/// January to March 2026 in usd and jpy (see `EXPECTED_REVENUE` for the figures).
fn history() -> Vec<Vec<u8>> {
    let in_1 = |status, paid, paid_at| {
        invoice(
            "in_1",
            "usd",
            status,
            10500,
            1000,
            500,
            paid,
            "2026-01-10T00:00:00Z",
            transitions("2026-01-10T00:00:00Z", paid_at, None),
        )
    };
    vec![
        event(
            "evt_1",
            "invoice.finalized",
            "2026-01-10T00:00:00Z",
            in_1("open", 0, None),
        ),
        event(
            "evt_2",
            "invoice.paid",
            "2026-01-11T00:00:00Z",
            in_1("paid", 11000, Some("2026-01-11T00:00:00Z")),
        ),
        event(
            "evt_3",
            "charge.succeeded",
            "2026-01-11T00:00:00Z",
            charge(
                "ch_1",
                "pi_1",
                "usd",
                11000,
                "2026-01-11T00:00:00Z",
                json!({
                    "id": "txn_1", "object": "balance_transaction", "amount": 11000, "fee": 349, "net": 10651,
                    "currency": "usd", "type": "charge", "reporting_category": "charge", "status": "pending",
                    "created": t("2026-01-11T00:00:00Z"), "available_on": t("2026-01-13T00:00:00Z"), "source": "ch_1"
                }),
            ),
        ),
        event(
            "evt_4",
            "invoice_payment.paid",
            "2026-01-11T00:00:00Z",
            invoice_payment(
                "inpay_1",
                "in_1",
                "pi_1",
                "usd",
                11000,
                "2026-01-11T00:00:00Z",
            ),
        ),
        event(
            "evt_5",
            "invoice.finalized",
            "2026-01-20T00:00:00Z",
            invoice(
                "in_2",
                "usd",
                "open",
                5000,
                0,
                0,
                0,
                "2026-01-20T00:00:00Z",
                transitions("2026-01-20T00:00:00Z", None, None),
            ),
        ),
        event(
            "evt_6",
            "invoice.voided",
            "2026-02-03T00:00:00Z",
            invoice(
                "in_2",
                "usd",
                "void",
                5000,
                0,
                0,
                0,
                "2026-01-20T00:00:00Z",
                transitions("2026-01-20T00:00:00Z", None, Some("2026-02-03T00:00:00Z")),
            ),
        ),
        event(
            "evt_7",
            "invoice.finalized",
            "2026-02-01T00:00:00Z",
            invoice(
                "in_3",
                "jpy",
                "open",
                3000,
                0,
                0,
                0,
                "2026-02-01T00:00:00Z",
                transitions("2026-02-01T00:00:00Z", None, None),
            ),
        ),
        event(
            "evt_8",
            "invoice.paid",
            "2026-02-02T00:00:00Z",
            invoice(
                "in_3",
                "jpy",
                "paid",
                3000,
                0,
                0,
                3000,
                "2026-02-01T00:00:00Z",
                transitions("2026-02-01T00:00:00Z", Some("2026-02-02T00:00:00Z"), None),
            ),
        ),
        event(
            "evt_9",
            "charge.succeeded",
            "2026-02-02T00:00:00Z",
            charge(
                "ch_3",
                "pi_3",
                "jpy",
                3000,
                "2026-02-02T00:00:00Z",
                Value::Null,
            ),
        ),
        event(
            "evt_10",
            "invoice_payment.paid",
            "2026-02-02T00:00:00Z",
            invoice_payment(
                "inpay_3",
                "in_3",
                "pi_3",
                "jpy",
                3000,
                "2026-02-02T00:00:00Z",
            ),
        ),
        event(
            "evt_11",
            "charge.succeeded",
            "2026-02-15T00:00:00Z",
            charge(
                "ch_2",
                "pi_2",
                "usd",
                2500,
                "2026-02-15T00:00:00Z",
                json!("txn_2"),
            ),
        ),
        event(
            "evt_12",
            "refund.created",
            "2026-02-20T00:00:00Z",
            json!({
                "id": "re_1", "object": "refund", "amount": 1000, "currency": "usd", "charge": "ch_2",
                "payment_intent": "pi_2", "status": "succeeded", "reason": "requested_by_customer",
                "balance_transaction": "txn_re_1", "created": t("2026-02-20T00:00:00Z")
            }),
        ),
        event(
            "evt_13",
            "charge.dispute.closed",
            "2026-03-05T00:00:00Z",
            json!({
                "id": "dp_1", "object": "dispute", "amount": 2500, "currency": "usd", "charge": "ch_2",
                "payment_intent": "pi_2", "reason": "fraudulent", "status": "lost",
                "is_charge_refundable": false, "balance_transactions": [], "created": t("2026-02-25T00:00:00Z")
            }),
        ),
    ]
}

/// January usd: invoiced (110.00 − 10.00 tax) + 50.00 = 150.00, 5.00 of discounts;
/// collected: in_1's 110.00 (ch_1 pays in_1, so it is not counted again); fees: txn_1's
/// 3.49; net 110.00 − 3.49 = 106.51. February usd: the void of in_2 reverses 50.00;
/// collected: ch_2 (no invoice) 25.00; refunded 10.00; fees empty (txn_2 unknown), so net
/// 25.00 − 10.00 = 15.00. March usd: dp_1 lost, 25.00; no charge, fees 0.00; net −25.00.
/// jpy: in_3, finalized at exactly 00:00:00 on 1 February, is February's ¥3000, paid in
/// February; ch_3 names no balance transaction, so February's jpy fees are empty.
const EXPECTED_REVENUE: &str = "\
month,currency,invoiced,tax,discounts,collected,refunded,disputed,fees,net
2026-01,jpy,0,0,0,0,0,0,0,0
2026-01,usd,150.00,10.00,5.00,110.00,0.00,0.00,3.49,106.51
2026-02,jpy,3000,0,0,3000,0,0,,3000
2026-02,usd,-50.00,0.00,0.00,25.00,10.00,0.00,,15.00
2026-03,jpy,0,0,0,0,0,0,0,0
2026-03,usd,0.00,0.00,0.00,0.00,0.00,25.00,0.00,-25.00
";

const EXPECTED_INVOICES: &str = "\
invoice_id,number,customer_id,subscription_id,status,currency,subtotal,discounts,tax,total,amount_paid,amount_remaining,created_utc,finalized_utc,due_utc,paid_utc,voided_utc
in_1,N-in_1,cus_1,,paid,usd,105.00,5.00,10.00,110.00,110.00,0.00,2026-01-10T00:00:00Z,2026-01-10T00:00:00Z,,2026-01-11T00:00:00Z,
in_2,N-in_2,cus_1,,void,usd,50.00,0.00,0.00,50.00,0.00,50.00,2026-01-20T00:00:00Z,2026-01-20T00:00:00Z,,,2026-02-03T00:00:00Z
in_3,N-in_3,cus_1,,paid,jpy,3000,0,0,3000,3000,0,2026-02-01T00:00:00Z,2026-02-01T00:00:00Z,,2026-02-02T00:00:00Z,
";

/// One customer's lifetime as of NOW: usd collected in_1's 110.00 (ch_1 pays it) and ch_2's
/// 25.00, first on 11 January; re_1 (10.00) and dp_1 (25.00) reach cus_1 through ch_2, whose
/// customer they name no more than the charge's; net 135.00 − 10.00 − 25.00 = 100.00. jpy:
/// in_3's ¥3000, paid 2 February. No subscriptions, so no MRR.
const EXPECTED_CUSTOMERS: &str = "\
customer_id,currency,first_paid_utc,mrr_now,collected,refunded,disputed,net
cus_1,jpy,2026-02-02T00:00:00Z,0,3000,0,0,3000
cus_1,usd,2026-01-11T00:00:00Z,0.00,135.00,10.00,25.00,100.00
";

fn serve(extra: &[(&str, &str)]) -> Options {
    reporting(NOW, extra)
}

#[tokio::test]
async fn both_warehouses_print_the_same_reports_whatever_the_delivery_order() {
    // The embedded warehouse gets the events in order, ClickHouse shuffled and duplicated.
    let (embedded, clickhouse, db) = on_both_warehouses(NOW, &history()).await;
    for app in [&embedded, &clickhouse] {
        wait_for_report(app, "/reports/revenue?format=csv", EXPECTED_REVENUE).await;
    }
    for path in [
        "/reports/revenue?format=csv",
        "/reports/revenue?format=json",
        "/reports/revenue?currency=jpy&from=2026-02&to=2026-02&format=csv",
        "/reports/invoices?format=csv",
        "/reports/invoices",
        "/reports/invoices?from=2026-02&format=json",
        "/reports/customers?format=csv",
        "/reports/customers?to=2026-01&format=json",
    ] {
        let (s1, a) = report(&embedded, path).await;
        let (s2, b) = report(&clickhouse, path).await;
        assert_eq!((s1, s2), (200, 200), "{path}");
        assert_eq!(a, b, "{path}: the two warehouses differ");
    }
    let (_, invoices) = report(&embedded, "/reports/invoices?format=csv").await;
    assert_eq!(invoices, EXPECTED_INVOICES);
    let (_, customers) = report(&embedded, "/reports/customers?format=csv").await;
    assert_eq!(customers, EXPECTED_CUSTOMERS);
    // As of January's end: only in_1 was paid, nothing refunded or lost yet.
    let (_, january) = report(&clickhouse, "/reports/customers?to=2026-01&format=csv").await;
    assert_eq!(
        january.lines().skip(1).collect::<Vec<_>>(),
        ["cus_1,usd,2026-01-11T00:00:00Z,0.00,110.00,0.00,0.00,110.00"]
    );
    let resp = clickhouse.admin_get("/reports/revenue").await;
    let warning = resp.headers()["revline-warning"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(warning.starts_with("fees are empty"), "{warning}");
    let json = resp.text().await.unwrap();
    let rows: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[1]["net"], "106.51", "JSON is the default over HTTP");
    assert_eq!(
        rows[2]["fees"],
        Value::Null,
        "an unknown fee is null, not 0"
    );

    // The CLI prints the same bytes as the admin listener, from either warehouse.
    for (app, env) in [
        (&embedded, vec![]),
        (
            &clickhouse,
            vec![
                ("REVLINE_CLICKHOUSE_URL", db.url.clone()),
                ("REVLINE_CLICKHOUSE_DATABASE", db.name.clone()),
            ],
        ),
    ] {
        let mut opts = Options {
            data_dir: Some(app.data_dir.clone()),
            ..Options::default()
        }
        .env("REVLINE_REPORT_NOW", NOW)
        .arg("report")
        .arg("revenue");
        for (k, v) in env {
            opts = opts.env(k, v);
        }
        let (status, stdout, stderr) = run_to_exit(opts);
        assert!(status.success(), "{stderr}");
        assert_eq!(
            stdout, EXPECTED_REVENUE,
            "CSV when stdout is not a terminal"
        );
        assert!(
            stderr.contains("warning: fees are empty"),
            "warnings go to stderr: {stderr}"
        );
    }
}

#[tokio::test]
async fn the_admin_listener_refuses_bad_parameters_and_the_webhook_listener_serves_no_reports() {
    let app = Revline::start(serve(&[])).await;
    let cases = [
        ("/reports/revenue?from=2026-13", 400, "from"),
        ("/reports/revenue?to=26-01", 400, "to"),
        ("/reports/revenue?from=2026-04&to=2026-03", 400, "from"),
        ("/reports/revenue?currency=xyz", 400, "currency"),
        ("/reports/revenue?format=xml", 400, "format"),
        ("/reports/revenue?account=cus_1", 400, "account"),
        ("/reports/revenue?livemode=maybe", 400, "livemode"),
        ("/reports/revenue?month=2026-01", 400, "month"),
        ("/reports/customers?from=2026-01", 400, "from"),
        ("/reports/arr", 404, "report"),
    ];
    for (path, status, parameter) in cases {
        let (got, body) = report(&app, path).await;
        assert_eq!(got, status, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].is_string(), "{path}: {body}");
        let message = v["message"].as_str().unwrap();
        let names_it = message.starts_with(&format!("{parameter}: "))
            || (parameter == "report" && message.starts_with("unknown report"));
        assert!(names_it, "{path}: the message names {parameter}: {message}");
    }
    // Every report answers on the admin listener, none on the webhook listener.
    for name in [
        "mrr",
        "mrr-movements",
        "revenue",
        "invoices",
        "customers",
        "revenue-recognition",
        "ar-aging",
    ] {
        let (status, _) = report(&app, &format!("/reports/{name}")).await;
        assert_eq!(status, 200, "{name}");
        let public = app.get(&format!("/reports/{name}")).await;
        assert_eq!(public.status(), 404, "{name} on the webhook listener");
    }
    assert_eq!(
        app.get("/metrics").await.status(),
        404,
        "metrics moved to the admin listener"
    );
    assert_eq!(app.admin_get("/metrics").await.status(), 200);
    assert_eq!(app.admin_get("/webhooks/stripe").await.status(), 404);

    // The CLI refuses the same input with exit status 2 and the parameter's name.
    for (args, parameter) in [
        (vec!["report", "revenue", "--from", "2026-13"], "from"),
        (vec!["report", "revenue", "--currency", "xyz"], "currency"),
        (vec!["report", "arr"], "report"),
    ] {
        let mut opts = Options::default();
        for a in &args {
            opts = opts.arg(a);
        }
        let (status, _, stderr) = run_to_exit(opts);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(parameter), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_token_guards_the_admin_listener() {
    let app = Revline::start(serve(&[("REVLINE_ADMIN_TOKEN", TOKEN)])).await;
    for path in ["/metrics", "/reports/revenue", "/nope"] {
        let resp = app.admin_get(path).await;
        assert_eq!(resp.status(), 401, "{path} without a token");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let wrong = app
            .http
            .get(app.admin_url(path))
            .bearer_auth("admin-token-0123456788")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path} with a wrong token");
    }
    // 200 once the reconciler has created the tables (503 with Retry-After before).
    let answered = wait_until_async(Duration::from_secs(20), || async {
        let resp = app
            .http
            .get(app.admin_url("/reports/revenue?format=csv"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        if status == 503 {
            let retry_after = resp.headers().contains_key("retry-after");
            let body = resp.text().await.unwrap();
            assert!(retry_after, "503 without Retry-After: {body}");
        }
        status == 200
    })
    .await;
    assert!(answered, "the report never answered 200 with the token");
    assert!(!app.logs().contains(TOKEN), "the token is never logged");

    // Off loopback, no token: refused at start, naming the setting.
    let (status, _, stderr) =
        run_to_exit(Options::default().env("REVLINE_ADMIN_LISTEN", "0.0.0.0:0"));
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("REVLINE_ADMIN_TOKEN"), "{stderr}");
}

// ---------------------------------------------------------------------------------------
// MRR

/// A basil subscription snapshot: `items` are `(item id, product, price object fields)`.
struct Sub<'a> {
    id: &'a str,
    customer: &'a str,
    status: &'a str,
    currency: &'a str,
    items: Vec<Value>,
    discounts: Vec<Value>,
    pause: bool,
    cancel_at_period_end: bool,
    ended_at: Option<&'a str>,
}

impl Sub<'_> {
    fn json(&self) -> Value {
        json!({
            "id": self.id, "object": "subscription", "customer": self.customer,
            "status": self.status, "currency": self.currency,
            "cancel_at_period_end": self.cancel_at_period_end,
            "canceled_at": self.ended_at.map(t), "ended_at": self.ended_at.map(t),
            "pause_collection": if self.pause { json!({"behavior": "void"}) } else { Value::Null },
            "discounts": self.discounts,
            "items": {"object": "list", "data": self.items},
        })
    }
}

/// A licensed item with a per-unit price.
fn item(
    id: &str,
    product: &str,
    currency: &str,
    unit: i64,
    quantity: i64,
    interval: &str,
) -> Value {
    json!({
        "id": id, "object": "subscription_item", "quantity": quantity, "discounts": [],
        "price": {"id": format!("price_{product}_{interval}_{unit}"), "product": product,
            "unit_amount": unit, "unit_amount_decimal": unit.to_string(), "currency": currency,
            "billing_scheme": "per_unit",
            "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"}}
    })
}

fn coupon(
    id: &str,
    percent: Option<i64>,
    amount: Option<(i64, &str)>,
    duration: &str,
    products: &[&str],
) -> Value {
    let mut c = json!({
        "id": id, "object": "coupon", "percent_off": percent,
        "amount_off": amount.map(|a| a.0), "currency": amount.map(|a| a.1),
        "duration": duration, "duration_in_months": null,
    });
    if !products.is_empty() {
        c["applies_to"] = json!({"products": products});
    }
    c
}

fn discount(
    id: &str,
    customer: &str,
    subscription: Option<&str>,
    start: &str,
    coupon: Value,
) -> Value {
    json!({
        "id": id, "object": "discount", "customer": customer, "subscription": subscription,
        "subscription_item": null, "invoice": null, "start": t(start), "end": null, "coupon": coupon
    })
}

fn sub_event(id: &str, kind: &str, at: &str, sub: &Sub<'_>) -> Vec<u8> {
    event(id, &format!("customer.subscription.{kind}"), at, sub.json())
}

/// Four months of subscriptions in usd, eur and jpy; the figures are in `EXPECTED_MRR`.
fn mrr_history() -> Vec<Vec<u8>> {
    let a = |seats, unit, interval: &str| Sub {
        id: "sub_a",
        customer: "cus_a",
        status: "active",
        currency: "usd",
        items: vec![item("si_a", "prod_seat", "usd", unit, seats, interval)],
        discounts: vec![],
        pause: false,
        cancel_at_period_end: false,
        ended_at: None,
    };
    let b = |discounts: Vec<Value>| Sub {
        id: "sub_b",
        customer: "cus_b",
        status: "active",
        currency: "usd",
        items: vec![item("si_b", "prod_weekly", "usd", 1000, 1, "week")],
        discounts,
        pause: false,
        cancel_at_period_end: false,
        ended_at: None,
    };
    let tiered = json!({
        "id": "si_c", "object": "subscription_item", "quantity": 12, "discounts": [],
        "price": {"id": "price_tiered", "product": "prod_api", "unit_amount": null,
            "currency": "eur", "billing_scheme": "tiered", "tiers_mode": "graduated",
            "tiers": [{"up_to": 10, "unit_amount": 500, "flat_amount": null},
                      {"up_to": null, "unit_amount": 400, "flat_amount": 1000}],
            "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}}
    });
    let c = |pause| Sub {
        id: "sub_c",
        customer: "cus_c",
        status: "active",
        currency: "eur",
        items: vec![tiered.clone()],
        discounts: vec![],
        pause,
        cancel_at_period_end: false,
        ended_at: None,
    };
    let half_off_y = discount(
        "di_e",
        "cus_e",
        Some("sub_e"),
        "2026-01-08T00:00:00Z",
        coupon("HALF_Y", Some(50), None, "forever", &["prod_y"]),
    );
    let e = |status, cancel_at_period_end, ended_at| Sub {
        id: "sub_e",
        customer: "cus_e",
        status,
        currency: "usd",
        items: vec![
            item("si_x", "prod_x", "usd", 3000, 1, "month"),
            item("si_y", "prod_y", "usd", 2000, 1, "month"),
        ],
        discounts: vec![half_off_y.clone()],
        pause: false,
        cancel_at_period_end,
        ended_at,
    };
    let f = |status| Sub {
        id: "sub_f",
        customer: "cus_f",
        status,
        currency: "usd",
        items: vec![item("si_f", "prod_seat", "usd", 1500, 1, "month")],
        discounts: vec![],
        pause: false,
        cancel_at_period_end: false,
        ended_at: None,
    };
    vec![
        // cus_a: 1 seat at 20.00, 3 seats from 20 January, an annual 600.00 from 10 March;
        // its once coupon takes nothing off MRR.
        sub_event(
            "evt_a1",
            "created",
            "2026-01-05T00:00:00Z",
            &a(1, 2000, "month"),
        ),
        event(
            "evt_a_once",
            "customer.discount.created",
            "2026-01-05T00:00:00Z",
            discount(
                "di_a",
                "cus_a",
                None,
                "2026-01-05T00:00:00Z",
                coupon("ONCE50", Some(50), None, "once", &[]),
            ),
        ),
        sub_event(
            "evt_a2",
            "updated",
            "2026-01-20T00:00:00Z",
            &a(3, 2000, "month"),
        ),
        sub_event(
            "evt_a3",
            "updated",
            "2026-03-10T00:00:00Z",
            &a(1, 60000, "year"),
        ),
        // cus_b: 10.00 a week; a forever 25 % coupon on the subscription from 1 February.
        sub_event("evt_b1", "created", "2026-01-10T00:00:00Z", &b(vec![])),
        event(
            "evt_b_di",
            "customer.discount.created",
            "2026-02-01T00:00:00Z",
            discount(
                "di_b",
                "cus_b",
                Some("sub_b"),
                "2026-02-01T00:00:00Z",
                coupon("QUARTER", Some(25), None, "forever", &[]),
            ),
        ),
        sub_event(
            "evt_b2",
            "updated",
            "2026-02-01T00:00:00Z",
            &b(vec![json!("di_b")]),
        ),
        // cus_c (eur): 12 units on graduated tiers; paused 15 February to 15 March.
        sub_event("evt_c1", "created", "2026-01-15T00:00:00Z", &c(false)),
        sub_event("evt_c2", "updated", "2026-02-15T00:00:00Z", &c(true)),
        sub_event("evt_c3", "updated", "2026-03-15T00:00:00Z", &c(false)),
        // cus_d (jpy): ¥3000 from midnight of 1 February, less a forever ¥500 customer coupon.
        event(
            "evt_d_di",
            "customer.discount.created",
            "2026-02-01T00:00:00Z",
            discount(
                "di_d",
                "cus_d",
                None,
                "2026-02-01T00:00:00Z",
                coupon("YEN500", None, Some((500, "jpy")), "forever", &[]),
            ),
        ),
        sub_event(
            "evt_d1",
            "created",
            "2026-02-01T00:00:00Z",
            &Sub {
                id: "sub_d",
                customer: "cus_d",
                status: "active",
                currency: "jpy",
                items: vec![item("si_d", "prod_seat_jp", "jpy", 3000, 1, "month")],
                discounts: vec![],
                pause: false,
                cancel_at_period_end: false,
                ended_at: None,
            },
        ),
        // cus_e: 30.00 + 20.00 with half off prod_y only; cancels at period end (8 March, the
        // event a day later); back on 2 April with a new 30.00 subscription.
        sub_event(
            "evt_e1",
            "created",
            "2026-01-08T00:00:00Z",
            &e("active", false, None),
        ),
        sub_event(
            "evt_e2",
            "updated",
            "2026-02-08T00:00:00Z",
            &e("active", true, None),
        ),
        sub_event(
            "evt_e3",
            "deleted",
            "2026-03-09T12:00:00Z",
            &e("canceled", true, Some("2026-03-08T00:00:00Z")),
        ),
        sub_event(
            "evt_e4",
            "created",
            "2026-04-02T00:00:00Z",
            &Sub {
                id: "sub_e2",
                customer: "cus_e",
                status: "active",
                currency: "usd",
                items: vec![item("si_e2", "prod_x", "usd", 3000, 1, "month")],
                discounts: vec![],
                pause: false,
                cancel_at_period_end: false,
                ended_at: None,
            },
        ),
        // cus_f: a trial from 12 January counts 0; 15.00 once active on 12 February.
        sub_event("evt_f1", "created", "2026-01-12T00:00:00Z", &f("trialing")),
        sub_event("evt_f2", "updated", "2026-02-12T00:00:00Z", &f("active")),
    ]
}

/// usd: a 20.00 → 60.00 (expansion 40.00) → 50.00 (annual 600.00 / 12: contraction
/// 10.00); b 10.00 × 52 / 12 = 43.333… → 43.33, then × 0.75 = 32.50 (contraction 10.83);
/// e 30.00 + 20.00 × 0.5 = 40.00, churned on 8 March (ended_at, not the event's 9 March),
/// reactivated at 30.00 in April; f 15.00 new in February (the trial counted 0).
/// January: new 20.00 + 43.33 + 40.00 = 103.33, end 60.00 + 43.33 + 40.00 = 143.33.
/// February: 143.33 + 15.00 − 10.83 = 147.50. March: 147.50 − 10.00 − 40.00 = 97.50.
/// April: 97.50 + 30.00 = 127.50. eur: 10 × 5.00 + 2 × 4.00 + 10.00 = 68.00, churned by
/// the pause, reactivated in March. jpy: ¥3000 − ¥500 = ¥2500 from February.
const EXPECTED_MRR: &str = "\
month,currency,mrr_start,new,expansion,contraction,churn,reactivation,mrr_end,arr_end,subscribers_end
2026-01,eur,0.00,68.00,0.00,0.00,0.00,0.00,68.00,816.00,1
2026-01,jpy,0,0,0,0,0,0,0,0,0
2026-01,usd,0.00,103.33,40.00,0.00,0.00,0.00,143.33,1719.96,3
2026-02,eur,68.00,0.00,0.00,0.00,68.00,0.00,0.00,0.00,0
2026-02,jpy,0,2500,0,0,0,0,2500,30000,1
2026-02,usd,143.33,15.00,0.00,10.83,0.00,0.00,147.50,1770.00,4
2026-03,eur,0.00,0.00,0.00,0.00,0.00,68.00,68.00,816.00,1
2026-03,jpy,2500,0,0,0,0,0,2500,30000,1
2026-03,usd,147.50,0.00,0.00,10.00,40.00,0.00,97.50,1170.00,3
2026-04,eur,68.00,0.00,0.00,0.00,0.00,0.00,68.00,816.00,1
2026-04,jpy,2500,0,0,0,0,0,2500,30000,1
2026-04,usd,97.50,0.00,0.00,0.00,0.00,30.00,127.50,1530.00,4
";

const EXPECTED_MOVEMENTS: &str = "\
effective_at_utc,customer_id,currency,movement,mrr_before,mrr_after,delta,subscription_id,event_id
2026-01-05T00:00:00Z,cus_a,usd,new,0.00,20.00,20.00,sub_a,evt_a1
2026-01-08T00:00:00Z,cus_e,usd,new,0.00,40.00,40.00,sub_e,evt_e1
2026-01-10T00:00:00Z,cus_b,usd,new,0.00,43.33,43.33,sub_b,evt_b1
2026-01-15T00:00:00Z,cus_c,eur,new,0.00,68.00,68.00,sub_c,evt_c1
2026-01-20T00:00:00Z,cus_a,usd,expansion,20.00,60.00,40.00,sub_a,evt_a2
2026-02-01T00:00:00Z,cus_b,usd,contraction,43.33,32.50,-10.83,sub_b,evt_b2
2026-02-01T00:00:00Z,cus_d,jpy,new,0,2500,2500,sub_d,evt_d1
2026-02-12T00:00:00Z,cus_f,usd,new,0.00,15.00,15.00,sub_f,evt_f2
2026-02-15T00:00:00Z,cus_c,eur,churn,68.00,0.00,-68.00,sub_c,evt_c2
2026-03-08T00:00:00Z,cus_e,usd,churn,40.00,0.00,-40.00,sub_e,evt_e3
2026-03-10T00:00:00Z,cus_a,usd,contraction,60.00,50.00,-10.00,sub_a,evt_a3
2026-03-15T00:00:00Z,cus_c,eur,reactivation,0.00,68.00,68.00,sub_c,evt_c3
2026-04-02T00:00:00Z,cus_e,usd,reactivation,0.00,30.00,30.00,sub_e2,evt_e4
";

/// Each customer's MRR on 10 April, as the movements above leave it; nobody paid anything
/// (the history holds no invoices or charges).
const EXPECTED_MRR_CUSTOMERS: &str = "\
customer_id,currency,first_paid_utc,mrr_now,collected,refunded,disputed,net
cus_a,usd,,50.00,0.00,0.00,0.00,0.00
cus_b,usd,,32.50,0.00,0.00,0.00,0.00
cus_c,eur,,68.00,0.00,0.00,0.00,0.00
cus_d,jpy,,2500,0,0,0,0
cus_e,usd,,30.00,0.00,0.00,0.00,0.00
cus_f,usd,,15.00,0.00,0.00,0.00,0.00
";

#[tokio::test]
async fn mrr_and_its_movements_on_both_warehouses() {
    let events = mrr_history();
    let now = [("REVLINE_REPORT_NOW", "2026-04-10T00:00:00Z")];
    let embedded = Revline::start(serve(&now)).await;
    post_all(&embedded, &events).await;
    let db = TestDb::new(&clickhouse_url().await);
    let clickhouse = Revline::start(serve(&[
        now[0],
        ("REVLINE_CLICKHOUSE_URL", db.url.as_str()),
        ("REVLINE_CLICKHOUSE_DATABASE", db.name.as_str()),
    ]))
    .await;
    post_all(&clickhouse, &shuffled_with_duplicates(&events)).await;

    for app in [&embedded, &clickhouse] {
        wait_for_report(app, "/reports/mrr?format=csv", EXPECTED_MRR).await;
        let (status, movements) = report(app, "/reports/mrr-movements?format=csv").await;
        assert_eq!(status, 200);
        assert_eq!(movements, EXPECTED_MOVEMENTS);
        let (_, customers) = report(app, "/reports/customers?format=csv").await;
        assert_eq!(customers, EXPECTED_MRR_CUSTOMERS);
        // At February's end cus_c's subscription was paused: its MRR then was 0.
        let (_, february) =
            report(app, "/reports/customers?to=2026-02&currency=eur&format=csv").await;
        assert_eq!(
            february.lines().skip(1).collect::<Vec<_>>(),
            ["cus_c,eur,,0.00,0.00,0.00,0.00,0.00"]
        );
    }
    // mrr_end = mrr_start + new + reactivation + expansion − contraction − churn, on every
    // row, and each month starts where the one before ended.
    let mut previous_end: std::collections::HashMap<String, i64> = Default::default();
    for line in EXPECTED_MRR.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let [start, new, expansion, contraction, churn, reactivation, end] =
            [2, 3, 4, 5, 6, 7, 8].map(|i| minor(f[i]));
        assert_eq!(
            end,
            start + new + reactivation + expansion - contraction - churn,
            "{line}"
        );
        assert_eq!(minor(f[9]), 12 * end, "{line}");
        assert_eq!(
            previous_end.insert(f[1].to_owned(), end).unwrap_or(0),
            start,
            "{line}"
        );
    }
    for path in [
        "/reports/mrr?format=json",
        "/reports/mrr?currency=usd&from=2026-02&to=2026-03&format=csv",
        "/reports/mrr-movements?from=2026-03&format=json",
    ] {
        let (s1, a) = report(&embedded, path).await;
        let (s2, b) = report(&clickhouse, path).await;
        assert_eq!((s1, s2), (200, 200), "{path}");
        assert_eq!(a, b, "{path}: the two warehouses differ");
    }
    let (_, march) = report(
        &embedded,
        "/reports/mrr-movements?from=2026-03&to=2026-03&format=csv",
    )
    .await;
    assert_eq!(
        march.lines().count(),
        1 + 3,
        "header and March's three changes:\n{march}"
    );
}
