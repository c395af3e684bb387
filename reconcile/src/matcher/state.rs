//! What the matcher remembers between batches: links between objects, subscription
//! snapshots (for item validity intervals) and pending orphans (payments, refunds and
//! disputes whose invoice is not known yet).
//!
//! Every part is a join-semilattice, so applying the same events in any order, any number
//! of times, ends in the same state: links are write-once (a conflict keeps the smaller
//! value, deterministically), snapshots are a set keyed by version, and a pending row is the
//! highest-version row of its object while it is unresolved.
//!
//! The state is persisted as `reconcile_state` rows (`key → JSON`) written with the facts of
//! each batch, and loaded back on start or after a rebalance. Row ids are [`StateKey`]s in
//! their string form, which is a storage format: it must not change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use schemas::facts::{DisputeRow, PaymentRow, RefundRow, StateRow, SubscriptionItemRow};
use serde::{Deserialize, Serialize};

// Keys. Each key type displays as the string persisted in `reconcile_state.id` (those
// strings are a storage format: warehouses written by earlier versions must keep loading)
// and parses back from it; `parse(key.to_string()) == key` for every key, whatever its ids.
//
// Variants are declared in the order of their strings, so the derived `Ord` sorts keys as
// their strings sort (for ids without characters below `#`, which Stripe ids never have):
// state rows are written, and parents swept, in the same order as when keys were strings.

/// A string that is not a key of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a matcher state key: {0:?}")]
pub struct KeyError(pub String);

/// The id of the row that records the state format a warehouse's rows are in (`2`: with
/// wait rows, see [`StateKey::Wait`]; `3`: every object is found by exact ids, see
/// [`StateKey::HasWaits`] and [`StateKey::SnapshotVersions`]). Not a [`StateKey`]: it
/// holds no matcher state.
pub const FORMAT_KEY: &str = "meta:state_format";
/// The state format this version writes.
pub const FORMAT: &str = "3";

/// The object a pending row is a fact of (`payment:<id>`, `refund:<id>`, `dispute:<id>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PendingKey {
    Dispute(String),
    Payment(String),
    Refund(String),
}

impl PendingKey {
    /// The object's id.
    pub fn id(&self) -> &str {
        match self {
            Self::Dispute(id) | Self::Payment(id) | Self::Refund(id) => id,
        }
    }
}

impl fmt::Display for PendingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dispute(id) => write!(f, "dispute:{id}"),
            Self::Payment(id) => write!(f, "payment:{id}"),
            Self::Refund(id) => write!(f, "refund:{id}"),
        }
    }
}

impl FromStr for PendingKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        let (kind, id) = s.split_once(':').ok_or_else(|| KeyError(s.to_owned()))?;
        let id = id.to_owned();
        match kind {
            "dispute" => Ok(Self::Dispute(id)),
            "payment" => Ok(Self::Payment(id)),
            "refund" => Ok(Self::Refund(id)),
            _ => Err(KeyError(s.to_owned())),
        }
    }
}

/// A link a pending row waits on (`ch:<charge>`, `inv:<invoice>`, `pi:<payment intent>`):
/// learning it may resolve the row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ParentKey {
    Charge(String),
    Invoice(String),
    PaymentIntent(String),
}

impl ParentKey {
    /// The link's object id.
    pub fn id(&self) -> &str {
        match self {
            Self::Charge(id) | Self::Invoice(id) | Self::PaymentIntent(id) => id,
        }
    }

    /// The state keys that hold this link's fields (a charge link is stored field by field
    /// as `ch.payment_intent:X`, `ch.customer:X`, `ch.invoice:X`).
    pub fn state_keys(&self) -> Vec<StateKey> {
        match self {
            Self::Charge(id) => vec![
                StateKey::ChargePaymentIntent(id.clone()),
                StateKey::ChargeCustomer(id.clone()),
                StateKey::ChargeInvoice(id.clone()),
            ],
            Self::Invoice(id) => vec![
                StateKey::InvoiceCustomer(id.clone()),
                StateKey::InvoiceSubscription(id.clone()),
            ],
            Self::PaymentIntent(id) => vec![StateKey::PaymentIntentInvoice(id.clone())],
        }
    }
}

impl fmt::Display for ParentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Charge(id) => write!(f, "ch:{id}"),
            Self::Invoice(id) => write!(f, "inv:{id}"),
            Self::PaymentIntent(id) => write!(f, "pi:{id}"),
        }
    }
}

impl FromStr for ParentKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        let (kind, id) = s.split_once(':').ok_or_else(|| KeyError(s.to_owned()))?;
        let id = id.to_owned();
        match kind {
            "ch" => Ok(Self::Charge(id)),
            "inv" => Ok(Self::Invoice(id)),
            "pi" => Ok(Self::PaymentIntent(id)),
            _ => Err(KeyError(s.to_owned())),
        }
    }
}

