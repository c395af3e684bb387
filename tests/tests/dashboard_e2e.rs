//! The dashboard page (`GET /` on the admin listener) in a real browser: headless Chromium
//! loads it from a running server holding a `revline demo` history, and every figure the
//! charts and tables show must equal what the `mrr`, `revenue` and `ar-aging` reports print
//! for the same data. The same page comes byte for byte from the embedded warehouse and
//! from ClickHouse.
//!
//! The demo history is only the data here: the expected figures are the reports' own,
//! which `reports_e2e` and `finance_e2e` check against hand-worked numbers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use e2e::clickhouse::{url as clickhouse_url, TestDb};
use e2e::{now, run_to_exit, Options, Revline, TempDir};
use reports::calendar::format_utc;

/// Chromium: `REVLINE_TEST_CHROMIUM` (set by infra/test.sh), else `chromium` on the PATH.
fn chromium() -> PathBuf {
    if let Ok(path) = std::env::var("REVLINE_TEST_CHROMIUM") {
        return PathBuf::from(path);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .expect("sh runs");
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "chromium is not installed: run the tests with infra/test.sh, which installs it \
         (apt-get install chromium), or set REVLINE_TEST_CHROMIUM"
    );
    PathBuf::from(path)
}

/// Runs headless Chromium on `url` with `args` and returns its stdout.
fn browse(url: &str, args: &[&str]) -> String {
    let profile = TempDir::new("chromium-profile");
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium starts");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the DOM is UTF-8")
}

/// The value of attribute `name` in an element's opening tag text.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Every opening tag `<{element} …>` of the document.
fn tags<'a>(dom: &'a str, element: &str) -> Vec<&'a str> {
    let open = format!("<{element} ");
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find(&open) {
        let end = rest[at..].find('>').expect("tags close") + at;
        out.push(&rest[at..end]);
        rest = &rest[end..];
    }
    out
}

/// Figures drawn in the charts: (chart, currency, series, label) → printed value.
fn drawn(dom: &str) -> BTreeMap<(String, String, String, String), String> {
    let mut out = BTreeMap::new();
    for figure in dom.split("<figure").skip(1) {
        let (Some(chart), Some(currency)) =
            (attr(figure, "data-chart"), attr(figure, "data-currency"))
        else {
            continue;
        };
        let figure = &figure[..figure.find("</figure>").expect("figures close")];
        for element in ["rect", "circle"] {
            for tag in tags(figure, element) {
                if let (Some(series), Some(label), Some(value)) = (
                    attr(tag, "data-series"),
                    attr(tag, "data-label"),
                    attr(tag, "data-value"),
                ) {
                    let key = (chart.into(), currency.into(), series.into(), label.into());
                    out.insert(key, value.into());
                }
            }
        }
    }
    out
}

/// The rows of the page's table `kind` for `currency`: column → cell, per row.
fn page_table(dom: &str, kind: &str, currency: &str) -> Vec<BTreeMap<String, String>> {
    let open = format!("<table data-table=\"{kind}\" data-currency=\"{currency}\">");
    let Some(at) = dom.find(&open) else {
        return Vec::new();
    };
    let body = &dom[at..at + dom[at..].find("</table>").expect("tables close")];
    body.split("<tr>")
        .skip(2)
        .map(|row| {
            row.split("<td data-column=\"")
                .skip(1)
                .map(|cell| {
                    let (column, rest) = cell.split_once("\">").expect("a cell");
                    let value = &rest[..rest.find("</td>").expect("cells close")];
                    (column.to_owned(), value.to_owned())
                })
                .collect()
        })
        .collect()
}

