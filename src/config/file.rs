//! The optional TOML file: its shape, and reading it without ever echoing a value. Unknown
//! keys are errors (a typo must not silently fall back to a default); parse errors keep
//! key names and line numbers but lose every literal, which may be a secret. When a bad
//! value sits on a plain `key = value` line, the error names that dotted key, like the
//! errors of later checks do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::admin::FileAdmin;
use super::clickhouse::FileClickHouse;
use super::kafka::FileKafka;
use super::ledger::FileLedger;
use super::reconcile::FileReconcile;
use super::stripe::FileStripe;
use super::tls::FileTls;
use super::webhook::{FileEndpoint, FileWebhook};
use super::{err, ConfigError};

/// The TOML file's shape; each section's table is defined beside its checks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    /// `listen`: address of the HTTP server.
    pub listen: Option<String>,
    /// `data_dir`: embedded log, warehouse and generated secret.
    pub data_dir: Option<PathBuf>,
    /// `workers`: HTTP worker threads.
    pub workers: Option<usize>,
    /// `log_max_mb`: size limit of the embedded event log.
    pub log_max_mb: Option<u64>,
    /// `report_now`: "now" for reports, fixed.
    pub report_now: Option<String>,
    /// `[webhook]`: the default endpoint and request limits.
    #[serde(default)]
    pub webhook: FileWebhook,
    /// `[endpoints.NAME]`: named webhook endpoints.
    #[serde(default)]
    pub endpoints: BTreeMap<String, FileEndpoint>,
    /// `[tls]`: HTTPS on the webhook listener.
    #[serde(default)]
    pub tls: FileTls,
    /// `[kafka]`: Kafka mode.
    pub kafka: Option<FileKafka>,
    /// `[clickhouse]`: the ClickHouse warehouse.
    pub clickhouse: Option<FileClickHouse>,
    /// `[reconcile]`: reconcile loop bounds.
    #[serde(default)]
    pub reconcile: FileReconcile,
    /// `[stripe]`: enrichment from Stripe's API.
    #[serde(default)]
    pub stripe: FileStripe,
    /// `[admin]`: the admin listener (metrics and reports).
    #[serde(default)]
    pub admin: FileAdmin,
    /// `[ledger]`: the journal's account codes.
    #[serde(default)]
    pub ledger: FileLedger,
}

/// Reads and parses the file at `path`.
pub(super) fn read(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(
            "REVLINE_CONFIG",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    parse(&text, path)
}

/// Parses `text`, read from `path`. An error names the dotted key whose value is bad
/// when the line says so plainly, else the file; either way with the line number.
pub(super) fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str::<FileConfig>(text).map_err(|e| {
        // Some messages span lines ("invalid string\nexpected …"): one line reads better.
        let message = redact_values(&e.message().trim().replace('\n', "; "));
        let line = e.span().map(|span| line_of(text, span.start));
        match (e.span().and_then(|span| key_at(text, span.start)), line) {
            (Some(key), Some(line)) => {
                err(key, format!("{message} ({}, line {line})", path.display()))
            }
            (_, Some(line)) => err(
                path.display().to_string(),
                format!("{message} (line {line})"),
            ),
            (_, None) => err(path.display().to_string(), message),
        }
    })
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

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key whose value starts at byte `offset`: `table.key` when `offset` lies
/// after the `=` of a `key = value` line under a `[table]` header. `None` when the line
/// is not that plain (an unknown key, a multi-line array, …): then the file is named.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = before[line_start..].split_once('=')?;
    let key = plain_key(key)?;
    let header = before[..line_start]
        .lines()
        .map(str::trim)
        .rfind(|line| line.starts_with('['));
    match header {
        Some(header) => {
            let table = plain_key(header.trim_start_matches('[').split(']').next()?)?;
            Some(format!("{table}.{key}"))
        }
        None => Some(key),
    }
}

/// A key or table name made only of bare-key characters, dots and quotes (quotes
/// dropped), or `None`.
fn plain_key(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let plain = !raw.is_empty()
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'"'));
    plain.then(|| raw.replace('"', ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::load_toml;
    use crate::config::{Config, Env};

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

    #[test]
    fn a_value_of_the_wrong_type_names_its_dotted_key_and_hides_the_value() {
        let e = load_toml(
            "listen = \"127.0.0.1:1\"\n[clickhouse]\nurl = \"http://x\"\npassword = 12345678\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key, "clickhouse.password", "{e}");
        assert!(e.message.contains("line 4"), "{e}");
        assert!(!e.to_string().contains("12345678"), "{e}");
        let e = load_toml("[webhook]\nretry_after_secs = -1\n", &[]).unwrap_err();
        assert_eq!(e.key, "webhook.retry_after_secs", "{e}");
        let e = load_toml("workers = \"two\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "workers", "{e}");
        assert!(!e.to_string().contains("two"), "{e}");
        let e = load_toml(
            "[kafka.librdkafka]\n\"sasl.password\" = 1234\n",
            &[("REVLINE_KAFKA_BROKERS", "127.0.0.1:9092")],
        )
        .unwrap_err();
        assert_eq!(e.key, "kafka.librdkafka.sasl.password", "{e}");
        assert!(!e.to_string().contains("1234"), "{e}");
    }

    #[test]
    fn a_syntax_error_reads_as_one_line_and_hides_the_value() {
        let e = load_toml(
            "[clickhouse]\nurl = \"http://x\"\npassword = hunter2\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key, "clickhouse.password", "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.message.contains("line 3"), "{e}");
    }

    #[test]
    fn a_bad_value_in_a_multi_line_array_names_the_file() {
        let e = load_toml("[webhook]\nsecrets = [\n  1234,\n]\n", &[]).unwrap_err();
        assert_eq!(e.key, "revline.toml", "{e}");
        assert!(e.message.contains("line 3"), "{e}");
        assert!(!e.to_string().contains("1234"), "{e}");
    }
}