/// The id of one persisted state row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StateKey {
    /// `ch.customer:<charge>`
    ChargeCustomer(String),
    /// `ch.invoice:<charge>`
    ChargeInvoice(String),
    /// `ch.payment_intent:<charge>`
    ChargePaymentIntent(String),
    /// `hasw:<parent link>`: some pending row has waited on that link, so its wait rows
    /// are worth reading (value `1`, written once and never cleared). Lets a consumer read
    /// a link's wait rows (an id range) only for the few links that have any, and every
    /// other row by exact id (state format 3).
    HasWaits(ParentKey),
    /// `inv.customer:<invoice>`
    InvoiceCustomer(String),
    /// `inv.subscription:<invoice>`
    InvoiceSubscription(String),
    /// `pend:<pending key>`
    Pending(PendingKey),
    /// `pi:<payment intent>` (its invoice)
    PaymentIntentInvoice(String),
    /// `sub:<subscription>#<version as 16 lowercase hex digits>`: one snapshot.
    Snapshot { subscription: String, version: u64 },
    /// `subv:<subscription>`: the versions of its snapshots, a JSON array, rewritten with
    /// each new one, so that its snapshot rows are read by exact id (state format 3).
    SnapshotVersions(String),
    /// `wait:<parent link>#<pending key>` (`#` and `%` in either escaped as `%23`, `%25`):
    /// the pending row waits on that link. Value `1` while it does, `null` once not. The
    /// persisted index that lets a consumer find the orphans a link resolves without
    /// holding every pending row in memory (state format 2).
    Wait {
        parent: ParentKey,
        pending: PendingKey,
    },
}

/// `#` and `%` escaped, so that `#` separates the two halves of a wait key.
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['#', '%']) {
        s.replace('%', "%25").replace('#', "%23").into()
    } else {
        s.into()
    }
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("%23") => out.push('#'),
            Some("%25") => out.push('%'),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

impl StateKey {
    /// The id prefix of the wait rows of `parent` (`wait:<parent>#`).
    pub fn wait_prefix(parent: &ParentKey) -> String {
        format!("wait:{}#", escape(&parent.to_string()))
    }

    /// The id prefix of a subscription's snapshot rows (`sub:<subscription>#`).
    pub fn snapshot_prefix(subscription: &str) -> String {
        format!("sub:{subscription}#")
    }
}

impl fmt::Display for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChargeCustomer(id) => write!(f, "ch.customer:{id}"),
            Self::ChargeInvoice(id) => write!(f, "ch.invoice:{id}"),
            Self::ChargePaymentIntent(id) => write!(f, "ch.payment_intent:{id}"),
            Self::HasWaits(parent) => write!(f, "hasw:{parent}"),
            Self::InvoiceCustomer(id) => write!(f, "inv.customer:{id}"),
            Self::InvoiceSubscription(id) => write!(f, "inv.subscription:{id}"),
            Self::Pending(key) => write!(f, "pend:{key}"),
            Self::PaymentIntentInvoice(id) => write!(f, "pi:{id}"),
            Self::Snapshot {
                subscription,
                version,
            } => write!(f, "sub:{subscription}#{version:016x}"),
            Self::SnapshotVersions(subscription) => write!(f, "subv:{subscription}"),
            Self::Wait { parent, pending } => write!(
                f,
                "wait:{}#{}",
                escape(&parent.to_string()),
                escape(&pending.to_string())
            ),
        }
    }
}

impl FromStr for StateKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        let err = || KeyError(s.to_owned());
        let (kind, id) = s.split_once(':').ok_or_else(err)?;
        let owned = || id.to_owned();
        Ok(match kind {
            "ch.customer" => Self::ChargeCustomer(owned()),
            "ch.invoice" => Self::ChargeInvoice(owned()),
            "ch.payment_intent" => Self::ChargePaymentIntent(owned()),
            "hasw" => Self::HasWaits(id.parse().map_err(|_| err())?),
            "inv.customer" => Self::InvoiceCustomer(owned()),
            "inv.subscription" => Self::InvoiceSubscription(owned()),
            "pend" => Self::Pending(id.parse().map_err(|_| err())?),
            "pi" => Self::PaymentIntentInvoice(owned()),
            "sub" => {
                // The version is the last `#` part (a subscription id could hold a `#`), in
                // the exact form it is written in, so that parsing is the inverse of display.
                let (subscription, hex) = id.rsplit_once('#').ok_or_else(err)?;
                if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(err());
                }
                Self::Snapshot {
                    subscription: subscription.to_owned(),
                    version: u64::from_str_radix(hex, 16).map_err(|_| err())?,
                }
            }
            "subv" => Self::SnapshotVersions(owned()),
            "wait" => {
                if id.matches('#').count() != 1 {
                    return Err(err());
                }
                let (parent, pending) = id.split_once('#').ok_or_else(err)?;
                let parent = unescape(parent).ok_or_else(err)?;
                let pending = unescape(pending).ok_or_else(err)?;
                Self::Wait {
                    parent: parent.parse().map_err(|_| err())?,
                    pending: pending.parse().map_err(|_| err())?,
                }
            }
            _ => return Err(err()),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLink {
    pub customer: Option<String>,
    pub subscription: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeLink {
    pub payment_intent: Option<String>,
    pub customer: Option<String>,
    pub invoice: Option<String>,
}

/// One subscription snapshot: its item rows as of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u64,
    pub created: u32,
    pub rows: Vec<SubscriptionItemRow>,
}

/// A fact row waiting for its invoice link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PendingRow {
    Payment(PaymentRow),
    Refund(RefundRow),
    Dispute(DisputeRow),
}

