//! revline's configuration: defaults, then an optional TOML file, then environment
//! variables (highest). Everything is validated at start; an error names the key that
//! carried the bad value (`STRIPE_WEBHOOK_SECRET` when the environment set it,
//! `webhook.secrets` when the file did) and never prints a secret.
//!
//! This module holds [`Config`], [`ConfigError`], [`Config::load`] and the top-level keys
//! (listen address, data directory, workers). Each section has its own module with its
//! keys, bounds and tests, so that a key and its checks are read in one place: `webhook`
//! (secrets, endpoints, request limits), `tls` (HTTPS on the webhook listener), `kafka`,
//! `clickhouse`, `reconcile`, `stripe` and `admin` (the listener of metrics and reports).
//! `source` is the one layering helper they all use; `file` reads the TOML file without
//! echoing its values.

mod admin;
mod clickhouse;
mod file;
mod kafka;
mod ledger;
mod reconcile;
mod source;
mod stripe;
mod tls;
mod webhook;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::reconcile::enrich::StripeApi;
use ::warehouse::clickhouse::ClickHouseSettings;
use ingest::signature::WebhookSecret;

pub use self::admin::AdminConfig;
pub use self::clickhouse::{valid_identifier, DEFAULT_CLICKHOUSE_DATABASE};
use self::file::FileConfig;
pub use self::kafka::KafkaConfig;
pub use self::reconcile::ReconcileConfig;
use self::source::{Key, Layer, Numeric};
pub use self::tls::TlsFiles;
pub use self::webhook::EndpointConfig;

/// Default listen address: loopback only until the user says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./data";

/// `REVLINE_LISTEN` / `listen`.
const LISTEN: Key<'static> = Key {
    env: "REVLINE_LISTEN",
    file: "listen",
};
/// `REVLINE_DATA_DIR` / `data_dir`.
const DATA_DIR: Key<'static> = Key {
    env: "REVLINE_DATA_DIR",
    file: "data_dir",
};
/// `REVLINE_REPORT_NOW` / `report_now`: "now" for reports, fixed (reproducible reports,
/// tests).
const REPORT_NOW: Key<'static> = Key {
    env: "REVLINE_REPORT_NOW",
    file: "report_now",
};
/// `REVLINE_WORKERS` / `workers`: more threads than this only contend for the cores.
const WORKERS: Numeric<usize> = Numeric {
    key: Key {
        env: "REVLINE_WORKERS",
        file: "workers",
    },
    min: 1,
    max: 1024,
    unit: "threads",
    why: "",
};

/// `REVLINE_LOG_MAX_MB` / `log_max_mb`: the embedded event log's size limit.
const LOG_MAX_MB: Numeric<u64> = Numeric {
    key: Key {
        env: "REVLINE_LOG_MAX_MB",
        file: "log_max_mb",
    },
    min: 1,
    max: 16 * 1024 * 1024,
    unit: "MiB",
    why: "",
};

/// A configuration problem, naming the key it is about.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    /// The environment variable or dotted TOML key that carried the bad value (the file's
    /// path for a file that cannot be read or parsed).
    pub key: String,
    /// What is wrong, lowercase, without the value when it may be a secret.
    pub message: String,
}

