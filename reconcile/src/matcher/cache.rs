//! The matcher state as a bounded cache over the persisted `reconcile_state` rows.
//!
//! The state is grouped into objects that are loaded, kept and dropped whole: a charge's
//! links, a payment intent's invoice, an invoice's links, a subscription's list of
//! snapshot versions, one pending row, and with each link object the wait rows of the
//! pending rows that wait on it. Of a subscription's snapshots only those its batches
//! need are read, one by one: the ones on either side of a subscription event's version
//! (and its own, for a duplicate), which is all `subscription::apply` looks at; they are
//! dropped with the subscription. Before a batch is matched, [`State::missing`] walks
//! from what its events name through what is in memory (a refund's charge, the charge's payment intent, that one's
//! invoice, the orphans waiting on any of them) and returns the objects not in memory;
//! the caller reads their rows ([`Object::query`]) and hands them to [`State::absorb`],
//! which returns where the walk goes on, until nothing is missing: one to four reads per
//! batch. Every object the matcher reads or changes while matching is then in memory, so a
//! batch gives the same facts as with the whole state loaded.
//!
//! After the batch, [`State::evict`] drops, when the cache is over its size, the objects
//! used longest ago (never those the batch used) until about three quarters of the size
//! are left. Eviction only forgets the in-memory copy: nothing persisted is ever deleted,
//! and a later batch reads it back. What stays in memory stays consistent:
//! a link object is used together with every orphan waiting on it, so an orphan is never
//! dropped while its parent stays. A new orphan may be dropped too once its rows are
//! written: the next sweep, which looks for its parents in what other consumers wrote (the
//! wait row another consumer would have found it by may not have been written yet when it
//! looked), reads every orphan set since the sweep before back from the warehouse, a chunk
//! at a time. Keeping them in memory until then instead is what let a backlog's orphans
//! grow the cache past its size.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::mem::size_of;

use schemas::facts::StateRow;
use schemas::stripe::{DecodedEvent, StripeObject};
use warehouse::StateQuery;

use super::state::{ParentKey, PendingKey, State, StateKey};

/// An object of the state: the unit that is loaded and evicted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Object {
    Charge(String),
    PaymentIntent(String),
    Invoice(String),
    /// A subscription's list of snapshot versions, with the snapshots read so far.
    Subscription(String),
    /// One snapshot of a subscription (by version): read when a batch needs it, kept and
    /// dropped with its subscription.
    Snapshot(String, u64),
    /// What a subscription event of this snapshot version needs (a root only): its
    /// subscription's versions, then the snapshots on either side of that version and the
    /// one of that version itself, if there is one (a duplicate). Never the whole history.
    SnapshotsAround(String, u64),
    Pending(PendingKey),
}

impl Object {
    /// The state rows that hold `objects`, all by exact id: their link rows and the
    /// marker saying whether a link has wait rows, a subscription's list of snapshot
    /// versions, a pending row. [`Object::follow_up`] then names the rest.
    pub fn query(objects: &[Object]) -> StateQuery {
        let mut q = StateQuery::default();
        for object in objects {
            match object {
                Object::Charge(_) | Object::PaymentIntent(_) | Object::Invoice(_) => {
                    let parent = object.as_parent().expect("a link object");
                    q.ids
                        .extend(parent.state_keys().iter().map(ToString::to_string));
                    q.ids.push(StateKey::HasWaits(parent).to_string());
                }
                Object::Subscription(id) | Object::SnapshotsAround(id, _) => q
                    .ids
                    .push(StateKey::SnapshotVersions(id.clone()).to_string()),
                Object::Snapshot(id, version) => q.ids.push(
                    StateKey::Snapshot {
                        subscription: id.clone(),
                        version: *version,
                    }
                    .to_string(),
                ),
                Object::Pending(key) => q.ids.push(StateKey::Pending(key.clone()).to_string()),
            }
        }
        q
    }