impl PendingRow {
    pub fn version(&self) -> u64 {
        match self {
            Self::Payment(r) => r.version,
            Self::Refund(r) => r.version,
            Self::Dispute(r) => r.version,
        }
    }

    /// Its invoice, subscription and customer links (filled or not).
    pub fn linked(&self) -> [&Option<String>; 3] {
        match self {
            Self::Payment(r) => [&r.invoice_id, &r.subscription_id, &r.customer_id],
            Self::Refund(r) => [&r.invoice_id, &r.subscription_id, &r.customer_id],
            Self::Dispute(r) => [&r.invoice_id, &r.subscription_id, &r.customer_id],
        }
    }

    /// What it names, and its link slots and version to fill.
    pub fn fields(&mut self) -> LinkFields<'_> {
        macro_rules! fields {
            ($r:expr) => {
                LinkFields {
                    charge: $r.charge_id.as_deref(),
                    payment_intent: $r.payment_intent_id.as_deref(),
                    invoice: &mut $r.invoice_id,
                    subscription: &mut $r.subscription_id,
                    customer: &mut $r.customer_id,
                    version: &mut $r.version,
                }
            };
        }
        match self {
            Self::Payment(r) => fields!(r),
            Self::Refund(r) => fields!(r),
            Self::Dispute(r) => fields!(r),
        }
    }

    /// The charge, payment intent and invoice it names.
    pub fn refs(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        let (charge, pi, invoice) = match self {
            Self::Payment(r) => (&r.charge_id, &r.payment_intent_id, &r.invoice_id),
            Self::Refund(r) => (&r.charge_id, &r.payment_intent_id, &r.invoice_id),
            Self::Dispute(r) => (&r.charge_id, &r.payment_intent_id, &r.invoice_id),
        };
        (charge.as_deref(), pi.as_deref(), invoice.as_deref())
    }
}

/// The link fields of a pending row, borrowed for resolving.
pub struct LinkFields<'a> {
    pub charge: Option<&'a str>,
    pub payment_intent: Option<&'a str>,
    pub invoice: &'a mut Option<String>,
    pub subscription: &'a mut Option<String>,
    pub customer: &'a mut Option<String>,
    pub version: &'a mut u64,
}

/// The matcher's state.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// invoice id → customer, subscription. The four maps of links are hashed: nothing
    /// walks them in order, and a B-tree compared ids with long shared prefixes (`in_…`)
    /// at every level of every lookup.
    pub invoices: HashMap<String, InvoiceLink>,
    /// payment intent id → invoice id.
    pub pi_invoice: HashMap<String, String>,
    /// charge id → payment intent, customer, invoice.
    pub charges: HashMap<String, ChargeLink>,
    /// subscription id → snapshots, by version. In a bounded state ([`State::bounded`]),
    /// those read or added so far: a batch reads only the ones its events need.
    pub subscriptions: HashMap<String, Vec<Snapshot>>,
    /// subscription id → the versions of all its snapshots, persisted or added since, for
    /// each subscription in memory in a bounded state (what its `subv:` row says). Empty
    /// when the whole state is in memory: `subscriptions` then holds every snapshot.
    pub(super) snapshot_versions: HashMap<String, Vec<u64>>,
    /// The object → the row waiting for links.
    pub pending: BTreeMap<PendingKey, PendingRow>,
    /// Parent link → pending rows it would resolve (derived from `pending`), sorted. A
    /// sorted `Vec` rather than a set: a link is waited on by one or two rows, and an
    /// empty B-tree set allocates a node of eleven on its first insert (about 380 bytes
    /// where the `Vec` takes 32), which made this index most of a cache's memory.
    pending_by_parent: BTreeMap<ParentKey, Vec<PendingKey>>,
    /// Pending row → the parents it is indexed under.
    pending_parents: BTreeMap<PendingKey, Vec<ParentKey>>,
    /// Keys changed since the last [`State::take_dirty_rows`].
    dirty: BTreeSet<StateKey>,
    /// Highest state-row version written or loaded; new rows get higher ones.
    clock: u64,
    /// New rows are stamped with the time in microseconds (at least `clock + 1`), as the
    /// consumers do, so that the last writer wins across consumers; otherwise `clock + 1`.
    wall_clock: bool,
    /// The version of the persisted row each pending row in memory derives from (read or
    /// written): a row changed only by a resolution is written at that version plus one
    /// (see [`State::take_dirty_rows`]).
    pub(super) pend_base: HashMap<PendingKey, u64>,
    /// Set while a pending row is emitted again because links became known (not because
    /// an event about its own object arrived).
    resolving: bool,
    /// Pending keys changed since the last [`State::take_dirty_rows`] by an event about
    /// their own object, and those changed by a resolution.
    by_event: BTreeSet<PendingKey>,
    by_resolution: BTreeSet<PendingKey>,
    /// Which objects are in memory, when the state is a bounded cache over the persisted
    /// rows (`None`: everything is in memory, as in the matcher's own tests).
    pub(super) residency: Option<super::cache::Residency>,
}

