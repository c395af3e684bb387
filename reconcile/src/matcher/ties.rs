//! Same-second ties that nothing in the payloads decides. The version orders two snapshots
//! of one object by time, status, links and the fields that only grow; when all of those
//! are equal but the content differs, only the event-id hash is left, which may pick the
//! older snapshot. The watch remembers the latest snapshot of recently seen objects (a
//! bounded window, not persisted) and reports such a pair as a `same_second_ties` row, which
//! the enrichment settles by fetching the object from Stripe's API.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use schemas::facts::TieRow;
use serde::Serialize;

use crate::version::{fnv1a, PROGRESS_MAX};

/// Objects remembered.
pub const WINDOW: usize = 10_000;

#[derive(Debug, Clone)]
struct Seen {
    /// The version without its links and hash: created, rank, progress.
    head: u64,
    event_id: String,
    content: u64,
}

/// The window of recent snapshots.
#[derive(Debug, Clone, Default)]
pub struct TieWatch {
    seen: HashMap<(&'static str, String), Seen>,
    order: VecDeque<(&'static str, String)>,
}

/// What decides between two snapshots, without the links (a pending row gains links, not
/// content) and the hash.
fn head(version: u64) -> u64 {
    ((version >> 28) << 17) | ((version >> 8) & u64::from(PROGRESS_MAX))
}

/// A digest of a row's content, its event and version left out: the serialized row up to
/// `source_event_id`, which every watched row declares after its content (serialized once,
/// without building a JSON tree: this runs for every watched event).
pub fn content<T: Serialize>(row: &T) -> u64 {
    const TAIL: &[u8] = b",\"source_event_id\":";
    thread_local! {
        /// The serialised row, its allocation reused from one event to the next.
        static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    BUFFER.with_borrow_mut(|bytes| {
        bytes.clear();
        if serde_json::to_writer(&mut *bytes, row).is_err() {
            bytes.clear();
        }
        // From the end, where the tail is, comparing only at commas.
        let end = (0..bytes.len().saturating_sub(TAIL.len() - 1))
            .rev()
            .find(|&i| bytes[i] == b',' && bytes[i..].starts_with(TAIL))
            .unwrap_or(bytes.len());
        fnv1a(&bytes[..end])
    })
}

impl TieWatch {
    /// Notes a snapshot of `object`/`id` at `version` from `event_id`; a tie when a
    /// remembered snapshot from another event has the same head and other content.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        object: &'static str,
        id: &str,
        version: u64,
        content: u64,
        event_id: &str,
        created: u32,
        account: Option<String>,
        livemode: u8,
    ) -> Option<TieRow> {
        let key = (object, id.to_owned());
        let now = Seen {
            head: head(version),
            event_id: event_id.to_owned(),
            content,
        };
        let tie = match self.seen.get(&key) {
            Some(before)
                if before.head == now.head
                    && before.event_id != now.event_id
                    && before.content != now.content =>
            {
                let mut events = [before.event_id.clone(), now.event_id.clone()];
                events.sort();
                Some(TieRow {
                    id: format!("{object}/{id}/{created}"),
                    object_type: object.to_owned(),
                    object_id: id.to_owned(),
                    account,
                    livemode,
                    created_at: created,
                    event_ids: events.join(","),
                    version: 1,
                })
            }
            _ => None,
        };
        // Keep the snapshot that wins, so a third one is compared with the right one.
        let keep = self.seen.get(&key).is_none_or(|b| now.head >= b.head);
        if keep && self.seen.insert(key.clone(), now).is_none() {
            self.order.push_back(key);
            if self.order.len() > WINDOW {
                if let Some(old) = self.order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
        tie
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::facts::TieRow;

    #[test]
    fn content_leaves_out_the_event_and_the_version() {
        let row = |event: &str, version: u64, object: &str| TieRow {
            id: "x".into(),
            object_type: "charge".into(),
            object_id: object.into(),
            account: None,
            livemode: 1,
            created_at: 5,
            event_ids: event.into(),
            version,
        };
        // TieRow has no source_event_id: the whole row counts, which the others' tails do not.
        assert_ne!(content(&row("a", 1, "ch_1")), content(&row("a", 1, "ch_2")));
        #[derive(serde::Serialize)]
        struct R {
            amount: i64,
            source_event_id: String,
            version: u64,
        }
        let r = |amount, event: &str, version| R {
            amount,
            source_event_id: event.into(),
            version,
        };
        assert_eq!(content(&r(5, "evt_a", 1)), content(&r(5, "evt_b", 9)));
        assert_ne!(content(&r(5, "evt_a", 1)), content(&r(6, "evt_a", 1)));
    }
}