/// A CSV report as rows of column → cell (the reports never quote these cells).
fn csv(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .map(|(h, v)| ((*h).to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

async fn get(app: &Revline, path: &str) -> String {
    let resp = app.admin_get(path).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

fn run_demo(app: &Revline, env: &[(&str, String)], report_now: &str) {
    let mut opts = Options {
        data_dir: Some(app.data_dir.clone()),
        with_secret: false,
        ..Options::default()
    }
    .env("REVLINE_LISTEN", app.addr.to_string())
    .env("REVLINE_REPORT_NOW", report_now)
    .args_of(&[
        "demo",
        "--customers",
        "30",
        "--months",
        "10",
        "--seed",
        "11",
    ]);
    for (k, v) in env {
        opts = opts.env(k, v.clone());
    }
    let (status, _, stderr) = run_to_exit(opts);
    assert!(status.success(), "{stderr}");
    assert!(
        !stderr.contains("warning: only"),
        "all reconciled: {stderr}"
    );
}

#[tokio::test]
async fn the_dashboard_renders_in_chromium_and_shows_the_reports_figures() {
    // One fixed "now" for the demo's history, both servers and their reports.
    let report_now = format_utc(now() - now() % 60);
    let serve = |env: &[(&str, String)]| {
        let mut opts = Options {
            with_secret: false,
            ..Options::default()
        }
        .env("REVLINE_REPORT_NOW", &report_now)
        .env("REVLINE_RECONCILE_BATCH_WAIT_MS", "50");
        for (k, v) in env {
            opts = opts.env(k, v.clone());
        }
        opts
    };
    let embedded = Revline::start(serve(&[])).await;
    let db = TestDb::new(&clickhouse_url().await);
    let ch_env = [
        ("REVLINE_CLICKHOUSE_URL", db.url.clone()),
        ("REVLINE_CLICKHOUSE_DATABASE", db.name.clone()),
    ];
    let clickhouse = Revline::start(serve(&ch_env)).await;
    run_demo(&embedded, &[], &report_now);
    run_demo(&clickhouse, &ch_env, &report_now);

    let page = get(&embedded, "/").await;
    assert_eq!(
        page,
        get(&clickhouse, "/").await,
        "the page differs between the warehouses"
    );
    assert!(!page.contains("<script"), "no JavaScript");
    assert_eq!(
        page.matches("http").count(),
        page.matches("http://www.w3.org/2000/svg").count(),
        "no external resource (the only URL is the SVG namespace)"
    );

    // Rendered by a browser: the DOM after layout holds every chart with its marks.
    let url = embedded.admin_url("/");
    let dom = browse(&url, &["--dump-dom"]);
    let mrr = csv(&get(&embedded, "/reports/mrr?format=csv").await);
    let revenue = csv(&get(&embedded, "/reports/revenue?format=csv").await);
    let aging = csv(&get(&embedded, "/reports/ar-aging?format=csv").await);
    let marks = drawn(&dom);
    let currencies: Vec<&str> = ["eur", "jpy", "usd"].into();
    for c in &currencies {
        for chart in ["mrr", "mrr-movements", "revenue", "ar-aging"] {
            assert!(
                dom.contains(&format!(
                    "<figure data-chart=\"{chart}\" data-currency=\"{c}\">"
                )),
                "{chart} chart for {c}"
            );
        }
    }
    assert!(dom.matches("<svg").count() >= 4 * currencies.len());

    // Every point and bar carries the report's printed figure; zero bars are not drawn.
    let mut checked = 0;
    for row in &mrr {
        let (month, currency) = (&row["month"], &row["currency"]);
        let key = |chart: &str, series: &str| {
            (
                chart.to_owned(),
                currency.clone(),
                series.to_owned(),
                month.clone(),
            )
        };
        assert_eq!(
            marks.get(&key("mrr", "mrr_end")),
            Some(&row["mrr_end"]),
            "{month} {currency}"
        );
        for series in ["new", "expansion", "reactivation", "contraction", "churn"] {
            let shown = marks.get(&key("mrr-movements", series));
            if e2e::minor(&row[series]) == 0 {
                assert_eq!(shown, None, "{series} {month} {currency}");
            } else {
                assert_eq!(shown, Some(&row[series]), "{series} {month} {currency}");
                checked += 1;
            }
        }
    }
    for row in &revenue {
        let (month, currency) = (&row["month"], &row["currency"]);
        for series in ["collected", "refunded", "net"] {
            let key = (
                "revenue".to_owned(),
                currency.clone(),
                series.to_owned(),
                month.clone(),
            );
            if e2e::minor(&row[series]) != 0 {
                assert_eq!(
                    marks.get(&key),
                    Some(&row[series]),
                    "{series} {month} {currency}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "a real history draws many bars ({checked})");

    // The tables under the charts are the reports' rows, cell for cell.
    for c in &currencies {
        let of = |rows: &[BTreeMap<String, String>]| {
            rows.iter()
                .filter(|r| r["currency"] == *c)
                .cloned()
                .collect::<Vec<_>>()
        };
        for (kind, report) in [
            ("mrr", &mrr),
            ("mrr-movements", &mrr),
            ("revenue", &revenue),
            ("ar-aging", &aging),
        ] {
            let shown = page_table(&dom, kind, c);
            let expected = of(report);
            assert_eq!(shown.len(), expected.len(), "{kind} {c}: rows");
            for (s, e) in shown.iter().zip(&expected) {
                for (column, value) in s {
                    assert_eq!(Some(value), e.get(column), "{kind} {c} {column}");
                }
            }
        }
    }

    // A screenshot: a PNG of the requested size with the charts in it (a blank page of
    // this size compresses to a few KB).
    let shots = TempDir::new("dashboard-shot");
    let png = shots.path().join("dashboard.png");
    browse(
        &url,
        &[
            "--window-size=800,1600",
            &format!("--screenshot={}", png.display()),
        ],
    );
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (800, 1600));
    assert!(
        bytes.len() > 30_000,
        "the charts are drawn ({} bytes)",
        bytes.len()
    );
}

#[tokio::test]
async fn the_dashboard_refuses_bad_parameters_and_says_when_there_is_no_data() {
    let app = Revline::start(Options::default()).await;
    let page = get(&app, "/").await;
    assert!(page.contains("No revenue data yet"), "{page}");
    for (query, parameter) in [
        ("/?from=2026-13", "from"),
        ("/?detail=true", "detail"),
        ("/?format=csv", "format"),
        ("/?nope=1", "nope"),
    ] {
        let resp = app.admin_get(query).await;
        assert_eq!(resp.status(), 400, "{query}");
        let body: serde_json::Value = resp.json().await.unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{parameter}: ")),
            "{query}: {message}"
        );
    }
    assert_eq!(
        app.get("/").await.status(),
        404,
        "not on the webhook listener"
    );
}