impl PartialEq for State {
    /// Equal content; bookkeeping (dirty keys, the row clock) is not content.
    fn eq(&self, other: &Self) -> bool {
        self.invoices == other.invoices
            && self.pi_invoice == other.pi_invoice
            && self.charges == other.charges
            && self.subscriptions == other.subscriptions
            && self.pending == other.pending
    }
}

/// What an entry of a map costs beyond its key and value: a B-tree's nodes are about two
/// thirds full, a hash map's table has room to grow.
const INDEX_ENTRY_OVERHEAD: usize = 32;

/// Fills missing fields; on a conflict keeps the smaller value so the result does not
/// depend on arrival order.
fn merge_opt(into: &mut Option<String>, from: &Option<String>) -> bool {
    match (into.as_ref(), from) {
        (_, None) => false,
        (None, Some(v)) => {
            *into = Some(v.clone());
            true
        }
        (Some(a), Some(b)) if b < a => {
            *into = Some(b.clone());
            true
        }
        _ => false,
    }
}

impl State {
    pub fn link_invoice(&mut self, invoice: &str, link: InvoiceLink) -> bool {
        let e = self.invoices.entry(invoice.to_owned()).or_default();
        let customer = merge_opt(&mut e.customer, &link.customer);
        let subscription = merge_opt(&mut e.subscription, &link.subscription);
        // Persisted field by field: several consumers may each learn one field of the same
        // link, and a whole-link row would let the last writer drop the other's field.
        if customer {
            self.dirty
                .insert(StateKey::InvoiceCustomer(invoice.to_owned()));
        }
        if subscription {
            self.dirty
                .insert(StateKey::InvoiceSubscription(invoice.to_owned()));
        }
        customer || subscription
    }

    pub fn link_payment_intent(&mut self, pi: &str, invoice: &str) -> bool {
        let mut current = self.pi_invoice.get(pi).cloned();
        let changed = merge_opt(&mut current, &Some(invoice.to_owned()));
        if changed {
            self.pi_invoice
                .insert(pi.to_owned(), current.expect("just set"));
            self.dirty
                .insert(StateKey::PaymentIntentInvoice(pi.to_owned()));
        }
        changed
    }

    pub fn link_charge(&mut self, charge: &str, link: ChargeLink) -> bool {
        let e = self.charges.entry(charge.to_owned()).or_default();
        let pi = merge_opt(&mut e.payment_intent, &link.payment_intent);
        let customer = merge_opt(&mut e.customer, &link.customer);
        let invoice = merge_opt(&mut e.invoice, &link.invoice);
        for (changed, key) in [
            (pi, StateKey::ChargePaymentIntent as fn(String) -> StateKey),
            (customer, StateKey::ChargeCustomer),
            (invoice, StateKey::ChargeInvoice),
        ] {
            if changed {
                self.dirty.insert(key(charge.to_owned()));
            }
        }
        pi || customer || invoice
    }

    /// The persisted state keys that hold a link key's fields (`ch:X` is stored as
    /// `ch.payment_intent:X`, `ch.customer:X`, `ch.invoice:X`); a string that is not a
    /// link key is returned as is. The string form of [`ParentKey::state_keys`].
    pub fn persisted_keys(link: &str) -> Vec<String> {
        match link.parse::<ParentKey>() {
            Ok(parent) => parent
                .state_keys()
                .iter()
                .map(ToString::to_string)
                .collect(),
            Err(_) => vec![link.to_owned()],
        }
    }

