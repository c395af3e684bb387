//! The warehouse's DDL, versioned: `sql/clickhouse/NNN_name.sql` and
//! `sql/embedded/NNN_name.sql` hold the same tables and columns for each adapter, applied in
//! order by `revline migrate` (and at start) and recorded in `schema_migrations`.
//!
//! A change to a table's meaning comes as a new migration, never an edit of an applied one.
//! The tests below apply every migration of both folders, in order, without any server
//! (SQLite in memory; the ClickHouse DDL through a small interpreter of the statements it
//! uses) and check every table, column and type against the row types of
//! [`schemas::facts`], in both directions.

/// One migration, in both dialects.
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub clickhouse: &'static str,
    pub embedded: &'static str,
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "001_init",
        clickhouse: include_str!("../sql/clickhouse/001_init.sql"),
        embedded: include_str!("../sql/embedded/001_init.sql"),
    },
    Migration {
        version: 2,
        name: "002_discounts",
        clickhouse: include_str!("../sql/clickhouse/002_discounts.sql"),
        embedded: include_str!("../sql/embedded/002_discounts.sql"),
    },
    Migration {
        version: 3,
        name: "003_invoice_payments",
        clickhouse: include_str!("../sql/clickhouse/003_invoice_payments.sql"),
        embedded: include_str!("../sql/embedded/003_invoice_payments.sql"),
    },
    Migration {
        version: 4,
        name: "004_views",
        clickhouse: include_str!("../sql/clickhouse/004_views.sql"),
        embedded: include_str!("../sql/embedded/004_views.sql"),
    },
    Migration {
        version: 5,
        name: "005_payouts",
        clickhouse: include_str!("../sql/clickhouse/005_payouts.sql"),
        embedded: include_str!("../sql/embedded/005_payouts.sql"),
    },
    Migration {
        version: 6,
        name: "006_ledger_closes",
        clickhouse: include_str!("../sql/clickhouse/006_ledger_closes.sql"),
        embedded: include_str!("../sql/embedded/006_ledger_closes.sql"),
    },
    Migration {
        version: 7,
        name: "007_finance_views",
        clickhouse: include_str!("../sql/clickhouse/007_finance_views.sql"),
        embedded: include_str!("../sql/embedded/007_finance_views.sql"),
    },
    Migration {
        version: 8,
        name: "008_ties",
        clickhouse: include_str!("../sql/clickhouse/008_ties.sql"),
        embedded: include_str!("../sql/embedded/008_ties.sql"),
    },
    Migration {
        version: 9,
        name: "009_replay_order",
        clickhouse: include_str!("../sql/clickhouse/009_replay_order.sql"),
        embedded: include_str!("../sql/embedded/009_replay_order.sql"),
    },
];

