//! The `[kafka]` section: Kafka mode, on when brokers are set. Topics, consumer group,
//! the numbers `revline migrate` creates topics with, the producer's dedupe cache and
//! timeout, and extra librdkafka properties. Properties that would weaken durability
//! (`acks` other than all, `enable.idempotence` other than true) are refused: an
//! acknowledged webhook must be on a replicated log. Property values may be credentials
//! (`sasl.password`), so neither errors nor `Debug` show them.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::source::{needs, Key, Layer, Numeric, Sourced};
use super::{ConfigError, Env};

/// Default events topic.
pub const DEFAULT_TOPIC: &str = "stripe.events";
/// Default dead-letter topic.
pub const DEFAULT_DLQ_TOPIC: &str = "stripe.events.dlq";
/// Default consumer group of `revline reconcile`.
pub const DEFAULT_GROUP_ID: &str = "revline-reconcile";
/// Default partitions of the topics `revline migrate` creates.
pub const DEFAULT_PARTITIONS: i32 = 6;
/// Default retention of the topics `revline migrate` creates: a week (the raw events
/// table keeps every event for good; the topic only has to outlast an outage).
pub const DEFAULT_RETENTION_HOURS: u64 = 168;
/// Default number of recently produced event ids remembered.
pub const DEFAULT_DEDUPE_CACHE: usize = 100_000;
/// Default librdkafka `message.timeout.ms`.
pub const DEFAULT_MESSAGE_TIMEOUT_MS: u64 = 30_000;

/// Prefix of environment variables that set librdkafka properties.
const RDKAFKA_PREFIX: &str = "REVLINE_KAFKA_RDKAFKA_";

/// `REVLINE_KAFKA_BROKERS` / `kafka.brokers`: set = Kafka mode.
const BROKERS: Key<'static> = Key {
    env: "REVLINE_KAFKA_BROKERS",
    file: "kafka.brokers",
};
/// `REVLINE_KAFKA_TOPIC` / `kafka.topic`.
const TOPIC: Key<'static> = Key {
    env: "REVLINE_KAFKA_TOPIC",
    file: "kafka.topic",
};
/// `REVLINE_KAFKA_DLQ_TOPIC` / `kafka.dlq_topic`.
const DLQ_TOPIC: Key<'static> = Key {
    env: "REVLINE_KAFKA_DLQ_TOPIC",
    file: "kafka.dlq_topic",
};
/// `REVLINE_KAFKA_GROUP_ID` / `kafka.group_id`.
const GROUP_ID: Key<'static> = Key {
    env: "REVLINE_KAFKA_GROUP_ID",
    file: "kafka.group_id",
};
/// Partitions: at least one, and far below what a cluster can hold.
pub(super) const PARTITIONS: Numeric<i32> = Numeric {
    key: Key {
        env: "REVLINE_KAFKA_PARTITIONS",
        file: "kafka.partitions",
    },
    min: 1,
    max: 10_000,
    unit: "partitions",
    why: "",
};
/// Replication: at least one copy; no production cluster keeps more than a handful.
pub(super) const REPLICATION: Numeric<i32> = Numeric {
    key: Key {
        env: "REVLINE_KAFKA_REPLICATION",
        file: "kafka.replication",
    },
    min: 1,
    max: 16,
    unit: "replicas",
    why: "at most the number of brokers",
};
/// Retention: at least an hour, at most ten years.
pub(super) const RETENTION_HOURS: Numeric<u64> = Numeric {
    key: Key {
        env: "REVLINE_KAFKA_RETENTION_HOURS",
        file: "kafka.retention_hours",
    },
    min: 1,
    max: 87_600,
    unit: "hours",
    why: "",
};
/// Dedupe cache: 0 turns it off; 10 million ids take about a gigabyte.
pub(super) const DEDUPE_CACHE: Numeric<usize> = Numeric {
    key: Key {
        env: "REVLINE_KAFKA_DEDUPE_CACHE",
        file: "kafka.dedupe_cache",
    },
    min: 0,
    max: 10_000_000,
    unit: "event ids",
    why: "0 turns the cache off",
};
/// Message timeout: a second at least (less fails sends a healthy cluster would take),
/// 15 minutes at most (the webhook was answered 503 long before).
pub(super) const MESSAGE_TIMEOUT: Numeric<u64> = Numeric {
    key: Key {
        env: "REVLINE_KAFKA_MESSAGE_TIMEOUT_MS",
        file: "kafka.message_timeout_ms",
    },
    min: 1_000,
    max: 900_000,
    unit: "milliseconds",
    why: "",
};