    /// The highest state-row version seen (loaded or written).
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Adds a snapshot; `false` when that version was already known.
    pub fn add_snapshot(&mut self, subscription: &str, mut snapshot: Snapshot) -> bool {
        // Kept for the subscription's life: without spare capacity. A snapshot read back
        // from its JSON row has room for four item rows (serde grows the Vec without a
        // size hint), which made a whole-state load peak at four times the state.
        snapshot.rows.shrink_to_fit();
        let version = snapshot.version;
        let list = self
            .subscriptions
            .entry(subscription.to_owned())
            .or_default();
        let known = self.snapshot_versions.get_mut(subscription).map(|all| {
            match all.binary_search(&version) {
                Ok(_) => true,
                Err(at) => {
                    all.insert(at, version);
                    false
                }
            }
        });
        match list.binary_search_by_key(&snapshot.version, |s| s.version) {
            Ok(_) => false,
            // Read back (a bounded state reads a snapshot when a batch needs it).
            Err(at) if known == Some(true) => {
                list.insert(at, snapshot);
                false
            }
            Err(at) => {
                list.insert(at, snapshot);
                // One state row per snapshot: written once, never rewritten with the
                // subscription's whole history; and the list of versions, a few bytes
                // each, through which they are read.
                self.dirty.insert(StateKey::Snapshot {
                    subscription: subscription.to_owned(),
                    version,
                });
                self.dirty
                    .insert(StateKey::SnapshotVersions(subscription.to_owned()));
                true
            }
        }
    }

    /// Links that would resolve `row`: its charge, its payment intent (or its charge's),
    /// its invoice (or the one its charge or payment intent leads to).
    pub fn parents_of(&self, row: &PendingRow) -> Vec<ParentKey> {
        let (charge, pi, invoice) = row.refs();
        let charge_link = charge.and_then(|c| self.charges.get(c));
        let pi = pi.or_else(|| charge_link.and_then(|l| l.payment_intent.as_deref()));
        let invoice = invoice
            .or_else(|| charge_link.and_then(|l| l.invoice.as_deref()))
            .or_else(|| pi.and_then(|p| self.pi_invoice.get(p)).map(String::as_str));
        let mut keys = Vec::with_capacity(3);
        if let Some(c) = charge {
            keys.push(ParentKey::Charge(c.to_owned()));
        }
        if let Some(p) = pi {
            keys.push(ParentKey::PaymentIntent(p.to_owned()));
        }
        if let Some(i) = invoice {
            keys.push(ParentKey::Invoice(i.to_owned()));
        }
        keys
    }

    /// Keeps `row` as pending unless a higher version of the same object already is.
    pub fn set_pending(&mut self, key: PendingKey, row: PendingRow) {
        if let Some(existing) = self.pending.get(&key) {
            if existing.version() >= row.version() {
                return;
            }
        }
        let parents = self.parents_of(&row);
        self.reindex(&key, parents, true);
        if let Some(residency) = &mut self.residency {
            residency.add_pending(&key);
        }
        self.pending.insert(key.clone(), row);
        self.touch_pending(&key);
    }

    /// Re-indexes a pending row under the parents it waits on now.
    pub fn refresh_parents(&mut self, key: &PendingKey) {
        let Some(row) = self.pending.get(key) else {
            return;
        };
        let parents = self.parents_of(row);
        self.reindex(key, parents, true);
    }

    pub fn clear_pending(&mut self, key: &PendingKey) {
        if self.pending.remove(key).is_some() {
            self.reindex(key, Vec::new(), true);
            self.touch_pending(key);
        }
    }

    /// Indexes `key` under `parents` instead of what it was under; with `persist`, the
    /// wait rows that changed are marked to be written.
    pub(super) fn reindex(&mut self, key: &PendingKey, parents: Vec<ParentKey>, persist: bool) {
        let old = self.pending_parents.remove(key).unwrap_or_default();
        if old == parents {
            if !parents.is_empty() {
                self.pending_parents.insert(key.clone(), parents);
            }
            return;
        }
        for parent in &old {
            if parents.contains(parent) {
                continue;
            }
            if let Some(keys) = self.pending_by_parent.get_mut(parent) {
                if let Ok(at) = keys.binary_search(key) {
                    keys.remove(at);
                }
                if keys.is_empty() {
                    self.pending_by_parent.remove(parent);
                }
            }
            if persist {
                self.mark_wait(parent, key);
            }
        }
        for parent in &parents {
            if old.contains(parent) {
                continue;
            }
            let keys = self.pending_by_parent.entry(parent.clone()).or_default();
            if let Err(at) = keys.binary_search(key) {
                // Room for one, not the four a `Vec` takes on its first push.
                if keys.capacity() == 0 {
                    keys.reserve_exact(1);
                }
                keys.insert(at, key.clone());
            }
            if persist {
                self.mark_wait(parent, key);
            }
        }
        if !parents.is_empty() {
            self.pending_parents.insert(key.clone(), parents);
        }
    }

    /// Marks the wait row of `key` under `parent` to be written (with what is true now).
    pub(super) fn mark_wait(&mut self, parent: &ParentKey, key: &PendingKey) {
        self.dirty.insert(StateKey::Wait {
            parent: parent.clone(),
            pending: key.clone(),
        });
    }

