//! revline's configuration: defaults, then an optional TOML file, then environment
//! variables (highest). Everything is validated at start; an error names the key it is
//! about (`STRIPE_WEBHOOK_SECRET`, `webhook.tolerance_secs`, …) and never prints a secret.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ingest::signature::WebhookSecret;
use reconcile::enrich::StripeApi;
use warehouse::clickhouse::ClickHouseSettings;
use serde::Deserialize;

/// Default listen address: loopback only until the user says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;
pub const DEFAULT_APPEND_DEADLINE_MS: u64 = 2_000;
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 5;
pub const DEFAULT_TOPIC: &str = "stripe.events";
pub const DEFAULT_DLQ_TOPIC: &str = "stripe.events.dlq";
pub const DEFAULT_GROUP_ID: &str = "revline-reconcile";
pub const DEFAULT_PARTITIONS: i32 = 6;
pub const DEFAULT_REPLICATION: i32 = 1;
pub const DEFAULT_CLICKHOUSE_DATABASE: &str = "revline";
pub const DEFAULT_BATCH_EVENTS: usize = 2_000;
pub const DEFAULT_BATCH_WAIT_MS: u64 = 500;
pub const DEFAULT_SWEEP_SECS: u64 = 30;
pub const DEFAULT_DEDUPE_CACHE: usize = 100_000;
pub const DEFAULT_MESSAGE_TIMEOUT_MS: u64 = 30_000;