/// A [`ConfigError`] about `key`.
fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// Environment variables as read at start (a map, so tests can pass their own).
pub type Env = BTreeMap<String, String>;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `REVLINE_LISTEN` / `listen`: address of the HTTP server.
    pub listen: SocketAddr,
    /// `REVLINE_DATA_DIR` / `data_dir`: embedded log, warehouse and generated secret.
    pub data_dir: PathBuf,
    /// `REVLINE_WORKERS` / `workers`: HTTP worker threads, 1 to 1024 (default: one per
    /// core).
    pub workers: Option<usize>,
    /// `REVLINE_TLS_CERT_FILE` and `REVLINE_TLS_KEY_FILE` / `[tls]`: HTTPS on the webhook
    /// listener when set.
    pub tls: Option<TlsFiles>,
    /// `REVLINE_LOG_MAX_MB` / `log_max_mb`: the embedded event log stops growing at about
    /// this size (1 MiB to 16 TiB): further webhooks get 503 `log_full`, as on a full disk,
    /// until it is raised (unset: no limit but the disk's).
    pub log_max_mb: Option<u64>,
    /// `STRIPE_WEBHOOK_SECRET` / `webhook.secrets`: secrets of `/webhooks/stripe`; empty
    /// means "generate one on first run".
    pub default_secrets: Vec<WebhookSecret>,
    /// `REVLINE_WEBHOOK_LIVEMODE` / `webhook.livemode`.
    pub default_livemode: Option<bool>,
    /// `[endpoints.NAME]` / `REVLINE_ENDPOINT_<NAME>_SECRET`, `…_LIVEMODE`.
    pub endpoints: Vec<EndpointConfig>,
    /// `REVLINE_WEBHOOK_TOLERANCE_SECS` / `webhook.tolerance_secs`: 1 to 86400.
    pub tolerance_secs: u64,
    /// `REVLINE_BODY_LIMIT_BYTES` / `webhook.body_limit_bytes`: 1024 to 67108864.
    pub body_limit_bytes: usize,
    /// Whether the body limit was set explicitly (then it is never lowered silently).
    pub body_limit_explicit: bool,
    /// `REVLINE_APPEND_DEADLINE_MS` / `webhook.append_deadline_ms`: 1 to 30000 ms.
    pub append_deadline: Duration,
    /// `REVLINE_BODY_TIMEOUT_SECS` / `webhook.body_timeout_secs`: 1 to 300 s for a
    /// request's body to arrive (408 after).
    pub body_timeout: Duration,
    /// `REVLINE_RETRY_AFTER_SECS` / `webhook.retry_after_secs`: 1 to 3600.
    pub retry_after_secs: u32,
    /// Set when `REVLINE_KAFKA_BROKERS` / `kafka.brokers` is: Kafka mode.
    pub kafka: Option<KafkaConfig>,
    /// Set when `REVLINE_CLICKHOUSE_URL` / `clickhouse.url` is.
    pub clickhouse: Option<ClickHouseSettings>,
    /// `REVLINE_RECONCILE_BATCH_EVENTS`, `…_BATCH_WAIT_MS`, `…_SWEEP_SECS`.
    pub reconcile: ReconcileConfig,
    /// Set when `STRIPE_API_KEY` / `stripe.api_key` is: enrichment from Stripe's API.
    pub stripe: Option<StripeApi>,
    /// `REVLINE_ADMIN_LISTEN`, `REVLINE_ADMIN_TOKEN`, `REVLINE_ADMIN_MAX_REPORTS`.
    pub admin: AdminConfig,
    /// `REVLINE_REPORT_NOW` / `report_now` (`YYYY-MM-DDTHH:MM:SSZ`): reports are as of
    /// this instant instead of the clock's.
    pub report_now: Option<i64>,
    /// `[ledger.accounts]` / `REVLINE_LEDGER_ACCOUNT_<NAME>`: the journal's account codes.
    pub ledger: reports::journal::Accounts,
}

impl Config {
    /// Loads the configuration: `file` (if any) overlaid by `env`.
    pub fn load(file: Option<&Path>, env: &Env) -> Result<Config, ConfigError> {
        let file_cfg = match file {
            Some(path) => file::read(path)?,
            None => FileConfig::default(),
        };
        Self::from_parts(file_cfg, env)
    }

    /// Validates each section in turn: the file's values overlaid by `env`.
    fn from_parts(file: FileConfig, env: &Env) -> Result<Config, ConfigError> {
        let listen =
            match Layer::new(env, LISTEN, file.listen).get(parse_listen, |v| parse_listen(&v))? {
                Some(listen) => listen.value,
                None => parse_listen(DEFAULT_LISTEN).map_err(|m| err(LISTEN.env, m))?,
            };
        let data_dir = Layer::new(env, DATA_DIR, file.data_dir)
            .get(|raw| non_empty_dir(PathBuf::from(raw)), non_empty_dir)?
            .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), |dir| dir.value);
        let workers = WORKERS.load(env, file.workers)?.map(|n| n.value);
        let log_max_mb = LOG_MAX_MB.load(env, file.log_max_mb)?.map(|n| n.value);

        let webhook = webhook::load(file.webhook, file.endpoints, env)?;
        let tls = tls::load(file.tls, env)?;
        let kafka = kafka::load(file.kafka, env)?;
        let clickhouse = clickhouse::load(file.clickhouse, env)?;
        let stripe = stripe::load(file.stripe, env)?;
        let reconcile = reconcile::load(file.reconcile, env)?;
        let admin = admin::load(file.admin, env)?;
        let ledger = ledger::load(file.ledger, env)?;
        let utc = |raw: &str| {
            reports::calendar::parse_utc(raw.trim())
                .ok_or_else(|| "must be an instant like 2026-03-01T00:00:00Z".to_owned())
        };
        let report_now = Layer::new(env, REPORT_NOW, file.report_now)
            .get(utc, |v| utc(&v))?
            .map(|t| t.value);

        Ok(Config {
            listen,
            data_dir,
            workers,
            log_max_mb,
            tls,
            default_secrets: webhook.default_secrets,
            default_livemode: webhook.default_livemode,
            endpoints: webhook.endpoints,
            tolerance_secs: webhook.tolerance_secs,
            body_limit_bytes: webhook.body_limit_bytes,
            body_limit_explicit: webhook.body_limit_explicit,
            append_deadline: webhook.append_deadline,
            body_timeout: webhook.body_timeout,
            retry_after_secs: webhook.retry_after_secs,
            kafka,
            clickhouse,
            reconcile,
            stripe,
            admin,
            report_now,
            ledger,
        })
    }
}

