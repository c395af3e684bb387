//! The `[webhook]` and `[endpoints.NAME]` sections: signing secrets of `/webhooks/stripe`
//! and of each named endpoint, their modes, and the request limits of the receiver
//! (signature tolerance, body limit, append deadline, `Retry-After`). Secrets are checked
//! here, at start, and an error about one says which one ("secret number 2") without
//! ever showing it.

use std::collections::BTreeMap;
use std::time::Duration;

use ingest::signature::WebhookSecret;
use serde::Deserialize;

use super::source::{Key, Layer, Numeric, Sourced};
use super::{err, ConfigError, Env};

/// Default allowed clock distance of a signature, in seconds (Stripe's own default).
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;
/// Default largest accepted body: Stripe events are far smaller.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;
/// Default wait for the durable write before answering 503.
pub const DEFAULT_APPEND_DEADLINE_MS: u64 = 2_000;
/// Default `Retry-After` of a 503.
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 5;
/// Default time a request's body may take to arrive.
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 10;

/// `STRIPE_WEBHOOK_SECRET` (comma-separated) / `webhook.secrets` (a list).
const SECRETS: Key<'static> = Key {
    env: "STRIPE_WEBHOOK_SECRET",
    file: "webhook.secrets",
};
/// `REVLINE_WEBHOOK_LIVEMODE` / `webhook.livemode`.
const LIVEMODE: Key<'static> = Key {
    env: "REVLINE_WEBHOOK_LIVEMODE",
    file: "webhook.livemode",
};
/// Signature tolerance: a day at most, and never 0, which would mean "no check".
pub(super) const TOLERANCE: Numeric<u64> = Numeric {
    key: Key {
        env: "REVLINE_WEBHOOK_TOLERANCE_SECS",
        file: "webhook.tolerance_secs",
    },
    min: 1,
    max: 86_400,
    unit: "seconds",
    why: "the check cannot be switched off",
};
/// Body limit: 1 KiB (no real event is smaller) to 64 MiB.
pub(super) const BODY_LIMIT: Numeric<usize> = Numeric {
    key: Key {
        env: "REVLINE_BODY_LIMIT_BYTES",
        file: "webhook.body_limit_bytes",
    },
    min: 1024,
    max: 64 * 1024 * 1024,
    unit: "bytes",
    why: "",
};
/// Append deadline: Stripe gives up on a delivery soon after 30 s.
pub(super) const APPEND_DEADLINE: Numeric<u64> = Numeric {
    key: Key {
        env: "REVLINE_APPEND_DEADLINE_MS",
        file: "webhook.append_deadline_ms",
    },
    min: 1,
    max: 30_000,
    unit: "milliseconds",
    why: "Stripe times out soon after",
};
/// Body timeout: a sender that trickles its body (a byte a second) must not hold a
/// connection and a worker's buffer for ever; Stripe sends a whole event at once.
pub(super) const BODY_TIMEOUT: Numeric<u64> = Numeric {
    key: Key {
        env: "REVLINE_BODY_TIMEOUT_SECS",
        file: "webhook.body_timeout_secs",
    },
    min: 1,
    max: 300,
    unit: "seconds",
    why: "",
};
/// `Retry-After` of a 503: 0 would invite an immediate retry storm, more than an hour
/// only delays events that Stripe retries on its own schedule anyway.
pub(super) const RETRY_AFTER: Numeric<u32> = Numeric {
    key: Key {
        env: "REVLINE_RETRY_AFTER_SECS",
        file: "webhook.retry_after_secs",
    },
    min: 1,
    max: 3_600,
    unit: "seconds",
    why: "the Retry-After hint of a 503",
};

/// The `[webhook]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileWebhook {
    /// `webhook.secrets`: secrets of `/webhooks/stripe`.
    secrets: Option<Vec<String>>,
    /// `webhook.livemode`: the mode events of `/webhooks/stripe` must have.
    livemode: Option<bool>,
    /// `webhook.tolerance_secs`: allowed clock distance of a signature.
    tolerance_secs: Option<u64>,
    /// `webhook.body_limit_bytes`: largest accepted body.
    body_limit_bytes: Option<usize>,
    /// `webhook.append_deadline_ms`: wait for the durable write before 503.
    append_deadline_ms: Option<u64>,
    /// `webhook.retry_after_secs`: `Retry-After` of a 503.
    retry_after_secs: Option<u32>,
    /// `webhook.body_timeout_secs`: time the body may take to arrive.
    body_timeout_secs: Option<u64>,
}

