//! Same-second ties that nothing in the payloads decides. The version orders two snapshots
//! of one object by time, status, links and the fields that only grow; when all of those
//! are equal but the content differs, only the event-id hash is left, which may pick the
//! older snapshot. The watch remembers the latest snapshot of recently seen objects (a
//! bounded window, not persisted) and reports such a pair as a `same_second_ties` row, which
//! the enrichment settles by fetching the object from Stripe's API.

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

/// A digest of a row's content, its event and version left out.
pub fn content<T: Serialize>(row: &T) -> u64 {
    let mut value = serde_json::to_value(row).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        fields.remove("source_event_id");
        fields.remove("version");
    }
    fnv1a(value.to_string().as_bytes())
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
