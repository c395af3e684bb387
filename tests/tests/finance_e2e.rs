//! Finance reports end to end: revenue recognition and AR aging on a hand-built history,
//! posted to the real binary, reconciled into the embedded warehouse (in order) and into
//! ClickHouse (shuffled and duplicated), read over the admin listener and the CLI. Every
//! expected figure is worked out by hand below; both warehouses print the same bytes.

use std::time::Duration;

use e2e::clickhouse::{url as clickhouse_url, TestDb};
use e2e::stripe::{event, on_both_warehouses, post_all, report, reporting, t, wait_for_report};
use std::collections::BTreeMap;

use e2e::{minor, run_to_exit, wait_until_async, Options, Revline};
use reports::calendar::format_utc;
use reports::Month;
use serde_json::{json, Value};

/// Reports are as of this instant (`REVLINE_REPORT_NOW`).
const NOW: &str = "2026-04-15T00:00:00Z";

/// A basil invoice line: `amount` less `discount`, over `[start, end)` (equal: no period).
fn line(id: &str, currency: &str, amount: i64, discount: i64, start: &str, end: &str) -> Value {
    json!({
        "id": id, "object": "line_item", "amount": amount, "currency": currency,
        "period": {"start": t(start), "end": t(end)},
        "discount_amounts": if discount > 0 { json!([{"amount": discount, "discount": "di_1"}]) } else { json!([]) },
        "pretax_credit_amounts": [], "taxes": [],
        "parent": {"type": "invoice_item_details", "invoice_item_details": {"invoice_item": format!("ii_{id}")}},
        "pricing": {"type": "price_details", "price_details": {"price": "price_1", "product": "prod_1"}}
    })
}

/// A basil invoice of `lines`; `remaining` is what is still owed.
#[allow(clippy::too_many_arguments)]
fn invoice(
    id: &str,
    currency: &str,
    status: &str,
    total: i64,
    remaining: i64,
    finalized: &str,
    due: Option<&str>,
    paid: Option<&str>,
    voided: Option<&str>,
    lines: Vec<Value>,
    has_more: bool,
) -> Value {
    json!({
        "id": id, "object": "invoice", "customer": format!("cus_{id}"), "currency": currency,
        "status": status, "billing_reason": "manual", "collection_method": "send_invoice",
        "number": format!("N-{id}"), "created": t(finalized), "due_date": due.map(t),
        "subtotal": total, "total": total, "total_excluding_tax": total,
        "amount_due": total, "amount_paid": total - remaining, "amount_remaining": remaining,
        "total_discount_amounts": [], "total_taxes": [],
        "status_transitions": {
            "finalized_at": t(finalized), "paid_at": paid.map(t), "voided_at": voided.map(t),
            "marked_uncollectible_at": null
        },
        "lines": {"object": "list", "has_more": has_more, "data": lines}
    })
}

