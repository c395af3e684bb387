//! The fuzz targets: each takes arbitrary bytes and must return without panicking, whatever
//! they hold. `fuzz/afl/` runs them under AFL++ (coverage-guided, on the stable toolchain:
//! `fuzz/run.sh`), and `tests/corpus.rs` replays the seed corpus and every input a run
//! ever found interesting or crashing through them on every `cargo test`.
//!
//! - [`signature`]: the `Stripe-Signature` header parser and the verification over a body.
//! - [`envelope`]: the envelope parser ingest runs on every verified body, and the log
//!   record built from it.
//! - [`reconcile`]: the event decoder (every Stripe object the reconciler reads) and the
//!   matcher, over one or more events (split at the ASCII record separator, 0x1E), so that
//!   the matching of several events is fuzzed too.

use ingest::signature::{UnverifiedWebhook, WebhookSecret};
use reconcile::matcher::Matcher;
use schemas::{Envelope, LogRecord};

/// The secret the signature target verifies with.
pub const SECRET: &str = "whsec_fuzz_secret";
/// "Now" of the signature target (the fixtures' signatures are made at this time).
pub const NOW: i64 = 1_767_225_600;

/// The input's first line is the header value, the rest the body.
pub fn signature(data: &[u8]) {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let secrets = [WebhookSecret::new(SECRET).expect("a valid secret")];
    let webhook = UnverifiedWebhook {
        signature_headers: vec![header],
        body: bytes::Bytes::copy_from_slice(body),
    };
    if let Ok(verified) = webhook.verify(&secrets, NOW, 300) {
        // Only a body signed with the secret gets here: its record must hold it.
        let (_, record) = verified.into_record("default", None, 0);
        assert_eq!(record.payload, body);
    }
}

/// The whole input is a webhook body.
pub fn envelope(data: &[u8]) {
    for expected in [None, Some(true), Some(false)] {
        let env = Envelope::parse(data, expected);
        let record = LogRecord::new(data.to_vec(), &env, "default", 0);
        assert_eq!(record.payload, data);
    }
}

/// The input is one or more event bodies separated by 0x1E, reconciled as one batch and
/// then once more (a redelivery must not panic either).
pub fn reconcile(data: &[u8]) {
    let records: Vec<LogRecord> = data
        .split(|b| *b == 0x1E)
        .map(|body| LogRecord::new(body.to_vec(), &Envelope::parse(body, None), "default", 0))
        .collect();
    let mut matcher = Matcher::default();
    let (_, outcomes) = matcher.apply(&records);
    assert_eq!(outcomes.len(), records.len());
    let _ = matcher.apply(&records);
    for record in &records {
        let _ = schemas::stripe::decode_event(&record.payload);
        let _ = schemas::stripe::decode_balance_transaction(&record.payload);
    }
}

/// A fuzz target: arbitrary bytes in, a panic is a finding.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("signature", signature),
    ("envelope", envelope),
    ("reconcile", reconcile),
];