    /// What [`Object::query`]'s `rows` say is left to read: the wait rows of the links
    /// that have any (an id range each, for the few links with a marker). A subscription's
    /// snapshots are read by exact id once its list of versions is in memory, only those
    /// the batch needs ([`Object::SnapshotsAround`]); all of them, by their id range, only
    /// when the list does not read.
    pub fn follow_up(rows: &[StateRow]) -> StateQuery {
        let mut q = StateQuery::default();
        for row in rows {
            match row.id.parse::<StateKey>() {
                Ok(StateKey::HasWaits(parent)) => q.prefixes.push(StateKey::wait_prefix(&parent)),
                Ok(StateKey::SnapshotVersions(subscription)) => {
                    // Never lose a history to a list that does not read: its snapshots
                    // are read by their id range instead.
                    if let Err(err) = serde_json::from_str::<Vec<u64>>(&row.value) {
                        tracing::warn!(
                            id = %row.id,
                            error = %err,
                            "a subscription's list of snapshot versions does not read; \
                             reading its snapshots by id range"
                        );
                        q.prefixes.push(StateKey::snapshot_prefix(&subscription));
                    }
                }
                _ => {}
            }
        }
        q
    }

    fn as_parent(&self) -> Option<ParentKey> {
        match self {
            Object::Charge(id) => Some(ParentKey::Charge(id.clone())),
            Object::PaymentIntent(id) => Some(ParentKey::PaymentIntent(id.clone())),
            Object::Invoice(id) => Some(ParentKey::Invoice(id.clone())),
            _ => None,
        }
    }

    fn from_parent(parent: &ParentKey) -> Object {
        match parent {
            ParentKey::Charge(id) => Object::Charge(id.clone()),
            ParentKey::PaymentIntent(id) => Object::PaymentIntent(id.clone()),
            ParentKey::Invoice(id) => Object::Invoice(id.clone()),
        }
    }

    /// The object a persisted row belongs to (a wait row to the link it waits on).
    fn owner(key: &StateKey) -> Object {
        match key {
            StateKey::ChargeCustomer(id)
            | StateKey::ChargeInvoice(id)
            | StateKey::ChargePaymentIntent(id) => Object::Charge(id.clone()),
            StateKey::InvoiceCustomer(id) | StateKey::InvoiceSubscription(id) => {
                Object::Invoice(id.clone())
            }
            StateKey::PaymentIntentInvoice(id) => Object::PaymentIntent(id.clone()),
            StateKey::Pending(key) => Object::Pending(key.clone()),
            StateKey::Snapshot {
                subscription,
                version,
            } => Object::Snapshot(subscription.clone(), *version),
            StateKey::SnapshotVersions(subscription) => Object::Subscription(subscription.clone()),
            StateKey::Wait { parent, .. } | StateKey::HasWaits(parent) => {
                Object::from_parent(parent)
            }
        }
    }
}

/// The objects an event's matching reads or changes directly (the walk adds what they
/// lead to).
pub fn roots(ev: &DecodedEvent, out: &mut Vec<Object>) {
    fn push(out: &mut Vec<Object>, make: fn(String) -> Object, id: &Option<String>) {
        if let Some(id) = id {
            out.push(make(id.clone()));
        }
    }
    match &ev.object {
        StripeObject::Invoice(inv) => {
            out.push(Object::Invoice(inv.id.clone()));
            push(out, Object::PaymentIntent, &inv.payment_intent);
            push(out, Object::Charge, &inv.charge);
        }
        StripeObject::Subscription(sub) => out.push(Object::SnapshotsAround(
            sub.id.clone(),
            super::subscription::snapshot_version(ev, sub),
        )),
        StripeObject::Charge(ch) => {
            out.push(Object::Charge(ch.id.clone()));
            out.push(Object::Pending(PendingKey::Payment(ch.id.clone())));
            push(out, Object::PaymentIntent, &ch.payment_intent);
            push(out, Object::Invoice, &ch.invoice);
            for re in &ch.refunds {
                out.push(Object::Pending(PendingKey::Refund(re.id.clone())));
                push(out, Object::Charge, &re.charge);
                push(out, Object::PaymentIntent, &re.payment_intent);
            }
        }
        StripeObject::PaymentIntent(pi) => {
            out.push(Object::PaymentIntent(pi.id.clone()));
            push(out, Object::Invoice, &pi.invoice);
            push(out, Object::Charge, &pi.latest_charge);
        }
        StripeObject::InvoicePayment(ip) => {
            out.push(Object::Pending(PendingKey::Payment(ip.id.clone())));
            out.push(Object::Invoice(ip.invoice.clone()));
            push(out, Object::PaymentIntent, &ip.payment_intent);
            push(out, Object::Charge, &ip.charge);
        }
        StripeObject::Refund(re) => {
            out.push(Object::Pending(PendingKey::Refund(re.id.clone())));
            push(out, Object::Charge, &re.charge);
            push(out, Object::PaymentIntent, &re.payment_intent);
        }
        StripeObject::Dispute(dp) => {
            out.push(Object::Pending(PendingKey::Dispute(dp.id.clone())));
            push(out, Object::Charge, &dp.charge);
            push(out, Object::PaymentIntent, &dp.payment_intent);
        }
        StripeObject::CheckoutSession(cs) => {
            push(out, Object::PaymentIntent, &cs.payment_intent);
            push(out, Object::Invoice, &cs.invoice);
        }
        // The other objects give facts from their own payload only.
        _ => {}
    }
}