/// The `[kafka]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileKafka {
    /// `kafka.brokers`: `host:port` list; set = Kafka mode.
    brokers: Option<String>,
    /// `kafka.topic`: the events topic.
    topic: Option<String>,
    /// `kafka.dlq_topic`: the dead-letter topic.
    dlq_topic: Option<String>,
    /// `kafka.group_id`: consumer group of `revline reconcile`.
    group_id: Option<String>,
    /// `kafka.partitions`: partitions of the topics `revline migrate` creates.
    partitions: Option<i32>,
    /// `kafka.replication`: their replication factor (absent: automatic).
    replication: Option<i32>,
    /// `kafka.retention_hours`: their retention.
    retention_hours: Option<u64>,
    /// `kafka.dedupe_cache`: recently produced event ids remembered.
    dedupe_cache: Option<usize>,
    /// `kafka.message_timeout_ms`: librdkafka `message.timeout.ms`.
    message_timeout_ms: Option<u64>,
    /// `kafka.librdkafka`: extra librdkafka properties.
    #[serde(default)]
    librdkafka: BTreeMap<String, String>,
}

impl FileKafka {
    /// The first key of the table other than `brokers` that is set, if any.
    fn first_set(&self) -> Option<&'static str> {
        [
            (TOPIC.file, self.topic.is_some()),
            (DLQ_TOPIC.file, self.dlq_topic.is_some()),
            (GROUP_ID.file, self.group_id.is_some()),
            (PARTITIONS.key.file, self.partitions.is_some()),
            (REPLICATION.key.file, self.replication.is_some()),
            (RETENTION_HOURS.key.file, self.retention_hours.is_some()),
            (DEDUPE_CACHE.key.file, self.dedupe_cache.is_some()),
            (MESSAGE_TIMEOUT.key.file, self.message_timeout_ms.is_some()),
            ("kafka.librdkafka", !self.librdkafka.is_empty()),
        ]
        .into_iter()
        .find_map(|(key, set)| set.then_some(key))
    }
}

