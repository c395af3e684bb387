//! Hand-built Stripe event histories for the report tests: basil event envelopes with
//! readable timestamps, posting them, and a deterministic shuffled, duplicated delivery.

use reports::calendar::parse_utc;
use serde_json::{json, Value};

use crate::Revline;

pub const BASIL: &str = "2025-05-28.basil";

/// `YYYY-MM-DDTHH:MM:SSZ` as Unix seconds.
pub fn t(text: &str) -> i64 {
    parse_utc(text).unwrap_or_else(|| panic!("not an instant: {text}"))
}

/// A live-mode basil event of `object`, created at `created`.
pub fn event(id: &str, event_type: &str, created: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "object": "event", "api_version": BASIL, "created": t(created),
        "livemode": true, "pending_webhooks": 1, "type": event_type,
        "request": {"id": null, "idempotency_key": null},
        "data": {"object": object},
    }))
    .expect("JSON serialises")
}

/// Posts every body, signed, and expects 200 for each.
pub async fn post_all(app: &Revline, bodies: &[Vec<u8>]) {
    for body in bodies {
        let resp = app.post_signed(body).await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
}

/// A deterministic shuffle with every event twice and a few three times.
pub fn shuffled_with_duplicates(bodies: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = bodies.iter().chain(bodies).cloned().collect();
    out.extend(bodies.iter().step_by(4).cloned());
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..out.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    out
}