    /// Roughly the bytes of the indexes of the pending rows (by parent, parents by row,
    /// the versions they derive from), beside the rows themselves.
    pub(super) fn pending_index_bytes(&self) -> usize {
        use std::mem::size_of;
        fn id_bytes(id: &str) -> usize {
            // A string's heap block, rounded up as the allocator does.
            id.len().div_ceil(16) * 16
        }
        let parent = |p: &ParentKey| size_of::<ParentKey>() + id_bytes(p.id());
        let pending = |k: &PendingKey| size_of::<PendingKey>() + id_bytes(k.id());
        let mut bytes = 0;
        for (p, keys) in &self.pending_by_parent {
            bytes += parent(p) + size_of::<Vec<PendingKey>>() + INDEX_ENTRY_OVERHEAD;
            bytes += keys.iter().map(pending).sum::<usize>();
        }
        for (k, parents) in &self.pending_parents {
            bytes += pending(k) + size_of::<Vec<ParentKey>>() + INDEX_ENTRY_OVERHEAD;
            bytes += parents.iter().map(parent).sum::<usize>();
        }
        for k in self.pend_base.keys() {
            bytes += pending(k) + size_of::<u64>() + INDEX_ENTRY_OVERHEAD;
        }
        bytes
    }

    /// The parents a pending row is indexed under.
    pub(super) fn indexed_parents(&self, key: &PendingKey) -> &[ParentKey] {
        self.pending_parents.get(key).map_or(&[], Vec::as_slice)
    }

    /// Pending rows waiting on a parent link.
    pub fn pending_for(&self, parent: &ParentKey) -> Vec<PendingKey> {
        self.pending_by_parent
            .get(parent)
            .cloned()
            .unwrap_or_default()
    }

    /// Parents some pending row waits on (what a sweep looks up in the warehouse).
    pub fn wanted_parent_keys(&self) -> Vec<ParentKey> {
        self.pending_by_parent.keys().cloned().collect()
    }

    /// [`State::wanted_parent_keys`] as strings (`ch:…`, `inv:…`, `pi:…`).
    pub fn wanted_parents(&self) -> Vec<String> {
        self.pending_by_parent
            .keys()
            .map(ToString::to_string)
            .collect()
    }

    /// State rows for every key changed since the last call, versioned so that the last
    /// writer wins ([`State::next_stamp`]), with one exception.
    ///
    /// A pending row is written by the consumer of its own object's partition (its events:
    /// a dispute's creation, then its closing) and by any consumer that resolves it (one
    /// that learned its charge's links, or a sweep). A resolution is computed from the row
    /// as it was read; if the row's owner wrote a newer stage of it in between, the
    /// resolution's `null` (or its partly linked row) must not replace that stage, or the
    /// newer stage would never be linked. So a row changed only by a resolution is written
    /// at the version it was read at plus one: it wins over what it was computed from,
    /// and loses to anything written since. The stage that wins stays pending, with a
    /// version a sweep reads, and is resolved again from the links, which are in the
    /// warehouse by then.
    pub fn take_dirty_rows(&mut self) -> Vec<StateRow> {
        let mut keys = std::mem::take(&mut self.dirty);
        // A link some row now waits on gets its marker (rewriting one is harmless).
        let marked: Vec<StateKey> = keys
            .iter()
            .filter_map(|key| match key {
                StateKey::Wait { parent, pending } if self.waits_on(parent, pending) => {
                    Some(StateKey::HasWaits(parent.clone()))
                }
                _ => None,
            })
            .collect();
        keys.extend(marked);
        let by_event = std::mem::take(&mut self.by_event);
        let by_resolution = std::mem::take(&mut self.by_resolution);
        keys.into_iter()
            .map(|key| {
                let version = match &key {
                    StateKey::Pending(p) if by_resolution.contains(p) && !by_event.contains(p) => {
                        self.pend_base.get(p).map(|base| base + 1)
                    }
                    _ => None,
                };
                let version = match version {
                    Some(v) => {
                        self.clock = self.clock.max(v);
                        v
                    }
                    None => self.next_stamp(),
                };
                if let StateKey::Pending(p) = &key {
                    if self.pending.contains_key(p) {
                        self.pend_base.insert(p.clone(), version);
                    } else {
                        self.pend_base.remove(p);
                    }
                }
                StateRow {
                    value: self.value_of(&key),
                    id: key.to_string(),
                    version,
                }
            })
            .collect()
    }

    /// The version of the next state row written: above every version seen, and with
    /// [`State::use_wall_clock`] the time in microseconds when that is higher.
    pub fn next_stamp(&mut self) -> u64 {
        let next = self.clock + 1;
        self.clock = if self.wall_clock {
            now_micros().max(next)
        } else {
            next
        };
        self.clock
    }

    /// Stamps new rows with the time (see [`State::next_stamp`]), as consumers sharing
    /// one warehouse must.
    pub fn use_wall_clock(&mut self) {
        self.wall_clock = true;
    }