/// Kafka mode settings (present when `REVLINE_KAFKA_BROKERS` or `kafka.brokers` is set).
#[derive(Clone)]
pub struct KafkaConfig {
    /// `REVLINE_KAFKA_BROKERS` / `kafka.brokers`: bootstrap `host:port` list.
    pub brokers: String,
    /// `REVLINE_KAFKA_TOPIC` / `kafka.topic`: the events topic.
    pub topic: String,
    /// `REVLINE_KAFKA_DLQ_TOPIC`: poison records go here with the reason.
    pub dlq_topic: String,
    /// `REVLINE_KAFKA_GROUP_ID`: consumer group of `revline reconcile`.
    pub group_id: String,
    /// `REVLINE_KAFKA_PARTITIONS`: used by `revline migrate` when it creates the topics;
    /// 1 to 10000.
    pub partitions: i32,
    /// `REVLINE_KAFKA_REPLICATION`: their replication factor, 1 to 16; `None` (`auto`,
    /// the default): min(3, brokers).
    pub replication: Option<i32>,
    /// `REVLINE_KAFKA_RETENTION_HOURS`: their retention.
    pub retention_hours: u64,
    /// `REVLINE_KAFKA_DEDUPE_CACHE`: recently produced event ids remembered, 0 (off) to
    /// 10000000.
    pub dedupe_cache: usize,
    /// `REVLINE_KAFKA_MESSAGE_TIMEOUT_MS`: librdkafka `message.timeout.ms`, 1000 to 900000.
    pub message_timeout_ms: u64,
    /// Extra librdkafka properties (`kafka.librdkafka` table, `REVLINE_KAFKA_RDKAFKA_*`).
    pub librdkafka: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaConfig {
    /// librdkafka properties may hold credentials (`sasl.password`): only their names show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("dlq_topic", &self.dlq_topic)
            .field("group_id", &self.group_id)
            .field("librdkafka", &self.librdkafka.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Validates the `[kafka]` table overlaid by `env`; `None` without brokers, when no other
/// Kafka key may be set either.
pub(super) fn load(file: Option<FileKafka>, env: &Env) -> Result<Option<KafkaConfig>, ConfigError> {
    let mut file = file.unwrap_or_default();
    let Some(brokers) = Layer::new(env, BROKERS, file.brokers.take()).text() else {
        let dependent = env
            .keys()
            .find(|key| key.starts_with("REVLINE_KAFKA_"))
            .map(String::as_str)
            .or(file.first_set());
        return match dependent {
            Some(key) => Err(needs(key, BROKERS, "Kafka mode needs brokers")),
            None => Ok(None),
        };
    };
    let brokers = brokers.check(
        |b| b.split(',').any(|host| !host.trim().is_empty()),
        "must list at least one host:port",
    )?;

    let librdkafka = librdkafka(file.librdkafka, env)?;
    let group_id = Layer::new(env, GROUP_ID, file.group_id)
        .text()
        .map(|g| {
            g.check(
                |g| !g.trim().is_empty() && !g.chars().any(char::is_control),
                "must not be empty or hold control characters",
            )
        })
        .transpose()?
        .map_or_else(|| DEFAULT_GROUP_ID.to_owned(), |g| g.value);
    Ok(Some(KafkaConfig {
        brokers: brokers.value,
        topic: topic(env, TOPIC, file.topic, DEFAULT_TOPIC)?,
        dlq_topic: topic(env, DLQ_TOPIC, file.dlq_topic, DEFAULT_DLQ_TOPIC)?,
        group_id,
        partitions: PARTITIONS.load_or(env, file.partitions, DEFAULT_PARTITIONS)?,
        replication: if env
            .get(REPLICATION.key.env)
            .is_some_and(|v| v.trim() == "auto")
        {
            None
        } else {
            REPLICATION.load(env, file.replication)?.map(|n| n.value)
        },
        retention_hours: RETENTION_HOURS.load_or(
            env,
            file.retention_hours,
            DEFAULT_RETENTION_HOURS,
        )?,
        dedupe_cache: DEDUPE_CACHE.load_or(env, file.dedupe_cache, DEFAULT_DEDUPE_CACHE)?,
        message_timeout_ms: MESSAGE_TIMEOUT.load_or(
            env,
            file.message_timeout_ms,
            DEFAULT_MESSAGE_TIMEOUT_MS,
        )?,
        librdkafka: librdkafka
            .into_iter()
            .map(|(prop, value)| (prop, value.value))
            .collect(),
    }))
}

/// A topic name from `env` over `file`, else `default`.
fn topic(
    env: &Env,
    key: Key<'_>,
    file: Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    Ok(Layer::new(env, key, file)
        .text()
        .map(|t| {
            t.check(
                |t| valid_topic(t),
                "must be a Kafka topic name: 1 to 249 of a-z, A-Z, 0-9, '.', '_' and '-'",
            )
        })
        .transpose()?
        .map_or_else(|| default.to_owned(), |t| t.value))
}

/// The librdkafka properties of the file overlaid by `REVLINE_KAFKA_RDKAFKA_<PROP>`
/// (`_` becomes `.`), each remembering its key; durability-weakening ones are refused.
fn librdkafka(
    file: BTreeMap<String, String>,
    env: &Env,
) -> Result<BTreeMap<String, Sourced<String>>, ConfigError> {
    let mut props: BTreeMap<String, Sourced<String>> = file
        .into_iter()
        .map(|(prop, value)| {
            let key = format!("kafka.librdkafka.{prop:?}");
            (prop, Sourced { value, key })
        })
        .collect();
    for (key, value) in env {
        if let Some(prop) = key.strip_prefix(RDKAFKA_PREFIX) {
            let sourced = Sourced {
                value: value.clone(),
                key: key.clone(),
            };
            props.insert(prop.to_ascii_lowercase().replace('_', "."), sourced);
        }
    }
    for (prop, value) in &props {
        if !valid_property(prop) {
            return Err(value
                .error("must name a librdkafka property (lowercase a-z, 0-9, '.', '_' and '-')"));
        }
        // Acknowledging only after a durable, replicated write is the point of the log.
        let weakens = match prop.as_str() {
            "acks" | "request.required.acks" => !matches!(value.value.as_str(), "all" | "-1"),
            "enable.idempotence" => value.value != "true",
            _ => false,
        };
        if weakens {
            return Err(value.error(
                "would weaken durability (revline produces with acks=all and idempotence)",
            ));
        }
    }
    Ok(props)
}

/// Kafka's rule for topic names: 1 to 249 of letters, digits, `.`, `_` and `-`.
fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// librdkafka property names: dotted lowercase words (lowercase also keeps `ACKS` from
/// slipping past the durability check).
fn valid_property(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{assert_bounds, load, load_toml};

    const BROKERS_SET: (&str, &str) = ("REVLINE_KAFKA_BROKERS", "127.0.0.1:9092");

    #[test]
    fn durability_weakening_kafka_overrides_are_refused() {
        let e = load(&[
            ("REVLINE_KAFKA_BROKERS", "127.0.0.1:9092"),
            ("REVLINE_KAFKA_RDKAFKA_ACKS", "1"),
        ])
        .unwrap_err();
        assert_eq!(e.key, "REVLINE_KAFKA_RDKAFKA_ACKS");
        let e = load(&[
            ("REVLINE_KAFKA_BROKERS", "127.0.0.1:9092"),
            ("REVLINE_KAFKA_RDKAFKA_ENABLE_IDEMPOTENCE", "false"),
        ])
        .unwrap_err();
        assert_eq!(e.key, "REVLINE_KAFKA_RDKAFKA_ENABLE_IDEMPOTENCE");
        let c = load(&[
            ("REVLINE_KAFKA_BROKERS", "127.0.0.1:9092"),
            ("REVLINE_KAFKA_RDKAFKA_SASL_PASSWORD", "hunter2"),
        ])
        .unwrap();
        assert!(!format!("{:?}", c.kafka.unwrap()).contains("hunter2"));
    }

    #[test]
    fn a_durability_override_in_the_file_names_its_toml_key() {
        let e = load_toml(
            "[kafka]\nbrokers = \"127.0.0.1:9092\"\n[kafka.librdkafka]\nacks = \"0\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key, "kafka.librdkafka.\"acks\"");
        let e = load_toml(
            "[kafka.librdkafka]\n\"enable.idempotence\" = \"false\"\n",
            &[BROKERS_SET],
        )
        .unwrap_err();
        assert_eq!(e.key, "kafka.librdkafka.\"enable.idempotence\"");
        // The environment overrides the file's weak value with a safe one.
        let c = load_toml(
            "[kafka.librdkafka]\nacks = \"1\"\n",
            &[BROKERS_SET, ("REVLINE_KAFKA_RDKAFKA_ACKS", "all")],
        )
        .unwrap();
        assert_eq!(c.kafka.unwrap().librdkafka["acks"], "all");
    }

    #[test]
    fn property_errors_never_show_the_value() {
        let e = load(&[BROKERS_SET, ("REVLINE_KAFKA_RDKAFKA_", "hunter2")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_KAFKA_RDKAFKA_");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = load_toml(
            "[kafka.librdkafka]\n\"sasl password\" = \"hunter2\"\n",
            &[BROKERS_SET],
        )
        .unwrap_err();
        assert_eq!(e.key, "kafka.librdkafka.\"sasl password\"");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn partitions_0_in_the_file_names_kafka_partitions() {
        let e = load_toml("[kafka]\nbrokers = \"b:9092\"\npartitions = 0\n", &[]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid configuration: kafka.partitions: "),
            "{e}"
        );
        let e = load(&[BROKERS_SET, ("REVLINE_KAFKA_PARTITIONS", "0")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_KAFKA_PARTITIONS");
    }

    #[test]
    fn every_kafka_number_names_the_source_of_a_bad_value() {
        assert_bounds(&PARTITIONS, &[BROKERS_SET]);
        assert_bounds(&REPLICATION, &[BROKERS_SET]);
        assert_bounds(&RETENTION_HOURS, &[BROKERS_SET]);
        assert_bounds(&DEDUPE_CACHE, &[BROKERS_SET]);
        assert_bounds(&MESSAGE_TIMEOUT, &[BROKERS_SET]);
    }

    #[test]
    fn kafka_settings_of_the_file_without_brokers_are_refused() {
        let e = load_toml("[kafka]\ntopic = \"events\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "kafka.topic");
        assert!(e.message.contains("REVLINE_KAFKA_BROKERS"), "{e}");
        let e = load_toml("[kafka.librdkafka]\n\"linger.ms\" = \"5\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "kafka.librdkafka");
        assert!(load_toml("[kafka]\n", &[]).unwrap().kafka.is_none());
    }

    #[test]
    fn bad_topics_brokers_and_group_name_their_source() {
        let e = load_toml("[kafka]\nbrokers = \" , \"\n", &[]).unwrap_err();
        assert_eq!(e.key, "kafka.brokers");
        let e = load_toml("[kafka]\ndlq_topic = \"a/b\"\n", &[BROKERS_SET]).unwrap_err();
        assert_eq!(e.key, "kafka.dlq_topic");
        let e = load(&[BROKERS_SET, ("REVLINE_KAFKA_TOPIC", "")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_KAFKA_TOPIC");
        let e = load_toml("[kafka]\ngroup_id = \"\"\n", &[BROKERS_SET]).unwrap_err();
        assert_eq!(e.key, "kafka.group_id");
    }

    #[test]
    fn kafka_defaults_lie_within_their_bounds() {
        let k = load(&[BROKERS_SET]).unwrap().kafka.unwrap();
        assert_eq!(
            (
                k.partitions,
                k.replication,
                k.dedupe_cache,
                k.message_timeout_ms
            ),
            (6, None, 100_000, 30_000)
        );
        assert_eq!(k.retention_hours, 168);
        assert!((PARTITIONS.min..=PARTITIONS.max).contains(&DEFAULT_PARTITIONS));
        assert!((RETENTION_HOURS.min..=RETENTION_HOURS.max).contains(&DEFAULT_RETENTION_HOURS));
        let auto = load(&[BROKERS_SET, ("REVLINE_KAFKA_REPLICATION", "auto")]).unwrap();
        assert_eq!(auto.kafka.unwrap().replication, None);
        let three = load(&[BROKERS_SET, ("REVLINE_KAFKA_REPLICATION", "3")]).unwrap();
        assert_eq!(three.kafka.unwrap().replication, Some(3));
        let e = load(&[BROKERS_SET, ("REVLINE_KAFKA_REPLICATION", "many")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_KAFKA_REPLICATION");
        assert!((DEDUPE_CACHE.min..=DEDUPE_CACHE.max).contains(&DEFAULT_DEDUPE_CACHE));
        assert!((MESSAGE_TIMEOUT.min..=MESSAGE_TIMEOUT.max).contains(&DEFAULT_MESSAGE_TIMEOUT_MS));
    }
}
