//! docs/analysts.md, checked: it names every table and column of the warehouse, its views
//! give the `revenue` report's figures, and its ten example queries give the same answers
//! on ClickHouse and on the embedded warehouse over the same history (`revline demo`'s,
//! posted to one server of each kind).

use std::collections::BTreeMap;

use e2e::clickhouse::{http, url as clickhouse_url, TestDb};
use e2e::{minor, run_to_exit, Options, Revline};
use schemas::facts::TABLES;

const DOC: &str = include_str!("../../docs/analysts.md");
/// Both demos generate the same history up to this instant.
const NOW: &str = "2026-11-20T00:00:00Z";

/// The tables each `### ` heading names, with the `Columns:` lines under it.
fn documented_columns() -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut next = 0;
    for line in DOC.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            names = heading
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            next = 0;
        } else if let Some(cols) = line.strip_prefix("Columns: ") {
            let name = names
                .get(next)
                .unwrap_or_else(|| panic!("a Columns line without a table: {line}"));
            let cols = cols
                .split(", ")
                .map(|c| c.trim_matches('`').to_owned())
                .collect();
            out.insert(name.clone(), cols);
            next += 1;
        }
    }
    out
}

#[test]
fn the_analyst_docs_name_every_table_and_column_in_order() {
    let documented = documented_columns();
    for t in TABLES {
        let cols = documented
            .get(t.name)
            .unwrap_or_else(|| panic!("docs/analysts.md has no Columns line for {}", t.name));
        assert_eq!(
            cols, t.columns,
            "the columns of {} in docs/analysts.md",
            t.name
        );
    }
    assert_eq!(
        documented.len(),
        TABLES.len(),
        "no table the warehouse does not have"
    );
}

/// The example queries: every `sql` block under "## Example queries".
fn examples() -> Vec<String> {
    let section = DOC
        .split("## Example queries")
        .nth(1)
        .expect("an examples section");
    section
        .split("```sql")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().trim().to_owned())
        .collect()
}

/// Rows as tab-separated text, nulls as `\N` (ClickHouse's TSV).
fn sqlite_rows(conn: &rusqlite::Connection, sql: &str) -> String {
    let mut stmt = conn
        .prepare(sql)
        .unwrap_or_else(|e| panic!("SQLite refuses {sql}: {e}"));
    let n = stmt.column_count();
    let mut out = String::new();
    let mut rows = stmt.query([]).unwrap();
    while let Some(row) = rows.next().unwrap() {
        let fields: Vec<String> = (0..n)
            .map(|i| match row.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => "\\N".to_owned(),
                rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                rusqlite::types::ValueRef::Real(v) => v.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                rusqlite::types::ValueRef::Blob(_) => "<blob>".to_owned(),
            })
            .collect();
        out.push_str(&fields.join("\t"));
        out.push('\n');
    }
    out
}

async fn clickhouse_rows(db: &TestDb, sql: &str) -> String {
    http(
        &format!("{}/?database={}", db.url, db.name),
        &format!("{sql}\nFORMAT TSV"),
    )
    .await
    .unwrap_or_else(|e| panic!("ClickHouse refuses {sql}: {e}"))
}

fn demo(app: &Revline, env: &[(&str, &str)]) {
    let mut opts = Options {
        data_dir: Some(app.data_dir.clone()),
        ..Options::default()
    }
    .env("REVLINE_LISTEN", app.addr.to_string())
    .env("REVLINE_REPORT_NOW", NOW)
    .args_of(&[
        "demo",
        "--customers",
        "40",
        "--months",
        "10",
        "--seed",
        "11",
    ]);
    for (k, v) in env {
        opts = opts.env(k, *v);
    }
    let (status, _, stderr) = run_to_exit(opts);
    assert!(status.success(), "{stderr}");
    assert!(
        !stderr.contains("warning: only"),
        "everything reconciled: {stderr}"
    );
}

