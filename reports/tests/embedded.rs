//! Reports on the embedded warehouse, from fact rows written by hand; every expected figure
//! is worked out in the comments next to it. (The end-to-end tests in `tests/` run the same
//! reports from signed events, on both warehouses, through the CLI and the admin listener.)

use std::path::PathBuf;
use std::sync::Arc;

use reports::calendar::parse_utc;
use reports::{Format, Params, ReportError, ReportName, Reports};
use schemas::facts::{FactSet, FactTable};
use warehouse::embedded::Embedded;
use warehouse::Warehouse;

/// A row of `T` from the columns given; every other column is zero, empty text or null
/// (by its declared type).
fn row<T: FactTable>(given: serde_json::Value) -> T {
    let mut object = given.as_object().cloned().expect("an object");
    for (column, ty) in T::COLUMNS.iter().zip(T::TYPES) {
        if object.contains_key(*column) {
            continue;
        }
        let ty = ty.replace(' ', "");
        let default = if ty.starts_with("Option<") {
            serde_json::Value::Null
        } else if ty == "String" {
            serde_json::json!("")
        } else {
            serde_json::json!(0)
        };
        object.insert((*column).to_owned(), default);
    }
    serde_json::from_value(serde_json::Value::Object(object)).expect("a valid row")
}

