//! ClickHouse on a cluster (`revline migrate --cluster NAME`, `REVLINE_CLICKHOUSE_CLUSTER`):
//! the single-node DDL of [`crate::migrations`] rewritten statement by statement.
//!
//! Every table becomes two: `<name>_local`, a `ReplicatedReplacingMergeTree` on each shard
//! (replicas kept in step through ClickHouse Keeper, under
//! `/clickhouse/tables/{shard}/<database>/<name>_local`, with the servers' `{shard}` and
//! `{replica}` macros), and `<name>`, a `Distributed` table over them sharded by
//! `cityHash64(id)`. Readers and writers keep using the plain names, so reports and the
//! reconciler work unchanged; all versions of one row land on one shard, because the id
//! never changes between versions (a customer id can, so it never shards), and `FINAL`
//! per shard is `FINAL` overall. Views are created on every node over the distributed
//! names. The one query with a subquery over another table (the balance transactions still
//! to fetch) uses `GLOBAL NOT IN`, which a single node accepts too; the reports themselves
//! read one table at a time and join in Rust, so none of them changes.
//!
//! Anything the rewrite does not know is an error, so a future migration cannot be
//! silently wrong on a cluster.

/// Why a statement has no cluster form.
#[derive(Debug, thiserror::Error)]
#[error("no ON CLUSTER form for this statement (extend warehouse::cluster): {0}")]
pub struct Unsupported(pub String);

/// The cluster statements for one single-node statement of the migrations.
pub fn rewrite(stmt: &str, cluster: &str, database: &str) -> Result<Vec<String>, Unsupported> {
    let on = format!("ON CLUSTER {cluster}");
    let words: Vec<&str> = stmt.split_whitespace().collect();
    let head = |n: usize| words.iter().take(n).copied().collect::<Vec<_>>().join(" ");
    let unsupported = || Unsupported(head(6));
    match words.as_slice() {
        ["CREATE", "DATABASE", "IF", "NOT", "EXISTS", db] => {
            Ok(vec![format!("CREATE DATABASE IF NOT EXISTS {db} {on}")])
        }
        ["CREATE", "TABLE", "IF", "NOT", "EXISTS", table, ..] => {
            let table = table.trim_end_matches('(');
            let rest = after_words(stmt, 6).ok_or_else(unsupported)?;
            let local = format!("{table}_local");
            let (columns, engine) = rest.split_once("ENGINE").ok_or_else(unsupported)?;
            let engine = engine.trim_start().trim_start_matches('=').trim_start();
            let (engine_name, after_engine) = split_engine(engine).ok_or_else(unsupported)?;
            let path = format!("'/clickhouse/tables/{{shard}}/{database}/{local}', '{{replica}}'");
            let replicated = match engine_name {
                ("ReplacingMergeTree", args) if !args.is_empty() => {
                    format!("ReplicatedReplacingMergeTree({path}, {args})")
                }
                ("ReplacingMergeTree", _) => format!("ReplicatedReplacingMergeTree({path})"),
                ("MergeTree", _) => format!("ReplicatedMergeTree({path})"),
                _ => return Err(unsupported()),
            };
            let order_by = after_engine
                .split_once("ORDER BY")
                .map(|(_, key)| key.trim())
                .filter(|key| !key.is_empty())
                .ok_or_else(unsupported)?;
            let has_id = columns
                .trim()
                .trim_start_matches('(')
                .split(',')
                .any(|column| column.split_whitespace().next() == Some("id"));
            let shard_key = if has_id {
                "id"
            } else {
                order_by.trim_start_matches('(').trim_end_matches(')')
            };
            Ok(vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {local} {on}\n{}\nENGINE = {replicated}{after_engine}",
                    columns.trim()
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {table} {on} AS {local}\n\
                     ENGINE = Distributed('{cluster}', '{database}', '{local}', cityHash64({shard_key}))"
                ),
            ])
        }
        ["CREATE", "VIEW", "IF", "NOT", "EXISTS", view, "AS", ..] => {
            let select = after_words(stmt, 7).ok_or_else(unsupported)?;
            Ok(vec![format!(
                "CREATE VIEW IF NOT EXISTS {view} {on} AS{select}"
            )])
        }
        ["ALTER", "TABLE", table, "ADD", "COLUMN", ..] => {
            // Both tables get the column: the distributed one reads it from the shards.
            let change = after_words(stmt, 5).ok_or_else(unsupported)?;
            Ok(vec![
                format!("ALTER TABLE {table}_local {on} ADD COLUMN IF NOT EXISTS{change}"),
                format!("ALTER TABLE {table} {on} ADD COLUMN IF NOT EXISTS{change}"),
            ])
        }
        ["ALTER", "TABLE", table, verb @ ("DELETE" | "UPDATE"), ..] => {
            // A mutation runs where the rows are: on every shard's local table.
            let rest = after_words(stmt, 4).ok_or_else(unsupported)?;
            Ok(vec![format!("ALTER TABLE {table}_local {on} {verb}{rest}")])
        }
        // Through the distributed table: the rows go to their shards.
        ["INSERT", "INTO", ..] => Ok(vec![stmt.to_owned()]),
        _ => Err(unsupported()),
    }
}

