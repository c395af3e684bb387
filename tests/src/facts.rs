//! Reading whole warehouses back for comparison.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use schemas::facts::{visit_tables, FactTable, TableTypeVisitor};
use serde_json::Value;
use warehouse::Warehouse;

/// A table as JSON rows.
type Rows = (&'static str, Vec<Value>);

/// Every table of a warehouse as JSON rows (highest version per id, ordered by id).
/// Row versions of state are dropped (they are write timestamps), so are state tombstones
/// and wait rows,
/// and with `ignore_receipt` so are the receipt time and version of raw events and dead
/// letters (they differ between two deliveries of the same events). Same-second ties are
/// left out (what was seen depends on the order of delivery).
pub async fn snapshot<W: Warehouse>(
    warehouse: &W,
    ignore_receipt: bool,
) -> BTreeMap<&'static str, Vec<Value>> {
    async fn table<T: FactTable, W: Warehouse>(w: &W, ignore_receipt: bool) -> Rows {
        // Same-second ties are observations of the arrival order, not facts.
        if T::TABLE == "same_second_ties" {
            return (T::TABLE, Vec::new());
        }
        let rows = w
            .fetch_all::<T>()
            .await
            .unwrap_or_else(|e| panic!("read {}: {e}", T::TABLE));
        let rows = rows
            .into_iter()
            .map(|r| serde_json::to_value(r).unwrap())
            // A state tombstone (`null`) is bookkeeping: whether an orphan existed for a
            // while depends on arrival order; what remains does not.
            .filter(|v| !(T::TABLE == "reconcile_state" && v["value"] == "null"))
            // Wait rows are an index of the pending rows (which are compared). Consumers
            // racing on one orphan may leave a stale "waiting" row for a resolved one: it
            // costs one read and is cleared when read (the matcher's own tests check that
            // one consumer keeps the index exact). A link's marker (`hasw:`) is written
            // with a waiting row, so whether a link has one depends on when checkpoints
            // fell, not on the events.
            .filter(|v| {
                !(T::TABLE == "reconcile_state"
                    && v["id"]
                        .as_str()
                        .is_some_and(|id| id.starts_with("wait:") || id.starts_with("hasw:")))
            })
            .map(|mut v| {
                if T::TABLE == "reconcile_state"
                    || (ignore_receipt && matches!(T::TABLE, "stripe_events" | "dead_letters"))
                {
                    v["version"] = Value::Null;
                }
                if ignore_receipt && matches!(T::TABLE, "stripe_events" | "dead_letters") {
                    v["received_at_ms"] = Value::Null;
                }
                v
            })
            .collect();
        (T::TABLE, rows)
    }
    /// Collects one read per table (every table the row types declare).
    struct Reads<'w, W> {
        warehouse: &'w W,
        ignore_receipt: bool,
        reads: Vec<Pin<Box<dyn Future<Output = Rows> + 'w>>>,
    }
    impl<W: Warehouse> TableTypeVisitor for Reads<'_, W> {
        fn table<T: FactTable>(&mut self) {
            self.reads
                .push(Box::pin(table::<T, W>(self.warehouse, self.ignore_receipt)));
        }
    }
    let mut reads = Reads {
        warehouse,
        ignore_receipt,
        reads: Vec::new(),
    };
    visit_tables(&mut reads);
    let mut out = BTreeMap::new();
    for read in reads.reads {
        let (name, rows) = read.await;
        out.insert(name, rows);
    }
    out
}

/// Asserts two snapshots are equal, naming the first table and row that differ.
pub fn assert_same(
    left: &BTreeMap<&'static str, Vec<Value>>,
    right: &BTreeMap<&'static str, Vec<Value>>,
    what: &str,
) {
    if let Some(diff) = first_difference(left, right) {
        panic!("{what}: {diff}");
    }
}

/// `None` when equal, else a description of the first difference.
pub fn first_difference(
    left: &BTreeMap<&'static str, Vec<Value>>,
    right: &BTreeMap<&'static str, Vec<Value>>,
) -> Option<String> {
    for (table, rows) in left {
        let other = right.get(table).cloned().unwrap_or_default();
        if rows.len() != other.len() {
            let ids = |rows: &[Value]| -> std::collections::BTreeSet<String> {
                rows.iter().map(|r| r["id"].to_string()).collect()
            };
            let (l, r) = (ids(rows), ids(&other));
            let only = |a: &std::collections::BTreeSet<String>, b| {
                a.difference(b)
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Some(format!(
                "{table}: {} rows vs {} rows; only left: [{}]; only right: [{}]",
                rows.len(),
                other.len(),
                only(&l, &r),
                only(&r, &l)
            ));
        }
        for (a, b) in rows.iter().zip(&other) {
            if a != b {
                return Some(format!("{table}: row differs:\n  {a}\n  {b}"));
            }
        }
    }
    None
}