    /// Raises the clock to at least `version` (one this process wrote before a reload).
    pub fn raise_clock(&mut self, version: u64) {
        self.clock = self.clock.max(version);
    }

    /// Marks a pending key changed, by an event about its object or by a resolution.
    fn touch_pending(&mut self, key: &PendingKey) {
        self.dirty.insert(StateKey::Pending(key.clone()));
        if self.resolving {
            self.by_resolution.insert(key.clone());
        } else {
            self.by_event.insert(key.clone());
        }
    }

    /// Runs `f` as a resolution: the pending rows it changes are written as described in
    /// [`State::take_dirty_rows`].
    pub(super) fn resolving<T>(&mut self, f: impl FnOnce(&mut State) -> T) -> T {
        let outer = std::mem::replace(&mut self.resolving, true);
        let out = f(self);
        self.resolving = outer;
        out
    }

    fn value_of(&self, key: &StateKey) -> String {
        fn json<T: Serialize>(v: Option<&T>) -> String {
            v.map_or_else(
                || "null".to_owned(),
                |v| serde_json::to_string(v).expect("serialisable"),
            )
        }
        let invoice = |id: &String| self.invoices.get(id);
        let charge = |id: &String| self.charges.get(id);
        match key {
            StateKey::ChargeCustomer(id) => json(charge(id).and_then(|l| l.customer.as_ref())),
            StateKey::ChargeInvoice(id) => json(charge(id).and_then(|l| l.invoice.as_ref())),
            StateKey::ChargePaymentIntent(id) => {
                json(charge(id).and_then(|l| l.payment_intent.as_ref()))
            }
            StateKey::InvoiceCustomer(id) => json(invoice(id).and_then(|l| l.customer.as_ref())),
            StateKey::InvoiceSubscription(id) => {
                json(invoice(id).and_then(|l| l.subscription.as_ref()))
            }
            StateKey::Pending(key) => json(self.pending.get(key)),
            StateKey::PaymentIntentInvoice(id) => json(self.pi_invoice.get(id)),
            StateKey::Snapshot {
                subscription,
                version,
            } => json(
                self.subscriptions
                    .get(subscription)
                    .and_then(|list| list.iter().find(|s| s.version == *version)),
            ),
            StateKey::Wait { parent, pending } => if self.waits_on(parent, pending) {
                "1"
            } else {
                "null"
            }
            .to_owned(),
            StateKey::HasWaits(_) => "1".to_owned(),
            StateKey::SnapshotVersions(subscription) => {
                let versions: Vec<u64> = match self.snapshot_versions.get(subscription) {
                    Some(all) => all.clone(),
                    None => self
                        .subscriptions
                        .get(subscription)
                        .map(|list| list.iter().map(|s| s.version).collect())
                        .unwrap_or_default(),
                };
                serde_json::to_string(&versions).expect("serialisable")
            }
        }
    }

    /// Whether `pending` waits on `parent` (its wait row's value is `1`).
    fn waits_on(&self, parent: &ParentKey, pending: &PendingKey) -> bool {
        self.pending_parents
            .get(pending)
            .is_some_and(|parents| parents.contains(parent))
    }

    /// Marks the whole state's exact-id index rows (state format 2 → 3): a link marker
    /// for every link a pending row waits on, the version list of every subscription.
    pub fn mark_exact_ids(&mut self) {
        let parents: Vec<ParentKey> = self.pending_by_parent.keys().cloned().collect();
        self.dirty
            .extend(parents.into_iter().map(StateKey::HasWaits));
        let subscriptions: Vec<String> = self.subscriptions.keys().cloned().collect();
        self.dirty
            .extend(subscriptions.into_iter().map(StateKey::SnapshotVersions));
    }

