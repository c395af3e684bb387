//! The routing view of a verified Stripe event: only what `ingest` needs to key, label and
//! deduplicate it (`id`, `object`, `type`, `created`, `livemode`, `account`, `api_version`,
//! the customer or object id). The body itself is stored byte for byte elsewhere.
//!
//! Parsing never fails: an authentic body that is not the event we expect still has to be
//! stored (Stripe retries any 4xx for three days, then drops the event), so instead of an
//! error the envelope carries an [`EnvelopeFlag`] that `reconcile` dead-letters with.
//! `ingest` parses only bodies whose signature it has verified, so a flagged body is
//! authentic: it is appended and answered with 200 like any other. Stripe's retries:
//! <https://docs.stripe.com/webhooks/process-undelivered-events>.

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::time::parse_rfc3339;

/// Which generation of event the body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventObjectKind {
    /// `object: "event"`: a snapshot event carrying `data.object`.
    Snapshot,
    /// `object: "v2.core.event"`: a thin event pointing at `related_object`.
    Thin,
}

/// Why an authentic body cannot be reconciled as it is. The reason travels with the record
/// (header `revline-flag`) so the dead-letter entry says what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeFlag {
    /// The body is not UTF-8 JSON.
    NotJson,
    /// The body is JSON but not an object.
    NotAnObject,
    /// No non-empty string `id`.
    MissingId,
    /// No non-empty string `type`.
    MissingType,
    /// No `created` of the right shape (integer seconds, or an RFC 3339 string on thin events).
    MissingCreated,
    /// `object` is neither `event` nor `v2.core.event`.
    UnexpectedObject,
    /// `livemode` contradicts the mode configured for the endpoint it arrived on.
    LivemodeMismatch,
}

impl EnvelopeFlag {
    /// The stable reason code stored with the record and shown in dead-letter rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotJson => "not_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingId => "missing_id",
            Self::MissingType => "missing_type",
            Self::MissingCreated => "missing_created",
            Self::UnexpectedObject => "unexpected_object",
            Self::LivemodeMismatch => "livemode_mismatch",
        }
    }

    /// The inverse of [`EnvelopeFlag::as_str`].
    pub fn parse(code: &str) -> Option<Self> {
        Some(match code {
            "not_json" => Self::NotJson,
            "not_an_object" => Self::NotAnObject,
            "missing_id" => Self::MissingId,
            "missing_type" => Self::MissingType,
            "missing_created" => Self::MissingCreated,
            "unexpected_object" => Self::UnexpectedObject,
            "livemode_mismatch" => Self::LivemodeMismatch,
            _ => return None,
        })
    }
}

impl std::fmt::Display for EnvelopeFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `ingest` reads from a verified body before storing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The Stripe event id, or `sha256:<hex of the body>` when the body has none, so an
    /// authentic but odd body is still stored once and deduplicated on retries.
    pub event_id: String,
    pub event_type: Option<String>,
    pub kind: Option<EventObjectKind>,
    /// Unix seconds.
    pub created: Option<i64>,
    pub livemode: Option<bool>,
    /// Connect: the connected account the event originated from.
    pub account: Option<String>,
    pub api_version: Option<String>,
    /// `data.object.id` for snapshot events, `related_object.id` for thin ones.
    pub object_id: Option<String>,
    /// The customer the object belongs to, when it names one.
    pub customer_id: Option<String>,
    /// Set when the body cannot be reconciled; the first problem found wins.
    pub flag: Option<EnvelopeFlag>,
}

/// The top level of a body. `D` is how `data` is read: typed (one pass over the body, the
/// common case) or as raw JSON (when `data` has an unexpected shape).
#[derive(Deserialize)]
struct RawEnvelope<'a, D> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type")]
    event_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created: Option<&'a RawValue>,
    #[serde(borrow, default)]
    livemode: Option<&'a RawValue>,
    #[serde(borrow, default)]
    account: Option<&'a RawValue>,
    #[serde(borrow, default)]
    api_version: Option<&'a RawValue>,
    #[serde(default = "none")]
    data: Option<D>,
    #[serde(borrow, default)]
    related_object: Option<&'a RawValue>,
}

fn none<D>() -> Option<D> {
    None
}

/// `data` read in the same pass as the envelope.
#[derive(Deserialize)]
struct TypedData<'a> {
    #[serde(borrow, default)]
    object: Option<RawObject<'a>>,
}

impl<'a, D> RawEnvelope<'a, D> {
    /// The envelope with `data` reduced to its object, if it has one.
    fn map_data(
        self,
        f: impl FnOnce(D) -> Option<RawObject<'a>>,
    ) -> RawEnvelope<'a, RawObject<'a>> {
        RawEnvelope {
            id: self.id,
            object: self.object,
            event_type: self.event_type,
            created: self.created,
            livemode: self.livemode,
            account: self.account,
            api_version: self.api_version,
            data: self.data.and_then(f),
            related_object: self.related_object,
        }
    }
}

#[derive(Deserialize)]
struct RawData<'a> {
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawObject<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    customer: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: Option<String>,
}

