//! The one layering helper: a setting has two names, an environment variable and a TOML
//! key, and the environment wins over the file. [`Layer`] picks the winning layer and
//! returns its value as a [`Sourced`], which remembers the key that carried it, so that
//! every later check can name that key: a bad `reconcile.batch_events` in the file is
//! reported as `reconcile.batch_events`, the same bad value in
//! `REVLINE_RECONCILE_BATCH_EVENTS` as that variable.
//!
//! Errors describe what is expected and never echo the raw text they refused: a value
//! in the wrong variable may be a secret. Only numbers that parsed are shown.

use std::fmt::Display;
use std::str::FromStr;

use super::{err, ConfigError, Env};

/// The two names of one setting.
#[derive(Debug, Clone, Copy)]
pub(super) struct Key<'k> {
    /// The environment variable, e.g. `REVLINE_RETRY_AFTER_SECS`.
    pub env: &'k str,
    /// The dotted TOML key, e.g. `webhook.retry_after_secs`.
    pub file: &'k str,
}

/// A value and the key (environment variable or TOML key) that supplied it.
#[derive(Debug, Clone)]
pub(super) struct Sourced<T> {
    /// The value, converted from the environment's text or taken from the file.
    pub value: T,
    /// The key that carried the value; errors about it name this key.
    pub key: String,
}

impl<T> Sourced<T> {
    /// An error about this value, naming the key that carried it.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        err(&self.key, message)
    }

    /// Keeps the value when `ok` holds for it, else an error naming its key.
    pub fn check(
        self,
        ok: impl FnOnce(&T) -> bool,
        message: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        if ok(&self.value) {
            Ok(self)
        } else {
            Err(self.error(message))
        }
    }
}

/// One setting's layers: the environment variable over the value read from the file.
pub(super) struct Layer<'a, F> {
    /// The environment as read at start.
    env: &'a Env,
    /// Both names of the setting.
    key: Key<'a>,
    /// The file's value, already typed by the TOML parser (`None`: not in the file).
    file: Option<F>,
}

impl<'a, F> Layer<'a, F> {
    /// The layers of `key`: `env[key.env]` over `file`.
    pub fn new(env: &'a Env, key: Key<'a>, file: Option<F>) -> Self {
        Layer { env, key, file }
    }

    /// The winning layer's value: the environment's text converted by `from_env`, else the
    /// file's value converted by `from_file`, else `None`. A conversion's error message is
    /// reported under the key of the layer it came from.
    pub fn get<T>(
        self,
        from_env: impl FnOnce(&str) -> Result<T, String>,
        from_file: impl FnOnce(F) -> Result<T, String>,
    ) -> Result<Option<Sourced<T>>, ConfigError> {
        let (key, value) = if let Some(raw) = self.env.get(self.key.env) {
            (self.key.env, from_env(raw))
        } else if let Some(value) = self.file {
            (self.key.file, from_file(value))
        } else {
            return Ok(None);
        };
        match value {
            Ok(value) => Ok(Some(Sourced {
                value,
                key: key.to_owned(),
            })),
            Err(message) => Err(err(key, message)),
        }
    }
}

impl Layer<'_, String> {
    /// Text as given (not trimmed: it may be a URL or a name compared exactly).
    pub fn text(self) -> Option<Sourced<String>> {
        // Neither conversion can fail, so there is no error to lose.
        self.get(|raw| Ok(raw.to_owned()), Ok).ok().flatten()
    }
}

impl Layer<'_, bool> {
    /// A flag: the file's boolean, or `true`/`false`/`1`/`0` (any case) in the environment.
    pub fn flag(self) -> Result<Option<Sourced<bool>>, ConfigError> {
        self.get(
            |raw| match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err("must be true or false (or 1 or 0)".to_owned()),
            },
            Ok,
        )
    }
}

/// A numeric setting: its names and the values it accepts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Numeric<T: 'static> {
    /// Both names of the setting.
    pub key: Key<'static>,
    /// Smallest accepted value.
    pub min: T,
    /// Largest accepted value.
    pub max: T,
    /// What the number counts, plural: `seconds`, `bytes`, …
    pub unit: &'static str,
    /// Why the bounds are what they are, appended in parentheses; empty for none.
    pub why: &'static str,
}