/// One `[endpoints.NAME]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileEndpoint {
    /// `endpoints.NAME.secrets`: the endpoint's secrets.
    #[serde(default)]
    secrets: Vec<String>,
    /// `endpoints.NAME.livemode`: the endpoint's mode.
    livemode: Option<bool>,
}

/// A named webhook endpoint after validation.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The name in `/webhooks/stripe/<name>`: a-z, 0-9, `_` and `-`, at most 64.
    pub name: String,
    /// Its signing secrets (several while one is rolled); never empty.
    pub secrets: Vec<WebhookSecret>,
    /// The mode its events must have, when set.
    pub livemode: Option<bool>,
}

/// The validated webhook settings, spread into [`super::Config`]'s fields.
pub(super) struct Webhook {
    /// See [`super::Config::default_secrets`].
    pub default_secrets: Vec<WebhookSecret>,
    /// See [`super::Config::default_livemode`].
    pub default_livemode: Option<bool>,
    /// See [`super::Config::endpoints`].
    pub endpoints: Vec<EndpointConfig>,
    /// See [`super::Config::tolerance_secs`].
    pub tolerance_secs: u64,
    /// See [`super::Config::body_limit_bytes`].
    pub body_limit_bytes: usize,
    /// See [`super::Config::body_limit_explicit`].
    pub body_limit_explicit: bool,
    /// See [`super::Config::append_deadline`].
    pub append_deadline: Duration,
    /// See [`super::Config::retry_after_secs`].
    pub retry_after_secs: u32,
    /// See [`super::Config::body_timeout`].
    pub body_timeout: Duration,
}

/// Validates the `[webhook]` and `[endpoints.*]` tables overlaid by `env`.
pub(super) fn load(
    file: FileWebhook,
    file_endpoints: BTreeMap<String, FileEndpoint>,
    env: &Env,
) -> Result<Webhook, ConfigError> {
    let default_secrets = Layer::new(env, SECRETS, file.secrets)
        .get(|raw| Ok(split_secrets(raw)), Ok)?
        .map(|list| secrets_from(&list))
        .transpose()?
        .unwrap_or_default();
    let default_livemode = Layer::new(env, LIVEMODE, file.livemode)
        .flag()?
        .map(|m| m.value);
    let endpoints = endpoints(file_endpoints, env)?;

    let tolerance_secs = TOLERANCE.load_or(env, file.tolerance_secs, DEFAULT_TOLERANCE_SECS)?;
    let body_limit = BODY_LIMIT.load(env, file.body_limit_bytes)?;
    let append_deadline_ms =
        APPEND_DEADLINE.load_or(env, file.append_deadline_ms, DEFAULT_APPEND_DEADLINE_MS)?;
    let retry_after_secs =
        RETRY_AFTER.load_or(env, file.retry_after_secs, DEFAULT_RETRY_AFTER_SECS)?;

    Ok(Webhook {
        default_secrets,
        default_livemode,
        endpoints,
        tolerance_secs,
        body_limit_explicit: body_limit.is_some(),
        body_limit_bytes: body_limit.map_or(DEFAULT_BODY_LIMIT_BYTES, |b| b.value),
        append_deadline: Duration::from_millis(append_deadline_ms),
        retry_after_secs,
        body_timeout: Duration::from_secs(BODY_TIMEOUT.load_or(
            env,
            file.body_timeout_secs,
            DEFAULT_BODY_TIMEOUT_SECS,
        )?),
    })
}

/// Where an endpoint was named, so that its keys can be spelled as the user wrote them.
#[derive(Default)]
struct EndpointKeys {
    /// `REVLINE_ENDPOINT_<NAME>_SECRET` as found in the environment (any case), if any.
    env_secret: Option<String>,
    /// `REVLINE_ENDPOINT_<NAME>_LIVEMODE` as found in the environment, if any.
    env_livemode: Option<String>,
    /// The `[endpoints.NAME]` table, if the file has one.
    file: Option<FileEndpoint>,
}