/// Unix seconds of `YYYY-MM-DDTHH:MM:SSZ`.
fn t(text: &str) -> i64 {
    parse_utc(text).expect("an instant")
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn warehouse_with(facts: FactSet) -> (Arc<Embedded>, TempDir) {
    let dir = std::env::temp_dir().join(format!(
        "revline-reports-{}-{}",
        std::process::id(),
        next_suffix()
    ));
    let w = Embedded::open(&dir).unwrap();
    w.migrate().await.unwrap();
    w.write(Arc::new(facts)).await.unwrap();
    (Arc::new(w), TempDir(dir))
}

/// A per-call suffix so tests in one process get their own directory.
fn next_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// Live mode, platform account unless overridden.
fn live(mut value: serde_json::Value) -> serde_json::Value {
    let object = value.as_object_mut().unwrap();
    object.entry("livemode").or_insert(serde_json::json!(1));
    object.entry("version").or_insert(serde_json::json!(1));
    value
}

/// The revenue scenario: usd and jpy, January to March 2026, plus rows that must not count
/// (test mode, a Connect account, a failed refund, a won dispute).
fn revenue_facts() -> FactSet {
    let mut f = FactSet::default();
    f.events.push(row(live(
        serde_json::json!({"id": "evt_live", "endpoint": "default", "payload": "{}"}),
    )));
    f.invoices.extend([
        // Finalized in January: 110.00 with 10.00 tax and 5.00 discount; paid in January.
        row(live(
            serde_json::json!({"id": "in_1", "currency": "usd", "number": "A-1", "status": "paid",
            "customer_id": "cus_1", "subscription_id": "sub_1",
            "subtotal": 10500, "total": 11000, "total_tax": 1000, "total_discount": 500,
            "amount_paid": 11000, "amount_remaining": 0,
            "created_at": t("2026-01-10T00:00:00Z"), "finalized_at": t("2026-01-10T00:00:00Z"),
            "paid_at": t("2026-01-11T00:00:00Z")}),
        )),
        // Finalized in January (50.00), voided in February: a reversal in February.
        row(live(
            serde_json::json!({"id": "in_2", "currency": "usd", "status": "void",
            "subtotal": 5000, "total": 5000, "amount_remaining": 5000,
            "created_at": t("2026-01-20T00:00:00Z"), "finalized_at": t("2026-01-20T00:00:00Z"),
            "voided_at": t("2026-02-03T00:00:00Z")}),
        )),
        // Finalized at exactly midnight of 1 February: February. ¥3000, paid in February.
        row(live(
            serde_json::json!({"id": "in_3", "currency": "jpy", "status": "paid",
            "subtotal": 3000, "total": 3000, "amount_paid": 3000,
            "created_at": t("2026-02-01T00:00:00Z"), "finalized_at": t("2026-02-01T00:00:00Z"),
            "paid_at": t("2026-02-02T00:00:00Z")}),
        )),
        // Not counted by default: test mode, and a Connect account's.
        row(
            serde_json::json!({"id": "in_test", "livemode": 0, "version": 1, "currency": "usd",
            "total": 99900, "created_at": t("2026-01-05T00:00:00Z"),
            "finalized_at": t("2026-01-05T00:00:00Z")}),
        ),
        row(live(
            serde_json::json!({"id": "in_acct", "account": "acct_1", "currency": "usd",
            "total": 70000, "created_at": t("2026-01-06T00:00:00Z"),
            "finalized_at": t("2026-01-06T00:00:00Z")}),
        )),
    ]);
    f.payments.extend([
        // Pays in_1: its money is counted through the invoice, not again here.
        row(live(
            serde_json::json!({"id": "ch_1", "kind": "charge", "invoice_id": "in_1",
            "amount": 11000, "amount_captured": 11000, "currency": "usd", "status": "succeeded",
            "balance_transaction_id": "txn_1", "created_at": t("2026-01-11T00:00:00Z")}),
        )),
        // No invoice: collected in February by its own date; its fee is not known yet.
        row(live(
            serde_json::json!({"id": "ch_2", "kind": "charge", "amount": 2500,
            "amount_captured": 2500, "currency": "usd", "status": "succeeded",
            "balance_transaction_id": "txn_2", "created_at": t("2026-02-15T00:00:00Z")}),
        )),
        // Pays in_3; no balance transaction named at all: February's jpy fees unknown.
        row(live(
            serde_json::json!({"id": "ch_3", "kind": "charge", "invoice_id": "in_3",
            "amount": 3000, "amount_captured": 3000, "currency": "jpy", "status": "succeeded",
            "created_at": t("2026-02-02T00:00:00Z")}),
        )),
        // The invoice payment of in_1 (newer API shape): never money of its own.
        row(live(
            serde_json::json!({"id": "inpay_1", "kind": "invoice_payment", "invoice_id": "in_1",
            "charge_id": "ch_1", "amount": 11000, "amount_captured": 11000, "currency": "usd",
            "status": "paid", "created_at": t("2026-01-11T00:00:00Z")}),
        )),
        // Failed: no money.
        row(live(
            serde_json::json!({"id": "ch_4", "kind": "charge", "amount": 777,
            "currency": "usd", "status": "failed", "created_at": t("2026-02-16T00:00:00Z")}),
        )),
    ]);
    f.balance_transactions.push(row(live(
        serde_json::json!({"id": "txn_1", "kind": "charge",
        "amount": 11000, "fee": 349, "net": 10651, "currency": "usd",
        "created_at": t("2026-01-11T00:00:00Z")}),
    )));
    f.refunds.extend([
        row(live(
            serde_json::json!({"id": "re_1", "amount": 1000, "currency": "usd",
            "status": "succeeded", "created_at": t("2026-02-20T00:00:00Z")}),
        )),
        row(live(
            serde_json::json!({"id": "re_2", "amount": 500, "currency": "usd",
            "status": "failed", "created_at": t("2026-02-21T00:00:00Z")}),
        )),
    ]);
    f.disputes.extend([
        row(live(
            serde_json::json!({"id": "dp_1", "amount": 2500, "currency": "usd",
            "status": "lost", "outcome": "lost", "created_at": t("2026-02-25T00:00:00Z"),
            "closed_at": t("2026-03-05T00:00:00Z")}),
        )),
        row(live(
            serde_json::json!({"id": "dp_2", "amount": 4000, "currency": "usd",
            "status": "won", "outcome": "won", "created_at": t("2026-02-25T00:00:00Z"),
            "closed_at": t("2026-03-06T00:00:00Z")}),
        )),
    ]);
    f
}

fn reports_at(w: Arc<Embedded>, now: &str) -> Reports<Embedded> {
    let now = t(now);
    Reports::new(w, Arc::new(move || now))
}

fn params(pairs: &[(&str, &str)]) -> Params {
    Params::parse(pairs.iter().copied()).unwrap()
}

#[tokio::test]
async fn revenue_books_every_event_in_its_own_month() {
    let (w, _dir) = warehouse_with(revenue_facts()).await;
    let reports = reports_at(w, "2026-03-10T12:00:00Z");
    let table = reports
        .run(ReportName::Revenue, &params(&[]))
        .await
        .unwrap();
    // January usd: invoiced (110.00 − 10.00) + 50.00 = 150.00; collected = in_1's 110.00
    // (ch_1 pays an invoice); fees 3.49 (txn_1); net 110.00 − 3.49 = 106.51.
    // February usd: in_2's void −50.00; collected ch_2 25.00; refunded re_1 10.00; fees
    // unknown (txn_2 missing) so empty, net 25.00 − 10.00 = 15.00.
    // March usd: dp_1 lost 25.00; no charges, so fees are complete at 0.00; net −25.00.
    // jpy: in_3 at midnight of 1 February is February's; ch_3 names no balance transaction.
    let expected = "\
month,currency,invoiced,tax,discounts,collected,refunded,disputed,fees,net
2026-01,jpy,0,0,0,0,0,0,0,0
2026-01,usd,150.00,10.00,5.00,110.00,0.00,0.00,3.49,106.51
2026-02,jpy,3000,0,0,3000,0,0,,3000
2026-02,usd,-50.00,0.00,0.00,25.00,10.00,0.00,,15.00
2026-03,jpy,0,0,0,0,0,0,0,0
2026-03,usd,0.00,0.00,0.00,0.00,0.00,25.00,0.00,-25.00
";
    assert_eq!(table.render(Format::Csv), expected);
    assert_eq!(table.warnings.len(), 1, "{:?}", table.warnings);

    // One currency, a narrower window.
    let usd_feb = reports
        .run(
            ReportName::Revenue,
            &params(&[("currency", "usd"), ("from", "2026-02"), ("to", "2026-02")]),
        )
        .await
        .unwrap();
    assert_eq!(
        usd_feb.render(Format::Csv),
        "month,currency,invoiced,tax,discounts,collected,refunded,disputed,fees,net\n\
         2026-02,usd,-50.00,0.00,0.00,25.00,10.00,0.00,,15.00\n"
    );

    // Test mode holds only in_test (999.00, January); every account adds in_acct (700.00).
    let test = reports
        .run(
            ReportName::Revenue,
            &params(&[("livemode", "false"), ("to", "2026-01")]),
        )
        .await
        .unwrap();
    assert_eq!(
        test.render(Format::Csv),
        "month,currency,invoiced,tax,discounts,collected,refunded,disputed,fees,net\n\
         2026-01,usd,999.00,0.00,0.00,0.00,0.00,0.00,0.00,0.00\n"
    );
    let all = reports
        .run(
            ReportName::Revenue,
            &params(&[("account", "all"), ("currency", "usd"), ("to", "2026-01")]),
        )
        .await
        .unwrap();
    assert_eq!(all.rows[0][2].as_deref(), Some("850.00"), "150.00 + 700.00");
}

#[tokio::test]
async fn revenue_is_as_of_now() {
    let (w, _dir) = warehouse_with(revenue_facts()).await;
    // On 2 February at noon: in_2 is not voided yet and nothing of February after noon.
    let reports = reports_at(w, "2026-02-02T12:00:00Z");
    let table = reports
        .run(ReportName::Revenue, &params(&[("currency", "usd")]))
        .await
        .unwrap();
    assert_eq!(
        table.render(Format::Csv),
        "month,currency,invoiced,tax,discounts,collected,refunded,disputed,fees,net\n\
         2026-01,usd,150.00,10.00,5.00,110.00,0.00,0.00,3.49,106.51\n\
         2026-02,usd,0.00,0.00,0.00,0.00,0.00,0.00,0.00,0.00\n"
    );
}

#[tokio::test]
async fn the_invoice_register_lists_invoices_by_id_in_major_units() {
    let (w, _dir) = warehouse_with(revenue_facts()).await;
    let reports = reports_at(w, "2026-03-10T12:00:00Z");
    let table = reports
        .run(ReportName::Invoices, &params(&[]))
        .await
        .unwrap();
    let expected = "\
invoice_id,number,customer_id,subscription_id,status,currency,subtotal,discounts,tax,total,amount_paid,amount_remaining,created_utc,finalized_utc,due_utc,paid_utc,voided_utc
in_1,A-1,cus_1,sub_1,paid,usd,105.00,5.00,10.00,110.00,110.00,0.00,2026-01-10T00:00:00Z,2026-01-10T00:00:00Z,,2026-01-11T00:00:00Z,
in_2,,,,void,usd,50.00,0.00,0.00,50.00,0.00,50.00,2026-01-20T00:00:00Z,2026-01-20T00:00:00Z,,,2026-02-03T00:00:00Z
in_3,,,,paid,jpy,3000,0,0,3000,3000,0,2026-02-01T00:00:00Z,2026-02-01T00:00:00Z,,2026-02-02T00:00:00Z,
";
    assert_eq!(table.render(Format::Csv), expected);
    let json: serde_json::Value = serde_json::from_str(&table.render(Format::Json)).expect("JSON");
    assert_eq!(json[0]["total"], "110.00");
    assert_eq!(json[1]["number"], serde_json::Value::Null);
    // Created in February or later: in_3 only.
    let feb = reports
        .run(ReportName::Invoices, &params(&[("from", "2026-02")]))
        .await
        .unwrap();
    assert_eq!(feb.rows.len(), 1);
    assert_eq!(feb.rows[0][0].as_deref(), Some("in_3"));
}

#[tokio::test]
async fn defaults_are_live_mode_if_any_live_event_else_test_mode() {
    let mut facts = revenue_facts();
    facts.events.clear();
    let (w, _dir) = warehouse_with(facts).await;
    let reports = reports_at(w, "2026-03-10T12:00:00Z");
    let scope = reports.scope(&Params::default()).await.unwrap();
    assert!(!scope.livemode, "no live event: test mode");
    assert_eq!(scope.to.to_string(), "2026-03");
    let invoices = reports
        .run(ReportName::Invoices, &Params::default())
        .await
        .unwrap();
    assert_eq!(invoices.rows.len(), 1, "only the test-mode invoice");
}

#[tokio::test]
async fn a_warehouse_without_tables_is_an_error_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("revline-reports-empty-{}", std::process::id()));
    let w = Arc::new(Embedded::open(&dir).unwrap());
    let reports = reports_at(w, "2026-03-10T12:00:00Z");
    let err = reports
        .run(ReportName::Revenue, &params(&[("livemode", "true")]))
        .await
        .unwrap_err();
    assert!(matches!(err, ReportError::Warehouse(_)), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