impl<T> Numeric<T>
where
    T: Copy + PartialOrd + Display + FromStr,
{
    /// The setting from `env` over `file`, parsed and checked against its bounds; errors
    /// name the key that carried the value.
    pub fn load(&self, env: &Env, file: Option<T>) -> Result<Option<Sourced<T>>, ConfigError> {
        let Some(number) = Layer::new(env, self.key, file).get(
            |raw| raw.trim().parse().map_err(|_| self.expected(None)),
            Ok,
        )?
        else {
            return Ok(None);
        };
        let value = number.value;
        number
            .check(
                |v| (self.min..=self.max).contains(v),
                self.expected(Some(value)),
            )
            .map(Some)
    }

    /// Like [`Numeric::load`], with `default` when neither layer sets the key.
    pub fn load_or(&self, env: &Env, file: Option<T>, default: T) -> Result<T, ConfigError> {
        Ok(self.load(env, file)?.map_or(default, |n| n.value))
    }

    /// `must be a whole number of seconds from 1 to 3600[, got 0][ (why)]`.
    fn expected(&self, got: Option<T>) -> String {
        let mut message = format!(
            "must be a whole number of {} from {} to {}",
            self.unit, self.min, self.max
        );
        if let Some(got) = got {
            message += &format!(", got {got}");
        }
        if !self.why.is_empty() {
            message += &format!(" ({})", self.why);
        }
        message
    }
}

/// The error for a setting that only makes sense with another one: `dependent` is set
/// but neither name of `needed` is.
pub(super) fn needs(dependent: &str, needed: Key<'_>, why: &str) -> ConfigError {
    err(
        dependent,
        format!(
            "is set but neither {} nor {} is: {why}",
            needed.env, needed.file
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::env;

    const KEY: Key<'static> = Key {
        env: "REVLINE_X_SECS",
        file: "x.secs",
    };
    const X: Numeric<u32> = Numeric {
        key: KEY,
        min: 1,
        max: 10,
        unit: "seconds",
        why: "a reason",
    };

    #[test]
    fn the_environment_wins_and_is_named() {
        let got = Layer::new(
            &env(&[("REVLINE_X_SECS", "hi")]),
            KEY,
            Some("file".to_owned()),
        )
        .text()
        .unwrap();
        assert_eq!(got.value, "hi");
        assert_eq!(got.key, "REVLINE_X_SECS");
    }

    #[test]
    fn a_file_value_is_named_by_its_toml_key() {
        let got = Layer::new(&env(&[]), KEY, Some("file".to_owned()))
            .text()
            .unwrap();
        assert_eq!(got.value, "file");
        assert_eq!(got.key, "x.secs");
        assert!(Layer::<String>::new(&env(&[]), KEY, None).text().is_none());
    }

    #[test]
    fn out_of_range_numbers_name_the_key_that_carried_them() {
        let e = X.load(&env(&[]), Some(11)).unwrap_err();
        assert_eq!(e.key, "x.secs");
        assert_eq!(
            e.message,
            "must be a whole number of seconds from 1 to 10, got 11 (a reason)"
        );
        let e = X
            .load(&env(&[("REVLINE_X_SECS", "0")]), Some(5))
            .unwrap_err();
        assert_eq!(e.key, "REVLINE_X_SECS");
        assert_eq!(
            X.load(&env(&[("REVLINE_X_SECS", " 7 ")]), Some(5))
                .unwrap()
                .unwrap()
                .value,
            7
        );
        assert_eq!(X.load_or(&env(&[]), None, 3).unwrap(), 3);
    }

    #[test]
    fn unparseable_text_is_refused_without_being_echoed() {
        let e = X
            .load(&env(&[("REVLINE_X_SECS", "sk_live_oops")]), None)
            .unwrap_err();
        assert_eq!(e.key, "REVLINE_X_SECS");
        assert!(!e.to_string().contains("sk_live_oops"), "{e}");
        let e = Layer::new(&env(&[("REVLINE_X_SECS", "yes please")]), KEY, Some(true))
            .flag()
            .unwrap_err();
        assert_eq!(e.key, "REVLINE_X_SECS");
        assert!(!e.to_string().contains("please"), "{e}");
    }

    #[test]
    fn flags_accept_words_and_digits_in_any_case() {
        for (raw, want) in [
            ("TRUE", true),
            ("1", true),
            (" false ", false),
            ("0", false),
        ] {
            let got = Layer::new(&env(&[("REVLINE_X_SECS", raw)]), KEY, None)
                .flag()
                .unwrap()
                .unwrap();
            assert_eq!(got.value, want, "{raw}");
        }
    }
}