/// January to April 2026:
/// - `in_a` (usd): an annual line of 401.50 less a 36.50 discount, 365.00 over 2026 (1.00 a
///   day), and a 10.00 setup fee without a period; finalized 1 January, due 31 January,
///   paid 10 February 08:00.
/// - `in_b` (usd): 28.00 for February, finalized 1 February without a due date, voided 5
///   March.
/// - `in_c` (eur): 31.00 for March, finalized 10 March (ten days caught up at once), due 25
///   March; a 10.00 credit note on its line on 20 March leaves 21.00 owed.
/// - `in_d` (jpy): ¥5000 without a period, finalized and due 15 January, never paid; the
///   webhook carried only the first page of its lines.
fn history() -> Vec<Vec<u8>> {
    let a_lines = || {
        vec![
            line(
                "il_a1",
                "usd",
                40150,
                3650,
                "2026-01-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            line(
                "il_a2",
                "usd",
                1000,
                0,
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:00Z",
            ),
        ]
    };
    let b_lines = || {
        vec![line(
            "il_b1",
            "usd",
            2800,
            0,
            "2026-02-01T00:00:00Z",
            "2026-03-01T00:00:00Z",
        )]
    };
    let c_lines = || {
        vec![line(
            "il_c1",
            "eur",
            3100,
            0,
            "2026-03-01T00:00:00Z",
            "2026-04-01T00:00:00Z",
        )]
    };
    let d_lines = || {
        vec![line(
            "il_d1",
            "jpy",
            5000,
            0,
            "2026-01-15T00:00:00Z",
            "2026-01-15T00:00:00Z",
        )]
    };
    let jan1 = "2026-01-01T00:00:00Z";
    let a = |status, remaining, paid| {
        invoice(
            "in_a",
            "usd",
            status,
            37500,
            remaining,
            jan1,
            Some("2026-01-31T00:00:00Z"),
            paid,
            None,
            a_lines(),
            false,
        )
    };
    let b = |status, voided| {
        invoice(
            "in_b",
            "usd",
            status,
            2800,
            2800,
            "2026-02-01T00:00:00Z",
            None,
            None,
            voided,
            b_lines(),
            false,
        )
    };
    // A pre-payment credit note lowers what is owed, not what was paid.
    let c = |remaining: i64| {
        let mut inv = invoice(
            "in_c",
            "eur",
            "open",
            3100,
            remaining,
            "2026-03-10T00:00:00Z",
            Some("2026-03-25T00:00:00Z"),
            None,
            None,
            c_lines(),
            false,
        );
        inv["amount_paid"] = json!(0);
        inv["pre_payment_credit_notes_amount"] = json!(3100 - remaining);
        inv
    };
    vec![
        event("evt_a1", "invoice.finalized", jan1, a("open", 37500, None)),
        event(
            "evt_a2",
            "invoice.paid",
            "2026-02-10T08:00:00Z",
            a("paid", 0, Some("2026-02-10T08:00:00Z")),
        ),
        event(
            "evt_b1",
            "invoice.finalized",
            "2026-02-01T00:00:00Z",
            b("open", None),
        ),
        event(
            "evt_b2",
            "invoice.voided",
            "2026-03-05T00:00:00Z",
            b("void", Some("2026-03-05T00:00:00Z")),
        ),
        event(
            "evt_c1",
            "invoice.finalized",
            "2026-03-10T00:00:00Z",
            c(3100),
        ),
        event(
            "evt_c2",
            "credit_note.created",
            "2026-03-20T00:00:00Z",
            json!({
                "id": "cn_1", "object": "credit_note", "invoice": "in_c", "customer": "cus_in_c",
                "currency": "eur", "amount": 1000, "subtotal": 1000, "total": 1000,
                "total_excluding_tax": 1000, "discount_amounts": [], "pre_payment_amount": 1000,
                "post_payment_amount": 0, "out_of_band_amount": 0, "status": "issued",
                "type": "pre_payment", "reason": "order_change", "created": t("2026-03-20T00:00:00Z"),
                "voided_at": null,
                "lines": {"object": "list", "has_more": false, "data": [
                    {"id": "cnli_1", "object": "credit_note_line_item", "amount": 1000,
                     "invoice_line_item": "il_c1", "quantity": 1, "taxes": []}
                ]}
            }),
        ),
        event("evt_c3", "invoice.updated", "2026-03-20T00:00:00Z", c(2100)),
        event(
            "evt_d1",
            "invoice.finalized",
            "2026-01-15T00:00:00Z",
            invoice(
                "in_d",
                "jpy",
                "open",
                5000,
                5000,
                "2026-01-15T00:00:00Z",
                Some("2026-01-15T00:00:00Z"),
                None,
                None,
                d_lines(),
                true,
            ),
        ),
    ]
}

/// usd: January bills 365.00 + 10.00 and recognises 31 days of the year and the fee, 41.00;
/// February bills in_b's 28.00 and recognises 28.00 of it and 28 days of in_a; March
/// reverses in_b (−28.00 billed and recognised) and recognises 31 days of in_a, 3.00 net;
/// April, up to the 15th (now), 14 days. Deferred = billed to date − recognised to date.
/// eur: in_c bills 31.00 − 10.00 = 21.00 in March and, its period over by April, recognises
/// 19.00 by the credit on the 20th and the 2.00 left after it. jpy: ¥5000 at once.
const EXPECTED_RECOGNITION: &str = "\
month,currency,billed,recognized,deferred_end
2026-01,eur,0.00,0.00,0.00
2026-01,jpy,5000,5000,0
2026-01,usd,375.00,41.00,334.00
2026-02,eur,0.00,0.00,0.00
2026-02,jpy,0,0,0
2026-02,usd,28.00,56.00,306.00
2026-03,eur,21.00,21.00,0.00
2026-03,jpy,0,0,0
2026-03,usd,-28.00,3.00,275.00
2026-04,eur,0.00,0.00,0.00
2026-04,jpy,0,0,0
2026-04,usd,0.00,14.00,261.00
";

const EXPECTED_RECOGNITION_DETAIL: &str = "\
invoice_id,line_id,currency,month,recognized
in_a,il_a1,usd,2026-01,31.00
in_a,il_a1,usd,2026-02,28.00
in_a,il_a1,usd,2026-03,31.00
in_a,il_a1,usd,2026-04,14.00
in_a,il_a2,usd,2026-01,10.00
in_b,il_b1,usd,2026-02,28.00
in_b,il_b1,usd,2026-03,-28.00
in_c,il_c1,eur,2026-03,21.00
in_d,il_d1,jpy,2026-01,5000
";

