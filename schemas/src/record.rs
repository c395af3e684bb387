//! The event log record: what `ingest` writes and `reconcile` reads, identical in Kafka and
//! in the embedded log.
//!
//! - value: the raw body exactly as Stripe sent it (never re-encoded);
//! - key: [`crate::Envelope::partition_key`] (account plus customer or object id);
//! - headers: the routing fields below, so consumers can filter and dead-letter without
//!   parsing the body, plus the record format version.

use crate::envelope::Envelope;

/// Version of the header set and value encoding. Bump when either changes meaning.
pub const FORMAT_VERSION: u32 = 1;

/// Header names, shared by producer, consumer and tests.
pub mod header {
    pub const EVENT_ID: &str = "stripe-event-id";
    pub const EVENT_TYPE: &str = "stripe-event-type";
    pub const ACCOUNT: &str = "stripe-account";
    pub const LIVEMODE: &str = "stripe-livemode";
    pub const API_VERSION: &str = "stripe-api-version";
    pub const RECEIVED_AT: &str = "revline-received-at";
    pub const FORMAT: &str = "revline-format";
    pub const ENDPOINT: &str = "revline-endpoint";
    pub const FLAG: &str = "revline-flag";
}

/// The headers of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeaders {
    pub event_id: String,
    pub event_type: Option<String>,
    pub account: Option<String>,
    pub livemode: Option<bool>,
    pub api_version: Option<String>,
    /// When `ingest` accepted the request, Unix milliseconds.
    pub received_at_ms: i64,
    pub format_version: u32,
    /// The webhook endpoint name the event arrived on (`default` for `/webhooks/stripe`).
    pub endpoint: String,
    /// Dead-letter reason code when the body cannot be reconciled (see `EnvelopeFlag`).
    pub flag: Option<String>,
}

/// A header set that a consumer cannot use.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    Missing(&'static str),
    Invalid(&'static str),
}

impl std::error::Error for HeaderError {}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(name) => write!(f, "record header {name} is missing"),
            Self::Invalid(name) => write!(f, "record header {name} is not valid"),
        }
    }
}

impl RecordHeaders {
    pub fn from_envelope(env: &Envelope, endpoint: &str, received_at_ms: i64) -> Self {
        RecordHeaders {
            event_id: env.event_id.clone(),
            event_type: env.event_type.clone(),
            account: env.account.clone(),
            livemode: env.livemode,
            api_version: env.api_version.clone(),
            received_at_ms,
            format_version: FORMAT_VERSION,
            endpoint: endpoint.to_owned(),
            flag: env.flag.map(|f| f.as_str().to_owned()),
        }
    }

    /// Name/value pairs in a fixed order; absent optional fields are left out.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::with_capacity(9);
        pairs.push((header::EVENT_ID, self.event_id.clone()));
        if let Some(t) = &self.event_type {
            pairs.push((header::EVENT_TYPE, t.clone()));
        }
        if let Some(a) = &self.account {
            pairs.push((header::ACCOUNT, a.clone()));
        }
        if let Some(l) = self.livemode {
            pairs.push((header::LIVEMODE, l.to_string()));
        }
        if let Some(v) = &self.api_version {
            pairs.push((header::API_VERSION, v.clone()));
        }
        pairs.push((header::RECEIVED_AT, self.received_at_ms.to_string()));
        pairs.push((header::FORMAT, self.format_version.to_string()));
        pairs.push((header::ENDPOINT, self.endpoint.clone()));
        if let Some(f) = &self.flag {
            pairs.push((header::FLAG, f.clone()));
        }
        pairs
    }

    /// Rebuilds headers from name/value pairs (a Kafka record's headers). Unknown names are
    /// ignored so newer producers can add headers.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Self, HeaderError> {
        let mut event_id = None;
        let mut h = RecordHeaders {
            event_id: String::new(),
            event_type: None,
            account: None,
            livemode: None,
            api_version: None,
            received_at_ms: 0,
            format_version: 0,
            endpoint: String::new(),
            flag: None,
        };
        let mut received = None;
        let mut format = None;
        for (name, value) in pairs {
            let text = |n: &'static str| {
                std::str::from_utf8(value)
                    .map(str::to_owned)
                    .map_err(|_| HeaderError::Invalid(n))
            };
            match name {
                header::EVENT_ID => event_id = Some(text(header::EVENT_ID)?),
                header::EVENT_TYPE => h.event_type = Some(text(header::EVENT_TYPE)?),
                header::ACCOUNT => h.account = Some(text(header::ACCOUNT)?),
                header::LIVEMODE => {
                    h.livemode = Some(match value {
                        b"true" => true,
                        b"false" => false,
                        _ => return Err(HeaderError::Invalid(header::LIVEMODE)),
                    })
                }
                header::API_VERSION => h.api_version = Some(text(header::API_VERSION)?),
                header::RECEIVED_AT => {
                    received = Some(
                        text(header::RECEIVED_AT)?
                            .parse()
                            .map_err(|_| HeaderError::Invalid(header::RECEIVED_AT))?,
                    )
                }
                header::FORMAT => {
                    format = Some(
                        text(header::FORMAT)?
                            .parse()
                            .map_err(|_| HeaderError::Invalid(header::FORMAT))?,
                    )
                }
                header::ENDPOINT => h.endpoint = text(header::ENDPOINT)?,
                header::FLAG => h.flag = Some(text(header::FLAG)?),
                _ => {}
            }
        }
        h.event_id = event_id.ok_or(HeaderError::Missing(header::EVENT_ID))?;
        h.received_at_ms = received.ok_or(HeaderError::Missing(header::RECEIVED_AT))?;
        h.format_version = format.ok_or(HeaderError::Missing(header::FORMAT))?;
        Ok(h)
    }
}

/// One record of the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub key: String,
    pub headers: RecordHeaders,
    /// The body exactly as received.
    pub payload: Vec<u8>,
}

impl LogRecord {
    /// The record for a verified body.
    pub fn new(body: Vec<u8>, env: &Envelope, endpoint: &str, received_at_ms: i64) -> Self {
        LogRecord {
            key: env.partition_key(),
            headers: RecordHeaders::from_envelope(env, endpoint, received_at_ms),
            payload: body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_through_pairs() {
        let body = br#"{"id":"evt_1","object":"event","type":"invoice.paid","created":5,"livemode":true,"account":"acct_1","api_version":"2025-03-31.basil","data":{"object":{"id":"in_1","customer":"cus_1"}}}"#;
        let env = Envelope::parse(body, None);
        let rec = LogRecord::new(body.to_vec(), &env, "default", 1_700_000_000_123);
        assert_eq!(rec.key, "acct_1/cus_1");
        let pairs = rec.headers.to_pairs();
        let back =
            RecordHeaders::from_pairs(pairs.iter().map(|(n, v)| (*n, v.as_bytes()))).unwrap();
        assert_eq!(back, rec.headers);
        assert_eq!(back.flag, None);
    }

    #[test]
    fn missing_event_id_header_is_an_error() {
        let err = RecordHeaders::from_pairs([(header::FORMAT, &b"1"[..])]).unwrap_err();
        assert_eq!(err, HeaderError::Missing(header::EVENT_ID));
        assert_eq!(err.to_string(), "record header stripe-event-id is missing");
    }
}
