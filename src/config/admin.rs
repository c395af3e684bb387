//! The `[admin]` section: the admin listener, which serves `/metrics` and the reports.
//! Revenue figures are confidential, so it listens on loopback by default, and anywhere
//! else only with a bearer token (`REVLINE_ADMIN_TOKEN`), which is never shown.

use std::net::SocketAddr;

use serde::Deserialize;

use super::source::{Key, Layer, Numeric};
use super::{err, parse_listen, ConfigError, Env};

/// Default admin address: loopback, next to the webhook listener's default port.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8081";
/// Default number of reports computed at once.
pub const DEFAULT_MAX_REPORTS: usize = 2;
/// Shortest accepted token: anything shorter can be guessed.
const MIN_TOKEN_CHARS: usize = 16;

/// `REVLINE_ADMIN_LISTEN` / `admin.listen`: an address, or `off`.
const LISTEN: Key<'static> = Key {
    env: "REVLINE_ADMIN_LISTEN",
    file: "admin.listen",
};
/// `REVLINE_ADMIN_TOKEN` / `admin.token`.
const TOKEN: Key<'static> = Key {
    env: "REVLINE_ADMIN_TOKEN",
    file: "admin.token",
};
/// Reports computed at once: each holds warehouse connections and CPU that the webhook
/// receiver needs; the rest wait their turn.
pub(super) const MAX_REPORTS: Numeric<usize> = Numeric {
    key: Key {
        env: "REVLINE_ADMIN_MAX_REPORTS",
        file: "admin.max_reports",
    },
    min: 1,
    max: 16,
    unit: "reports",
    why: "reports share the cores with the webhook receiver",
};

/// The `[admin]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAdmin {
    /// `admin.listen`: address of the admin listener, or `off`.
    listen: Option<String>,
    /// `admin.token`: bearer token; required off loopback; never shown.
    token: Option<String>,
    /// `admin.max_reports`: reports computed at once.
    max_reports: Option<usize>,
}

/// The validated admin settings.
#[derive(Clone)]
pub struct AdminConfig {
    /// `None`: the admin listener is off.
    pub listen: Option<SocketAddr>,
    /// Required of every request when set; always set off loopback.
    pub token: Option<String>,
    pub max_reports: usize,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_reports", &self.max_reports)
            .finish()
    }
}

pub(super) fn load(file: FileAdmin, env: &Env) -> Result<AdminConfig, ConfigError> {
    let listen_of = |raw: &str| -> Result<Option<SocketAddr>, String> {
        if raw.trim() == "off" {
            Ok(None)
        } else {
            parse_listen(raw)
                .map(Some)
                .map_err(|m| format!("{m}, or off"))
        }
    };
    let listen = match Layer::new(env, LISTEN, file.listen).get(listen_of, |v| listen_of(&v))? {
        Some(listen) => listen.value,
        None => Some(parse_listen(DEFAULT_ADMIN_LISTEN).map_err(|m| err(LISTEN.env, m))?),
    };
    let token = Layer::new(env, TOKEN, file.token)
        .text()
        .map(|t| {
            t.check(
                |t| t.chars().count() >= MIN_TOKEN_CHARS && t.chars().all(|c| c.is_ascii_graphic()),
                "must be at least 16 visible ASCII characters (no spaces)",
            )
        })
        .transpose()?
        .map(|t| t.value);
    if let Some(addr) = listen {
        if !addr.ip().is_loopback() && token.is_none() {
            let key = if env.contains_key(LISTEN.env) {
                LISTEN.env
            } else {
                LISTEN.file
            };
            return Err(err(
                key,
                format!(
                    "{addr} is not a loopback address: the admin listener serves revenue \
                     figures, so set {} (a bearer token every request must carry)",
                    TOKEN.env
                ),
            ));
        }
    }
    Ok(AdminConfig {
        listen,
        token,
        max_reports: MAX_REPORTS.load_or(env, file.max_reports, DEFAULT_MAX_REPORTS)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{assert_bounds, load, load_toml};

    const TOKEN_VALUE: &str = "0123456789abcdefXYZ";

    #[test]
    fn the_admin_listener_defaults_to_loopback_without_a_token() {
        let c = load(&[]).unwrap();
        assert_eq!(c.admin.listen, Some("127.0.0.1:8081".parse().unwrap()));
        assert!(c.admin.token.is_none());
        assert_eq!(c.admin.max_reports, DEFAULT_MAX_REPORTS);
        let c = load(&[("REVLINE_ADMIN_LISTEN", "off")]).unwrap();
        assert_eq!(c.admin.listen, None);
    }

    #[test]
    fn off_loopback_needs_a_token_which_is_never_shown() {
        let e = load(&[("REVLINE_ADMIN_LISTEN", "0.0.0.0:8081")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_ADMIN_LISTEN");
        assert!(e.message.contains("REVLINE_ADMIN_TOKEN"), "{e}");
        let e = load_toml("[admin]\nlisten = \"0.0.0.0:8081\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "admin.listen");
        let c = load(&[
            ("REVLINE_ADMIN_LISTEN", "0.0.0.0:8081"),
            ("REVLINE_ADMIN_TOKEN", TOKEN_VALUE),
        ])
        .unwrap();
        assert_eq!(c.admin.token.as_deref(), Some(TOKEN_VALUE));
        assert!(!format!("{c:?}").contains(TOKEN_VALUE));
        let e = load(&[("REVLINE_ADMIN_TOKEN", "short secret")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_ADMIN_TOKEN");
        assert!(!e.to_string().contains("short secret"), "{e}");
        let e = load(&[("REVLINE_ADMIN_LISTEN", "localhost:1")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_ADMIN_LISTEN");
    }

    #[test]
    fn max_reports_names_the_source_of_a_bad_value() {
        assert_bounds(&MAX_REPORTS, &[]);
    }
}