/// As of 31 January: in_a due that day (age 0, current), in_d 16 days late; no eur invoice
/// is finalized yet, so no eur row.
const EXPECTED_AGING_JAN31: &str = "\
currency,current,days_1_30,days_31_60,days_61_90,days_91_120,days_over_120,total
jpy,0,5000,0,0,0,0,5000
usd,375.00,0.00,0.00,0.00,0.00,0.00,375.00
";

/// As of 10 February: in_a was paid at 08:00 that day, so it is out; in_b, finalized 1
/// February without a due date, is 9 days old; in_d is 26 days late.
const EXPECTED_AGING_FEB10: &str = "\
currency,current,days_1_30,days_31_60,days_61_90,days_91_120,days_over_120,total
jpy,0,5000,0,0,0,0,5000
usd,0.00,28.00,0.00,0.00,0.00,0.00,28.00
";

/// Today (15 April): in_c owes 21.00 after its credit note, 21 days after its due date;
/// in_d is 90 days late; in_b was voided; usd had invoices, so a row of zeros.
const EXPECTED_AGING_NOW: &str = "\
currency,current,days_1_30,days_31_60,days_61_90,days_91_120,days_over_120,total
eur,0.00,21.00,0.00,0.00,0.00,0.00,21.00
jpy,0,0,0,5000,0,0,5000
usd,0.00,0.00,0.00,0.00,0.00,0.00,0.00
";

const EXPECTED_AGING_NOW_DETAIL: &str = "\
invoice_id,customer_id,currency,due_utc,age_days,amount_remaining
in_c,cus_in_c,eur,2026-03-25T00:00:00Z,21,21.00
in_d,cus_in_d,jpy,2026-01-15T00:00:00Z,90,5000
";

/// The journal of the history, every entry worked out from the figures above (default
/// account codes: 1010 Stripe balance, 1200 receivable, 2400 deferred revenue, 4000
/// revenue). in_a is paid without a charge revline knows, so straight into the Stripe
/// balance; in_b's void reverses its receivable and deferred revenue, and its recognition
/// is reversed in March; cn_1 takes 10.00 off in_c's receivable and deferred revenue.
const EXPECTED_JOURNAL: &str = "\
date,entry_id,account,debit,credit,currency,memo,source_type,source_id
2026-01-01,inv:in_a,1200,375.00,,usd,invoice N-in_a finalized,invoice,in_a
2026-01-01,inv:in_a,2400,,375.00,usd,invoice N-in_a finalized,invoice,in_a
2026-01-15,inv:in_d,1200,5000,,jpy,invoice N-in_d finalized,invoice,in_d
2026-01-15,inv:in_d,2400,,5000,jpy,invoice N-in_d finalized,invoice,in_d
2026-01-31,rec:in_a/il_a1:2026-01,2400,31.00,,usd,revenue of invoice in_a line il_a1 recognised in 2026-01,invoice_line,in_a/il_a1
2026-01-31,rec:in_a/il_a1:2026-01,4000,,31.00,usd,revenue of invoice in_a line il_a1 recognised in 2026-01,invoice_line,in_a/il_a1
2026-01-31,rec:in_a/il_a2:2026-01,2400,10.00,,usd,revenue of invoice in_a line il_a2 recognised in 2026-01,invoice_line,in_a/il_a2
2026-01-31,rec:in_a/il_a2:2026-01,4000,,10.00,usd,revenue of invoice in_a line il_a2 recognised in 2026-01,invoice_line,in_a/il_a2
2026-01-31,rec:in_d/il_d1:2026-01,2400,5000,,jpy,revenue of invoice in_d line il_d1 recognised in 2026-01,invoice_line,in_d/il_d1
2026-01-31,rec:in_d/il_d1:2026-01,4000,,5000,jpy,revenue of invoice in_d line il_d1 recognised in 2026-01,invoice_line,in_d/il_d1
2026-02-01,inv:in_b,1200,28.00,,usd,invoice N-in_b finalized,invoice,in_b
2026-02-01,inv:in_b,2400,,28.00,usd,invoice N-in_b finalized,invoice,in_b
2026-02-10,pay:in_a,1010,375.00,,usd,invoice N-in_a paid,invoice,in_a
2026-02-10,pay:in_a,1200,,375.00,usd,invoice N-in_a paid,invoice,in_a
2026-02-28,rec:in_a/il_a1:2026-02,2400,28.00,,usd,revenue of invoice in_a line il_a1 recognised in 2026-02,invoice_line,in_a/il_a1
2026-02-28,rec:in_a/il_a1:2026-02,4000,,28.00,usd,revenue of invoice in_a line il_a1 recognised in 2026-02,invoice_line,in_a/il_a1
2026-02-28,rec:in_b/il_b1:2026-02,2400,28.00,,usd,revenue of invoice in_b line il_b1 recognised in 2026-02,invoice_line,in_b/il_b1
2026-02-28,rec:in_b/il_b1:2026-02,4000,,28.00,usd,revenue of invoice in_b line il_b1 recognised in 2026-02,invoice_line,in_b/il_b1
2026-03-05,void:in_b,1200,,28.00,usd,invoice N-in_b voided,invoice,in_b
2026-03-05,void:in_b,2400,28.00,,usd,invoice N-in_b voided,invoice,in_b
2026-03-10,inv:in_c,1200,31.00,,eur,invoice N-in_c finalized,invoice,in_c
2026-03-10,inv:in_c,2400,,31.00,eur,invoice N-in_c finalized,invoice,in_c
2026-03-20,cn:cn_1,1200,,10.00,eur,credit note cn_1,credit_note,cn_1
2026-03-20,cn:cn_1,2400,10.00,,eur,credit note cn_1,credit_note,cn_1
2026-03-31,rec:in_a/il_a1:2026-03,2400,31.00,,usd,revenue of invoice in_a line il_a1 recognised in 2026-03,invoice_line,in_a/il_a1
2026-03-31,rec:in_a/il_a1:2026-03,4000,,31.00,usd,revenue of invoice in_a line il_a1 recognised in 2026-03,invoice_line,in_a/il_a1
2026-03-31,rec:in_b/il_b1:2026-03,2400,,28.00,usd,revenue of invoice in_b line il_b1 recognised in 2026-03,invoice_line,in_b/il_b1
2026-03-31,rec:in_b/il_b1:2026-03,4000,28.00,,usd,revenue of invoice in_b line il_b1 recognised in 2026-03,invoice_line,in_b/il_b1
2026-03-31,rec:in_c/il_c1:2026-03,2400,21.00,,eur,revenue of invoice in_c line il_c1 recognised in 2026-03,invoice_line,in_c/il_c1
2026-03-31,rec:in_c/il_c1:2026-03,4000,,21.00,eur,revenue of invoice in_c line il_c1 recognised in 2026-03,invoice_line,in_c/il_c1
2026-04-30,rec:in_a/il_a1:2026-04,2400,14.00,,usd,revenue of invoice in_a line il_a1 recognised in 2026-04,invoice_line,in_a/il_a1
2026-04-30,rec:in_a/il_a1:2026-04,4000,,14.00,usd,revenue of invoice in_a line il_a1 recognised in 2026-04,invoice_line,in_a/il_a1
";