/// The named endpoints of the file and of the environment, each key layered like the
/// others (the environment wins) and each endpoint required to have a secret.
fn endpoints(
    file_endpoints: BTreeMap<String, FileEndpoint>,
    env: &Env,
) -> Result<Vec<EndpointConfig>, ConfigError> {
    let mut found: BTreeMap<String, EndpointKeys> = BTreeMap::new();
    for (name, table) in file_endpoints {
        if !valid_endpoint_name(&name) || name == ingest::DEFAULT_ENDPOINT {
            return Err(err(
                format!("endpoints.{name}"),
                "endpoint names use a-z, 0-9, '_' and '-' (at most 64), and 'default' is taken by /webhooks/stripe",
            ));
        }
        found.entry(name).or_default().file = Some(table);
    }
    for key in env.keys() {
        let Some(rest) = key.strip_prefix("REVLINE_ENDPOINT_") else {
            continue;
        };
        let (raw_name, is_secret) = if let Some(n) = rest.strip_suffix("_SECRET") {
            (n, true)
        } else if let Some(n) = rest.strip_suffix("_LIVEMODE") {
            (n, false)
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
        let keys = found.entry(name).or_default();
        if is_secret {
            keys.env_secret = Some(key.clone());
        } else {
            keys.env_livemode = Some(key.clone());
        }
    }

    let mut endpoints = Vec::with_capacity(found.len());
    for (name, keys) in found {
        let upper = name.to_ascii_uppercase();
        let env_secret = keys
            .env_secret
            .unwrap_or_else(|| format!("REVLINE_ENDPOINT_{upper}_SECRET"));
        let env_livemode = keys
            .env_livemode
            .unwrap_or_else(|| format!("REVLINE_ENDPOINT_{upper}_LIVEMODE"));
        let file_secret = format!("endpoints.{name}.secrets");
        let file_livemode = format!("endpoints.{name}.livemode");
        let in_file = keys.file.is_some();
        let (file_secrets, file_mode) = keys
            .file
            .map_or((None, None), |t| (Some(t.secrets), t.livemode));

        let secret_key = Key {
            env: &env_secret,
            file: &file_secret,
        };
        let secrets = Layer::new(env, secret_key, file_secrets)
            .get(|raw| Ok(split_secrets(raw)), Ok)?
            .map(|list| secrets_from(&list))
            .transpose()?
            .unwrap_or_default();
        if secrets.is_empty() {
            let (named, other) = if in_file {
                (&file_secret, &env_secret)
            } else {
                (&env_secret, &file_secret)
            };
            return Err(err(
                named.as_str(),
                format!("endpoint {name} has no secret (set {named} or {other})"),
            ));
        }
        let livemode_key = Key {
            env: &env_livemode,
            file: &file_livemode,
        };
        let livemode = Layer::new(env, livemode_key, file_mode)
            .flag()?
            .map(|m| m.value);
        endpoints.push(EndpointConfig {
            name,
            secrets,
            livemode,
        });
    }
    Ok(endpoints)
}

/// Validates each secret of `list`; an error names the list's key and the secret's
/// position, never the secret.
fn secrets_from(list: &Sourced<Vec<String>>) -> Result<Vec<WebhookSecret>, ConfigError> {
    let many = list.value.len() > 1;
    list.value
        .iter()
        .enumerate()
        .map(|(i, s)| {
            WebhookSecret::new(s).map_err(|e| {
                let which = if many {
                    format!("secret number {} ", i + 1)
                } else {
                    "the secret ".to_owned()
                };
                list.error(format!("{which}{e}"))
            })
        })
        .collect()
}

/// The secrets of an environment variable: comma-separated (several while rolling one).
fn split_secrets(raw: &str) -> Vec<String> {
    raw.split(',').map(str::to_owned).collect()
}

/// Endpoint names: non-empty, at most 64 of a-z, 0-9, `_` and `-`.
fn valid_endpoint_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{assert_bounds, load, load_toml};

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
    fn a_bad_secret_in_the_file_names_webhook_secrets() {
        let e = load_toml(
            "[webhook]\nsecrets = [\"whsec_ok\", \"sk_live_oops\"]\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key, "webhook.secrets");
        assert!(e.message.contains("secret number 2"), "{e}");
        assert!(!e.to_string().contains("sk_live_oops"), "{e}");
        let c = load_toml(
            "[webhook]\nsecrets = [\"sk_live_oops\"]\n",
            &[("STRIPE_WEBHOOK_SECRET", "whsec_env")],
        )
        .unwrap();
        assert_eq!(c.default_secrets.len(), 1);
    }

    #[test]
    fn an_endpoint_of_the_file_without_a_secret_names_its_toml_key() {
        let e = load_toml("[endpoints.platform]\nlivemode = true\n", &[]).unwrap_err();
        assert_eq!(e.key, "endpoints.platform.secrets");
        assert!(
            e.message.contains("REVLINE_ENDPOINT_PLATFORM_SECRET"),
            "{e}"
        );
        let c = load_toml(
            "[endpoints.platform]\nlivemode = true\n",
            &[("REVLINE_ENDPOINT_PLATFORM_SECRET", "whsec_env")],
        )
        .unwrap();
        assert_eq!(c.endpoints[0].livemode, Some(true));
        let e = load_toml("[endpoints.platform]\nsecrets = [\"nope\"]\n", &[]).unwrap_err();
        assert_eq!(e.key, "endpoints.platform.secrets");
        assert!(!e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn endpoint_livemode_from_the_environment_wins_and_a_bad_one_is_named() {
        let file = "[endpoints.platform]\nsecrets = [\"whsec_p\"]\nlivemode = true\n";
        let c = load_toml(file, &[("REVLINE_ENDPOINT_PLATFORM_LIVEMODE", "false")]).unwrap();
        assert_eq!(c.endpoints[0].livemode, Some(false));
        let e = load_toml(file, &[("REVLINE_ENDPOINT_PLATFORM_LIVEMODE", "live")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_ENDPOINT_PLATFORM_LIVEMODE");
        let e = load(&[("REVLINE_WEBHOOK_LIVEMODE", "yes")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_WEBHOOK_LIVEMODE");
    }

    #[test]
    fn endpoint_names_are_checked_in_both_sources() {
        let e = load_toml("[endpoints.default]\nsecrets = [\"whsec_p\"]\n", &[]).unwrap_err();
        assert_eq!(e.key, "endpoints.default");
        let e = load(&[("REVLINE_ENDPOINT_A_B_SECRETS", "whsec_p")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_ENDPOINT_A_B_SECRETS");
        let e = load(&[("REVLINE_ENDPOINT_DEFAULT_SECRET", "whsec_p")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_ENDPOINT_DEFAULT_SECRET");
    }

    #[test]
    fn retry_after_secs_must_be_1_to_3600_from_either_source() {
        assert_bounds(&RETRY_AFTER, &[]);
        let e = load_toml("[webhook]\nretry_after_secs = 0\n", &[]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid configuration: webhook.retry_after_secs: "),
            "{e}"
        );
        assert_eq!(
            load(&[("REVLINE_RETRY_AFTER_SECS", "30")])
                .unwrap()
                .retry_after_secs,
            30
        );
    }

    #[test]
    fn every_webhook_limit_names_the_source_of_a_bad_value() {
        assert_bounds(&TOLERANCE, &[]);
        assert_bounds(&BODY_LIMIT, &[]);
        assert_bounds(&APPEND_DEADLINE, &[]);
    }

    #[test]
    fn the_body_limit_is_explicit_only_when_set() {
        assert!(!load(&[]).unwrap().body_limit_explicit);
        let c = load_toml("[webhook]\nbody_limit_bytes = 2048\n", &[]).unwrap();
        assert!(c.body_limit_explicit);
        assert_eq!(c.body_limit_bytes, 2048);
    }

    #[test]
    fn webhook_defaults_lie_within_their_bounds() {
        assert!((TOLERANCE.min..=TOLERANCE.max).contains(&DEFAULT_TOLERANCE_SECS));
        assert!((BODY_LIMIT.min..=BODY_LIMIT.max).contains(&DEFAULT_BODY_LIMIT_BYTES));
        assert!((APPEND_DEADLINE.min..=APPEND_DEADLINE.max).contains(&DEFAULT_APPEND_DEADLINE_MS));
        assert!((RETRY_AFTER.min..=RETRY_AFTER.max).contains(&DEFAULT_RETRY_AFTER_SECS));
    }
}
