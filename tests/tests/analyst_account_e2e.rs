//! A read-only ClickHouse account for analysts, as docs/analysts.md describes it: on the
//! 18.16 server through a users file (`readonly` in the account's profile; 18.16 has no
//! `CREATE USER`), on current ClickHouse through SQL, which chDB parses here. revline's
//! reports work through the account; writes through it are refused.

use e2e::clickhouse::{http, ClickHouseServer};
use e2e::stripe::{
    paid_invoice_event, paid_invoice_register, post_all, reporting, wait_for_report,
};
use e2e::{run_to_exit, unique, Options, Revline};

const ANALYST_PASSWORD: &str = "analyst-Pa55-for-the-test";

/// The package's defaults for `default`, plus `analyst` with a read-only profile limited to
/// `database`.
fn users_xml(database: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<yandex>
    <profiles>
        <default><max_memory_usage>10000000000</max_memory_usage></default>
        <analysts><readonly>1</readonly></analysts>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>::/0</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <analyst>
            <password>{ANALYST_PASSWORD}</password>
            <networks><ip>::1</ip><ip>127.0.0.1</ip></networks>
            <profile>analysts</profile>
            <quota>default</quota>
            <allow_databases><database>{database}</database></allow_databases>
        </analyst>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries><errors>0</errors><result_rows>0</result_rows>
                <read_rows>0</read_rows><execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"#
    )
}

#[tokio::test]
async fn reports_work_through_the_read_only_account_and_writes_are_refused() {
    let database = unique("revline_ro").replace('-', "_");
    let server = ClickHouseServer::start_with_users(&users_xml(&database)).await;
    let url = server.url();

    // revline itself writes as `default`.
    let app = Revline::start(reporting(
        "2026-03-10T00:00:00Z",
        &[
            ("REVLINE_CLICKHOUSE_URL", url.as_str()),
            ("REVLINE_CLICKHOUSE_DATABASE", database.as_str()),
        ],
    ))
    .await;
    post_all(&app, &[paid_invoice_event("in_ro", "cus_ro", 4200)]).await;
    let expected = paid_invoice_register("in_ro", "cus_ro", 4200);
    wait_for_report(&app, "/reports/invoices?format=csv", &expected).await;

    let analyst = || {
        Options::default()
            .env("REVLINE_CLICKHOUSE_URL", url.as_str())
            .env("REVLINE_CLICKHOUSE_DATABASE", database.as_str())
            .env("REVLINE_CLICKHOUSE_USER", "analyst")
            .env("REVLINE_CLICKHOUSE_PASSWORD", ANALYST_PASSWORD)
            .env("REVLINE_REPORT_NOW", "2026-03-10T00:00:00Z")
    };
    // The reports, through the analyst's account.
    let (status, stdout, stderr) =
        run_to_exit(analyst().args_of(&["report", "invoices", "--format", "csv"]));
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, expected);
    let (status, stdout, stderr) =
        run_to_exit(analyst().args_of(&["report", "revenue", "--format", "csv"]));
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("2026-03,usd,42.00"), "{stdout}");

    // Writes through it are refused: a migration of a new database, and a plain insert.
    let (status, _, stderr) = run_to_exit(
        analyst()
            .env("REVLINE_CLICKHOUSE_DATABASE", format!("{database}_new"))
            .arg("migrate"),
    );
    assert!(!status.success(), "the analyst created a database");
    let with_analyst = url.replacen("://", &format!("://analyst:{ANALYST_PASSWORD}@"), 1);
    let insert = http(
        &with_analyst,
        &format!("INSERT INTO {database}.dead_letters (id, reason, detail, received_at_ms, version) VALUES ('x', 'r', 'd', 0, 1)"),
    )
    .await;
    let refused = insert.expect_err("the analyst inserted a row");
    assert!(refused.contains("readonly"), "{refused}");
    assert!(!stderr.contains(ANALYST_PASSWORD), "{stderr}");
}

/// The SQL docs/analysts.md gives for current ClickHouse parses there (chDB's
/// `formatQuery`; chDB keeps no users, so it cannot run it).
#[test]
fn the_documented_sql_for_current_clickhouse_parses() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/analysts.md"))
        .unwrap();
    let block = doc
        .split("<!-- analyst-sql -->\n```sql\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/analysts.md holds the analyst SQL block");
    let statements: Vec<&str> = block
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert!(statements
        .iter()
        .any(|s| s.starts_with("CREATE USER") && s.contains("readonly = 1")));
    assert!(statements
        .iter()
        .any(|s| s.starts_with("GRANT SELECT ON revline.*")));
    let python = std::env::var("REVLINE_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    for stmt in statements {
        let quoted = stmt.replace('\\', "\\\\").replace('\'', "\\'");
        let out = std::process::Command::new(&python)
            .args([
                "-c",
                "import chdb, sys; print(chdb.query(sys.argv[1], 'TSVRaw'))",
            ])
            .arg(format!("SELECT formatQuery('{quoted}')"))
            .output()
            .expect("python with chdb (infra/test.sh installs it)");
        assert!(
            out.status.success(),
            "current ClickHouse cannot parse:\n{stmt}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let formatted = String::from_utf8_lossy(&out.stdout);
        assert!(formatted.contains("analyst"), "{formatted}");
    }
}