/// One journal line, parsed: (date, entry id, account, debit − credit in minor units,
/// currency).
type Posting = (String, String, String, i64, String);

fn postings(journal: &str) -> Vec<Posting> {
    assert!(!journal.contains('"'), "no cell needs quoting: {journal}");
    journal
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            let amount = |s: &str| if s.is_empty() { 0 } else { minor(s) };
            (
                c[0].to_owned(),
                c[1].to_owned(),
                c[2].to_owned(),
                amount(c[3]) - amount(c[4]),
                c[5].to_owned(),
            )
        })
        .collect()
}

/// The identities finance relies on, for every month of the history: the trial balance is
/// zero per currency; receivable at each month's end equals `ar-aging` as of that day;
/// deferred revenue equals `revenue-recognition`'s `deferred_end`, and recognised to date
/// plus deferred equals billed to date.
async fn assert_consistent(app: &Revline) {
    let (_, journal) = report(app, "/reports/journal?format=csv").await;
    let postings = postings(&journal);
    assert!(!postings.is_empty());
    let mut trial: BTreeMap<&str, i64> = BTreeMap::new();
    for (_, _, _, amount, currency) in &postings {
        *trial.entry(currency).or_default() += amount;
    }
    assert!(trial.values().all(|t| *t == 0), "trial balance: {trial:?}");

    let (_, recognition) = report(app, "/reports/revenue-recognition?format=csv").await;
    let mut billed_to_date: BTreeMap<String, i64> = BTreeMap::new();
    let mut checked = 0;
    for row in recognition.lines().skip(1) {
        let c: Vec<&str> = row.split(',').collect();
        let (month, currency) = (c[0], c[1]);
        *billed_to_date.entry(currency.to_owned()).or_default() += minor(c[2]);
        let last_day = {
            let m = Month::parse(month).unwrap();
            format_utc(m.end() - 86_400)[..10].to_owned()
        };
        let balance = |account: &str, only: &dyn Fn(&str) -> bool| -> i64 {
            postings
                .iter()
                .filter(|(d, id, a, _, cur)| {
                    d.as_str() <= last_day.as_str() && a == account && cur == currency && only(id)
                })
                .map(|p| p.3)
                .sum()
        };
        let deferred = -balance("2400", &|_| true);
        assert_eq!(
            deferred,
            minor(c[4]),
            "deferred revenue at the end of {month} {currency}"
        );
        let recognised = -balance("4000", &|id| id.starts_with("rec:"));
        assert_eq!(
            recognised + deferred,
            billed_to_date[currency],
            "recognised + deferred = billed, {month} {currency}"
        );
        let (_, aging) = report(
            app,
            &format!("/reports/ar-aging?format=csv&as_of={last_day}&currency={currency}"),
        )
        .await;
        let owed = aging
            .lines()
            .nth(1)
            .map_or(0, |l| minor(l.rsplit(',').next().unwrap()));
        assert_eq!(
            balance("1200", &|_| true),
            owed,
            "receivable on {last_day} {currency}"
        );
        checked += 1;
    }
    assert!(checked > 0);
}