/// Statements of a SQL file: comment lines dropped, then split on `;`, blank ones dropped.
pub fn statements(sql: &str) -> Vec<String> {
    // Comment lines go first, so that a `;` in a comment never splits a statement.
    let code: Vec<&str> = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    code.join("\n")
        .split(';')
        .map(|stmt| stmt.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use schemas::facts::TABLES;

    use super::*;

    /// `Option < u32 >` (as `stringify!` spells it) → `Option<u32>`.
    fn rust_type(t: &str) -> String {
        t.replace(' ', "")
    }

    fn inner(ty: &str) -> (bool, &str) {
        match ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>')) {
            Some(inner) => (true, inner),
            None => (false, ty),
        }
    }

    /// The ClickHouse type a Rust column type is written as (RowBinary is positional, so a
    /// wrong width would shift every later column).
    fn clickhouse_type(rust: &str) -> String {
        let (nullable, ty) = inner(rust);
        let base = match ty {
            "String" => "String",
            "i64" => "Int64",
            "u64" => "UInt64",
            "u8" => "UInt8",
            // Instants are Unix seconds in the rows, DateTime in ClickHouse.
            "u32" => "DateTime",
            other => panic!("no ClickHouse type for the Rust type {other}"),
        };
        if nullable {
            format!("Nullable({base})")
        } else {
            base.to_owned()
        }
    }

    /// `(declared type, NOT NULL)` of a Rust column type in SQLite.
    fn sqlite_type(rust: &str) -> (&'static str, bool) {
        let (nullable, ty) = inner(rust);
        let base = match ty {
            "String" => "TEXT",
            "i64" | "u64" | "u8" | "u32" => "INTEGER",
            other => panic!("no SQLite type for the Rust type {other}"),
        };
        (base, !nullable)
    }

    /// Tables and their `(column, type)` lists, in order.
    type Schema = BTreeMap<String, Vec<(String, String)>>;

    /// The columns between a `CREATE TABLE`'s outer parentheses.
    fn column_list(body: &str) -> Vec<(String, String)> {
        let mut cols = Vec::new();
        let mut depth = 0;
        let mut current = String::new();
        for ch in body.chars().chain(std::iter::once(',')) {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if ch == ',' && depth == 0 {
                let col = current.trim();
                if !col.is_empty() {
                    let (name, ty) = col.split_once(char::is_whitespace).expect("column type");
                    cols.push((name.to_owned(), ty.trim().to_owned()));
                }
                current.clear();
            } else {
                current.push(ch);
            }
        }
        cols
    }

    /// Applies one ClickHouse DDL statement to `schema`. Only the statement forms revline's
    /// migrations use are understood; anything else fails the test, so a new kind of
    /// migration must teach this interpreter first.
    fn apply_clickhouse(schema: &mut Schema, stmt: &str) {
        let words: Vec<&str> = stmt.split_whitespace().collect();
        match words.as_slice() {
            ["CREATE", "TABLE", "IF", "NOT", "EXISTS", name, ..] => {
                let name = name.split('(').next().unwrap().to_owned();
                let open = stmt.find('(').expect("column list");
                let mut depth = 0;
                let close = stmt[open..]
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += match c {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map(|(i, _)| open + i)
                    .expect("closing parenthesis");
                let cols = column_list(&stmt[open + 1..close]);
                schema.entry(name).or_insert(cols);
            }
            ["ALTER", "TABLE", name, "ADD", "COLUMN", "IF", "NOT", "EXISTS", col, ty, rest @ ..]
            | ["ALTER", "TABLE", name, "ADD", "COLUMN", col, ty, rest @ ..] => {
                let cols = schema.get_mut(*name).expect("ALTER of an unknown table");
                if cols.iter().any(|(c, _)| c == col) {
                    return;
                }
                let entry = ((*col).to_owned(), (*ty).to_owned());
                match rest {
                    ["AFTER", after] => {
                        let at = cols
                            .iter()
                            .position(|(c, _)| c == after)
                            .expect("AFTER column");
                        cols.insert(at + 1, entry);
                    }
                    [] => cols.push(entry),
                    other => panic!("the DDL test does not understand {other:?} in: {stmt}"),
                }
            }
            ["DROP", "TABLE", "IF", "EXISTS", name] | ["DROP", "TABLE", name] => {
                schema.remove(*name);
            }
            // Views: analysts' reading aids, not tables of a row type.
            ["CREATE", "VIEW", "IF", "NOT", "EXISTS", ..] => {}
            // Data statements: rows move, the schema does not.
            ["INSERT", "INTO", name, ..] | ["ALTER", "TABLE", name, "DELETE", "WHERE", ..] => {
                let name = name.split('(').next().unwrap();
                assert!(
                    schema.contains_key(name),
                    "{name} does not exist at:\n{stmt}"
                );
            }
            ["RENAME", "TABLE", from, "TO", to] => {
                let cols = schema.remove(*from).expect("RENAME of an unknown table");
                schema.insert((*to).to_owned(), cols);
            }
            _ => panic!("the DDL test does not understand this statement:\n{stmt}"),
        }
    }

    fn clickhouse_schema() -> Schema {
        let mut schema = Schema::new();
        for m in MIGRATIONS {
            for stmt in statements(m.clickhouse) {
                apply_clickhouse(&mut schema, &stmt);
            }
        }
        schema
    }

    fn embedded_schema() -> BTreeMap<String, Vec<(String, String, bool)>> {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for m in MIGRATIONS {
            for stmt in statements(m.embedded) {
                conn.execute_batch(&stmt)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{stmt}", m.name));
            }
        }
        let mut names = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .unwrap();
        let tables: Vec<String> = names
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut out = BTreeMap::new();
        for t in tables {
            let mut info = conn.prepare(&format!("PRAGMA table_info({t})")).unwrap();
            let cols = info
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)? == 1,
                    ))
                })
                .unwrap()
                .collect::<rusqlite::Result<Vec<_>>>()
                .unwrap();
            out.insert(t, cols);
        }
        out
    }

    #[test]
    fn migrations_are_numbered_in_order_and_named_after_their_files() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(
                m.name.starts_with(&format!("{:03}_", m.version)),
                "{}",
                m.name
            );
        }
    }

    #[test]
    fn every_clickhouse_migration_gives_exactly_the_row_types() {
        let schema = clickhouse_schema();
        for t in TABLES {
            let cols = schema
                .get(t.name)
                .unwrap_or_else(|| panic!("no ClickHouse table for the row type of {}", t.name));
            let expected: Vec<(String, String)> = t
                .columns
                .iter()
                .zip(t.types)
                .map(|(c, ty)| ((*c).to_owned(), clickhouse_type(&rust_type(ty))))
                .collect();
            assert_eq!(cols, &expected, "ClickHouse columns of {}", t.name);
        }
        for name in schema.keys() {
            assert!(
                TABLES.iter().any(|t| t.name == name),
                "ClickHouse table {name} has no row type"
            );
        }
    }

    #[test]
    fn every_embedded_migration_gives_exactly_the_row_types() {
        let schema = embedded_schema();
        for t in TABLES {
            let cols = schema
                .get(t.name)
                .unwrap_or_else(|| panic!("no embedded table for the row type of {}", t.name));
            let expected: Vec<(String, String, bool)> = t
                .columns
                .iter()
                .zip(t.types)
                .map(|(c, ty)| {
                    let (sql, not_null) = sqlite_type(&rust_type(ty));
                    // The primary key is NOT NULL by declaration order, not by the flag.
                    let not_null = not_null && *c != "id";
                    ((*c).to_owned(), sql.to_owned(), not_null)
                })
                .collect();
            assert_eq!(cols, &expected, "embedded columns of {}", t.name);
        }
        for name in schema.keys() {
            assert!(
                TABLES.iter().any(|t| t.name == name),
                "embedded table {name} has no row type"
            );
        }
    }

    #[test]
    fn the_interpreter_understands_added_columns_and_renames() {
        let mut schema = Schema::new();
        apply_clickhouse(
            &mut schema,
            "CREATE TABLE IF NOT EXISTS t (id String, version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY id",
        );
        apply_clickhouse(
            &mut schema,
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS x Nullable(Int64) AFTER id",
        );
        apply_clickhouse(&mut schema, "RENAME TABLE t TO u");
        assert_eq!(
            schema["u"],
            [
                ("id".to_owned(), "String".to_owned()),
                ("x".to_owned(), "Nullable(Int64)".to_owned()),
                ("version".to_owned(), "UInt64".to_owned()),
            ]
        );
    }
}
