//! The Grafana dashboard (`infra/grafana/revline.json`): it parses, every ClickHouse query
//! runs against a real server holding reconciled data (the data source's macros and the
//! dashboard's variables expanded as Grafana would) and answers rows, and every metric the
//! Prometheus panels name is one revline exports.

use std::time::Duration;

use e2e::clickhouse::{http, url as clickhouse_url, TestDb};
use e2e::stripe::{event, post_all, t};
use e2e::{now, wait_until_async, Options, Revline};
use serde_json::{json, Value};

fn dashboard() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/grafana/revline.json");
    serde_json::from_slice(&std::fs::read(path).expect("the dashboard file")).expect("valid JSON")
}

/// Every panel's targets with the panel's title, rows included.
fn targets(dashboard: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let nested = panel["panels"].as_array().cloned().unwrap_or_default();
        for p in std::iter::once(panel).chain(nested.iter()) {
            for target in p["targets"].as_array().cloned().unwrap_or_default() {
                out.push((p["title"].as_str().unwrap_or_default().to_owned(), target));
            }
        }
    }
    out
}

/// The SQL as the ClickHouse data source sends it for the range `[from, to]` with
/// `livemode` chosen: `$__fromTime`, `$__toTime`, `$__timeFilter(column)` and the
/// dashboard's `${livemode}` variable.
fn expand(sql: &str, from: i64, to: i64, livemode: u8) -> String {
    let mut out = sql
        .replace("$__fromTime", &format!("toDateTime({from})"))
        .replace("$__toTime", &format!("toDateTime({to})"))
        .replace("${livemode}", &livemode.to_string());
    while let Some(at) = out.find("$__timeFilter(") {
        let end = at + out[at..].find(')').expect("a closed macro");
        let column = out[at + "$__timeFilter(".len()..end].trim().to_owned();
        out.replace_range(
            at..=end,
            &format!("{column} >= toDateTime({from}) AND {column} <= toDateTime({to})"),
        );
    }
    out
}

fn invoice(id: &str, status: &str, paid: i64, finalized: &str, due: &str) -> Value {
    json!({
        "id": id, "object": "invoice", "customer": "cus_1", "currency": "usd", "status": status,
        "billing_reason": "manual", "collection_method": "send_invoice", "number": id,
        "created": t(finalized), "due_date": t(due), "subtotal": 5000, "total": 5000,
        "total_excluding_tax": 5000, "amount_due": 5000, "amount_paid": paid,
        "amount_remaining": 5000 - paid, "total_discount_amounts": [], "total_taxes": [],
        "status_transitions": {"finalized_at": t(finalized), "paid_at": if paid > 0 { json!(t(due)) } else { Value::Null },
                               "voided_at": null, "marked_uncollectible_at": null},
        "lines": {"object": "list", "has_more": false, "data": []}
    })
}

#[tokio::test]
async fn every_dashboard_query_runs_on_clickhouse_and_every_metric_exists() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "revline");
    let targets = targets(&dashboard);
    let sql: Vec<(String, String)> = targets
        .iter()
        .filter(|(_, t)| t["datasource"]["type"] == "grafana-clickhouse-datasource")
        .map(|(title, t)| {
            (
                title.clone(),
                t["rawSql"].as_str().expect("rawSql").to_owned(),
            )
        })
        .collect();
    let promql: Vec<(String, String)> = targets
        .iter()
        .filter(|(_, t)| t["datasource"]["type"] == "prometheus")
        .map(|(title, t)| (title.clone(), t["expr"].as_str().expect("expr").to_owned()))
        .collect();
    assert!(sql.len() >= 4 && promql.len() >= 4, "{sql:?} {promql:?}");

    // Reconciled data: an open invoice past due, a paid one, a paid payout, all recent.
    let db = TestDb::new(&clickhouse_url().await);
    let app = Revline::start(
        Options::default()
            .env("REVLINE_CLICKHOUSE_URL", db.url.as_str())
            .env("REVLINE_CLICKHOUSE_DATABASE", db.name.as_str())
            .env("REVLINE_RECONCILE_BATCH_WAIT_MS", "50"),
    )
    .await;
    let day =
        |days_ago: i64| reports::calendar::format_utc(now() - now() % 86_400 - days_ago * 86_400);
    post_all(
        &app,
        &[
            event(
                "evt_g1",
                "invoice.finalized",
                &day(40),
                invoice("in_g1", "open", 0, &day(40), &day(10)),
            ),
            event(
                "evt_g2",
                "invoice.paid",
                &day(5),
                invoice("in_g2", "paid", 5000, &day(20), &day(5)),
            ),
            event(
                "evt_g3",
                "payout.paid",
                &day(3),
                json!({"id": "po_g1", "object": "payout", "amount": 4500, "currency": "usd",
                       "arrival_date": t(&day(3)), "status": "paid", "automatic": true,
                       "reconciliation_status": "in_progress", "created": t(&day(4))}),
            ),
        ],
    )
    .await;
    // And one that is dead-lettered (no api_version), so every metric family has a sample.
    let bad = json!({"id": "evt_g4", "object": "event", "type": "invoice.paid", "created": now(),
                     "api_version": null, "livemode": true, "data": {"object": {"id": "in_x", "object": "invoice"}}});
    post_all(&app, &[serde_json::to_vec(&bad).unwrap()]).await;
    assert!(
        wait_until_async(Duration::from_secs(60), || async {
            db.count("payouts").await == 1
                && db.count("invoices").await == 2
                && db.count("dead_letters").await == 1
        })
        .await,
        "{}",
        app.logs()
    );

    let in_db = format!("{}/?database={}", db.url.trim_end_matches('/'), db.name);
    let (from, to) = (now() - 365 * 86_400, now());
    for (title, raw) in &sql {
        let query = expand(raw, from, to, 1);
        assert!(
            !query.contains('$'),
            "{title}: a macro or variable left unexpanded: {query}"
        );
        let answer = http(&in_db, &format!("{query}\nFORMAT TSV"))
            .await
            .unwrap_or_else(|e| panic!("{title}: {e}\n{query}"));
        assert!(!answer.trim().is_empty(), "{title}: no rows\n{query}");
    }
    // The aging panel puts the 50.00 still owed 10 days after its due date in 1–30 days.
    let aging = sql
        .iter()
        .find(|(t, _)| t.contains("days past due"))
        .expect("the aging panel");
    let answer = http(
        &in_db,
        &format!("{}\nFORMAT TSV", expand(&aging.1, from, to, 1)),
    )
    .await
    .unwrap();
    assert_eq!(answer, "usd\t0\t5000\t0\t0\t0\t0\n");

    // Every metric a Prometheus panel names is exported (its `# TYPE` line is there).
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    for (title, expr) in &promql {
        let mut rest = expr.as_str();
        let mut names = 0;
        while let Some(at) = rest.find("revline_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            let family = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                metrics.contains(&format!("# TYPE {family} ")),
                "{title}: {family} is not exported by revline:\n{metrics}"
            );
            names += 1;
        }
        assert!(names > 0, "{title}: {expr}");
    }
}