/// `stmt` after its first `n` whitespace-separated words (with the whitespace before the
/// next one).
fn after_words(stmt: &str, n: usize) -> Option<&str> {
    let mut rest = stmt;
    for _ in 0..n {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        rest = &rest[end..];
    }
    Some(rest)
}

/// `Name(args) tail` → `((Name, args), tail)`; `Name tail` → `((Name, ""), tail)`.
fn split_engine(engine: &str) -> Option<((&str, &str), &str)> {
    let name_end = engine
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(engine.len());
    let (name, rest) = engine.split_at(name_end);
    if name.is_empty() {
        return None;
    }
    match rest.strip_prefix('(') {
        Some(args) => {
            let close = args.find(')')?;
            Some(((name, args[..close].trim()), &args[close + 1..]))
        }
        None => Some(((name, ""), rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::{statements, MIGRATIONS};

    fn one(stmt: &str) -> Vec<String> {
        rewrite(stmt, "revline_cluster", "revline").unwrap()
    }

    #[test]
    fn a_table_becomes_a_replicated_local_table_and_a_distributed_one() {
        let out = one(
            "CREATE TABLE IF NOT EXISTS refunds\n(\n    id String,\n    version UInt64\n)\nENGINE = ReplacingMergeTree(version)\nORDER BY id",
        );
        assert_eq!(
            out,
            vec![
                "CREATE TABLE IF NOT EXISTS refunds_local ON CLUSTER revline_cluster\n(\n    id String,\n    version UInt64\n)\nENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/revline/refunds_local', '{replica}', version)\nORDER BY id".to_owned(),
                "CREATE TABLE IF NOT EXISTS refunds ON CLUSTER revline_cluster AS refunds_local\nENGINE = Distributed('revline_cluster', 'revline', 'refunds_local', cityHash64(id))".to_owned(),
            ]
        );
    }

    #[test]
    fn the_migrations_table_shards_by_its_key() {
        let out = one("CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, applied_at DateTime) ENGINE = MergeTree ORDER BY version");
        assert!(out[0].contains("ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/revline/schema_migrations_local', '{replica}') ORDER BY version"), "{}", out[0]);
        assert!(out[1].ends_with("cityHash64(version))"), "{}", out[1]);
    }

    #[test]
    fn alters_views_and_inserts() {
        assert_eq!(
            one("ALTER TABLE subscription_items ADD COLUMN tiers Nullable(String) AFTER tiers_mode"),
            vec![
                "ALTER TABLE subscription_items_local ON CLUSTER revline_cluster ADD COLUMN IF NOT EXISTS tiers Nullable(String) AFTER tiers_mode",
                "ALTER TABLE subscription_items ON CLUSTER revline_cluster ADD COLUMN IF NOT EXISTS tiers Nullable(String) AFTER tiers_mode",
            ]
        );
        assert_eq!(
            one("ALTER TABLE payments DELETE WHERE kind = 'invoice_payment'"),
            vec!["ALTER TABLE payments_local ON CLUSTER revline_cluster DELETE WHERE kind = 'invoice_payment'"]
        );
        assert_eq!(
            one("CREATE VIEW IF NOT EXISTS v AS\nSELECT id FROM invoices FINAL"),
            vec!["CREATE VIEW IF NOT EXISTS v ON CLUSTER revline_cluster AS\nSELECT id FROM invoices FINAL"]
        );
        assert_eq!(
            one("INSERT INTO a (id) SELECT id FROM b"),
            vec!["INSERT INTO a (id) SELECT id FROM b"]
        );
        assert!(rewrite("DROP TABLE x", "c", "d").is_err());
        assert!(rewrite(
            "CREATE TABLE IF NOT EXISTS x (id String) ENGINE = Log",
            "c",
            "d"
        )
        .is_err());
    }

    #[test]
    fn every_migration_statement_has_a_cluster_form() {
        for m in MIGRATIONS {
            for stmt in statements(m.clickhouse) {
                let out = rewrite(&stmt, "c", "d").unwrap_or_else(|e| panic!("{}: {e}", m.name));
                assert!(!out.is_empty());
                for s in &out {
                    if !s.starts_with("INSERT") {
                        assert!(s.contains(" ON CLUSTER c"), "{}: {s}", m.name);
                    }
                }
            }
        }
    }
}
