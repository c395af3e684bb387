//! The matcher: `(events, known state) → (facts, new state)`, with no I/O.
//!
//! Each event decodes into one object snapshot; the snapshot gives its own facts (rows with
//! deterministic ids and versions, see [`crate::version`]) and teaches the state links
//! (invoice → subscription/customer, payment intent → invoice, charge → payment intent/
//! customer/invoice). Rows that need a link not known yet (a refund before its charge, a
//! basil charge before its invoice payment) are kept pending and emitted again, with the
//! link and a higher version, when the link arrives. So any arrival order and any number of
//! duplicates end in the same rows per id once the warehouse keeps the highest version.

pub mod cache;
mod discount;
mod invoice;
mod other;
pub mod payments;
mod payout;
pub mod state;
mod subscription;
#[cfg(test)]
mod tests;
pub mod ties;

use schemas::facts::{DeadLetterRow, EventRow, FactSet};
use schemas::stripe::{decode_event, DecodeError, DecodedEvent, StripeObject};
use schemas::LogRecord;

pub use cache::Object;
pub use state::{KeyError, ParentKey, PendingKey, State, StateKey};

/// An event decoded once, before its batch is matched.
pub type Decoded = Result<DecodedEvent, DecodeError>;

/// Decodes a batch (what [`Matcher::apply_decoded`] takes).
pub fn decode(records: &[LogRecord]) -> Vec<Decoded> {
    records.iter().map(|r| decode_event(&r.payload)).collect()
}

/// The state objects a decoded batch's events name (where [`State::missing`] starts).
pub fn roots(decoded: &[Decoded]) -> Vec<Object> {
    let mut out = Vec::new();
    for ev in decoded.iter().flatten() {
        cache::roots(ev, &mut out);
    }
    out
}

/// The health thin event after which Stripe asks integrations to backfill missed events.
pub const GENERATION_FAILURE_RESOLVED: &str = "v2.core.health.event_generation_failure.resolved";

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Facts were derived.
    Reconciled,
    /// Kept as a raw event only (an object type revline does not reconcile, `invoice.upcoming`).
    Ignored,
    /// Could not be decoded: kept raw and dead-lettered with this reason.
    DeadLettered { reason: String, detail: String },
    /// Stripe reports that it failed to generate some events: a backfill is due.
    BackfillRequested,
}

/// The matcher with its state.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    state: State,
    /// Recent snapshots, to notice same-second ties nothing decides (not persisted).
    ties: ties::TieWatch,
}

/// One event's context while its facts are built.
pub(crate) struct EventCtx<'a> {
    pub ev: &'a DecodedEvent,
    pub facts: &'a mut FactSet,
    pub ties: &'a mut ties::TieWatch,
}

impl EventCtx<'_> {
    pub fn account(&self) -> Option<String> {
        self.ev.meta.account.clone()
    }
    pub fn livemode(&self) -> u8 {
        u8::from(self.ev.meta.livemode)
    }
    pub fn event_id(&self) -> String {
        self.ev.meta.id.clone()
    }
    pub fn created(&self) -> i64 {
        self.ev.meta.created
    }
    pub fn version(&self, rank: u8, links: u8) -> u64 {
        crate::version::version(self.ev.meta.created, rank, links, 0, &self.ev.meta.id)
    }
    /// The version of a snapshot whose fields that only grow give `progress` (see
    /// [`crate::version::grow`]).
    pub fn version_grown(&self, rank: u8, progress: u32) -> u64 {
        crate::version::version(self.ev.meta.created, rank, 0, progress, &self.ev.meta.id)
    }
    /// Notes `row` (of `object`, id `id`) for the same-second tie watch; a tie nothing
    /// decides becomes a `same_second_ties` row.
    pub fn watch<T: serde::Serialize>(
        &mut self,
        object: &'static str,
        id: &str,
        version: u64,
        row: &T,
    ) {
        let tie = self.ties.observe(
            object,
            id,
            version,
            ties::content(row),
            &self.ev.meta.id,
            ts(self.ev.meta.created),
            self.ev.meta.account.clone(),
            u8::from(self.ev.meta.livemode),
        );
        self.facts.ties.extend(tie);
    }
}

/// Unix seconds as a `u32` column (negative or far-future values clamp).
pub(crate) fn ts(t: i64) -> u32 {
    t.clamp(0, i64::from(u32::MAX)) as u32
}

pub(crate) fn ts_opt(t: Option<i64>) -> Option<u32> {
    t.map(ts)
}

