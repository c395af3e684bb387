//! The read side of the port, in the project's terms: which rows ([`Filter`]: mode,
//! Connect account, currency, a time column and range), in which order ([`RowQuery`]), and
//! integer `count`/`sum` aggregates grouped by columns or by month ([`AggregateQuery`]).
//!
//! Queries name columns as `&'static str` and are checked against the table's declaration
//! ([`schemas::facts::TABLES`]) before an adapter turns them into SQL, so no caller input
//! ever reaches SQL text: values are bound as parameters. Money is summed as integers
//! (minor units); division and rounding are the callers' business, in Rust.

use schemas::facts::{table, TableInfo};

use crate::{Result, WarehouseError};

/// Whose rows a read covers: the platform's own (no Connect account), one connected
/// account's, or every row whatever its account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Account {
    /// Every row, whatever its account (no filter).
    #[default]
    All,
    /// Rows without a Connect account.
    Platform,
    /// Rows of one connected account (`acct_…`).
    One(String),
}

/// A half-open range `[from, until)` of Unix seconds on one of the table's time columns
/// (`u32` in the row types, `DateTime` in ClickHouse). Rows whose column is null are out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeRange {
    pub column: &'static str,
    pub from: Option<i64>,
    pub until: Option<i64>,
}

/// A condition on one column, for what the fixed fields of [`Filter`] do not say (a
/// status, a kind, whether a reference is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// A text column equals a value.
    Eq(&'static str, String),
    /// A nullable column is null.
    IsNull(&'static str),
    /// A nullable column is not null.
    NotNull(&'static str),
    /// An integer column is above zero.
    Positive(&'static str),
    /// An integer column is zero (a flag that is off).
    Zero(&'static str),
}

/// Which rows a read covers. The default covers every row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only live-mode (`true`) or test-mode (`false`) rows.
    pub livemode: Option<bool>,
    pub account: Account,
    /// Only rows in this currency (lowercase ISO code).
    pub currency: Option<String>,
    pub time: Option<TimeRange>,
    /// Further conditions, all of which must hold.
    pub conditions: Vec<Condition>,
}

/// A filtered, ordered read of one table's rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowQuery {
    pub filter: Filter,
    /// Columns to order by, ascending; `id` when empty. Ties are broken by `id`.
    pub order_by: Vec<&'static str>,
}

/// What an aggregate groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKey {
    /// A column's value (text, or an integer written in decimal).
    Column(&'static str),
    /// The UTC month (`YYYY-MM`) of a time column.
    Month(&'static str),
}

/// `count()`, integer `sum`s and the earliest instants of one table, grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateQuery {
    pub table: &'static str,
    pub group_by: Vec<GroupKey>,
    /// Integer columns to sum.
    pub sums: Vec<&'static str>,
    /// Time columns whose earliest value (nulls left out) each group reports.
    pub earliest: Vec<&'static str>,
    pub filter: Filter,
}

impl AggregateQuery {
    /// The number of rows of a table.
    pub fn count(table: &'static str) -> AggregateQuery {
        AggregateQuery {
            table,
            group_by: Vec::new(),
            sums: Vec::new(),
            earliest: Vec::new(),
            filter: Filter::default(),
        }
    }
}

/// One group of an aggregate: its keys (in `group_by` order; `None` for null), the number
/// of rows, the sums (in `sums` order) and the earliest instants (in `earliest` order;
/// `None` when every value was null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateRow {
    pub keys: Vec<Option<String>>,
    pub count: u64,
    pub sums: Vec<i64>,
    pub earliest: Vec<Option<i64>>,
}

fn invalid(message: String) -> WarehouseError {
    WarehouseError::InvalidQuery(message)
}

/// The Rust type of a column without spaces (`Option<u32>`), or an error naming it.
fn column_type(info: &TableInfo, column: &str) -> Result<String> {
    info.column_type(column)
        .map(|t| t.replace(' ', ""))
        .ok_or_else(|| invalid(format!("table {} has no column {column}", info.name)))
}

fn is_time(ty: &str) -> bool {
    ty == "u32" || ty == "Option<u32>"
}

fn is_integer(ty: &str) -> bool {
    let inner = ty
        .strip_prefix("Option<")
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(ty);
    // `u32` columns are instants (DateTime in ClickHouse): grouped by month, never summed.
    matches!(inner, "i64" | "u64" | "u8")
}

/// Checks a filter against a table: every column it needs exists with a fitting type.
pub fn check_filter(info: &TableInfo, filter: &Filter) -> Result<()> {
    if filter.livemode.is_some() {
        column_type(info, "livemode")?;
    }
    if filter.account != Account::All {
        column_type(info, "account")?;
    }
    if let Some(currency) = &filter.currency {
        column_type(info, "currency")?;
        if currency.is_empty() || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(invalid(format!(
                "currency {currency:?} is not a lowercase ISO code"
            )));
        }
    }
    if let Some(range) = &filter.time {
        let ty = column_type(info, range.column)?;
        if !is_time(&ty) {
            return Err(invalid(format!(
                "{}.{} is not a time column",
                info.name, range.column
            )));
        }
    }
    for condition in &filter.conditions {
        match condition {
            Condition::Eq(column, _) => {
                let ty = column_type(info, column)?;
                if ty != "String" && ty != "Option<String>" {
                    return Err(invalid(format!(
                        "{}.{column} is {ty}: equality conditions are on text columns",
                        info.name
                    )));
                }
            }
            Condition::IsNull(column) | Condition::NotNull(column) => {
                let ty = column_type(info, column)?;
                if !ty.starts_with("Option<") {
                    return Err(invalid(format!(
                        "{}.{column} is {ty}, never null",
                        info.name
                    )));
                }
            }
            Condition::Positive(column) | Condition::Zero(column) => {
                let ty = column_type(info, column)?;
                if !is_integer(&ty) {
                    return Err(invalid(format!(
                        "{}.{column} is {ty}: sign conditions are on integer columns",
                        info.name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Checks a row query against a table and returns its order (`id` last as the tie-break).
pub fn check_rows(info: &TableInfo, query: &RowQuery) -> Result<Vec<&'static str>> {
    check_filter(info, &query.filter)?;
    let mut order = Vec::with_capacity(query.order_by.len() + 1);
    for column in &query.order_by {
        column_type(info, column)?;
        if !order.contains(column) {
            order.push(*column);
        }
    }
    if !order.contains(&"id") {
        order.push("id");
    }
    Ok(order)
}

/// Checks an aggregate query and returns its table.
pub fn check_aggregate(query: &AggregateQuery) -> Result<&'static TableInfo> {
    let info =
        table(query.table).ok_or_else(|| invalid(format!("unknown table {}", query.table)))?;
    check_filter(info, &query.filter)?;
    for key in &query.group_by {
        match key {
            GroupKey::Column(column) => {
                if is_time(&column_type(info, column)?) {
                    // The adapters would print instants differently: group them by month.
                    return Err(invalid(format!(
                        "{}.{column} is a time column: group it with GroupKey::Month",
                        info.name
                    )));
                }
            }
            GroupKey::Month(column) => {
                if !is_time(&column_type(info, column)?) {
                    return Err(invalid(format!(
                        "{}.{column} is not a time column",
                        info.name
                    )));
                }
            }
        }
    }
    for column in &query.sums {
        let ty = column_type(info, column)?;
        if !is_integer(&ty) {
            return Err(invalid(format!(
                "{}.{column} is {ty}, not an integer: only integers are summed",
                info.name
            )));
        }
    }
    for column in &query.earliest {
        let ty = column_type(info, column)?;
        if !is_time(&ty) {
            return Err(invalid(format!(
                "{}.{column} is {ty}, not a time column: only instants have an earliest",
                info.name
            )));
        }
    }
    Ok(info)
}

/// `YYYYMM` (ClickHouse's `toYYYYMM`) as `YYYY-MM`.
pub(crate) fn month_from_yyyymm(text: &str) -> String {
    if text.len() == 6 && text.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}", &text[..4], &text[4..])
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payments() -> &'static TableInfo {
        table("payments").unwrap()
    }

    #[test]
    fn filters_and_orders_are_checked_against_the_declaration() {
        let query = RowQuery {
            filter: Filter {
                livemode: Some(true),
                account: Account::Platform,
                currency: Some("usd".into()),
                time: Some(TimeRange {
                    column: "created_at",
                    from: Some(0),
                    until: None,
                }),
                conditions: vec![Condition::Eq("kind", "charge".into())],
            },
            order_by: vec!["created_at"],
        };
        assert_eq!(
            check_rows(payments(), &query).unwrap(),
            ["created_at", "id"]
        );
        let bad_column = RowQuery {
            order_by: vec!["nope; DROP TABLE payments"],
            ..RowQuery::default()
        };
        assert!(matches!(
            check_rows(payments(), &bad_column),
            Err(WarehouseError::InvalidQuery(_))
        ));
        let not_time = Filter {
            time: Some(TimeRange {
                column: "amount",
                from: None,
                until: None,
            }),
            ..Filter::default()
        };
        assert!(check_filter(payments(), &not_time).is_err());
        let bad_currency = Filter {
            currency: Some("USD'".into()),
            ..Filter::default()
        };
        assert!(check_filter(payments(), &bad_currency).is_err());
        // reconcile_state has no currency column.
        let state = table("reconcile_state").unwrap();
        let currency = Filter {
            currency: Some("usd".into()),
            ..Filter::default()
        };
        assert!(check_filter(state, &currency).is_err());
        // Equality on text only; null tests only on nullable columns.
        for bad in [
            Condition::Eq("amount", "1".into()),
            Condition::IsNull("kind"),
            Condition::NotNull("nope"),
            Condition::Positive("currency"),
            Condition::Positive("created_at"),
            Condition::Zero("status"),
        ] {
            let filter = Filter {
                conditions: vec![bad.clone()],
                ..Filter::default()
            };
            assert!(check_filter(payments(), &filter).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_integers_are_summed_and_only_instants_have_an_earliest() {
        let mut query = AggregateQuery {
            table: "payments",
            group_by: vec![GroupKey::Column("currency"), GroupKey::Month("created_at")],
            sums: vec!["amount", "amount_refunded"],
            earliest: vec!["paid_at"],
            filter: Filter::default(),
        };
        assert!(check_aggregate(&query).is_ok());
        query.earliest = vec!["amount"];
        let err = check_aggregate(&query).unwrap_err().to_string();
        assert!(err.contains("not a time column"), "{err}");
        query.earliest = vec![];
        query.sums = vec!["currency"];
        let err = check_aggregate(&query).unwrap_err().to_string();
        assert!(err.contains("not an integer"), "{err}");
        query.sums = vec!["created_at"];
        assert!(check_aggregate(&query).is_err(), "instants are not summed");
        query.sums = vec![];
        query.group_by = vec![GroupKey::Month("currency")];
        assert!(check_aggregate(&query).is_err());
        query.group_by = vec![GroupKey::Column("created_at")];
        assert!(
            check_aggregate(&query).is_err(),
            "instants are grouped by month"
        );
        assert!(check_aggregate(&AggregateQuery::count("nope")).is_err());
    }

    #[test]
    fn yyyymm_becomes_a_month() {
        assert_eq!(month_from_yyyymm("202602"), "2026-02");
        assert_eq!(month_from_yyyymm("x"), "x");
    }
}