/// Which objects are in memory, each with the last batch that used it.
#[derive(Debug, Clone, Default)]
pub struct Residency {
    charges: HashMap<String, u64>,
    payment_intents: HashMap<String, u64>,
    invoices: HashMap<String, u64>,
    subscriptions: HashMap<String, u64>,
    pending: HashMap<PendingKey, u64>,
    /// The batch being matched.
    batch: u64,
    /// The first batch of the current checkpoint window: the state rows of what it and
    /// the batches after it changed are not written yet, or are being written, so
    /// eviction keeps every object they used ([`State::start_window`]).
    window: u64,
    /// [`State::approx_bytes`] as of its last count, and the entries ([`State::size`])
    /// there were then: between counts the bytes are estimated from the entries.
    bytes: usize,
    counted_entries: usize,
    /// Batches since the last count.
    since_count: u32,
    /// Wait rows read (as waiting) while the current batch loaded, and the pending rows it
    /// loaded: [`State::settle`] writes the difference between the two.
    found_waits: Vec<(ParentKey, PendingKey)>,
    pub(super) fresh: Vec<PendingKey>,
    /// The snapshot versions the batch's subscription events have, per subscription: the
    /// snapshots around each are read ([`Object::SnapshotsAround`]).
    wanted: BTreeMap<String, BTreeSet<u64>>,
    /// Orphans read in since the last batch was matched: the links now known may resolve
    /// them (learned by a consumer that missed their wait row), so the batch emits them
    /// again first.
    recheck: Vec<PendingKey>,
}

impl Residency {
    fn slot(&mut self, object: &Object) -> Option<&mut u64> {
        match object {
            Object::Charge(id) => self.charges.get_mut(id),
            Object::PaymentIntent(id) => self.payment_intents.get_mut(id),
            Object::Invoice(id) => self.invoices.get_mut(id),
            Object::Subscription(id) => self.subscriptions.get_mut(id),
            Object::Pending(key) => self.pending.get_mut(key),
            // Kept with their subscription ([`State::missing`] checks them apart).
            Object::Snapshot(..) | Object::SnapshotsAround(..) => None,
        }
    }

    fn insert(&mut self, object: Object) {
        let batch = self.batch;
        match object {
            Object::Charge(id) => self.charges.insert(id, batch),
            Object::PaymentIntent(id) => self.payment_intents.insert(id, batch),
            Object::Invoice(id) => self.invoices.insert(id, batch),
            Object::Subscription(id) => self.subscriptions.insert(id, batch),
            Object::Pending(key) => self.pending.insert(key, batch),
            Object::Snapshot(..) | Object::SnapshotsAround(..) => None,
        };
    }

    /// A new orphan, used by this batch.
    pub(super) fn add_pending(&mut self, key: &PendingKey) {
        let batch = self.batch;
        self.pending.insert(key.clone(), batch);
    }

