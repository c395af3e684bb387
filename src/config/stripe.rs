//! The `[stripe]` section: enrichment from Stripe's API, on when an API key is set.
//! Webhooks do not carry fees, nets or exchange rates; the enricher fetches them,
//! rate-limited. The API key is a secret: errors say what shape it must have and never
//! show it, nor the base URL, which could carry credentials too.

use std::time::Duration;

use reconcile::enrich::StripeApi;
use serde::Deserialize;

use super::source::{needs, Key, Layer, Numeric};
use super::{ConfigError, Env};

/// Default API base URL.
pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com";
/// Default rate limit of API calls.
pub const DEFAULT_STRIPE_RPS: u32 = 20;
/// Default time between enrichment sweeps.
pub const DEFAULT_ENRICH_INTERVAL_SECS: u64 = 60;

/// `STRIPE_API_KEY` / `stripe.api_key`: set = enrichment.
const API_KEY: Key<'static> = Key {
    env: "STRIPE_API_KEY",
    file: "stripe.api_key",
};
/// `REVLINE_STRIPE_API_BASE` / `stripe.api_base`.
const API_BASE: Key<'static> = Key {
    env: "REVLINE_STRIPE_API_BASE",
    file: "stripe.api_base",
};
/// Rate limit: Stripe allows 100 requests per second in live mode, 25 in test mode.
pub(super) const RPS: Numeric<u32> = Numeric {
    key: Key {
        env: "REVLINE_STRIPE_API_RPS",
        file: "stripe.requests_per_second",
    },
    min: 1,
    max: 100,
    unit: "requests per second",
    why: "Stripe allows 100 in live mode, 25 in test mode",
};
/// Sweep interval: 0 would spin; fees more than a day late are not worth the wait.
pub(super) const ENRICH_INTERVAL: Numeric<u64> = Numeric {
    key: Key {
        env: "REVLINE_ENRICH_INTERVAL_SECS",
        file: "stripe.enrich_interval_secs",
    },
    min: 1,
    max: 86_400,
    unit: "seconds",
    why: "",
};

/// The `[stripe]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileStripe {
    /// `stripe.api_key`: `sk_…` or `rk_…`; set = enrichment; never shown.
    api_key: Option<String>,
    /// `stripe.api_base`: API base URL (a test double in tests).
    api_base: Option<String>,
    /// `stripe.requests_per_second`: rate limit of API calls.
    requests_per_second: Option<u32>,
    /// `stripe.enrich_interval_secs`: time between enrichment sweeps.
    enrich_interval_secs: Option<u64>,
}

impl FileStripe {
    /// The first key of the table other than `api_key` that is set, if any.
    fn first_set(&self) -> Option<&'static str> {
        [
            (API_BASE.file, self.api_base.is_some()),
            (RPS.key.file, self.requests_per_second.is_some()),
            (
                ENRICH_INTERVAL.key.file,
                self.enrich_interval_secs.is_some(),
            ),
        ]
        .into_iter()
        .find_map(|(key, set)| set.then_some(key))
    }
}

/// Validates the `[stripe]` table overlaid by `env`; `None` without an API key, when no
/// other enrichment key may be set either.
pub(super) fn load(mut file: FileStripe, env: &Env) -> Result<Option<StripeApi>, ConfigError> {
    let Some(api_key) = Layer::new(env, API_KEY, file.api_key.take()).text() else {
        let dependent = [API_BASE.env, RPS.key.env, ENRICH_INTERVAL.key.env]
            .into_iter()
            .find(|key| env.contains_key(*key))
            .or(file.first_set());
        return match dependent {
            Some(key) => Err(needs(key, API_KEY, "enrichment needs an API key")),
            None => Ok(None),
        };
    };
    let api_key = api_key.check(
        |k| (k.starts_with("sk_") || k.starts_with("rk_")) && !k.chars().any(char::is_whitespace),
        "must be a secret (sk_…) or restricted (rk_…) API key without whitespace",
    )?;
    let base_url = Layer::new(env, API_BASE, file.api_base)
        .text()
        .map(|b| {
            b.check(
                |b| {
                    (b.starts_with("https://") || b.starts_with("http://"))
                        && !b.chars().any(char::is_whitespace)
                },
                "must be an http:// or https:// URL without whitespace",
            )
        })
        .transpose()?
        .map_or_else(|| DEFAULT_STRIPE_API_BASE.to_owned(), |b| b.value);
    Ok(Some(StripeApi {
        api_key: api_key.value,
        base_url,
        requests_per_second: RPS.load_or(env, file.requests_per_second, DEFAULT_STRIPE_RPS)?,
        interval: Duration::from_secs(ENRICH_INTERVAL.load_or(
            env,
            file.enrich_interval_secs,
            DEFAULT_ENRICH_INTERVAL_SECS,
        )?),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{assert_bounds, load, load_toml};

    const KEY_SET: (&str, &str) = ("STRIPE_API_KEY", "sk_test_abc");

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
    fn a_bad_api_key_in_the_file_names_stripe_api_key() {
        let e = load_toml("[stripe]\napi_key = \"pk_live_public\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "stripe.api_key");
        assert!(!e.to_string().contains("pk_live_public"), "{e}");
        let c = load_toml("[stripe]\napi_key = \"pk_live_public\"\n", &[KEY_SET]).unwrap();
        assert_eq!(c.stripe.unwrap().api_key, "sk_test_abc");
    }

    #[test]
    fn a_bad_api_base_is_named_by_its_source_and_never_shown() {
        let e = load_toml("[stripe]\napi_base = \"ftp://u:hunter2@x\"\n", &[KEY_SET]).unwrap_err();
        assert_eq!(e.key, "stripe.api_base");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = load(&[KEY_SET, ("REVLINE_STRIPE_API_BASE", "api.stripe.com")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_STRIPE_API_BASE");
    }

    #[test]
    fn stripe_settings_of_the_file_without_an_api_key_are_refused() {
        let e = load_toml("[stripe]\nrequests_per_second = 5\n", &[]).unwrap_err();
        assert_eq!(e.key, "stripe.requests_per_second");
        assert!(e.message.contains("STRIPE_API_KEY"), "{e}");
    }

    #[test]
    fn every_stripe_number_names_the_source_of_a_bad_value() {
        assert_bounds(&RPS, &[KEY_SET]);
        assert_bounds(&ENRICH_INTERVAL, &[KEY_SET]);
    }

    #[test]
    fn stripe_defaults_lie_within_their_bounds() {
        let api = load(&[KEY_SET]).unwrap().stripe.unwrap();
        assert_eq!(api.requests_per_second, 20);
        assert_eq!(api.interval, Duration::from_secs(60));
        assert!((RPS.min..=RPS.max).contains(&DEFAULT_STRIPE_RPS));
        assert!((ENRICH_INTERVAL.min..=ENRICH_INTERVAL.max).contains(&DEFAULT_ENRICH_INTERVAL_SECS));
    }
}