fn serve(extra: &[(&str, &str)]) -> Options {
    reporting(NOW, extra)
}

#[tokio::test]
async fn recognition_and_aging_are_worked_out_by_hand_and_equal_on_both_warehouses() {
    let (embedded, clickhouse, db) = on_both_warehouses(NOW, &history()).await;
    for app in [&embedded, &clickhouse] {
        wait_for_report(
            app,
            "/reports/revenue-recognition?format=csv",
            EXPECTED_RECOGNITION,
        )
        .await;
        // The aging needs every invoice version, not just the latest.
        let aging = "/reports/ar-aging?format=csv";
        let reached = wait_until_async(Duration::from_secs(30), || async {
            report(app, aging).await.1 == EXPECTED_AGING_NOW
        })
        .await;
        let (_, last) = report(app, aging).await;
        assert!(
            reached,
            "aging never reached the expected figures; last:\n{last}"
        );
    }
    let cases = [
        (
            "/reports/revenue-recognition?format=csv&detail=true",
            EXPECTED_RECOGNITION_DETAIL,
        ),
        (
            "/reports/ar-aging?format=csv&as_of=2026-01-31",
            EXPECTED_AGING_JAN31,
        ),
        (
            "/reports/ar-aging?format=csv&as_of=2026-02-10",
            EXPECTED_AGING_FEB10,
        ),
        (
            "/reports/ar-aging?format=csv&detail=true",
            EXPECTED_AGING_NOW_DETAIL,
        ),
    ];
    for (path, expected) in cases {
        for app in [&embedded, &clickhouse] {
            let (status, body) = report(app, path).await;
            assert_eq!(status, 200, "{path}: {body}");
            assert_eq!(body, expected, "{path}");
        }
    }
    for path in [
        "/reports/revenue-recognition?format=json",
        "/reports/revenue-recognition?from=2026-03&to=2026-03&currency=usd&format=csv",
        "/reports/ar-aging?as_of=2025-12-31&format=json",
        "/reports/ar-aging?currency=jpy&as_of=2026-03-01&format=csv",
    ] {
        let (s1, a) = report(&embedded, path).await;
        let (s2, b) = report(&clickhouse, path).await;
        assert_eq!((s1, s2), (200, 200), "{path}");
        assert_eq!(a, b, "{path}: the two warehouses differ");
    }
    // The journal, worked out by hand, the same from both warehouses; and consistent.
    for app in [&embedded, &clickhouse] {
        let (status, journal) = report(app, "/reports/journal?format=csv").await;
        assert_eq!((status, journal.as_str()), (200, EXPECTED_JOURNAL));
        assert_consistent(app).await;
    }
    let (_, march) = report(
        &embedded,
        "/reports/journal?format=csv&from=2026-03&to=2026-03&currency=eur",
    )
    .await;
    assert_eq!(march.lines().count(), 1 + 6, "{march}");

    // A filtered month keeps the running balance of the months before it.
    let (_, march) = report(
        &embedded,
        "/reports/revenue-recognition?from=2026-03&to=2026-03&currency=usd&format=csv",
    )
    .await;
    assert_eq!(march.lines().nth(1), Some("2026-03,usd,-28.00,3.00,275.00"));
    // Before any invoice: nothing owed, no currency.
    let (_, before) = report(&embedded, "/reports/ar-aging?as_of=2025-12-31&format=json").await;
    assert_eq!(before, "[]\n");

    // Incomplete lines are said: a header over HTTP, stderr for the CLI.
    let resp = embedded.admin_get("/reports/revenue-recognition").await;
    let warning = resp.headers()["revline-warning"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(warning.contains("lines.has_more"), "{warning}");
    let opts = Options {
        data_dir: Some(clickhouse.data_dir.clone()),
        ..Options::default()
    }
    .env("REVLINE_REPORT_NOW", NOW)
    .env("REVLINE_CLICKHOUSE_URL", db.url.clone())
    .env("REVLINE_CLICKHOUSE_DATABASE", db.name.clone())
    .args_of(&["report", "ar-aging", "--as-of", "2026-02-10"]);
    let (status, stdout, stderr) = run_to_exit(opts);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, EXPECTED_AGING_FEB10);
    let opts = Options {
        data_dir: Some(embedded.data_dir.clone()),
        ..Options::default()
    }
    .env("REVLINE_REPORT_NOW", NOW)
    .args_of(&["report", "revenue-recognition", "--detail"]);
    let (status, stdout, stderr) = run_to_exit(opts);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, EXPECTED_RECOGNITION_DETAIL);
    assert!(stderr.contains("warning: 1 finalized invoice"), "{stderr}");
}