    fn objects(&self) -> usize {
        self.charges.len()
            + self.payment_intents.len()
            + self.invoices.len()
            + self.subscriptions.len()
            + self.pending.len()
    }
}

/// Bytes of a string held in a map (its heap part and its slot), roughly.
fn string_bytes(s: &str) -> usize {
    s.len() + size_of::<String>()
}

fn opt_bytes(s: &Option<String>) -> usize {
    s.as_deref().map_or(0, str::len)
}

/// What a map entry costs beyond its key and value (B-tree or hash table bookkeeping).
const ENTRY_OVERHEAD: usize = 48;

/// An eviction trims the cache to this share of its size (in quarters), so that the
/// next batches have room before the next one.
const LOW_WATER_QUARTERS: usize = 3;

/// Between two counts of the cache's bytes (a walk over everything in it) at most this
/// many batches go by on an estimate.
const BATCHES_PER_COUNT: u32 = 64;

impl State {
    /// An empty state that is a cache over the persisted rows (see the module docs).
    pub fn bounded() -> State {
        let mut state = State::default();
        state.residency = Some(Residency::default());
        state.start_window();
        state
    }

    /// Starts a checkpoint window with the next batch: call once the state rows of the
    /// window before were taken ([`State::take_dirty_rows`]) and the cache trimmed
    /// ([`State::evict`]). Until the next checkpoint, eviction keeps every object the
    /// window's batches use, as their rows exist only in memory; and the objects of the
    /// window before stay until the one after it, as its rows are being written while the
    /// next batches load what they need.
    pub fn start_window(&mut self) {
        if let Some(r) = &mut self.residency {
            r.window = r.batch + 1;
        }
    }

    pub fn is_bounded(&self) -> bool {
        self.residency.is_some()
    }

    /// Objects in memory (for metrics), or `None` when everything is.
    pub fn resident_objects(&self) -> Option<usize> {
        self.residency.as_ref().map(Residency::objects)
    }

    /// Starts a batch: the objects it uses from now on are kept by the next eviction.
    pub fn begin_batch(&mut self) {
        if let Some(r) = &mut self.residency {
            r.batch += 1;
            r.wanted.clear();
        }
    }

    /// Walks from `roots` through what is in memory: objects in memory are marked as used
    /// by this batch and lead on; the others are returned, to be read. Empty for a state
    /// that is not a cache.
    pub fn missing(&mut self, roots: Vec<Object>) -> Vec<Object> {
        let Some(mut residency) = self.residency.take() else {
            return Vec::new();
        };
        let batch = residency.batch;
        let mut seen: BTreeSet<Object> = BTreeSet::new();
        let mut queue = Vec::with_capacity(roots.len());
        for object in roots {
            match object {
                Object::SnapshotsAround(id, version) => {
                    residency
                        .wanted
                        .entry(id.clone())
                        .or_default()
                        .insert(version);
                    queue.push(Object::Subscription(id));
                }
                other => queue.push(other),
            }
        }
        let mut out = Vec::new();
        while let Some(object) = queue.pop() {
            if !seen.insert(object.clone()) {
                continue;
            }
            if let Object::Snapshot(id, version) = &object {
                if !self.has_snapshot(id, *version) {
                    out.push(object);
                }
                continue;
            }
            match residency.slot(&object) {
                Some(used) => {
                    *used = batch;
                    self.neighbours(&object, &residency.wanted, &mut queue);
                }
                None => out.push(object),
            }
        }
        self.residency = Some(residency);
        out
    }

