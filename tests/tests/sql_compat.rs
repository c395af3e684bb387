//! Every DDL statement and every query revline sends to ClickHouse runs on both the 18.16
//! test server (Debian's package) and current ClickHouse (chDB 26.x, in-process), and the
//! counts agree. A query that only one of them accepts fails here, not in production. The
//! read port's generated queries are included with every filter, grouping and sum they
//! can take on each table.

use std::io::Write;
use std::process::{Command, Stdio};

use e2e::clickhouse::{http, url};
use schemas::facts::{TableInfo, TableTypeVisitor, TABLES};
use warehouse::clickhouse::{aggregate_sql, rows_sql, sql, Param};
use warehouse::{
    statements, Account, AggregateQuery, Condition, Filter, GroupKey, RowQuery, TimeRange,
    MIGRATIONS,
};

/// Qualifies table names with `db` (the HTTP interface has no session to `USE` in).
fn qualify(sql: &str, db: &str) -> String {
    let mut out = sql
        .replace(
            "CREATE TABLE IF NOT EXISTS ",
            &format!("CREATE TABLE IF NOT EXISTS {db}."),
        )
        .replace(
            "CREATE VIEW IF NOT EXISTS ",
            &format!("CREATE VIEW IF NOT EXISTS {db}."),
        );
    for table in TABLES
        .iter()
        .map(|t| t.name)
        .chain(std::iter::once("schema_migrations"))
    {
        out = out.replace(&format!("FROM {table} "), &format!("FROM {db}.{table} "));
        out = out.replace(&format!("FROM {table})"), &format!("FROM {db}.{table})"));
        if out.ends_with(&format!("FROM {table}")) {
            out = format!("{}{db}.{table}", &out[..out.len() - table.len()]);
        }
        out = out.replace(&format!("INTO {table} "), &format!("INTO {db}.{table} "));
        out = out.replace(
            &format!("ALTER TABLE {table} "),
            &format!("ALTER TABLE {db}.{table} "),
        );
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
    schemas::facts::table(table).unwrap().columns
}

/// Generated parameters as SQL literals.
fn literals(params: &[Param]) -> Vec<String> {
    params
        .iter()
        .map(|p| match p {
            Param::Int(i) => i.to_string(),
            Param::Text(t) => format!("'{t}'"),
        })
        .collect()
}

/// The most a read of `info` can filter on: mode, platform account, a currency and the
/// first time column, each when the table has it.
fn widest_filter(info: &TableInfo) -> Filter {
    let has = |c: &str| info.columns.contains(&c);
    let time = info
        .columns
        .iter()
        .zip(info.types)
        .find(|(_, t)| t.replace(' ', "").ends_with("u32") || t.replace(' ', "") == "Option<u32>")
        .map(|(c, _)| TimeRange {
            column: c,
            from: Some(1_700_000_000),
            until: Some(1_900_000_000),
        });
    Filter {
        livemode: has("livemode").then_some(true),
        account: if has("account") {
            Account::One("acct_1".into())
        } else {
            Account::All
        },
        currency: has("currency").then(|| "usd".to_owned()),
        time,
        conditions: info
            .columns
            .iter()
            .zip(info.types)
            .filter_map(|(c, t)| match t.replace(' ', "").as_str() {
                "String" => Some(Condition::Eq(c, "x".to_owned())),
                "Option<String>" => Some(Condition::NotNull(c)),
                _ => None,
            })
            .take(3)
            .chain(
                info.columns
                    .iter()
                    .zip(info.types)
                    .find(|(c, t)| **c != "version" && t.replace(' ', "") == "i64")
                    .map(|(c, _)| Condition::Positive(c)),
            )
            .collect(),
    }
}

/// Every table's generated row read and aggregate, with the widest filter.
fn read_port_queries(db: &str) -> Vec<String> {
    struct Collect<'a> {
        db: &'a str,
        out: Vec<String>,
    }
    impl TableTypeVisitor for Collect<'_> {
        fn table<T: schemas::facts::FactTable>(&mut self) {
            let info = schemas::facts::table(T::TABLE).unwrap();
            let filter = widest_filter(info);
            let (sql, params) = rows_sql::<T>(&RowQuery {
                filter: filter.clone(),
                order_by: vec![],
            })
            .unwrap();
            let values = literals(&params);
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            self.out
                .push(qualify(&bind(&sql, info.columns, &refs), self.db));
            let mut group_by = Vec::new();
            if info.columns.contains(&"currency") {
                group_by.push(GroupKey::Column("currency"));
            }
            if let Some(time) = &filter.time {
                group_by.push(GroupKey::Month(time.column));
            }
            let sums: Vec<&'static str> = info
                .columns
                .iter()
                .zip(info.types)
                .filter(|(c, t)| {
                    **c != "version"
                        && matches!(t.replace(' ', "").as_str(), "i64" | "Option<i64>" | "u8")
                })
                .map(|(c, _)| *c)
                .collect();
            let earliest: Vec<&'static str> = info
                .columns
                .iter()
                .zip(info.types)
                .filter(|(_, t)| matches!(t.replace(' ', "").as_str(), "u32" | "Option<u32>"))
                .map(|(c, _)| *c)
                .collect();
            let (sql, params) = aggregate_sql(&AggregateQuery {
                table: info.name,
                group_by,
                sums,
                earliest,
                filter,
            })
            .unwrap();
            let values = literals(&params);
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            self.out.push(qualify(&bind(&sql, &[], &refs), self.db));
        }
    }
    let mut collect = Collect {
        db,
        out: Vec::new(),
    };
    schemas::facts::visit_tables(&mut collect);
    collect.out
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
    for table in TABLES.iter().map(|t| t.name) {
        stmts.push(format!(
            "INSERT INTO {db}.{table} (id, version) VALUES ('a', 1), ('a', 2), ('b', 1)"
        ));
    }
    stmts.push(qualify(
        &bind(sql::LOAD_STATE, columns("reconcile_state"), &[]),
        db,
    ));
    stmts.push(qualify(
        &format!(
            "{} WHERE ((id >= 'pend:' AND id < 'pend;') OR (id >= 'wait:' AND id < 'wait;')) AND version >= 0",
            sql::LOAD_STATE_KEYS
        ),
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
            &["-1", "-1", "''"],
        ),
        db,
    ));
    for table in TABLES.iter().map(|t| t.name) {
        // What `Warehouse::count` sends: an aggregate without groups.
        let (count, _) = aggregate_sql(&AggregateQuery::count(table)).unwrap();
        stmts.push(qualify(&count, db));
    }
    stmts.extend(read_port_queries(db));
    // The analysts' views, over the rows above.
    for view in ["invoice_register", "revenue_monthly"] {
        stmts.push(format!("SELECT * FROM {db}.{view} ORDER BY 1"));
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

#[tokio::test]
async fn every_ddl_statement_and_query_runs_on_clickhouse_18_and_current_clickhouse() {
    let server = url().await;
    let db = e2e::unique("revline_sql").replace('-', "_");
    let stmts = workload(&db);
    assert!(stmts.len() > 70);

    let mut old: Vec<Result<String, String>> = Vec::new();
    for stmt in &stmts {
        old.push(http(&server, stmt).await);
    }
    let _ = http(&server, &format!("DROP DATABASE IF EXISTS {db}")).await;
    let new = run_chdb(&stmts);
    assert_eq!(new.len(), stmts.len());

    let version = http(&server, "SELECT version()").await.unwrap();
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
        if stmt.starts_with("SELECT count() AS c FROM") && !stmt.contains("WHERE") {
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

/// `revline migrate --cluster NAME --print`: every statement of the cluster DDL parses on
/// current ClickHouse (`formatQuery` in chDB, which cannot run `ON CLUSTER` or replicated
/// engines without Keeper), names the cluster, and there are a replicated local table and
/// a distributed table sharded by `cityHash64(id)` for every fact table.
#[test]
fn the_cluster_ddl_parses_on_current_clickhouse() {
    let (status, stdout, stderr) = e2e::run_to_exit(e2e::Options::default().args_of(&[
        "migrate",
        "--cluster",
        "revline_cluster",
        "--print",
    ]));
    assert!(status.success(), "{stderr}");
    let ddl: Vec<String> = stdout
        .split(";\n\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    for table in TABLES.iter().map(|t| t.name) {
        let local =
            format!("CREATE TABLE IF NOT EXISTS {table}_local ON CLUSTER revline_cluster\n");
        assert!(
            ddl.iter().any(|s| s.starts_with(&local)
                && s.contains(&format!("ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/revline/{table}_local', '{{replica}}', version)"))),
            "no replicated local table for {table}"
        );
        assert!(
            ddl.iter().any(|s| s.starts_with(&format!(
                "CREATE TABLE IF NOT EXISTS {table} ON CLUSTER revline_cluster AS {table}_local"
            )) && s.contains(&format!(
                "Distributed('revline_cluster', 'revline', '{table}_local', cityHash64(id))"
            ))),
            "no distributed table for {table}"
        );
    }
    assert!(ddl
        .iter()
        .all(|s| s.contains("ON CLUSTER revline_cluster") || s.starts_with("INSERT INTO")));
    let checks: Vec<String> = ddl
        .iter()
        .map(|s| {
            format!(
                "SELECT formatQuery('{}')",
                s.replace('\\', "\\\\").replace('\'', "\\'")
            )
        })
        .collect();
    let results = run_chdb(&checks);
    assert_eq!(results.len(), ddl.len());
    for (stmt, result) in ddl.iter().zip(&results) {
        assert_eq!(
            result["ok"], true,
            "current ClickHouse cannot parse:\n{stmt}\n{}",
            result["error"]
        );
        assert!(
            result["output"]
                .as_str()
                .unwrap()
                .contains("ON CLUSTER revline_cluster")
                || stmt.starts_with("INSERT"),
            "formatQuery lost the cluster: {}",
            result["output"]
        );
    }
    // A statement that does not parse fails here (so the check above can fail).
    let bad = run_chdb(&["SELECT formatQuery('CREATE TABLE x ON CLUSTER (')".to_owned()]);
    assert_eq!(bad[0]["ok"], false);
}