impl Matcher {
    pub fn new(state: State) -> Matcher {
        Matcher {
            state,
            ties: ties::TieWatch::default(),
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    pub fn into_state(self) -> State {
        self.state
    }

    /// Derives the facts of `records` and updates the state. Pure: the same state and the
    /// same records give the same facts.
    pub fn apply(&mut self, records: &[LogRecord]) -> (FactSet, Vec<Outcome>) {
        self.apply_decoded(records, decode(records))
    }

    /// [`Matcher::apply`] with the records already decoded (`decoded[i]` of `records[i]`).
    /// With a bounded state, the objects the batch names must be in memory
    /// ([`State::missing`]).
    pub fn apply_decoded(
        &mut self,
        records: &[LogRecord],
        decoded: Vec<Decoded>,
    ) -> (FactSet, Vec<Outcome>) {
        let (mut facts, outcomes) = self.match_decoded(records, decoded);
        facts.state = self.state.take_dirty_rows();
        (facts, outcomes)
    }

    /// [`Matcher::apply_decoded`] without the state rows: the state remembers what changed,
    /// and the next [`State::take_dirty_rows`] (a checkpoint) writes each changed key once,
    /// however many batches changed it since.
    pub fn match_decoded(
        &mut self,
        records: &[LogRecord],
        decoded: Vec<Decoded>,
    ) -> (FactSet, Vec<Outcome>) {
        let mut facts = FactSet::default();
        // Orphans just read back may be resolved by links learned while they were not in
        // memory (what a sweep would find).
        for key in self.state.take_recheck() {
            payments::reemit_pending(&mut self.state, &key, &mut facts);
        }
        let mut outcomes = Vec::with_capacity(records.len());
        for (record, decoded) in records.iter().zip(decoded) {
            outcomes.push(self.apply_one(record, decoded, &mut facts));
        }
        (facts, outcomes)
    }

    /// Emits again every pending row that the current links now resolve (after links
    /// learned elsewhere were merged into the state).
    pub fn resolve_pending(&mut self) -> FactSet {
        let mut facts = FactSet::default();
        let keys: Vec<PendingKey> = self.state.pending.keys().cloned().collect();
        for key in keys {
            payments::reemit_pending(&mut self.state, &key, &mut facts);
        }
        facts.state = self.state.take_dirty_rows();
        facts
    }

    fn apply_one(&mut self, record: &LogRecord, decoded: Decoded, facts: &mut FactSet) -> Outcome {
        let h = &record.headers;
        facts
            .events
            .push(raw_event_row(record, decoded.as_ref().ok()));

        if let Some(flag) = &h.flag {
            return dead_letter(
                record,
                facts,
                flag,
                "flagged by ingest: the body cannot be reconciled".into(),
            );
        }
        let ev = match decoded {
            Ok(ev) => ev,
            Err(DecodeError::ThinEvent { event_type })
                if event_type == GENERATION_FAILURE_RESOLVED =>
            {
                return Outcome::BackfillRequested;
            }
            Err(err) => return dead_letter(record, facts, err.reason(), err.to_string()),
        };
        let mut ctx = EventCtx {
            ev: &ev,
            facts,
            ties: &mut self.ties,
        };
        let state = &mut self.state;
        match &ev.object {
            StripeObject::Invoice(inv) => invoice::apply(&mut ctx, state, inv),
            StripeObject::Subscription(sub) => subscription::apply(&mut ctx, state, sub),
            StripeObject::Charge(ch) => payments::charge(&mut ctx, state, ch),
            StripeObject::PaymentIntent(pi) => payments::payment_intent(&mut ctx, state, pi),
            StripeObject::InvoicePayment(ip) => payments::invoice_payment(&mut ctx, state, ip),
            StripeObject::Refund(re) => payments::refund(&mut ctx, state, re),
            StripeObject::Dispute(dp) => payments::dispute(&mut ctx, state, dp),
            StripeObject::BalanceTransaction(bt) => payments::balance_transaction(&mut ctx, bt),
            StripeObject::CreditNote(cn) => other::credit_note(&mut ctx, cn),
            StripeObject::Customer(c) => other::customer(&mut ctx, c),
            StripeObject::CheckoutSession(cs) => other::checkout_session(&mut ctx, state, cs),
            StripeObject::Quote(q) => other::quote(&mut ctx, q),
            StripeObject::Discount(d) => discount::discount_event(&mut ctx, d),
            StripeObject::Coupon(c) => discount::coupon_event(&mut ctx, c),
            StripeObject::Payout(p) => payout::apply(&mut ctx, p),
            StripeObject::PayoutItems(page) => payout::items(&mut ctx, page),
            StripeObject::InvoiceLines(page) => invoice::lines_page(&mut ctx, page),
            StripeObject::Other { .. } => return Outcome::Ignored,
        }
        Outcome::Reconciled
    }
}

/// The log record a stored raw event came from (for `revline replay`).
pub fn record_from_event_row(row: &EventRow) -> LogRecord {
    LogRecord {
        key: String::new(),
        headers: schemas::RecordHeaders {
            event_id: row.id.clone(),
            event_type: row.event_type.clone(),
            account: row.account.clone(),
            livemode: Some(row.livemode == 1),
            api_version: row.api_version.clone(),
            received_at_ms: row.received_at_ms,
            format_version: schemas::FORMAT_VERSION,
            endpoint: row.endpoint.clone(),
            flag: row.flag.clone(),
        },
        payload: row.payload.clone().into_bytes(),
    }
}

/// `(facts, new state)` for `records` applied to `state`: the matcher as a function.
pub fn reconcile(state: State, records: &[LogRecord]) -> (FactSet, State) {
    let mut matcher = Matcher::new(state);
    let (facts, _) = matcher.apply(records);
    (facts, matcher.into_state())
}

fn raw_event_row(record: &LogRecord, decoded: Option<&DecodedEvent>) -> EventRow {
    let h = &record.headers;
    let (created_at, object_type, object_id) = match decoded {
        Some(ev) => {
            let (object, id) = object_identity(&ev.object);
            (Some(ts(ev.meta.created)), Some(object.to_owned()), id)
        }
        None => (None, None, None),
    };
    EventRow {
        id: h.event_id.clone(),
        event_type: h.event_type.clone(),
        api_version: h.api_version.clone(),
        created_at,
        livemode: u8::from(h.livemode.unwrap_or(false)),
        account: h.account.clone(),
        object_type,
        object_id,
        endpoint: h.endpoint.clone(),
        received_at_ms: h.received_at_ms,
        flag: h.flag.clone(),
        // Valid UTF-8 (every payload that decodes) is copied as it is; `from_utf8_lossy`
        // walked every payload chunk by chunk (2 % of reconcile's CPU).
        payload: String::from_utf8(record.payload.clone())
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        // The first receipt wins when one event arrived more than once.
        version: first_receipt_version(h.received_at_ms),
    }
}

fn first_receipt_version(received_at_ms: i64) -> u64 {
    (i64::MAX - received_at_ms.max(0)) as u64
}

fn object_identity(object: &StripeObject) -> (&str, Option<String>) {
    match object {
        StripeObject::Invoice(o) => ("invoice", Some(o.id.clone())),
        StripeObject::Subscription(o) => ("subscription", Some(o.id.clone())),
        StripeObject::Charge(o) => ("charge", Some(o.id.clone())),
        StripeObject::PaymentIntent(o) => ("payment_intent", Some(o.id.clone())),
        StripeObject::InvoicePayment(o) => ("invoice_payment", Some(o.id.clone())),
        StripeObject::Refund(o) => ("refund", Some(o.id.clone())),
        StripeObject::Dispute(o) => ("dispute", Some(o.id.clone())),
        StripeObject::CreditNote(o) => ("credit_note", Some(o.id.clone())),
        StripeObject::Customer(o) => ("customer", Some(o.id.clone())),
        StripeObject::BalanceTransaction(o) => ("balance_transaction", Some(o.id.clone())),
        StripeObject::CheckoutSession(o) => ("checkout.session", Some(o.id.clone())),
        StripeObject::Quote(o) => ("quote", Some(o.id.clone())),
        StripeObject::Discount(o) => ("discount", Some(o.id.clone())),
        StripeObject::Coupon(o) => ("coupon", Some(o.id.clone())),
        StripeObject::Payout(o) => ("payout", Some(o.id.clone())),
        StripeObject::PayoutItems(o) => ("payout_items", Some(o.payout.clone())),
        StripeObject::InvoiceLines(o) => ("invoice_lines", Some(o.invoice.invoice.clone())),
        StripeObject::Other { object, id } => (object.as_str(), id.clone()),
    }
}

fn dead_letter(record: &LogRecord, facts: &mut FactSet, reason: &str, detail: String) -> Outcome {
    facts.dead_letters.push(DeadLetterRow {
        id: record.headers.event_id.clone(),
        event_type: record.headers.event_type.clone(),
        reason: reason.to_owned(),
        detail: detail.clone(),
        received_at_ms: record.headers.received_at_ms,
        version: first_receipt_version(record.headers.received_at_ms),
    });
    Outcome::DeadLettered {
        reason: reason.to_owned(),
        detail,
    }
}