    /// Merges the rows read for `objects` (now in memory, used by this batch) and returns
    /// what they lead to: the walk goes on from there ([`State::missing`]).
    pub fn absorb(&mut self, objects: &[Object], rows: Vec<StateRow>) -> Vec<Object> {
        if self.residency.is_none() {
            return Vec::new();
        }
        let asked: BTreeSet<&Object> = objects.iter().collect();
        let mut next = Vec::new();
        let mut keep = Vec::with_capacity(rows.len());
        for object in objects {
            // A subscription read is one whose versions are all known from now on (none, if
            // it has no list yet).
            if let Object::Subscription(id) = object {
                self.snapshot_versions.entry(id.clone()).or_default();
            }
        }
        for row in rows {
            let Ok(key) = row.id.parse::<StateKey>() else {
                keep.push(row);
                continue;
            };
            // A prefix may reach further than asked (a subscription id with a `#`); a
            // subscription's snapshots all come when its list does not read.
            let owner = Object::owner(&key);
            let owned = match &owner {
                Object::Snapshot(id, _) => {
                    asked.contains(&owner) || asked.contains(&Object::Subscription(id.clone()))
                }
                _ => asked.contains(&owner),
            };
            if !owned {
                continue;
            }
            if let StateKey::Wait { parent, pending } = &key {
                if row.value != "null" {
                    next.push(Object::Pending(pending.clone()));
                    if let Some(r) = &mut self.residency {
                        r.found_waits.push((parent.clone(), pending.clone()));
                    }
                }
            }
            keep.push(row);
        }
        let skipped = self.load_rows(keep);
        if skipped > 0 {
            tracing::warn!(skipped, "state rows that could not be read were skipped");
        }
        let residency = self.residency.as_mut().expect("checked above");
        for object in objects {
            residency.insert(object.clone());
        }
        let wanted = std::mem::take(&mut residency.wanted);
        for object in objects {
            self.neighbours(object, &wanted, &mut next);
        }
        if let Some(r) = &mut self.residency {
            r.wanted = wanted;
        }
        next
    }

    /// Whether the snapshot of `subscription` at `version` is in memory.
    fn has_snapshot(&self, subscription: &str, version: u64) -> bool {
        self.subscriptions
            .get(subscription)
            .is_some_and(|list| list.binary_search_by_key(&version, |s| s.version).is_ok())
    }

    /// After a batch's reads: makes the wait rows true where what was read and what is
    /// known now differ. A wait row read as waiting whose orphan is resolved (a consumer
    /// that had not seen the resolution yet wrote it) is cleared; a loaded orphan waiting
    /// on a link no row said it waits on (its charge's payment intent became known) gets
    /// that row.
    pub fn settle(&mut self) {
        let Some(r) = &mut self.residency else {
            return;
        };
        let found = std::mem::take(&mut r.found_waits);
        let fresh = std::mem::take(&mut r.fresh);
        let found_set: BTreeSet<&(ParentKey, PendingKey)> = found.iter().collect();
        let mut marks = Vec::new();
        for (parent, key) in &found {
            if !self.indexed_parents(key).contains(parent) {
                marks.push((parent.clone(), key.clone()));
            }
        }
        for key in &fresh {
            for parent in self.indexed_parents(key) {
                if !found_set.contains(&(parent.clone(), key.clone())) {
                    marks.push((parent.clone(), key.clone()));
                }
            }
        }
        for (parent, key) in marks {
            self.mark_wait(&parent, &key);
        }
        if let Some(r) = &mut self.residency {
            r.recheck.extend(fresh);
        }
    }

    /// The orphans read in since the last call (see [`State::settle`]).
    pub fn take_recheck(&mut self) -> Vec<PendingKey> {
        self.residency
            .as_mut()
            .map(|r| std::mem::take(&mut r.recheck))
            .unwrap_or_default()
    }