/// A configuration problem, naming the key it is about.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// The TOML file's shape. Unknown keys are errors: a typo must not silently fall back to a
/// default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    workers: Option<usize>,
    #[serde(default)]
    webhook: FileWebhook,
    #[serde(default)]
    endpoints: BTreeMap<String, FileEndpoint>,
    kafka: Option<FileKafka>,
    clickhouse: Option<FileClickHouse>,
    #[serde(default)]
    reconcile: FileReconcile,
    #[serde(default)]
    stripe: FileStripe,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStripe {
    api_key: Option<String>,
    api_base: Option<String>,
    requests_per_second: Option<u32>,
    enrich_interval_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileClickHouse {
    url: Option<String>,
    database: Option<String>,
    user: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileReconcile {
    batch_events: Option<usize>,
    batch_wait_ms: Option<u64>,
    sweep_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebhook {
    secrets: Option<Vec<String>>,
    livemode: Option<bool>,
    tolerance_secs: Option<u64>,
    body_limit_bytes: Option<usize>,
    append_deadline_ms: Option<u64>,
    retry_after_secs: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEndpoint {
    #[serde(default)]
    secrets: Vec<String>,
    livemode: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKafka {
    brokers: Option<String>,
    topic: Option<String>,
    dlq_topic: Option<String>,
    group_id: Option<String>,
    partitions: Option<i32>,
    replication: Option<i32>,
    dedupe_cache: Option<usize>,
    message_timeout_ms: Option<u64>,
    #[serde(default)]
    librdkafka: BTreeMap<String, String>,
}

/// A named webhook endpoint after validation.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub name: String,
    pub secrets: Vec<WebhookSecret>,
    pub livemode: Option<bool>,
}

/// Kafka mode settings (present when `REVLINE_KAFKA_BROKERS` or `kafka.brokers` is set).
#[derive(Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic: String,
    /// `REVLINE_KAFKA_DLQ_TOPIC`: poison records go here with the reason.
    pub dlq_topic: String,
    /// `REVLINE_KAFKA_GROUP_ID`: consumer group of `revline reconcile`.
    pub group_id: String,
    /// `REVLINE_KAFKA_PARTITIONS` / `REVLINE_KAFKA_REPLICATION`: used by `revline migrate`
    /// when it creates the topics.
    pub partitions: i32,
    pub replication: i32,
    pub dedupe_cache: usize,
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

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `REVLINE_LISTEN` / `listen`: address of the HTTP server.
    pub listen: SocketAddr,
    /// `REVLINE_DATA_DIR` / `data_dir`: embedded log, warehouse and generated secret.
    pub data_dir: PathBuf,
    /// `REVLINE_WORKERS` / `workers`: HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
    /// `STRIPE_WEBHOOK_SECRET` / `webhook.secrets`: secrets of `/webhooks/stripe`; empty
    /// means "generate one on first run".
    pub default_secrets: Vec<WebhookSecret>,
    /// `REVLINE_WEBHOOK_LIVEMODE` / `webhook.livemode`.
    pub default_livemode: Option<bool>,
    /// `[endpoints.NAME]` / `REVLINE_ENDPOINT_<NAME>_SECRET`, `…_LIVEMODE`.
    pub endpoints: Vec<EndpointConfig>,
    /// `REVLINE_WEBHOOK_TOLERANCE_SECS` / `webhook.tolerance_secs`.
    pub tolerance_secs: u64,
    /// `REVLINE_BODY_LIMIT_BYTES` / `webhook.body_limit_bytes`.
    pub body_limit_bytes: usize,
    /// Whether the body limit was set explicitly (then it is never lowered silently).
    pub body_limit_explicit: bool,
    /// `REVLINE_APPEND_DEADLINE_MS` / `webhook.append_deadline_ms`.
    pub append_deadline: Duration,
    /// `REVLINE_RETRY_AFTER_SECS` / `webhook.retry_after_secs`.
    pub retry_after_secs: u32,
    pub kafka: Option<KafkaConfig>,
    /// Set when `REVLINE_CLICKHOUSE_URL` / `clickhouse.url` is.
    pub clickhouse: Option<ClickHouseSettings>,
    /// `REVLINE_RECONCILE_BATCH_EVENTS`, `…_BATCH_WAIT_MS`, `…_SWEEP_SECS`.
    pub reconcile: ReconcileConfig,
    /// Set when `STRIPE_API_KEY` / `stripe.api_key` is: enrichment from Stripe's API.
    pub stripe: Option<StripeApi>,
}

/// Reconcile loop bounds.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    pub batch_events: usize,
    pub batch_wait: Duration,
    pub sweep_interval: Duration,
}

/// Environment variables as read at start (a map, so tests can pass their own).
pub type Env = BTreeMap<String, String>;

fn parse_env<T: std::str::FromStr>(
    env: &Env,
    key: &str,
    what: &str,
) -> Result<Option<T>, ConfigError> {
    match env.get(key) {
        None => Ok(None),
        Some(raw) => raw
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| err(key, format!("must be {what}, got {raw:?}"))),
    }
}

fn parse_bool_env(env: &Env, key: &str) -> Result<Option<bool>, ConfigError> {
    match env.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if v == "true" || v == "1" => Ok(Some(true)),
        Some(v) if v == "false" || v == "0" => Ok(Some(false)),
        Some(v) => Err(err(key, format!("must be true or false, got {v:?}"))),
    }
}

fn secrets_from(list: &[String], key: &str) -> Result<Vec<WebhookSecret>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            WebhookSecret::new(s).map_err(|e| {
                let which = if list.len() > 1 {
                    format!("secret number {} ", i + 1)
                } else {
                    "the secret ".to_owned()
                };
                err(key, format!("{which}{e}"))
            })
        })
        .collect()
}

fn split_secrets(raw: &str) -> Vec<String> {
    raw.split(',').map(str::to_owned).collect()
}