/// The revenue report as minor units per (month, currency, column).
fn report_figures(app: &Revline, env: &[(&str, &str)]) -> BTreeMap<(String, String, String), i64> {
    let mut opts = Options {
        data_dir: Some(app.data_dir.clone()),
        ..Options::default()
    }
    .env("REVLINE_REPORT_NOW", NOW)
    .args_of(&[
        "report",
        "revenue",
        "--livemode",
        "false",
        "--format",
        "csv",
    ]);
    for (k, v) in env {
        opts = opts.env(k, *v);
    }
    let (status, csv, stderr) = run_to_exit(opts);
    assert!(status.success(), "{stderr}");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut out = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        for column in [
            "invoiced",
            "tax",
            "discounts",
            "collected",
            "refunded",
            "disputed",
        ] {
            let i = header.iter().position(|h| *h == column).unwrap();
            let amount = minor(f[i]);
            if amount != 0 {
                out.insert(
                    (f[0].to_owned(), f[1].to_owned(), column.to_owned()),
                    amount,
                );
            }
        }
    }
    out
}

/// `revenue_monthly` rows (TSV: month, currency, six sums) as the same map.
fn view_figures(tsv: &str) -> BTreeMap<(String, String, String), i64> {
    let mut out = BTreeMap::new();
    for line in tsv.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        for (i, column) in [
            "invoiced",
            "tax",
            "discounts",
            "collected",
            "refunded",
            "disputed",
        ]
        .iter()
        .enumerate()
        {
            let v: i64 = f[2 + i].parse().unwrap();
            if v != 0 {
                out.insert((f[0].to_owned(), f[1].to_owned(), (*column).to_owned()), v);
            }
        }
    }
    out
}

#[tokio::test]
async fn the_views_match_the_reports_and_the_examples_agree_on_both_warehouses() {
    let now = [("REVLINE_REPORT_NOW", NOW)];
    let embedded = Revline::start(Options::default().env(now[0].0, now[0].1)).await;
    let db = TestDb::new(&clickhouse_url().await);
    let ch_env = [
        ("REVLINE_CLICKHOUSE_URL", db.url.as_str()),
        ("REVLINE_CLICKHOUSE_DATABASE", db.name.as_str()),
    ];
    let clickhouse = Revline::start(
        Options::default()
            .env(now[0].0, now[0].1)
            .env(ch_env[0].0, ch_env[0].1)
            .env(ch_env[1].0, ch_env[1].1),
    )
    .await;
    demo(&embedded, &[]);
    demo(&clickhouse, &ch_env);
    let sqlite = rusqlite::Connection::open(embedded.data_dir.join("warehouse.sqlite")).unwrap();

    // revenue_monthly gives the revenue report's figures, on both warehouses.
    let view = "SELECT month, currency, invoiced, tax, discounts, collected, refunded, disputed \
                FROM revenue_monthly WHERE livemode = 0 AND account = '' ORDER BY month, currency";
    let from_report = report_figures(&embedded, &[]);
    assert!(
        from_report.len() > 20,
        "a history with figures: {from_report:?}"
    );
    assert_eq!(
        view_figures(&sqlite_rows(&sqlite, view)),
        from_report,
        "SQLite view vs report"
    );
    assert_eq!(
        view_figures(&clickhouse_rows(&db, view).await),
        report_figures(&clickhouse, &ch_env),
        "ClickHouse view vs report"
    );
    assert_eq!(
        report_figures(&clickhouse, &ch_env),
        from_report,
        "the two histories are the same"
    );

    // The ten examples: the same answers, and an answer.
    let examples = examples();
    assert_eq!(examples.len(), 10, "docs/analysts.md promises ten examples");
    for sql in &examples {
        let ch = clickhouse_rows(&db, sql).await;
        let lite = sqlite_rows(&sqlite, &sql.replace(" FINAL", ""));
        assert_eq!(ch, lite, "the two warehouses answer differently:\n{sql}");
        assert!(
            !ch.is_empty(),
            "no rows; the example shows nothing on the demo history:\n{sql}"
        );
    }
}