    /// What `object` leads to through what is in memory: a link's target objects, the
    /// orphans waiting on a link, an orphan's charge, payment intent and invoice, the
    /// snapshots of a subscription that the batch's events of it need (`wanted`).
    fn neighbours(
        &self,
        object: &Object,
        wanted: &BTreeMap<String, BTreeSet<u64>>,
        out: &mut Vec<Object>,
    ) {
        if let Some(parent) = object.as_parent() {
            out.extend(self.pending_for(&parent).into_iter().map(Object::Pending));
        }
        match object {
            Object::Charge(id) => {
                if let Some(link) = self.charges.get(id) {
                    if let Some(pi) = &link.payment_intent {
                        out.push(Object::PaymentIntent(pi.clone()));
                    }
                    if let Some(inv) = &link.invoice {
                        out.push(Object::Invoice(inv.clone()));
                    }
                }
            }
            Object::PaymentIntent(id) => {
                if let Some(inv) = self.pi_invoice.get(id) {
                    out.push(Object::Invoice(inv.clone()));
                }
            }
            Object::Pending(key) => {
                if let Some(row) = self.pending.get(key) {
                    let (charge, pi, invoice) = row.refs();
                    out.extend(charge.map(|c| Object::Charge(c.to_owned())));
                    out.extend(pi.map(|p| Object::PaymentIntent(p.to_owned())));
                    out.extend(invoice.map(|i| Object::Invoice(i.to_owned())));
                }
            }
            Object::Subscription(id) => {
                let (Some(versions), Some(wanted)) =
                    (self.snapshot_versions.get(id), wanted.get(id))
                else {
                    return;
                };
                // The snapshot an event's version lands between (and its own, a
                // duplicate's): what `subscription::apply` reads of the history.
                for &version in wanted {
                    let at = versions.partition_point(|&v| v < version);
                    let mut need = Vec::with_capacity(3);
                    if at > 0 {
                        need.push(versions[at - 1]);
                    }
                    match versions.get(at) {
                        Some(&same) if same == version => {
                            need.push(same);
                            need.extend(versions.get(at + 1));
                        }
                        Some(&next) => need.push(next),
                        None => {}
                    }
                    out.extend(need.into_iter().map(|v| Object::Snapshot(id.clone(), v)));
                }
            }
            Object::Invoice(_) | Object::Snapshot(..) | Object::SnapshotsAround(..) => {}
        }
    }

    /// [`State::approx_bytes`] as of the cache's last count (cheap), computed now (a walk
    /// over the whole state) otherwise.
    pub fn bytes_in_memory(&self) -> usize {
        match &self.residency {
            Some(r) => r.bytes,
            None => self.approx_bytes(),
        }
    }

    /// Roughly the bytes the state holds in memory.
    pub fn approx_bytes(&self) -> usize {
        let mut bytes = 0;
        for (id, link) in &self.invoices {
            bytes += string_bytes(id)
                + opt_bytes(&link.customer)
                + opt_bytes(&link.subscription)
                + size_of::<super::state::InvoiceLink>()
                + ENTRY_OVERHEAD;
        }
        for (id, invoice) in &self.pi_invoice {
            bytes += string_bytes(id) + string_bytes(invoice) + ENTRY_OVERHEAD;
        }
        for (id, link) in &self.charges {
            bytes += string_bytes(id)
                + opt_bytes(&link.payment_intent)
                + opt_bytes(&link.customer)
                + opt_bytes(&link.invoice)
                + size_of::<super::state::ChargeLink>()
                + ENTRY_OVERHEAD;
        }
        for (id, snapshots) in &self.subscriptions {
            bytes += string_bytes(id) + ENTRY_OVERHEAD;
            for snapshot in snapshots {
                bytes += size_of::<super::state::Snapshot>();
                // An item row: its fixed part and its strings, about 200 bytes of ids,
                // prices and names.
                bytes +=
                    snapshot.rows.len() * (size_of::<schemas::facts::SubscriptionItemRow>() + 200);
            }
        }
        for (id, versions) in &self.snapshot_versions {
            bytes += string_bytes(id) + versions.len() * size_of::<u64>() + ENTRY_OVERHEAD;
        }
        // A pending row: a fact row with a dozen short strings, each its own heap block
        // (measured: about 520 bytes besides the row); and its indexes.
        bytes += self.pending.len() * (size_of::<super::state::PendingRow>() + 520);
        bytes += self.pending_index_bytes();
        if let Some(r) = &self.residency {
            bytes += r.objects() * (size_of::<String>() + 24 + ENTRY_OVERHEAD);
        }
        bytes
    }