#[tokio::test]
async fn finance_parameters_are_refused_where_they_mean_nothing() {
    let app = Revline::start(serve(&[])).await;
    let cases = [
        ("/reports/ar-aging?from=2026-01", "from"),
        ("/reports/ar-aging?to=2026-01", "to"),
        ("/reports/ar-aging?as_of=2026-02-30", "as_of"),
        ("/reports/ar-aging?as_of=2026-02", "as_of"),
        ("/reports/revenue?as_of=2026-02-01", "as_of"),
        ("/reports/mrr?detail=true", "detail"),
        ("/reports/revenue-recognition?detail=yes", "detail"),
    ];
    for (path, parameter) in cases {
        let (status, body) = report(&app, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let message = v["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{parameter}: ")),
            "{path}: the message names {parameter}: {message}"
        );
    }
    let (status, _, stderr) =
        run_to_exit(Options::default().args_of(&["report", "ar-aging", "--as-of", "yesterday"]));
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("as_of"), "{stderr}");
}

#[tokio::test]
async fn the_journal_of_the_demo_history_is_consistent_and_the_same_on_both_warehouses() {
    let report_now = format_utc(e2e::now() - e2e::now() % 60);
    let start = |env: Vec<(&'static str, String)>| {
        let mut opts = Options {
            with_secret: false,
            ..Options::default()
        }
        .env("REVLINE_REPORT_NOW", &report_now)
        .env("REVLINE_RECONCILE_BATCH_WAIT_MS", "50");
        for (k, v) in env {
            opts = opts.env(k, v);
        }
        opts
    };
    let db = TestDb::new(&clickhouse_url().await);
    let ch_env = vec![
        ("REVLINE_CLICKHOUSE_URL", db.url.clone()),
        ("REVLINE_CLICKHOUSE_DATABASE", db.name.clone()),
    ];
    let embedded = Revline::start(start(vec![])).await;
    let clickhouse = Revline::start(start(ch_env.clone())).await;
    for (app, env) in [(&embedded, vec![]), (&clickhouse, ch_env)] {
        let mut opts = Options {
            data_dir: Some(app.data_dir.clone()),
            with_secret: false,
            ..Options::default()
        }
        .env("REVLINE_LISTEN", app.addr.to_string())
        .env("REVLINE_REPORT_NOW", &report_now)
        .args_of(&["demo", "--customers", "40", "--months", "14", "--seed", "3"]);
        for (k, v) in env {
            opts = opts.env(k, v);
        }
        let (status, _, stderr) = run_to_exit(opts);
        assert!(status.success(), "{stderr}");
        assert!(!stderr.contains("warning: only"), "{stderr}");
    }
    for app in [&embedded, &clickhouse] {
        assert_consistent(app).await;
    }
    for path in [
        "/reports/journal?format=csv",
        "/reports/revenue-recognition?format=csv&detail=true",
        "/reports/payouts?format=csv",
    ] {
        let (a, b) = (
            report(&embedded, path).await.1,
            report(&clickhouse, path).await.1,
        );
        assert_eq!(a, b, "{path}: the two warehouses differ");
    }
    let (_, journal) = report(&embedded, "/reports/journal?format=csv").await;
    assert!(journal.lines().count() > 500, "a real history: {journal}");
}

