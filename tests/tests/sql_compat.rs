//! Every DDL statement and every query revline sends to ClickHouse runs on both the 18.16
//! test server (Debian's package) and current ClickHouse (chDB 26.x, in-process), and the
//! counts agree. A query that only one of them accepts fails here, not in production.

use std::io::Write;
use std::process::{Command, Stdio};

use e2e::clickhouse::{http, url};
use reconcile::warehouse::clickhouse::sql;
use reconcile::warehouse::{statements, MIGRATIONS};
use schemas::facts::TABLES;

/// Qualifies table names with `db` (the HTTP interface has no session to `USE` in).
fn qualify(sql: &str, db: &str) -> String {
    let mut out = sql.replace(
        "CREATE TABLE IF NOT EXISTS ",
        &format!("CREATE TABLE IF NOT EXISTS {db}."),
    );
    for (table, _) in TABLES.iter().chain([("schema_migrations", &[][..])].iter()) {
        out = out.replace(&format!("FROM {table} "), &format!("FROM {db}.{table} "));
        out = out.replace(&format!("FROM {table})"), &format!("FROM {db}.{table})"));
        if out.ends_with(&format!("FROM {table}")) {
            out = format!("{}{db}.{table}", &out[..out.len() - table.len()]);
        }
        out = out.replace(&format!("INTO {table} "), &format!("INTO {db}.{table} "));
    }
    out
}

/// Fills the client-side placeholders the way the `clickhouse` crate does.
fn bind(sql: &str, fields: &[&str], params: &[&str]) -> String {
    let quoted: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
    let mut out = sql.replace("?fields", &quoted.join(","));
    for p in params {
        out = out.replacen('?', p, 1);
    }
    out
}

fn columns(table: &str) -> &'static [&'static str] {
    TABLES
        .iter()
        .find(|(t, _)| *t == table)
        .map(|(_, c)| *c)
        .unwrap()
}

fn workload(db: &str) -> Vec<String> {
    let mut stmts = vec![format!("CREATE DATABASE IF NOT EXISTS {db}")];
    for m in MIGRATIONS {
        stmts.extend(statements(m.clickhouse).iter().map(|s| qualify(s, db)));
    }
    stmts.push(qualify(sql::CREATE_MIGRATIONS, db));
    stmts.push(qualify(
        &bind(sql::RECORD_MIGRATION, &[], &["1", "'001_init'"]),
        db,
    ));
    stmts.push(qualify(
        &bind(sql::APPLIED_MIGRATIONS, &["version"], &[]),
        db,
    ));
    // Two versions of the same ids: FINAL must keep one row per id.
    for (table, _) in TABLES {
        stmts.push(format!(
            "INSERT INTO {db}.{table} (id, version) VALUES ('a', 1), ('a', 2), ('b', 1)"
        ));
    }
    stmts.push(qualify(
        &bind(sql::LOAD_STATE, columns("reconcile_state"), &[]),
        db,
    ));
    stmts.push(qualify(
        &bind(
            sql::LOAD_STATE_IDS,
            columns("reconcile_state"),
            &["['a', 'zzz']"],
        ),
        db,
    ));
    stmts.push(qualify(
        &bind(
            sql::RAW_EVENTS_AFTER,
            columns("stripe_events"),
            &["-1", "-1", "''", "10"],
        ),
        db,
    ));
    for (table, cols) in TABLES {
        stmts.push(qualify(
            &bind(&sql::FETCH_ALL.replace("{table}", table), cols, &[]),
            db,
        ));
        stmts.push(qualify(&sql::COUNT.replace("{table}", table), db));
    }
    stmts
}

fn run_chdb(stmts: &[String]) -> Vec<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sql/chdb_run.py");
    let python = std::env::var("REVLINE_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(stmts).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "chDB runner failed (infra/test.sh installs chdb-core): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_ddl_statement_and_query_runs_on_clickhouse_18_and_current_clickhouse() {
    let server = url();
    let db = e2e::unique("revline_sql").replace('-', "_");
    let stmts = workload(&db);
    assert!(stmts.len() > 40);

    let old: Vec<Result<String, String>> = stmts.iter().map(|s| http(&server, s)).collect();
    let _ = http(&server, &format!("DROP DATABASE IF EXISTS {db}"));
    let new = run_chdb(&stmts);
    assert_eq!(new.len(), stmts.len());

    let version = http(&server, "SELECT version()").unwrap();
    assert!(
        version.starts_with("18."),
        "the wire test server should be the old one, got {version}"
    );
    for ((stmt, old), new) in stmts.iter().zip(&old).zip(&new) {
        if let Err(e) = old {
            panic!("ClickHouse {version} rejects:\n{stmt}\n{e}");
        }
        assert_eq!(
            new["ok"], true,
            "current ClickHouse (chDB) rejects:\n{stmt}\n{}",
            new["error"]
        );
        if stmt.starts_with("SELECT count()") {
            assert_eq!(
                old.as_ref().unwrap().trim(),
                "2",
                "FINAL keeps one row per id on 18.16: {stmt}"
            );
            assert_eq!(
                new["output"].as_str().unwrap().trim(),
                "2",
                "FINAL keeps one row per id on chDB: {stmt}"
            );
        }
    }
}