    /// When over `max_bytes`, forgets the objects used longest ago (never one the current
    /// checkpoint window used) until about three quarters of
    /// `max_bytes` are left; returns how many objects were dropped. Call after the window's
    /// state rows were taken ([`State::take_dirty_rows`]), then [`State::start_window`].
    ///
    /// The objects one batch uses are closed under [`State::missing`]'s walk (a link and
    /// the orphans waiting on it are always used together), so dropping every object last
    /// used before some batch keeps what stays consistent, as dropping all but the current
    /// batch would.
    ///
    /// The cache's bytes are counted (a walk over all of it) only when the estimate from
    /// its entry count nears `max_bytes`, every [`BATCHES_PER_COUNT`] batches, and after
    /// an eviction: a batch that fits costs no walk.
    pub fn evict(&mut self, max_bytes: usize) -> usize {
        let entries = self.size();
        let Some(r) = &mut self.residency else {
            return 0;
        };
        r.since_count += 1;
        let estimate = (r.bytes as u128 * entries as u128 / r.counted_entries.max(1) as u128)
            .min(usize::MAX as u128) as usize;
        let uncounted = r.counted_entries == 0 && entries > 0;
        if !uncounted && r.since_count < BATCHES_PER_COUNT && estimate < max_bytes / 10 * 9 {
            return 0;
        }
        let bytes = self.approx_bytes();
        self.recounted(bytes);
        if bytes <= max_bytes {
            return 0;
        }
        let mut r = self.residency.take().expect("checked above");
        let threshold = r
            .keep_from(bytes, max_bytes / 4 * LOW_WATER_QUARTERS)
            .min(r.window);
        let before = r.objects();
        r.charges.retain(|_, used| *used >= threshold);
        r.payment_intents.retain(|_, used| *used >= threshold);
        r.invoices.retain(|_, used| *used >= threshold);
        r.subscriptions.retain(|_, used| *used >= threshold);
        r.pending.retain(|_, used| *used >= threshold);
        self.invoices.retain(|id, _| r.invoices.contains_key(id));
        self.pi_invoice
            .retain(|id, _| r.payment_intents.contains_key(id));
        self.charges.retain(|id, _| r.charges.contains_key(id));
        self.subscriptions
            .retain(|id, _| r.subscriptions.contains_key(id));
        self.snapshot_versions
            .retain(|id, _| r.subscriptions.contains_key(id));
        let dropped: Vec<PendingKey> = self
            .pending
            .keys()
            .filter(|key| !r.pending.contains_key(*key))
            .cloned()
            .collect();
        for key in dropped {
            self.pending.remove(&key);
            self.pend_base.remove(&key);
            // Only the in-memory index: the wait rows stay true.
            self.reindex(&key, Vec::new(), false);
        }
        let after = r.objects();
        self.residency = Some(r);
        let bytes = self.approx_bytes();
        self.recounted(bytes);
        before - after
    }

    /// Records a count of the cache's bytes.
    fn recounted(&mut self, bytes: usize) {
        let entries = self.size();
        if let Some(r) = &mut self.residency {
            r.bytes = bytes;
            r.counted_entries = entries;
            r.since_count = 0;
        }
    }
}

impl Residency {
    /// The oldest batch whose objects an eviction keeps so that about `target` of the
    /// cache's `bytes` remain: the most recently used batches first, the current batch
    /// always (even alone over `target`).
    fn keep_from(&self, bytes: usize, target: usize) -> u64 {
        let per_object = (bytes / self.objects().max(1)).max(1);
        let room = target / per_object;
        let mut by_batch: BTreeMap<u64, usize> = BTreeMap::new();
        for used in self
            .charges
            .values()
            .chain(self.payment_intents.values())
            .chain(self.invoices.values())
            .chain(self.subscriptions.values())
            .chain(self.pending.values())
        {
            *by_batch.entry(*used).or_default() += 1;
        }
        let mut kept = 0;
        let mut threshold = self.batch;
        for (&batch, &objects) in by_batch.iter().rev() {
            if batch < self.batch && kept + objects > room {
                break;
            }
            kept += objects;
            threshold = threshold.min(batch);
        }
        threshold
    }
}
