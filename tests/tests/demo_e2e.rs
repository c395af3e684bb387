//! `revline demo` end to end, as a newcomer runs it: `revline serve` on the embedded
//! default with the secret it generated on first run, then `revline demo` with the same
//! data dir, which posts its history and prints the MRR table.

use e2e::{minor, run_to_exit, Options, Revline};

fn demo(app: &Revline, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let mut opts = Options {
        data_dir: Some(app.data_dir.clone()),
        with_secret: false,
        ..Options::default()
    }
    .env("REVLINE_LISTEN", app.addr.to_string())
    .arg("demo");
    for a in args {
        opts = opts.arg(a);
    }
    run_to_exit(opts)
}

#[tokio::test]
async fn the_demo_posts_a_history_that_reconciles_without_a_dead_letter_and_prints_mrr() {
    let app = Revline::start(Options {
        with_secret: false,
        ..Options::default()
    })
    .await;
    let (status, stdout, stderr) =
        demo(&app, &["--customers", "25", "--months", "8", "--seed", "5"]);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("posting"), "{stderr}");
    assert!(
        !stderr.contains("warning: only"),
        "everything reconciled: {stderr}"
    );
    let header = stdout.lines().next().unwrap_or_default();
    for column in [
        "month",
        "currency",
        "mrr_start",
        "new",
        "churn",
        "mrr_end",
        "arr_end",
    ] {
        assert!(header.contains(column), "the MRR table: {stdout}");
    }
    assert!(stdout.contains(" usd "), "{stdout}");

    // The same figures as CSV: a real history, whose identity holds on every row.
    let (status, csv, stderr) = run_to_exit(
        Options {
            data_dir: Some(app.data_dir.clone()),
            with_secret: false,
            ..Options::default()
        }
        .args_of(&["report", "mrr", "--livemode", "false", "--format", "csv"]),
    );
    assert!(status.success(), "{stderr}");
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert!(rows.len() >= 9, "at least 9 months of usd: {csv}");
    let mut moved = 0;
    for f in &rows {
        let [start, new, expansion, contraction, churn, reactivation, end] =
            [2, 3, 4, 5, 6, 7, 8].map(|i| minor(f[i]));
        assert_eq!(
            end,
            start + new + reactivation + expansion - contraction - churn,
            "{f:?}"
        );
        moved += new + expansion + contraction + churn + reactivation;
    }
    assert!(moved > 0, "the history moves MRR: {csv}");

    // Every generated event decoded into facts: no dead letter.
    let warehouse = rusqlite::Connection::open(app.data_dir.join("warehouse.sqlite")).unwrap();
    let count = |sql: &str| -> i64 { warehouse.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM dead_letters"), 0);
    assert!(count("SELECT count(*) FROM stripe_events WHERE id LIKE 'evt_demo_%'") > 100);
    assert_eq!(
        count("SELECT count(*) FROM stripe_events WHERE livemode = 1"),
        0
    );
    for table in [
        "invoices",
        "payments",
        "invoice_payments",
        "refunds",
        "disputes",
        "discounts",
    ] {
        assert!(
            count(&format!("SELECT count(*) FROM {table}")) > 0,
            "{table} is empty"
        );
    }

    // A second run would mix histories: refused unless asked for.
    let (status, _, stderr) = demo(&app, &["--customers", "2"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
}

#[tokio::test]
async fn the_demo_says_clearly_when_nothing_listens_or_an_option_is_out_of_range() {
    let app = Revline::start(Options::default()).await;
    let (status, _, stderr) = run_to_exit(
        Options {
            data_dir: Some(app.data_dir.clone()),
            ..Options::default()
        }
        .args_of(&["demo", "--url", "http://127.0.0.1:9/webhooks/stripe"]),
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach http://127.0.0.1:9"),
        "{stderr}"
    );
    let (status, _, stderr) = run_to_exit(Options::default().args_of(&["demo", "--months", "0"]));
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--months"), "{stderr}");
}