fn valid_endpoint_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Config {
    /// Loads the configuration: `file` (if any) overlaid by `env`.
    pub fn load(file: Option<&Path>, env: &Env) -> Result<Config, ConfigError> {
        let file_cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    err(
                        "REVLINE_CONFIG",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| {
                    err(
                        path.display().to_string(),
                        redact_values(e.message()) + &span_hint(&text, e.span()),
                    )
                })?
            }
            None => FileConfig::default(),
        };
        Self::from_parts(file_cfg, env)
    }

    fn from_parts(file: FileConfig, env: &Env) -> Result<Config, ConfigError> {
        let listen_raw = env
            .get("REVLINE_LISTEN")
            .map(|v| ("REVLINE_LISTEN", v.clone()))
            .or(file.listen.map(|v| ("listen", v)))
            .unwrap_or(("REVLINE_LISTEN", DEFAULT_LISTEN.to_owned()));
        let listen = listen_raw.1.trim().parse().map_err(|_| {
            err(
                listen_raw.0,
                format!(
                    "must be an address like 127.0.0.1:8080, got {:?}",
                    listen_raw.1
                ),
            )
        })?;

        let data_dir = env
            .get("REVLINE_DATA_DIR")
            .map(PathBuf::from)
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        if data_dir.as_os_str().is_empty() {
            return Err(err("REVLINE_DATA_DIR", "must not be empty"));
        }

        let workers =
            parse_env::<usize>(env, "REVLINE_WORKERS", "a positive number")?.or(file.workers);
        if workers == Some(0) {
            return Err(err("REVLINE_WORKERS", "must be at least 1"));
        }

        let default_secrets = match env.get("STRIPE_WEBHOOK_SECRET") {
            Some(raw) => secrets_from(&split_secrets(raw), "STRIPE_WEBHOOK_SECRET")?,
            None => match &file.webhook.secrets {
                Some(list) => secrets_from(list, "webhook.secrets")?,
                None => Vec::new(),
            },
        };
        if env.contains_key("STRIPE_WEBHOOK_SECRET") && default_secrets.is_empty() {
            return Err(err("STRIPE_WEBHOOK_SECRET", "is set but holds no secret"));
        }
        let default_livemode =
            parse_bool_env(env, "REVLINE_WEBHOOK_LIVEMODE")?.or(file.webhook.livemode);

        let mut endpoints: BTreeMap<String, EndpointConfig> = BTreeMap::new();
        for (name, ep) in &file.endpoints {
            let key = format!("endpoints.{name}");
            if !valid_endpoint_name(name) || name == ingest::DEFAULT_ENDPOINT {
                return Err(err(
                    key,
                    "endpoint names use a-z, 0-9, '_' and '-' (at most 64), and 'default' is taken by /webhooks/stripe",
                ));
            }
            endpoints.insert(
                name.clone(),
                EndpointConfig {
                    name: name.clone(),
                    secrets: secrets_from(&ep.secrets, &format!("{key}.secrets"))?,
                    livemode: ep.livemode,
                },
            );
        }
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("REVLINE_ENDPOINT_") else {
                continue;
            };
            let (raw_name, field) = if let Some(n) = rest.strip_suffix("_SECRET") {
                (n, "secret")
            } else if let Some(n) = rest.strip_suffix("_LIVEMODE") {
                (n, "livemode")
            } else {
                return Err(err(
                    key,
                    "unknown endpoint setting; use REVLINE_ENDPOINT_<NAME>_SECRET or _LIVEMODE",
                ));
            };
            let name = raw_name.to_ascii_lowercase();
            if !valid_endpoint_name(&name) || name == ingest::DEFAULT_ENDPOINT {
                return Err(err(
                    key,
                    "endpoint names use A-Z, 0-9, '_' and '-' (at most 64), and DEFAULT is taken by /webhooks/stripe",
                ));
            }
            let entry = endpoints
                .entry(name.clone())
                .or_insert_with(|| EndpointConfig {
                    name,
                    secrets: Vec::new(),
                    livemode: None,
                });
            match field {
                "secret" => entry.secrets = secrets_from(&split_secrets(value), key)?,
                _ => entry.livemode = parse_bool_env(env, key)?,
            }
        }
        for ep in endpoints.values() {
            if ep.secrets.is_empty() {
                return Err(err(
                    format!("REVLINE_ENDPOINT_{}_SECRET", ep.name.to_ascii_uppercase()),
                    format!("endpoint {} has no secret", ep.name),
                ));
            }
        }

        let tolerance_secs = parse_env::<u64>(
            env,
            "REVLINE_WEBHOOK_TOLERANCE_SECS",
            "a whole number of seconds",
        )?
        .map(|v| ("REVLINE_WEBHOOK_TOLERANCE_SECS", v))
        .or(file
            .webhook
            .tolerance_secs
            .map(|v| ("webhook.tolerance_secs", v)));
        if let Some((key, v)) = tolerance_secs {
            if v == 0 || v > 86_400 {
                return Err(err(
                    key,
                    "must be between 1 and 86400 seconds (the check cannot be switched off)",
                ));
            }
        }
        let tolerance_secs = tolerance_secs.map_or(DEFAULT_TOLERANCE_SECS, |(_, v)| v);

        let body_limit = parse_env::<usize>(env, "REVLINE_BODY_LIMIT_BYTES", "a number of bytes")?
            .map(|v| ("REVLINE_BODY_LIMIT_BYTES", v))
            .or(file
                .webhook
                .body_limit_bytes
                .map(|v| ("webhook.body_limit_bytes", v)));
        if let Some((key, v)) = body_limit {
            if !(1024..=64 * 1024 * 1024).contains(&v) {
                return Err(err(key, "must be between 1024 and 67108864 bytes"));
            }
        }
        let body_limit_explicit = body_limit.is_some();
        let body_limit_bytes = body_limit.map_or(DEFAULT_BODY_LIMIT_BYTES, |(_, v)| v);

        let deadline = parse_env::<u64>(
            env,
            "REVLINE_APPEND_DEADLINE_MS",
            "a number of milliseconds",
        )?
        .map(|v| ("REVLINE_APPEND_DEADLINE_MS", v))
        .or(file
            .webhook
            .append_deadline_ms
            .map(|v| ("webhook.append_deadline_ms", v)));
        if let Some((key, v)) = deadline {
            if !(1..=30_000).contains(&v) {
                return Err(err(
                    key,
                    "must be between 1 and 30000 milliseconds (Stripe times out soon after)",
                ));
            }
        }
        let append_deadline =
            Duration::from_millis(deadline.map_or(DEFAULT_APPEND_DEADLINE_MS, |(_, v)| v));

        let retry_after_secs =
            parse_env::<u32>(env, "REVLINE_RETRY_AFTER_SECS", "a whole number of seconds")?
                .or(file.webhook.retry_after_secs)
                .unwrap_or(DEFAULT_RETRY_AFTER_SECS);

        let kafka = Self::kafka(file.kafka, env)?;
        let clickhouse = Self::clickhouse(file.clickhouse, env)?;
        let stripe = Self::stripe(file.stripe, env)?;
        let batch_events =
            parse_env::<usize>(env, "REVLINE_RECONCILE_BATCH_EVENTS", "a number of events")?
                .or(file.reconcile.batch_events)
                .unwrap_or(DEFAULT_BATCH_EVENTS);
        if !(1..=100_000).contains(&batch_events) {
            return Err(err(
                "REVLINE_RECONCILE_BATCH_EVENTS",
                "must be between 1 and 100000",
            ));
        }
        let batch_wait_ms = parse_env::<u64>(
            env,
            "REVLINE_RECONCILE_BATCH_WAIT_MS",
            "a number of milliseconds",
        )?
        .or(file.reconcile.batch_wait_ms)
        .unwrap_or(DEFAULT_BATCH_WAIT_MS);
        if !(1..=60_000).contains(&batch_wait_ms) {
            return Err(err(
                "REVLINE_RECONCILE_BATCH_WAIT_MS",
                "must be between 1 and 60000",
            ));
        }
        let sweep_secs =
            parse_env::<u64>(env, "REVLINE_RECONCILE_SWEEP_SECS", "a number of seconds")?
                .or(file.reconcile.sweep_secs)
                .unwrap_or(DEFAULT_SWEEP_SECS);
        if sweep_secs == 0 {
            return Err(err("REVLINE_RECONCILE_SWEEP_SECS", "must be at least 1"));
        }
        let reconcile = ReconcileConfig {
            batch_events,
            batch_wait: Duration::from_millis(batch_wait_ms),
            sweep_interval: Duration::from_secs(sweep_secs),
        };

        Ok(Config {
            listen,
            data_dir,
            workers,
            default_secrets,
            default_livemode,
            endpoints: endpoints.into_values().collect(),
            tolerance_secs,
            body_limit_bytes,
            body_limit_explicit,
            append_deadline,
            retry_after_secs,
            kafka,
            clickhouse,
            reconcile,
            stripe,
        })
    }

    fn stripe(file: FileStripe, env: &Env) -> Result<Option<StripeApi>, ConfigError> {
        let (key_name, api_key) = match (env.get("STRIPE_API_KEY"), file.api_key) {
            (Some(k), _) => ("STRIPE_API_KEY", k.clone()),
            (None, Some(k)) => ("stripe.api_key", k),
            (None, None) => {
                for key in [
                    "REVLINE_STRIPE_API_BASE",
                    "REVLINE_STRIPE_API_RPS",
                    "REVLINE_ENRICH_INTERVAL_SECS",
                ] {
                    if env.contains_key(key) {
                        return Err(err(
                            key,
                            "is set but STRIPE_API_KEY is not: enrichment needs an API key",
                        ));
                    }
                }
                return Ok(None);
            }
        };
        if !(api_key.starts_with("sk_") || api_key.starts_with("rk_"))
            || api_key.chars().any(char::is_whitespace)
        {
            return Err(err(
                key_name,
                "must be a secret (sk_…) or restricted (rk_…) API key without whitespace",
            ));
        }
        let base_url = env
            .get("REVLINE_STRIPE_API_BASE")
            .cloned()
            .or(file.api_base)
            .unwrap_or_else(|| "https://api.stripe.com".to_owned());
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(err(
                "REVLINE_STRIPE_API_BASE",
                format!("must be an http(s) URL, got {base_url:?}"),
            ));
        }
        let requests_per_second = parse_env(
            env,
            "REVLINE_STRIPE_API_RPS",
            "a number of requests per second",
        )?
        .or(file.requests_per_second)
        .unwrap_or(20);
        if !(1..=100).contains(&requests_per_second) {
            return Err(err(
                "REVLINE_STRIPE_API_RPS",
                "must be between 1 and 100 (Stripe allows 100 in live mode, 25 in test mode)",
            ));
        }
        let interval =
            parse_env::<u64>(env, "REVLINE_ENRICH_INTERVAL_SECS", "a number of seconds")?
                .or(file.enrich_interval_secs)
                .unwrap_or(60);
        if interval == 0 {
            return Err(err("REVLINE_ENRICH_INTERVAL_SECS", "must be at least 1"));
        }
        Ok(Some(StripeApi {
            api_key,
            base_url,
            requests_per_second,
            interval: Duration::from_secs(interval),
        }))
    }

    fn clickhouse(
        file: Option<FileClickHouse>,
        env: &Env,
    ) -> Result<Option<ClickHouseSettings>, ConfigError> {
        let file = file.unwrap_or_default();
        let Some(url) = env.get("REVLINE_CLICKHOUSE_URL").cloned().or(file.url) else {
            for key in env.keys() {
                if key.starts_with("REVLINE_CLICKHOUSE_") {
                    return Err(err(
                        key,
                        "is set but REVLINE_CLICKHOUSE_URL is not: ClickHouse mode needs a URL",
                    ));
                }
            }
            return Ok(None);
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            // Not echoed: a URL may carry user:password@.
            return Err(err(
                "REVLINE_CLICKHOUSE_URL",
                "must be an http:// or https:// URL",
            ));
        }
        let database = env
            .get("REVLINE_CLICKHOUSE_DATABASE")
            .cloned()
            .or(file.database)
            .unwrap_or_else(|| DEFAULT_CLICKHOUSE_DATABASE.to_owned());
        if database.is_empty()
            || !database
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(err(
                "REVLINE_CLICKHOUSE_DATABASE",
                "must use letters, digits and '_'",
            ));
        }
        Ok(Some(ClickHouseSettings {
            url,
            database,
            user: env.get("REVLINE_CLICKHOUSE_USER").cloned().or(file.user),
            password: env
                .get("REVLINE_CLICKHOUSE_PASSWORD")
                .cloned()
                .or(file.password),
        }))
    }

    fn kafka(file: Option<FileKafka>, env: &Env) -> Result<Option<KafkaConfig>, ConfigError> {
        let file = file.unwrap_or_default();
        let Some(brokers) = env.get("REVLINE_KAFKA_BROKERS").cloned().or(file.brokers) else {
            for key in env.keys() {
                if key.starts_with("REVLINE_KAFKA_") {
                    return Err(err(
                        key,
                        "is set but REVLINE_KAFKA_BROKERS is not: Kafka mode needs brokers",
                    ));
                }
            }
            return Ok(None);
        };
        if brokers.trim().is_empty() {
            return Err(err(
                "REVLINE_KAFKA_BROKERS",
                "must list at least one host:port",
            ));
        }
        let topic = |env_key: &str,
                     file_val: Option<String>,
                     default: &str|
         -> Result<String, ConfigError> {
            let value = env
                .get(env_key)
                .cloned()
                .or(file_val)
                .unwrap_or_else(|| default.to_owned());
            if valid_topic(&value) {
                Ok(value)
            } else {
                Err(err(
                    env_key,
                    format!("{value:?} is not a valid Kafka topic name"),
                ))
            }
        };
        let mut librdkafka = file.librdkafka;
        for (key, value) in env {
            if let Some(prop) = key.strip_prefix("REVLINE_KAFKA_RDKAFKA_") {
                librdkafka.insert(prop.to_ascii_lowercase().replace('_', "."), value.clone());
            }
        }
        let config = KafkaConfig {
            brokers,
            topic: topic("REVLINE_KAFKA_TOPIC", file.topic, DEFAULT_TOPIC)?,
            dlq_topic: topic("REVLINE_KAFKA_DLQ_TOPIC", file.dlq_topic, DEFAULT_DLQ_TOPIC)?,
            group_id: env
                .get("REVLINE_KAFKA_GROUP_ID")
                .cloned()
                .or(file.group_id)
                .unwrap_or_else(|| DEFAULT_GROUP_ID.to_owned()),
            partitions: parse_env(env, "REVLINE_KAFKA_PARTITIONS", "a number of partitions")?
                .or(file.partitions)
                .unwrap_or(DEFAULT_PARTITIONS),
            replication: parse_env(env, "REVLINE_KAFKA_REPLICATION", "a replication factor")?
                .or(file.replication)
                .unwrap_or(DEFAULT_REPLICATION),
            dedupe_cache: parse_env(env, "REVLINE_KAFKA_DEDUPE_CACHE", "a number of event ids")?
                .or(file.dedupe_cache)
                .unwrap_or(DEFAULT_DEDUPE_CACHE),
            message_timeout_ms: parse_env(
                env,
                "REVLINE_KAFKA_MESSAGE_TIMEOUT_MS",
                "a number of milliseconds",
            )?
            .or(file.message_timeout_ms)
            .unwrap_or(DEFAULT_MESSAGE_TIMEOUT_MS),
            librdkafka,
        };
        // Acknowledging only after a durable, replicated write is the point of the log.
        for (key, value) in &config.librdkafka {
            let unsafe_override = match key.as_str() {
                "acks" | "request.required.acks" => !matches!(value.as_str(), "all" | "-1"),
                "enable.idempotence" => value != "true",
                _ => false,
            };
            if unsafe_override {
                return Err(err(
                    format!(
                        "REVLINE_KAFKA_RDKAFKA_{}",
                        key.to_ascii_uppercase().replace('.', "_")
                    ),
                    "would weaken durability (revline produces with acks=all and idempotence)",
                ));
            }
        }
        if config.partitions < 1 {
            return Err(err("REVLINE_KAFKA_PARTITIONS", "must be at least 1"));
        }
        if config.replication < 1 {
            return Err(err("REVLINE_KAFKA_REPLICATION", "must be at least 1"));
        }
        if config.group_id.is_empty() {
            return Err(err("REVLINE_KAFKA_GROUP_ID", "must not be empty"));
        }
        if config.message_timeout_ms == 0 {
            return Err(err(
                "REVLINE_KAFKA_MESSAGE_TIMEOUT_MS",
                "must be at least 1",
            ));
        }
        Ok(Some(config))
    }
}

