//! The log record's headers on Kafka records, both ways: the producer and the dead-letter
//! producer write them with [`to_kafka_headers`], the consumer reads them back with
//! [`record_from_message`]. The names and values are [`schemas::record`]'s.

use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use schemas::{LogRecord, RecordHeaders};

/// The record's headers, plus `extra` ones (the dead-letter reason), as Kafka headers.
pub fn to_kafka_headers(headers: &RecordHeaders, extra: &[(&str, &str)]) -> OwnedHeaders {
    let pairs = headers.to_pairs();
    let mut out = OwnedHeaders::new_with_capacity(pairs.len() + extra.len());
    for (name, value) in &pairs {
        out = out.insert(Header {
            key: name,
            value: Some(value.as_bytes()),
        });
    }
    for (name, value) in extra {
        out = out.insert(Header {
            key: name,
            value: Some(value.as_bytes()),
        });
    }
    out
}

/// A consumed message as a log record. A record without revline's headers is still
/// passed on, flagged `bad_record_headers`, so it is dead-lettered rather than lost or fatal.
pub fn record_from_message<M: Message>(msg: &M) -> LogRecord {
    let payload = msg.payload().unwrap_or_default().to_vec();
    let key = msg
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default();
    let pairs: Vec<(&str, &[u8])> = msg
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key, h.value.unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let headers = RecordHeaders::from_pairs(pairs).unwrap_or_else(|err| {
        tracing::warn!(error = %err, partition = msg.partition(), offset = msg.offset(), "record without revline headers");
        RecordHeaders {
            event_id: format!("kafka:{}/{}/{}", msg.topic(), msg.partition(), msg.offset()),
            event_type: None,
            account: None,
            livemode: None,
            api_version: None,
            received_at_ms: msg.timestamp().to_millis().unwrap_or(0),
            format_version: 0,
            endpoint: String::new(),
            flag: Some("bad_record_headers".to_owned()),
        }
    });
    LogRecord {
        key,
        headers,
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{OwnedMessage, Timestamp};

    #[test]
    fn headers_survive_a_trip_through_a_kafka_record() {
        let body = br#"{"id":"evt_1","object":"event","type":"invoice.paid","created":5,"livemode":true,"account":"acct_1","api_version":"2025-03-31.basil","data":{"object":{"id":"in_1","customer":"cus_1"}}}"#;
        let env = schemas::Envelope::parse(body, None);
        let record = LogRecord::new(body.to_vec(), &env, "default", 1_700_000_000_123);
        let msg = OwnedMessage::new(
            Some(body.to_vec()),
            Some(record.key.clone().into_bytes()),
            "events".into(),
            Timestamp::NotAvailable,
            0,
            7,
            Some(to_kafka_headers(
                &record.headers,
                &[("revline-dlq-reason", "x")],
            )),
        );
        assert_eq!(record_from_message(&msg), record);
    }

    #[test]
    fn a_record_without_headers_is_flagged_not_dropped() {
        let msg = OwnedMessage::new(
            Some(b"{}".to_vec()),
            None,
            "events".into(),
            Timestamp::CreateTime(1_000),
            2,
            9,
            None,
        );
        let record = record_from_message(&msg);
        assert_eq!(record.headers.event_id, "kafka:events/2/9");
        assert_eq!(record.headers.flag.as_deref(), Some("bad_record_headers"));
        assert_eq!(record.payload, b"{}");
    }
}
