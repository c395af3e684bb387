//! Helpers shared by the decoder's tests, one place for all families: the fixture files, a
//! snapshot event around an inline object, and `expect!`, which unwraps one
//! [`StripeObject`] variant. `expect!` reaches the family files by textual scope (this
//! module is declared first, with `#[macro_use]`), not by path: a `use` of it would clash
//! with the built-in `#[expect]` attribute.

use super::{decode_event, DecodeError};
use crate::stripe::StripeObject;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/stripe-events/");

pub(super) fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{name}")).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// A snapshot event around `object` (inline JSON text).
fn event(api_version: &str, event_type: &str, object: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"evt_test_1","object":"event","api_version":"{api_version}","created":1769907602,
            "livemode":false,"pending_webhooks":1,"request":{{"id":null,"idempotency_key":null}},
            "type":"{event_type}","data":{{"object":{object}}}}}"#
    )
    .into_bytes()
}

pub(super) fn decode_object(api_version: &str, event_type: &str, object: &str) -> StripeObject {
    decode_event(&event(api_version, event_type, object))
        .expect("decodes")
        .object
}

pub(super) fn decode_err(api_version: &str, event_type: &str, object: &str) -> DecodeError {
    decode_event(&event(api_version, event_type, object)).expect_err("must not decode")
}

macro_rules! expect {
    ($object:expr, $variant:ident) => {
        match $object {
            $crate::stripe::StripeObject::$variant(inner) => inner,
            other => panic!("expected {}, got {other:?}", stringify!($variant)),
        }
    };
}

pub(super) const ACACIA: &str = "2025-02-24.acacia";
pub(super) const BASIL: &str = "2025-03-31.basil";