#[tokio::test]
async fn a_closed_month_keeps_its_journal_and_late_events_post_in_the_next_open_month() {
    let db = TestDb::new(&clickhouse_url().await);
    let ch_env = [
        ("REVLINE_CLICKHOUSE_URL", db.url.as_str()),
        ("REVLINE_CLICKHOUSE_DATABASE", db.name.as_str()),
    ];
    let embedded = Revline::start(serve(&[])).await;
    let clickhouse = Revline::start(serve(&ch_env)).await;
    // The credit note of 20 March arrives after March is closed.
    let (late, early): (Vec<Vec<u8>>, Vec<Vec<u8>>) = history().into_iter().partition(|b| {
        String::from_utf8_lossy(b).contains("\"evt_c2\"")
            || String::from_utf8_lossy(b).contains("\"evt_c3\"")
    });
    assert_eq!(late.len(), 2);
    let close = |app: &Revline, env: &[(&str, &str)], month: &str| {
        let mut opts = Options {
            data_dir: Some(app.data_dir.clone()),
            ..Options::default()
        }
        .env("REVLINE_REPORT_NOW", NOW)
        .args_of(&["close", month]);
        for (k, v) in env {
            opts = opts.env(k, *v);
        }
        run_to_exit(opts)
    };
    const MARCH: &str = "/reports/journal?format=csv&from=2026-03&to=2026-03";
    let mut march_at_close = Vec::new();
    for (app, env) in [(&embedded, &[][..]), (&clickhouse, &ch_env[..])] {
        post_all(app, &early).await;
        // Every invoice of March in (batches land one at a time: the void of in_b alone
        // once let a busy machine close March before in_c was in).
        let reached = wait_until_async(Duration::from_secs(60), || async {
            let march = report(app, MARCH).await.1;
            [
                "void:in_b",
                "inv:in_c",
                "rec:in_a/",
                "rec:in_b/",
                "rec:in_c/",
            ]
            .iter()
            .all(|entry| march.contains(entry))
        })
        .await;
        assert!(reached, "{}", app.logs());
        let (_, march) = report(app, MARCH).await;
        let (status, stdout, stderr) = close(app, env, "2026-03");
        assert!(status.success(), "{stderr}");
        assert!(
            stdout.contains("closed 2026-03 for live/platform"),
            "{stdout}"
        );
        // Not twice, not a month that is not over, not a malformed month.
        for (month, says) in [
            ("2026-03", "already closed"),
            ("2026-04", "not over yet"),
            ("2026-3", "not a month"),
        ] {
            let (status, _, stderr) = close(app, env, month);
            assert_eq!(status.code(), Some(2), "{month}: {stderr}");
            assert!(stderr.contains(says), "{month}: {stderr}");
        }
        post_all(app, &late).await;
        march_at_close.push(march);
    }
    assert_eq!(march_at_close[0], march_at_close[1]);

    // Once the credit note is in: March prints what it printed when closed; April gets the
    // credit note and the 10.00 less of March's recognition of in_c, dated 1 April.
    const APRIL_EUR: &str = "/reports/journal?format=csv&from=2026-04&currency=eur";
    let expected_april = "\
date,entry_id,account,debit,credit,currency,memo,source_type,source_id
2026-04-01,cn:cn_1@2026-04,1200,,10.00,eur,credit note cn_1; originally dated 2026-03-20 in a closed month,credit_note,cn_1
2026-04-01,cn:cn_1@2026-04,2400,10.00,,eur,credit note cn_1; originally dated 2026-03-20 in a closed month,credit_note,cn_1
2026-04-01,rec:in_c/il_c1:2026-03@2026-04,2400,,10.00,eur,revenue of invoice in_c line il_c1 recognised in 2026-03; originally dated 2026-03-31 in a closed month,invoice_line,in_c/il_c1
2026-04-01,rec:in_c/il_c1:2026-03@2026-04,4000,10.00,,eur,revenue of invoice in_c line il_c1 recognised in 2026-03; originally dated 2026-03-31 in a closed month,invoice_line,in_c/il_c1
";
    for (i, app) in [&embedded, &clickhouse].into_iter().enumerate() {
        wait_for_report(app, APRIL_EUR, expected_april).await;
        assert_eq!(
            report(app, MARCH).await.1,
            march_at_close[i],
            "March never changes"
        );
        // Everything still balances, and the receivable catches up in April.
        let (_, journal) = report(app, "/reports/journal?format=csv").await;
        let mut trial: BTreeMap<String, i64> = BTreeMap::new();
        for (_, _, _, amount, currency) in postings(&journal) {
            *trial.entry(currency).or_default() += amount;
        }
        assert!(trial.values().all(|t| *t == 0), "{trial:?}");
        let receivable: i64 = postings(&journal)
            .iter()
            .filter(|(_, _, a, _, c)| a == "1200" && c == "eur")
            .map(|p| p.3)
            .sum();
        assert_eq!(receivable, 2100, "in_c owes 21.00 after its credit note");
    }
    assert_eq!(
        report(&embedded, "/reports/journal?format=csv").await.1,
        report(&clickhouse, "/reports/journal?format=csv").await.1
    );
}

