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
//! each batch, and loaded back on start or after a rebalance.

use std::collections::{BTreeMap, BTreeSet};

use schemas::facts::{DisputeRow, PaymentRow, RefundRow, StateRow, SubscriptionItemRow};
use serde::{Deserialize, Serialize};

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
    /// invoice id → customer, subscription.
    pub invoices: BTreeMap<String, InvoiceLink>,
    /// payment intent id → invoice id.
    pub pi_invoice: BTreeMap<String, String>,
    /// charge id → payment intent, customer, invoice.
    pub charges: BTreeMap<String, ChargeLink>,
    /// subscription id → snapshots, by version.
    pub subscriptions: BTreeMap<String, Vec<Snapshot>>,
    /// `payment:<id>` / `refund:<id>` / `dispute:<id>` → the row waiting for links.
    pub pending: BTreeMap<String, PendingRow>,
    /// Parent link key → pending keys it would resolve (derived from `pending`).
    pending_by_parent: BTreeMap<String, BTreeSet<String>>,
    /// Pending key → the parent keys it is indexed under.
    pending_parents: BTreeMap<String, Vec<String>>,
    /// Keys changed since the last [`State::take_dirty_rows`].
    dirty: BTreeSet<String>,
    /// Highest state-row version written or loaded; new rows get higher ones.
    clock: u64,
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
            self.dirty.insert(format!("inv.customer:{invoice}"));
        }
        if subscription {
            self.dirty.insert(format!("inv.subscription:{invoice}"));
        }
        customer || subscription
    }

    pub fn link_payment_intent(&mut self, pi: &str, invoice: &str) -> bool {
        let mut current = self.pi_invoice.get(pi).cloned();
        let changed = merge_opt(&mut current, &Some(invoice.to_owned()));
        if changed {
            self.pi_invoice
                .insert(pi.to_owned(), current.expect("just set"));
            self.dirty.insert(format!("pi:{pi}"));
        }
        changed
    }

    pub fn link_charge(&mut self, charge: &str, link: ChargeLink) -> bool {
        let e = self.charges.entry(charge.to_owned()).or_default();
        let pi = merge_opt(&mut e.payment_intent, &link.payment_intent);
        let customer = merge_opt(&mut e.customer, &link.customer);
        let invoice = merge_opt(&mut e.invoice, &link.invoice);
        for (changed, field) in [
            (pi, "payment_intent"),
            (customer, "customer"),
            (invoice, "invoice"),
        ] {
            if changed {
                self.dirty.insert(format!("ch.{field}:{charge}"));
            }
        }
        pi || customer || invoice
    }

    /// The persisted state keys that hold a link key's fields (`ch:X` is stored as
    /// `ch.payment_intent:X`, `ch.customer:X`, `ch.invoice:X`).
    pub fn persisted_keys(link: &str) -> Vec<String> {
        match link.split_once(':') {
            Some(("ch", id)) => ["payment_intent", "customer", "invoice"]
                .iter()
                .map(|f| format!("ch.{f}:{id}"))
                .collect(),
            Some(("inv", id)) => ["customer", "subscription"]
                .iter()
                .map(|f| format!("inv.{f}:{id}"))
                .collect(),
            _ => vec![link.to_owned()],
        }
    }

    /// The highest state-row version seen (loaded or written).
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Adds a snapshot; `false` when that version was already known.
    pub fn add_snapshot(&mut self, subscription: &str, snapshot: Snapshot) -> bool {
        let snapshot_version = snapshot.version;
        let list = self
            .subscriptions
            .entry(subscription.to_owned())
            .or_default();
        match list.binary_search_by_key(&snapshot.version, |s| s.version) {
            Ok(_) => false,
            Err(at) => {
                list.insert(at, snapshot);
                // One state row per snapshot: written once, never rewritten with the
                // subscription's whole history.
                self.dirty
                    .insert(format!("sub:{subscription}#{snapshot_version:016x}"));
                true
            }
        }
    }

    /// Link keys that would resolve `row`: its charge, its payment intent (or its
    /// charge's), its invoice.
    pub fn parents_of(&self, row: &PendingRow) -> Vec<String> {
        let (charge, pi, invoice) = row.refs();
        let pi = pi.or_else(|| {
            charge
                .and_then(|c| self.charges.get(c))
                .and_then(|l| l.payment_intent.as_deref())
        });
        let mut keys = Vec::with_capacity(3);
        if let Some(c) = charge {
            keys.push(format!("ch:{c}"));
        }
        if let Some(p) = pi {
            keys.push(format!("pi:{p}"));
        }
        if let Some(i) = invoice {
            keys.push(format!("inv:{i}"));
        }
        keys
    }

    /// Keeps `row` as pending unless a higher version of the same object already is.
    pub fn set_pending(&mut self, key: String, row: PendingRow) {
        if let Some(existing) = self.pending.get(&key) {
            if existing.version() >= row.version() {
                return;
            }
        }
        self.unindex(&key);
        let parents = self.parents_of(&row);
        for parent in &parents {
            self.pending_by_parent
                .entry(parent.clone())
                .or_default()
                .insert(key.clone());
        }
        self.pending_parents.insert(key.clone(), parents);
        self.pending.insert(key.clone(), row);
        self.dirty.insert(format!("pend:{key}"));
    }

    /// Re-indexes a pending row under the parents it waits on now.
    pub fn refresh_parents(&mut self, key: &str) {
        let Some(row) = self.pending.get(key) else {
            return;
        };
        let parents = self.parents_of(row);
        if self.pending_parents.get(key) == Some(&parents) {
            return;
        }
        self.unindex(key);
        for parent in &parents {
            self.pending_by_parent
                .entry(parent.clone())
                .or_default()
                .insert(key.to_owned());
        }
        self.pending_parents.insert(key.to_owned(), parents);
    }

    pub fn clear_pending(&mut self, key: &str) {
        if self.pending.contains_key(key) {
            self.unindex(key);
            self.pending.remove(key);
            self.dirty.insert(format!("pend:{key}"));
        }
    }

    fn unindex(&mut self, key: &str) {
        for parent in self.pending_parents.remove(key).unwrap_or_default() {
            if let Some(keys) = self.pending_by_parent.get_mut(&parent) {
                keys.remove(key);
                if keys.is_empty() {
                    self.pending_by_parent.remove(&parent);
                }
            }
        }
    }

    /// Rebuilds the parent index (after loading, when links arrived after their rows).
    fn reindex_pending(&mut self) {
        self.pending_by_parent.clear();
        self.pending_parents.clear();
        let entries: Vec<(String, Vec<String>)> = self
            .pending
            .iter()
            .map(|(k, row)| (k.clone(), self.parents_of(row)))
            .collect();
        for (key, parents) in entries {
            for parent in &parents {
                self.pending_by_parent
                    .entry(parent.clone())
                    .or_default()
                    .insert(key.clone());
            }
            self.pending_parents.insert(key, parents);
        }
    }

    /// Pending keys waiting on a parent link key (`ch:…`, `pi:…`, `inv:…`).
    pub fn pending_for(&self, parent: &str) -> Vec<String> {
        self.pending_by_parent
            .get(parent)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Parent keys some pending row waits on (what a sweep looks up in the warehouse).
    pub fn wanted_parents(&self) -> Vec<String> {
        self.pending_by_parent.keys().cloned().collect()
    }

    /// State rows for every key changed since the last call.
    pub fn take_dirty_rows(&mut self) -> Vec<StateRow> {
        let keys = std::mem::take(&mut self.dirty);
        keys.into_iter()
            .map(|key| {
                self.clock += 1;
                StateRow {
                    value: self.value_of(&key),
                    id: key,
                    version: self.clock,
                }
            })
            .collect()
    }

    fn value_of(&self, key: &str) -> String {
        fn json<T: Serialize>(v: Option<&T>) -> String {
            v.map_or_else(
                || "null".to_owned(),
                |v| serde_json::to_string(v).expect("serialisable"),
            )
        }
        let (kind, id) = key.split_once(':').unwrap_or((key, ""));
        match kind {
            "inv.customer" => json(self.invoices.get(id).and_then(|l| l.customer.as_ref())),
            "inv.subscription" => json(self.invoices.get(id).and_then(|l| l.subscription.as_ref())),
            "pi" => json(self.pi_invoice.get(id)),
            "ch.payment_intent" => {
                json(self.charges.get(id).and_then(|l| l.payment_intent.as_ref()))
            }
            "ch.customer" => json(self.charges.get(id).and_then(|l| l.customer.as_ref())),
            "ch.invoice" => json(self.charges.get(id).and_then(|l| l.invoice.as_ref())),
            "sub" => {
                let (sub, version) = id.split_once('#').unwrap_or((id, ""));
                let version = u64::from_str_radix(version, 16).ok();
                json(
                    self.subscriptions
                        .get(sub)
                        .and_then(|list| list.iter().find(|s| Some(s.version) == version)),
                )
            }
            "pend" => json(self.pending.get(id)),
            _ => "null".to_owned(),
        }
    }

    /// Merges persisted rows (from the warehouse) into this state. Rows with unknown keys
    /// or undecodable values are skipped and counted in the returned number.
    pub fn load_rows(&mut self, rows: impl IntoIterator<Item = StateRow>) -> usize {
        let mut skipped = 0;
        for row in rows {
            self.clock = self.clock.max(row.version);
            let (kind, id) = match row.id.split_once(':') {
                Some(parts) => parts,
                None => {
                    skipped += 1;
                    continue;
                }
            };
            if row.value == "null" {
                continue;
            }
            let ok = match kind {
                "pi" => serde_json::from_str::<String>(&row.value)
                    .map(|v| {
                        self.link_payment_intent(id, &v);
                    })
                    .is_ok(),
                field if field.starts_with("inv.") || field.starts_with("ch.") => {
                    match serde_json::from_str::<String>(&row.value) {
                        Ok(v) => {
                            let v = Some(v);
                            match field {
                                "inv.customer" => self.link_invoice(
                                    id,
                                    InvoiceLink {
                                        customer: v,
                                        subscription: None,
                                    },
                                ),
                                "inv.subscription" => self.link_invoice(
                                    id,
                                    InvoiceLink {
                                        customer: None,
                                        subscription: v,
                                    },
                                ),
                                "ch.payment_intent" => self.link_charge(
                                    id,
                                    ChargeLink {
                                        payment_intent: v,
                                        ..ChargeLink::default()
                                    },
                                ),
                                "ch.customer" => self.link_charge(
                                    id,
                                    ChargeLink {
                                        customer: v,
                                        ..ChargeLink::default()
                                    },
                                ),
                                "ch.invoice" => self.link_charge(
                                    id,
                                    ChargeLink {
                                        invoice: v,
                                        ..ChargeLink::default()
                                    },
                                ),
                                _ => false,
                            };
                            true
                        }
                        Err(_) => false,
                    }
                }
                "sub" => serde_json::from_str::<Snapshot>(&row.value)
                    .map(|snapshot| {
                        let sub = id.split_once('#').map_or(id, |(sub, _)| sub);
                        self.add_snapshot(sub, snapshot);
                    })
                    .is_ok(),
                "pend" => serde_json::from_str::<PendingRow>(&row.value)
                    .map(|v| self.set_pending(id.to_owned(), v))
                    .is_ok(),
                _ => false,
            };
            if !ok {
                skipped += 1;
            }
        }
        self.reindex_pending();
        // Loaded rows are already persisted.
        self.dirty.clear();
        skipped
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
