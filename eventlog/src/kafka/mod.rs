//! The Kafka adapter of both ports: [`KafkaLog`] produces verified events (append port),
//! [`KafkaSource`] consumes them as a consumer-group member and sends poison records to the
//! dead-letter topic (read port). Every librdkafka client revline creates (producer,
//! consumer, dead-letter producer, admin) is configured by [`KafkaConnection`], so the
//! operator's properties (credentials, TLS, tuning) reach all of them the same way.

mod consumer;
mod headers;
mod producer;

use std::collections::BTreeMap;

use rdkafka::config::ClientConfig;

pub use consumer::{
    KafkaSource, Offsets, SourceSettings, DLQ_ATTEMPTS, DLQ_DETAIL_HEADER, DLQ_REASON_HEADER,
    PREFETCH_KBYTES, PREFETCH_KBYTES_BOUNDED,
};
pub use headers::{record_from_message, to_kafka_headers};
pub use producer::{
    topic_max_message_bytes, KafkaLog, ProducerSettings, KAFKA_DEFAULT_TOPIC_MAX_BYTES,
    RECORD_OVERHEAD_BYTES, STALL_RECREATE_AFTER,
};

/// How to reach the brokers: the bootstrap servers plus the operator's librdkafka
/// properties (`REVLINE_KAFKA_RDKAFKA_*`), shared by every client.
#[derive(Clone)]
pub struct KafkaConnection {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Extra librdkafka properties (credentials, TLS, tuning), applied over revline's
    /// defaults but under the settings revline's guarantees depend on.
    pub librdkafka: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaConnection {
    /// librdkafka properties may hold credentials (`sasl.password`): only their names show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConnection")
            .field("brokers", &self.brokers)
            .field("librdkafka", &self.librdkafka.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The kind of librdkafka client a configuration is for. An admin client is a producer
/// to librdkafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Consumer,
    Producer,
}

/// librdkafka properties only a consumer reads (`C` in its `CONFIGURATION.md`). A producer
/// given one ignores it but logs a `CONFWARN` at start, so the operator's properties
/// (shared by every client) reach only the clients that read them.
const CONSUMER_ONLY: &[&str] = &[
    "group.id",
    "group.instance.id",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "group.protocol.type",
    "group.protocol",
    "group.remote.assignor",
    "coordinator.query.interval.ms",
    "max.poll.interval.ms",
    "enable.auto.commit",
    "auto.commit.enable",
    "auto.commit.interval.ms",
    "enable.auto.offset.store",
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "fetch.wait.max.ms",
    "fetch.queue.backoff.ms",
    "fetch.message.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.max.bytes",
    "fetch.min.bytes",
    "fetch.error.backoff.ms",
    "offset.store.method",
    "offset.store.path",
    "offset.store.sync.interval.ms",
    "isolation.level",
    "enable.partition.eof",
    "check.crcs",
    "auto.offset.reset",
    "consume.callback.max.messages",
];

/// librdkafka properties only a producer reads (`P`): a consumer given one logs a
/// `CONFWARN` too.
const PRODUCER_ONLY: &[&str] = &[
    "transactional.id",
    "transaction.timeout.ms",
    "enable.idempotence",
    "enable.gapless.guarantee",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.ms",
    "linger.ms",
    "message.send.max.retries",
    "retries",
    "queue.buffering.backpressure.threshold",
    "compression.codec",
    "compression.type",
    "compression.level",
    "batch.num.messages",
    "batch.size",
    "delivery.report.only.error",
    "sticky.partitioning.linger.ms",
    "request.required.acks",
    "acks",
    "request.timeout.ms",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "queuing.strategy",
    "partitioner",
];

impl Client {
    /// Whether a client of this kind reads the librdkafka property `key`.
    pub fn reads(self, key: &str) -> bool {
        let other = match self {
            Client::Consumer => PRODUCER_ONLY,
            Client::Producer => CONSUMER_ONLY,
        };
        !other.contains(&key)
    }
}

impl KafkaConnection {
    /// A client configuration: `bootstrap.servers`, then `defaults`, then the operator's
    /// properties a `client` reads, then `fixed` (what no property may change: idempotence,
    /// `acks=all`, manual offset storing).
    pub fn client_config(
        &self,
        client: Client,
        defaults: &[(&str, String)],
        fixed: &[(&str, &str)],
    ) -> ClientConfig {
        let mut config = ClientConfig::new();
        // librdkafka's warnings and errors (a TLS handshake refused, a broker down) reach
        // revline's log; rdkafka would otherwise pick a level from a `log` logger revline
        // does not install.
        config.set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in defaults {
            config.set(*key, value);
        }
        for (key, value) in self.librdkafka.iter().filter(|(k, _)| client.reads(k)) {
            config.set(key, value);
        }
        for (key, value) in fixed {
            config.set(*key, *value);
        }
        config
    }

    /// An admin/metadata client (topic creation, describe configs).
    pub fn admin_config(&self) -> ClientConfig {
        self.client_config(Client::Producer, &[], &[])
    }
}

/// The librdkafka this binary links: its version and built-in features (`ssl`, `sasl_plain`,
/// `sasl_scram`, …), so an operator can see TLS and SASL are there.
pub fn librdkafka_build() -> String {
    let (_, version) = rdkafka::util::get_rdkafka_version();
    let features = ClientConfig::new()
        .create_native_config()
        .and_then(|c| c.get("builtin.features"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("librdkafka {version} ({features})")
}

/// What librdkafka reports while it tries to reach the brokers with `connection`: its
/// errors and warnings (a refused TLS handshake, a failed SASL authentication, a refused
/// connection), each once, in order. An admin client's metadata request only says
/// "broker transport failure"; this says why, for the error an operator reads. Waits up
/// to `wait` for the metadata.
pub fn diagnose(connection: &KafkaConnection, wait: std::time::Duration) -> Vec<String> {
    use rdkafka::client::ClientContext;
    use rdkafka::config::RDKafkaLogLevel;
    use rdkafka::error::KafkaError;
    use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Capture(Mutex<Vec<String>>);
    impl Capture {
        fn push(&self, line: String) {
            let mut seen = self.0.lock().expect("capture lock");
            if !seen.contains(&line) {
                seen.push(line);
            }
        }
    }
    impl ClientContext for Capture {
        fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
            if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
                self.push(format!("{fac}: {message}"));
            }
        }
        fn error(&self, error: KafkaError, reason: &str) {
            self.push(format!("{error}: {reason}"));
        }
    }
    impl ProducerContext for Capture {
        type DeliveryOpaque = ();
        fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
    }

    let producer: BaseProducer<Capture> = match connection
        .client_config(Client::Producer, &[], &[])
        .create_with_context(Capture::default())
    {
        Ok(p) => p,
        Err(err) => return vec![format!("cannot create a kafka client: {err}")],
    };
    let _ = producer.client().fetch_metadata(None, wait);
    // Logs and errors wait in the client's main queue until it is served.
    for _ in 0..10 {
        producer.poll(std::time::Duration::from_millis(50));
    }
    let lines = producer.context().0.lock().expect("capture lock").clone();
    lines
}

/// How many members the consumer group `group` has right now (0 when it does not exist or
/// is empty), asked of the brokers.
pub fn group_members(
    connection: &KafkaConnection,
    group: &str,
    wait: std::time::Duration,
) -> Result<usize, rdkafka::error::KafkaError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = connection
        .client_config(
            Client::Consumer,
            &[("group.id", format!("{group}.probe"))],
            &[],
        )
        .create()?;
    let groups = consumer.fetch_group_list(Some(group), wait)?;
    Ok(groups
        .groups()
        .iter()
        .filter(|g| g.name() == group)
        .map(|g| g.members().len())
        .sum())
}

/// What an idempotent producer must keep whatever the operator sets: no duplicates or
/// reordering from internal retries, and an acknowledgement only once every in-sync
/// replica has the record (librdkafka `CONFIGURATION.md`).
pub(crate) const DURABLE_PRODUCER: &[(&str, &str)] =
    &[("enable.idempotence", "true"), ("acks", "all")];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_properties_override_defaults_but_not_fixed_settings() {
        let mut librdkafka = BTreeMap::new();
        librdkafka.insert("linger.ms".to_owned(), "50".to_owned());
        librdkafka.insert("acks".to_owned(), "1".to_owned());
        librdkafka.insert("sasl.password".to_owned(), "hunter2".to_owned());
        let conn = KafkaConnection {
            brokers: "127.0.0.1:9092".into(),
            librdkafka,
        };
        let config = conn.client_config(
            Client::Producer,
            &[("linger.ms", "1".to_owned())],
            DURABLE_PRODUCER,
        );
        assert_eq!(config.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        assert_eq!(config.get("linger.ms"), Some("50"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("sasl.password"), Some("hunter2"));
        assert!(!format!("{conn:?}").contains("hunter2"));
    }

    /// A consumer's property set by the operator does not reach the producers (where
    /// librdkafka would warn about it at every start), nor a producer's the consumer;
    /// what both read reaches both.
    #[test]
    fn operator_properties_reach_only_the_clients_that_read_them() {
        let librdkafka: BTreeMap<String, String> = [
            ("queued.max.messages.kbytes", "2048"),
            ("linger.ms", "5"),
            ("security.protocol", "ssl"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let conn = KafkaConnection {
            brokers: "127.0.0.1:9092".into(),
            librdkafka,
        };
        let consumer = conn.client_config(Client::Consumer, &[], &[]);
        assert_eq!(consumer.get("queued.max.messages.kbytes"), Some("2048"));
        assert_eq!(consumer.get("linger.ms"), None);
        assert_eq!(consumer.get("security.protocol"), Some("ssl"));
        let producer = conn.client_config(Client::Producer, &[], DURABLE_PRODUCER);
        assert_eq!(producer.get("queued.max.messages.kbytes"), None);
        assert_eq!(producer.get("linger.ms"), Some("5"));
        assert_eq!(producer.get("security.protocol"), Some("ssl"));
        let admin = conn.admin_config();
        assert_eq!(admin.get("queued.max.messages.kbytes"), None);
        assert_eq!(admin.get("security.protocol"), Some("ssl"));
    }
}