/// A euro invoice paid by a charge that settled in dollars: the payment goes through FX
/// clearing, balanced in each currency, the rate in the memo; the fee is in dollars.
#[tokio::test]
async fn a_payment_settled_in_another_currency_balances_through_fx_clearing() {
    let inv = |status: &str, paid: i64| {
        let mut v = invoice(
            "in_fx",
            "eur",
            status,
            10000,
            10000 - paid,
            "2026-02-02T00:00:00Z",
            None,
            (paid > 0).then_some("2026-02-03T00:00:00Z"),
            None,
            vec![line(
                "il_fx",
                "eur",
                10000,
                0,
                "2026-02-02T00:00:00Z",
                "2026-02-02T00:00:00Z",
            )],
            false,
        );
        v["customer"] = json!("cus_fx");
        v
    };
    let history = vec![
        event(
            "evt_fx1",
            "invoice.finalized",
            "2026-02-02T00:00:00Z",
            inv("open", 0),
        ),
        event(
            "evt_fx2",
            "invoice.paid",
            "2026-02-03T00:00:00Z",
            inv("paid", 10000),
        ),
        event(
            "evt_fx3",
            "charge.succeeded",
            "2026-02-03T00:00:00Z",
            json!({
                "id": "ch_fx", "object": "charge", "amount": 10000, "amount_captured": 10000,
                "amount_refunded": 0, "currency": "eur", "customer": "cus_fx", "payment_intent": "pi_fx",
                "status": "succeeded", "captured": true, "paid": true, "refunded": false, "disputed": false,
                "created": t("2026-02-03T00:00:00Z"),
                "balance_transaction": {
                    "id": "txn_fx", "object": "balance_transaction", "amount": 10850, "fee": 345,
                    "net": 10505, "currency": "usd", "exchange_rate": 1.085, "type": "charge",
                    "reporting_category": "charge", "status": "pending", "source": "ch_fx",
                    "created": t("2026-02-03T00:00:00Z"), "available_on": t("2026-02-05T00:00:00Z")
                }
            }),
        ),
        event(
            "evt_fx4",
            "invoice_payment.paid",
            "2026-02-03T00:00:00Z",
            json!({
                "id": "inpay_fx", "object": "invoice_payment", "invoice": "in_fx", "amount_requested": 10000,
                "amount_paid": 10000, "currency": "eur", "is_default": true, "status": "paid",
                "created": t("2026-02-03T00:00:00Z"), "livemode": true,
                "status_transitions": {"paid_at": t("2026-02-03T00:00:00Z"), "canceled_at": null},
                "payment": {"type": "payment_intent", "payment_intent": "pi_fx"}
            }),
        ),
    ];
    let expected = "\
date,entry_id,account,debit,credit,currency,memo,source_type,source_id
2026-02-02,inv:in_fx,1200,100.00,,eur,invoice N-in_fx finalized,invoice,in_fx
2026-02-02,inv:in_fx,2400,,100.00,eur,invoice N-in_fx finalized,invoice,in_fx
2026-02-03,fee:txn_fx,1010,,3.45,usd,Stripe fees on charge ch_fx,balance_transaction,txn_fx
2026-02-03,fee:txn_fx,6100,3.45,,usd,Stripe fees on charge ch_fx,balance_transaction,txn_fx
2026-02-03,pay:in_fx,1010,108.50,,usd,invoice N-in_fx paid; settled in USD at exchange rate 1.085,invoice,in_fx
2026-02-03,pay:in_fx,1090,,108.50,usd,invoice N-in_fx paid; settled in USD at exchange rate 1.085,invoice,in_fx
2026-02-03,pay:in_fx,1090,100.00,,eur,invoice N-in_fx paid; settled in USD at exchange rate 1.085,invoice,in_fx
2026-02-03,pay:in_fx,1200,,100.00,eur,invoice N-in_fx paid; settled in USD at exchange rate 1.085,invoice,in_fx
2026-02-28,rec:in_fx/il_fx:2026-02,2400,100.00,,eur,revenue of invoice in_fx line il_fx recognised in 2026-02,invoice_line,in_fx/il_fx
2026-02-28,rec:in_fx/il_fx:2026-02,4000,,100.00,eur,revenue of invoice in_fx line il_fx recognised in 2026-02,invoice_line,in_fx/il_fx
";
    let (embedded, clickhouse, _db) = on_both_warehouses(NOW, &history).await;
    for app in [&embedded, &clickhouse] {
        wait_for_report(app, "/reports/journal?format=csv", expected).await;
        assert_consistent(app).await;
    }
}