/// A TOML error message without the offending values (which may be secrets): quoted
/// strings and the literal of an "invalid type" become `…`; key names stay.
fn redact_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        let literal_follows = ["integer ", "float ", "boolean ", "string ", "datetime "]
            .iter()
            .any(|kind| out.ends_with(kind));
        if c == '"' || (c == '`' && literal_follows) {
            for next in chars.by_ref() {
                if next == c {
                    break;
                }
            }
            out.push(c);
            out.push('…');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

/// ` (line L)` for a TOML error span, so the message points into the file.
fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => format!(
            " (line {})",
            text.as_bytes()[..span.start.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_parts(FileConfig::default(), &env(pairs))
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = load(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(c.default_secrets.is_empty());
        assert_eq!(c.tolerance_secs, 300);
        assert_eq!(c.body_limit_bytes, 1 << 20);
        assert_eq!(c.append_deadline, Duration::from_secs(2));
        assert!(c.kafka.is_none());
        assert!(c.clickhouse.is_none());
        assert_eq!(c.reconcile.batch_events, 2_000);
        assert!(c.stripe.is_none());
    }

    #[test]
    fn stripe_api_key_is_checked_and_never_shown() {
        let c = load(&[("STRIPE_API_KEY", "sk_test_abc")]).unwrap();
        let api = c.stripe.unwrap();
        assert_eq!(api.base_url, "https://api.stripe.com");
        assert!(!format!("{api:?}").contains("sk_test_abc"));
        let e = load(&[("STRIPE_API_KEY", "pk_live_public")]).unwrap_err();
        assert_eq!(e.key, "STRIPE_API_KEY");
        assert!(!e.to_string().contains("pk_live_public"));
        let e = load(&[("REVLINE_STRIPE_API_RPS", "5")]).unwrap_err();
        assert!(e.message.contains("STRIPE_API_KEY"), "{e}");
    }

    #[test]
    fn clickhouse_settings_and_password_redaction() {
        let c = load(&[
            ("REVLINE_CLICKHOUSE_URL", "http://127.0.0.1:8123"),
            ("REVLINE_CLICKHOUSE_PASSWORD", "hunter2"),
        ])
        .unwrap();
        let ch = c.clickhouse.unwrap();
        assert_eq!(ch.database, "revline");
        assert!(!format!("{ch:?}").contains("hunter2"));
        let e = load(&[("REVLINE_CLICKHOUSE_DATABASE", "x")]).unwrap_err();
        assert!(e.message.contains("REVLINE_CLICKHOUSE_URL"), "{e}");
        let e = load(&[("REVLINE_CLICKHOUSE_URL", "127.0.0.1:8123")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_CLICKHOUSE_URL");
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = load(&[("REVLINE_WEBHOOK_TOLERANCE_SECS", "0")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_WEBHOOK_TOLERANCE_SECS");
        let e = load(&[("REVLINE_LISTEN", "localhost")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_LISTEN");
        let e = load(&[("REVLINE_BODY_LIMIT_BYTES", "lots")]).unwrap_err();
        assert!(e.to_string().contains("REVLINE_BODY_LIMIT_BYTES"), "{e}");
        let e = load(&[("REVLINE_KAFKA_TOPIC", "x")]).unwrap_err();
        assert!(e.message.contains("REVLINE_KAFKA_BROKERS"), "{e}");
    }

    #[test]
    fn secret_errors_never_show_the_secret() {
        let e = load(&[("STRIPE_WEBHOOK_SECRET", "whsec_good,sk_live_oops")]).unwrap_err();
        assert_eq!(e.key, "STRIPE_WEBHOOK_SECRET");
        assert!(e.message.contains("secret number 2"), "{e}");
        assert!(!e.to_string().contains("sk_live_oops"));
        assert!(!e.to_string().contains("whsec_good"));
    }

    #[test]
    fn several_secrets_and_named_endpoints() {
        let c = load(&[
            ("STRIPE_WEBHOOK_SECRET", "whsec_a,whsec_b"),
            ("REVLINE_ENDPOINT_CONNECT_SECRET", "whsec_c"),
            ("REVLINE_ENDPOINT_CONNECT_LIVEMODE", "true"),
        ])
        .unwrap();
        assert_eq!(c.default_secrets.len(), 2);
        assert_eq!(c.endpoints.len(), 1);
        assert_eq!(c.endpoints[0].name, "connect");
        assert_eq!(c.endpoints[0].livemode, Some(true));
        let e = load(&[("REVLINE_ENDPOINT_CONNECT_LIVEMODE", "true")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_ENDPOINT_CONNECT_SECRET");
    }

    #[test]
    fn toml_file_is_read_and_env_wins() {
        let file: FileConfig = toml::from_str(
            r#"
            listen = "127.0.0.1:9000"
            [webhook]
            secrets = ["whsec_file"]
            tolerance_secs = 60
            [endpoints.platform]
            secrets = ["whsec_p"]
            livemode = false
            [kafka]
            brokers = "127.0.0.1:9092"
            [kafka.librdkafka]
            "socket.keepalive.enable" = "true"
            "#,
        )
        .unwrap();
        let c = Config::from_parts(
            file,
            &env(&[
                ("REVLINE_WEBHOOK_TOLERANCE_SECS", "120"),
                ("REVLINE_KAFKA_RDKAFKA_LINGER_MS", "20"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.tolerance_secs, 120);
        assert_eq!(c.default_secrets.len(), 1);
        assert_eq!(c.endpoints[0].name, "platform");
        let k = c.kafka.unwrap();
        assert_eq!(k.topic, "stripe.events");
        assert_eq!(
            k.librdkafka.get("linger.ms").map(String::as_str),
            Some("20")
        );
        assert_eq!(
            k.librdkafka
                .get("socket.keepalive.enable")
                .map(String::as_str),
            Some("true")
        );
    }

    #[test]
    fn file_errors_do_not_echo_values() {
        let dir =
            std::env::temp_dir().join(format!("revline-config-redact-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("revline.toml");
        std::fs::write(&path, "[webhook]\nsecrets = \"whsec_do_not_print\"\n").unwrap();
        let e = Config::load(Some(&path), &Env::new()).unwrap_err();
        assert!(!e.to_string().contains("whsec_do_not_print"), "{e}");
        assert!(e.to_string().contains("line 2"), "{e}");
        std::fs::write(
            &path,
            "[clickhouse]\nurl = \"http://x\"\npassword = 12345678\n",
        )
        .unwrap();
        let e = Config::load(Some(&path), &Env::new()).unwrap_err();
        assert!(!e.to_string().contains("12345678"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            redact_values("unknown field `tolerance`, expected `secrets`"),
            "unknown field `tolerance`, expected `secrets`"
        );
    }

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
    fn unknown_file_keys_are_errors() {
        let dir = std::env::temp_dir().join(format!("revline-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("revline.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\n[webhook]\ntolerance = 5\n",
        )
        .unwrap();
        let e = Config::load(Some(&path), &Env::new()).unwrap_err();
        assert!(e.to_string().contains("tolerance"), "{e}");
        assert!(e.to_string().contains("line 3"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