/// A listen address: an IP address and a port (host names are not resolved here).
fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    raw.trim().parse().map_err(|_| {
        "must be an IP address and port like 127.0.0.1:8080 (host names are not resolved)"
            .to_owned()
    })
}

/// The data directory, refused when empty.
fn non_empty_dir(dir: PathBuf) -> Result<PathBuf, String> {
    if dir.as_os_str().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(dir)
    }
}

/// Helpers for the tests of every section: environments, files and the bounds check.
#[cfg(test)]
mod testing {
    use std::fmt::Display;
    use std::path::Path;

    use super::source::Numeric;
    use super::{file, Config, ConfigError, Env};

    /// An environment holding `pairs`.
    pub(super) fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The configuration from `pairs` alone.
    pub(super) fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_parts(file::FileConfig::default(), &env(pairs))
    }

    /// The configuration from the TOML `text` overlaid by `pairs`.
    pub(super) fn load_toml(text: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_parts(file::parse(text, Path::new("revline.toml"))?, &env(pairs))
    }

    /// `setting` accepts its bounds and refuses the numbers just outside them from either
    /// source, each time naming the key that carried the number; `prerequisites` switch the
    /// setting's section on (e.g. Kafka brokers).
    pub(super) fn assert_bounds<T: Display>(setting: &Numeric<T>, prerequisites: &[(&str, &str)]) {
        let min: i128 = setting.min.to_string().parse().unwrap();
        let max: i128 = setting.max.to_string().parse().unwrap();
        let in_file = |value: i128| match setting.key.file.split_once('.') {
            Some((table, field)) => format!("[{table}]\n{field} = {value}\n"),
            None => format!("{} = {value}\n", setting.key.file),
        };
        let with = |value: &str| {
            let mut pairs = prerequisites.to_vec();
            pairs.push((setting.key.env, value));
            load(&pairs)
        };

        for value in [min, max] {
            with(&value.to_string()).unwrap();
            load_toml(&in_file(value), prerequisites).unwrap();
        }
        // Below zero the TOML parser itself refuses unsigned numbers.
        let outside = [min - 1, max + 1];
        for value in outside.into_iter().filter(|&v| v >= 0 || min < 0) {
            let e = with(&value.to_string()).unwrap_err();
            assert_eq!(e.key, setting.key.env, "{e}");
            assert!(e.message.contains(&format!("got {value}")), "{e}");
            let e = load_toml(&in_file(value), prerequisites).unwrap_err();
            assert_eq!(e.key, setting.key.file, "{e}");
            assert!(e.message.contains(&format!("got {value}")), "{e}");
        }
        let e = with("many").unwrap_err();
        assert_eq!(e.key, setting.key.env, "{e}");
        assert!(!e.to_string().contains("many"), "{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{assert_bounds, env, load, load_toml};
    use super::*;

    #[test]
    fn report_now_is_an_instant_named_by_its_source() {
        assert_eq!(load(&[]).unwrap().report_now, None);
        let c = load(&[("REVLINE_REPORT_NOW", "2026-03-01T00:00:00Z")]).unwrap();
        assert_eq!(c.report_now, Some(1_772_323_200));
        let e = load(&[("REVLINE_REPORT_NOW", "yesterday")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_REPORT_NOW");
        let e = load_toml("report_now = \"2026-03-01\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "report_now");
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
    fn listen_and_data_dir_from_the_file_are_named_by_their_toml_keys() {
        let e = load_toml("listen = \"localhost\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "listen");
        assert!(!e.to_string().contains("localhost"), "{e}");
        let e = load_toml("data_dir = \"\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "data_dir");
        let e = load(&[("REVLINE_DATA_DIR", "")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_DATA_DIR");
        let e = load_toml("listen = \"127.0.0.1:1\"\n", &[("REVLINE_LISTEN", "nope")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_LISTEN");
    }

    #[test]
    fn workers_and_the_log_size_limit_are_bounded_from_either_source() {
        assert_bounds(&WORKERS, &[]);
        assert_bounds(&LOG_MAX_MB, &[]);
        assert_eq!(
            load(&[("REVLINE_LOG_MAX_MB", "64")]).unwrap().log_max_mb,
            Some(64)
        );
        assert_eq!(load(&[("REVLINE_WORKERS", "4")]).unwrap().workers, Some(4));
        assert_eq!(load(&[]).unwrap().workers, None);
    }
}