fn as_string(raw: Option<&RawValue>) -> Option<String> {
    let raw = raw?;
    serde_json::from_str::<String>(raw.get())
        .ok()
        .filter(|s| !s.is_empty())
}

fn as_bool(raw: Option<&RawValue>) -> Option<bool> {
    serde_json::from_str::<bool>(raw?.get()).ok()
}

/// A string id, or an expanded object's `id`.
fn as_id(raw: Option<&RawValue>) -> Option<String> {
    let raw = raw?;
    as_string(Some(raw)).or_else(|| {
        serde_json::from_str::<IdOnly>(raw.get())
            .ok()
            .and_then(|o| o.id)
            .filter(|s| !s.is_empty())
    })
}

/// `sha256:<lowercase hex>` of the body: the key of a body that carries no event id.
pub fn body_digest_id(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

impl Envelope {
    /// Reads the routing fields of a verified body. `expected_livemode` is the mode the
    /// endpoint is configured for, if any.
    pub fn parse(body: &[u8], expected_livemode: Option<bool>) -> Envelope {
        let mut env = Envelope {
            event_id: String::new(),
            event_type: None,
            kind: None,
            created: None,
            livemode: None,
            account: None,
            api_version: None,
            object_id: None,
            customer_id: None,
            flag: None,
        };
        let is_json = || serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
        // A derived struct also accepts a JSON array (fields by position): look first.
        let starts_as_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let parsed = if starts_as_object {
            match serde_json::from_slice::<RawEnvelope<'_, TypedData<'_>>>(body) {
                Ok(typed) => Some(typed.map_data(|d| d.object)),
                // `data` (or `data.object`) is not an object: read the envelope without it.
                Err(_) => serde_json::from_slice::<RawEnvelope<'_, &RawValue>>(body)
                    .ok()
                    .map(|raw| {
                        raw.map_data(|d| {
                            serde_json::from_str::<RawData<'_>>(d.get())
                                .ok()
                                .and_then(|d| d.object)
                                .and_then(|o| serde_json::from_str::<RawObject<'_>>(o.get()).ok())
                        })
                    }),
            }
        } else {
            None
        };
        let Some(raw) = parsed else {
            env.event_id = body_digest_id(body);
            env.flag = Some(if !starts_as_object && is_json() {
                EnvelopeFlag::NotAnObject
            } else {
                EnvelopeFlag::NotJson
            });
            return env;
        };
        let mut flag = None;
        let mut note = |f: EnvelopeFlag| {
            if flag.is_none() {
                flag = Some(f);
            }
        };

        match as_string(raw.id) {
            Some(id) => env.event_id = id,
            None => {
                env.event_id = body_digest_id(body);
                note(EnvelopeFlag::MissingId);
            }
        }
        env.event_type = as_string(raw.event_type);
        if env.event_type.is_none() {
            note(EnvelopeFlag::MissingType);
        }
        env.kind = match as_string(raw.object).as_deref() {
            Some("event") => Some(EventObjectKind::Snapshot),
            Some("v2.core.event") => Some(EventObjectKind::Thin),
            _ => None,
        };
        env.created = raw.created.and_then(|c| match env.kind {
            Some(EventObjectKind::Thin) => serde_json::from_str::<String>(c.get())
                .ok()
                .and_then(|s| parse_rfc3339(&s)),
            _ => serde_json::from_str::<i64>(c.get()).ok(),
        });
        if env.created.is_none() {
            note(EnvelopeFlag::MissingCreated);
        }
        if env.kind.is_none() {
            note(EnvelopeFlag::UnexpectedObject);
        }
        env.livemode = as_bool(raw.livemode);
        if let (Some(expected), Some(actual)) = (expected_livemode, env.livemode) {
            if expected != actual {
                note(EnvelopeFlag::LivemodeMismatch);
            }
        }
        env.account = as_string(raw.account);
        env.api_version = as_string(raw.api_version);

        match env.kind {
            Some(EventObjectKind::Thin) => env.object_id = as_id(raw.related_object),
            _ => {
                if let Some(object) = raw.data {
                    env.object_id = as_string(object.id);
                    env.customer_id = if as_string(object.object).as_deref() == Some("customer") {
                        env.object_id.clone()
                    } else {
                        as_id(object.customer)
                    };
                }
            }
        }
        env.flag = flag;
        env
    }

    /// The log key: account plus customer (or object, or event) id, so one customer's
    /// events stay in one partition and stay ordered relative to each other.
    pub fn partition_key(&self) -> String {
        let subject = self
            .customer_id
            .as_deref()
            .or(self.object_id.as_deref())
            .unwrap_or(&self.event_id);
        match &self.account {
            Some(account) => format!("{account}/{subject}"),
            None => subject.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_event_routing_fields_are_read() {
        let body = br#"{"id":"evt_1","object":"event","type":"invoice.paid","created":1769907602,"livemode":false,"api_version":"2025-03-31.basil","data":{"object":{"id":"in_1","object":"invoice","customer":"cus_1"}}}"#;
        let env = Envelope::parse(body, None);
        assert_eq!(env.event_id, "evt_1");
        assert_eq!(env.event_type.as_deref(), Some("invoice.paid"));
        assert_eq!(env.kind, Some(EventObjectKind::Snapshot));
        assert_eq!(env.created, Some(1769907602));
        assert_eq!(env.livemode, Some(false));
        assert_eq!(env.api_version.as_deref(), Some("2025-03-31.basil"));
        assert_eq!(env.object_id.as_deref(), Some("in_1"));
        assert_eq!(env.customer_id.as_deref(), Some("cus_1"));
        assert_eq!(env.flag, None);
        assert_eq!(env.partition_key(), "cus_1");
    }

    #[test]
    fn connect_account_prefixes_the_key_and_expanded_customer_is_read() {
        let body = br#"{"id":"evt_1","object":"event","type":"charge.succeeded","created":1,"account":"acct_9","data":{"object":{"id":"ch_1","customer":{"id":"cus_7","object":"customer"}}}}"#;
        let env = Envelope::parse(body, None);
        assert_eq!(env.partition_key(), "acct_9/cus_7");
    }

    #[test]
    fn customer_object_is_its_own_customer() {
        let body = br#"{"id":"evt_1","object":"event","type":"customer.created","created":1,"data":{"object":{"id":"cus_3","object":"customer"}}}"#;
        assert_eq!(Envelope::parse(body, None).partition_key(), "cus_3");
    }

    #[test]
    fn thin_event_uses_related_object_and_iso_created() {
        let body = br#"{"id":"evt_t","object":"v2.core.event","type":"v1.billing.meter.error_report_triggered","livemode":false,"created":"2026-02-01T00:00:42.000Z","related_object":{"id":"mtr_123","type":"billing.meter"}}"#;
        let env = Envelope::parse(body, None);
        assert_eq!(env.kind, Some(EventObjectKind::Thin));
        assert_eq!(env.created, Some(1769904042));
        assert_eq!(env.partition_key(), "mtr_123");
        assert_eq!(env.flag, None);
    }

    #[test]
    fn bodies_we_cannot_reconcile_are_flagged_not_rejected() {
        let cases: &[(&[u8], EnvelopeFlag)] = &[
            (b"not json", EnvelopeFlag::NotJson),
            (b"\xff\xfe", EnvelopeFlag::NotJson),
            (b"[1,2]", EnvelopeFlag::NotAnObject),
            (b"\"evt\"", EnvelopeFlag::NotAnObject),
            (
                br#"{"object":"event","type":"x","created":1}"#,
                EnvelopeFlag::MissingId,
            ),
            (
                br#"{"id":7,"object":"event","type":"x","created":1}"#,
                EnvelopeFlag::MissingId,
            ),
            (
                br#"{"id":"evt_1","object":"event","created":1}"#,
                EnvelopeFlag::MissingType,
            ),
            (
                br#"{"id":"evt_1","object":"event","type":"x","created":"1"}"#,
                EnvelopeFlag::MissingCreated,
            ),
            (
                br#"{"id":"evt_1","object":"invoice","type":"x","created":1}"#,
                EnvelopeFlag::UnexpectedObject,
            ),
        ];
        for (body, flag) in cases {
            let env = Envelope::parse(body, None);
            assert_eq!(env.flag, Some(*flag), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn odd_data_shapes_still_give_the_envelope() {
        for body in [
            &br#"{"id":"evt_1","object":"event","type":"x","created":1,"data":"oops"}"#[..],
            br#"{"id":"evt_1","object":"event","type":"x","created":1,"data":{"object":[1]}}"#,
            br#"{"id":"evt_1","object":"event","type":"x","created":1,"data":{"object":{"id":5,"customer":true}}}"#,
        ] {
            let env = Envelope::parse(body, None);
            assert_eq!(env.event_id, "evt_1");
            assert_eq!(env.flag, None);
            assert_eq!(env.partition_key(), "evt_1");
        }
    }

    #[test]
    fn body_without_id_is_keyed_by_its_digest() {
        let env = Envelope::parse(b"[]", None);
        assert_eq!(
            env.event_id,
            "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
        );
    }

    #[test]
    fn livemode_contradicting_the_endpoint_is_flagged() {
        let body = br#"{"id":"evt_1","object":"event","type":"x","created":1,"livemode":false}"#;
        assert_eq!(
            Envelope::parse(body, Some(true)).flag,
            Some(EnvelopeFlag::LivemodeMismatch)
        );
        assert_eq!(Envelope::parse(body, Some(false)).flag, None);
    }

    #[test]
    fn flag_codes_round_trip() {
        for flag in [
            EnvelopeFlag::NotJson,
            EnvelopeFlag::NotAnObject,
            EnvelopeFlag::MissingId,
            EnvelopeFlag::MissingType,
            EnvelopeFlag::MissingCreated,
            EnvelopeFlag::UnexpectedObject,
            EnvelopeFlag::LivemodeMismatch,
        ] {
            assert_eq!(EnvelopeFlag::parse(flag.as_str()), Some(flag));
        }
    }
}