    /// Merges persisted rows (from the warehouse) into this state. Rows with unknown keys
    /// or undecodable values are skipped and counted in the returned number.
    ///
    /// Loaded rows are already persisted, so loading marks nothing to write except the wait
    /// rows of the pending rows it brought in (written again whole: the consumer that wrote
    /// them may have known less about their charge's payment intent) and of those whose
    /// parents changed with what was loaded.
    pub fn load_rows(&mut self, rows: impl IntoIterator<Item = StateRow>) -> usize {
        let mut skipped = 0;
        let dirty = std::mem::take(&mut self.dirty);
        let mut fresh = Vec::new();
        let mut charges = BTreeSet::new();
        let mut intents = BTreeSet::new();
        for row in rows {
            self.clock = self.clock.max(row.version);
            if row.id == FORMAT_KEY {
                continue;
            }
            let Ok(key) = row.id.parse::<StateKey>() else {
                skipped += 1;
                continue;
            };
            if row.value == "null" {
                continue;
            }
            match &key {
                StateKey::Pending(pending) if !self.pending.contains_key(pending) => {
                    fresh.push(pending.clone());
                }
                StateKey::ChargePaymentIntent(charge) | StateKey::ChargeInvoice(charge) => {
                    charges.insert(charge.clone());
                }
                StateKey::PaymentIntentInvoice(pi) => {
                    intents.insert(pi.clone());
                }
                _ => {}
            }
            let pending = match &key {
                StateKey::Pending(p) => Some(p.clone()),
                _ => None,
            };
            if !self.load_value(key, &row.value) {
                skipped += 1;
            }
            if let Some(p) = pending.filter(|p| self.pending.contains_key(p)) {
                let base = self.pend_base.entry(p).or_default();
                *base = (*base).max(row.version);
            }
        }
        self.dirty = dirty;
        // A charge's payment intent or invoice, or a payment intent's invoice, adds a
        // parent to the rows on that charge or payment intent.
        let mut affected: BTreeSet<PendingKey> = charges
            .into_iter()
            .map(ParentKey::Charge)
            .chain(intents.into_iter().map(ParentKey::PaymentIntent))
            .flat_map(|parent| self.pending_for(&parent))
            .collect();
        for key in fresh {
            if let Some(residency) = &mut self.residency {
                // A cache writes only the wait rows it did not read (see `State::settle`).
                residency.fresh.push(key.clone());
            } else {
                // Indexed silently by `load_pending`; written again whole.
                let parents = self.indexed_parents(&key).to_vec();
                for parent in &parents {
                    self.mark_wait(parent, &key);
                }
            }
            affected.insert(key);
        }
        for key in affected {
            self.refresh_parents(&key);
        }
        skipped
    }

    /// Merges one persisted value; `false` when it does not decode.
    fn load_value(&mut self, key: StateKey, value: &str) -> bool {
        let string = || serde_json::from_str::<String>(value).ok();
        match key {
            StateKey::ChargeCustomer(id) => string().map(|v| {
                let link = ChargeLink {
                    customer: Some(v),
                    ..ChargeLink::default()
                };
                self.link_charge(&id, link);
            }),
            StateKey::ChargeInvoice(id) => string().map(|v| {
                let link = ChargeLink {
                    invoice: Some(v),
                    ..ChargeLink::default()
                };
                self.link_charge(&id, link);
            }),
            StateKey::ChargePaymentIntent(id) => string().map(|v| {
                let link = ChargeLink {
                    payment_intent: Some(v),
                    ..ChargeLink::default()
                };
                self.link_charge(&id, link);
            }),
            StateKey::InvoiceCustomer(id) => string().map(|v| {
                let link = InvoiceLink {
                    customer: Some(v),
                    subscription: None,
                };
                self.link_invoice(&id, link);
            }),
            StateKey::InvoiceSubscription(id) => string().map(|v| {
                let link = InvoiceLink {
                    customer: None,
                    subscription: Some(v),
                };
                self.link_invoice(&id, link);
            }),
            StateKey::PaymentIntentInvoice(id) => string().map(|v| {
                self.link_payment_intent(&id, &v);
            }),
            // The snapshot carries its version; the key's copy only makes the row id unique.
            StateKey::Snapshot { subscription, .. } => serde_json::from_str::<Snapshot>(value)
                .ok()
                .map(|snapshot| {
                    self.add_snapshot(&subscription, snapshot);
                }),
            StateKey::Pending(key) => serde_json::from_str::<PendingRow>(value)
                .ok()
                .map(|row| self.load_pending(key, row)),
            // A bounded state keeps every version of a subscription it reads, and reads
            // its snapshots one by one.
            StateKey::SnapshotVersions(subscription) if self.residency.is_some() => {
                serde_json::from_str::<Vec<u64>>(value)
                    .ok()
                    .map(|versions| {
                        let all = self.snapshot_versions.entry(subscription).or_default();
                        all.extend(versions);
                        all.sort_unstable();
                        all.dedup();
                    })
            }
            // The indexes are derived from the pending rows and the snapshots; their rows
            // are for finding them.
            StateKey::Wait { .. } | StateKey::HasWaits(_) | StateKey::SnapshotVersions(_) => {
                Some(())
            }
        }
        .is_some()
    }

    /// A persisted pending row: kept like [`State::set_pending`] does, but not marked as
    /// used by the batch (it is not new).
    fn load_pending(&mut self, key: PendingKey, row: PendingRow) {
        if self
            .pending
            .get(&key)
            .is_some_and(|existing| existing.version() >= row.version())
        {
            return;
        }
        let parents = self.parents_of(&row);
        self.reindex(&key, parents, false);
        self.pending.insert(key, row);
    }

    /// Number of entries, for metrics and logs.
    pub fn size(&self) -> usize {
        self.invoices.len()
            + self.pi_invoice.len()
            + self.charges.len()
            + self.subscriptions.len()
            + self.pending.len()
    }
}

/// The time in microseconds since the epoch (the version of a state row written now).
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}
