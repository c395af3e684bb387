//! The `[clickhouse]` section: the ClickHouse warehouse, on when a URL is set (else the
//! embedded warehouse under the data directory). The URL may carry `user:password@` and
//! the password is a secret, so no error shows either; the database name is checked here
//! as `ClickHouse::new` would, so that a bad one is reported at start under its key.

use serde::Deserialize;
use warehouse::clickhouse::ClickHouseSettings;

use super::source::{needs, Key, Layer};
use super::{ConfigError, Env};

/// Default database, created by `revline migrate`.
pub const DEFAULT_CLICKHOUSE_DATABASE: &str = "revline";

/// `REVLINE_CLICKHOUSE_URL` / `clickhouse.url`: set = ClickHouse warehouse.
const URL: Key<'static> = Key {
    env: "REVLINE_CLICKHOUSE_URL",
    file: "clickhouse.url",
};
/// `REVLINE_CLICKHOUSE_DATABASE` / `clickhouse.database`.
const DATABASE: Key<'static> = Key {
    env: "REVLINE_CLICKHOUSE_DATABASE",
    file: "clickhouse.database",
};
/// `REVLINE_CLICKHOUSE_USER` / `clickhouse.user`.
const USER: Key<'static> = Key {
    env: "REVLINE_CLICKHOUSE_USER",
    file: "clickhouse.user",
};
/// `REVLINE_CLICKHOUSE_PASSWORD` / `clickhouse.password`.
const PASSWORD: Key<'static> = Key {
    env: "REVLINE_CLICKHOUSE_PASSWORD",
    file: "clickhouse.password",
};
/// `REVLINE_CLICKHOUSE_CA_FILE` / `clickhouse.ca_file`: CA certificates (PEM) trusted for
/// `https://` besides the system's.
const CA_FILE: Key<'static> = Key {
    env: "REVLINE_CLICKHOUSE_CA_FILE",
    file: "clickhouse.ca_file",
};

/// `REVLINE_CLICKHOUSE_CLUSTER` / `clickhouse.cluster`: a cluster of `remote_servers`; the
/// DDL then runs `ON CLUSTER` with replicated and distributed tables.
const CLUSTER: Key<'static> = Key {
    env: "REVLINE_CLICKHOUSE_CLUSTER",
    file: "clickhouse.cluster",
};

/// The `[clickhouse]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileClickHouse {
    /// `clickhouse.url`: `http(s)://host:8123`; set = ClickHouse warehouse.
    url: Option<String>,
    /// `clickhouse.database`: the database revline owns.
    database: Option<String>,
    /// `clickhouse.user`: login user.
    user: Option<String>,
    /// `clickhouse.password`: login password; never shown.
    password: Option<String>,
    /// `clickhouse.ca_file`: CA certificates (PEM) for `https://`.
    ca_file: Option<String>,
    /// `clickhouse.cluster`: the cluster the tables live on.
    cluster: Option<String>,
}

impl FileClickHouse {
    /// The first key of the table other than `url` that is set, if any.
    fn first_set(&self) -> Option<&'static str> {
        [
            (DATABASE.file, self.database.is_some()),
            (USER.file, self.user.is_some()),
            (PASSWORD.file, self.password.is_some()),
            (CA_FILE.file, self.ca_file.is_some()),
            (CLUSTER.file, self.cluster.is_some()),
        ]
        .into_iter()
        .find_map(|(key, set)| set.then_some(key))
    }
}

/// Validates the `[clickhouse]` table overlaid by `env`; `None` without a URL, when no
/// other ClickHouse key may be set either.
pub(super) fn load(
    file: Option<FileClickHouse>,
    env: &Env,
) -> Result<Option<ClickHouseSettings>, ConfigError> {
    let mut file = file.unwrap_or_default();
    let Some(url) = Layer::new(env, URL, file.url.take()).text() else {
        let dependent = env
            .keys()
            .find(|key| key.starts_with("REVLINE_CLICKHOUSE_"))
            .map(String::as_str)
            .or(file.first_set());
        return match dependent {
            Some(key) => Err(needs(key, URL, "ClickHouse mode needs a URL")),
            None => Ok(None),
        };
    };
    // Not echoed: a URL may carry user:password@.
    let url = url.check(
        |u| {
            (u.starts_with("http://") || u.starts_with("https://"))
                && !u.chars().any(char::is_whitespace)
        },
        "must be an http:// or https:// URL without whitespace",
    )?;
    let database = Layer::new(env, DATABASE, file.database)
        .text()
        .map(|d| {
            d.check(
                |d| valid_identifier(d),
                "must be 1 to 64 of letters, digits and '_'",
            )
        })
        .transpose()?
        .map_or_else(|| DEFAULT_CLICKHOUSE_DATABASE.to_owned(), |d| d.value);
    let ca_file = Layer::new(env, CA_FILE, file.ca_file)
        .text()
        .map(|f| {
            f.check(
                |f| std::path::Path::new(f).is_file(),
                "must name a readable PEM file of CA certificates",
            )
        })
        .transpose()?
        .map(|f| std::path::PathBuf::from(f.value));
    if ca_file.is_some() && !url.value.starts_with("https://") {
        return Err(needs(
            CA_FILE.env,
            URL,
            "a CA file is for TLS: the URL must be https://",
        ));
    }
    let cluster = Layer::new(env, CLUSTER, file.cluster)
        .text()
        .map(|c| {
            c.check(
                |c| valid_identifier(c),
                "must be 1 to 64 of letters, digits and '_' (a name in remote_servers)",
            )
        })
        .transpose()?
        .map(|c| c.value);
    Ok(Some(ClickHouseSettings {
        ca_file,
        cluster,
        url: url.value,
        database,
        user: Layer::new(env, USER, file.user).text().map(|u| u.value),
        password: Layer::new(env, PASSWORD, file.password)
            .text()
            .map(|p| p.value),
    }))
}

/// ClickHouse's rule as revline applies it: 1 to 64 ASCII letters, digits and `_` (the
/// name is used unquoted in statements).
pub fn valid_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{load, load_toml};

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
    fn a_ca_file_must_exist_and_goes_with_https() {
        let ca = std::env::temp_dir().join(format!("revline-ca-{}.pem", std::process::id()));
        std::fs::write(&ca, "not checked here").unwrap();
        let path = ca.display().to_string();
        let c = load(&[
            ("REVLINE_CLICKHOUSE_URL", "https://ch.example:8443"),
            ("REVLINE_CLICKHOUSE_CA_FILE", &path),
        ])
        .unwrap();
        assert_eq!(c.clickhouse.unwrap().ca_file, Some(ca.clone()));
        let e = load(&[
            ("REVLINE_CLICKHOUSE_URL", "http://127.0.0.1:8123"),
            ("REVLINE_CLICKHOUSE_CA_FILE", &path),
        ])
        .unwrap_err();
        assert_eq!(e.key, "REVLINE_CLICKHOUSE_CA_FILE", "{e}");
        let e = load(&[
            ("REVLINE_CLICKHOUSE_URL", "https://ch.example:8443"),
            ("REVLINE_CLICKHOUSE_CA_FILE", "/nonexistent/ca.pem"),
        ])
        .unwrap_err();
        assert_eq!(e.key, "REVLINE_CLICKHOUSE_CA_FILE", "{e}");
        let _ = std::fs::remove_file(ca);
    }

    #[test]
    fn a_bad_database_in_the_file_names_clickhouse_database() {
        let e = load_toml(
            "[clickhouse]\nurl = \"http://127.0.0.1:8123\"\ndatabase = \"bad-name\"\n",
            &[],
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid configuration: clickhouse.database: "),
            "{e}"
        );
        let e = load(&[
            ("REVLINE_CLICKHOUSE_URL", "http://127.0.0.1:8123"),
            ("REVLINE_CLICKHOUSE_DATABASE", "bad-name"),
        ])
        .unwrap_err();
        assert_eq!(e.key, "REVLINE_CLICKHOUSE_DATABASE");
        let long = "d".repeat(65);
        let e = load(&[
            ("REVLINE_CLICKHOUSE_URL", "http://127.0.0.1:8123"),
            ("REVLINE_CLICKHOUSE_DATABASE", &long),
        ])
        .unwrap_err();
        assert_eq!(e.key, "REVLINE_CLICKHOUSE_DATABASE");
    }

    #[test]
    fn a_bad_url_is_named_by_its_source_and_never_shown() {
        let e =
            load_toml("[clickhouse]\nurl = \"tcp://admin:hunter2@db:9000\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "clickhouse.url");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = load(&[("REVLINE_CLICKHOUSE_URL", "ftp://admin:hunter2@db")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_CLICKHOUSE_URL");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn clickhouse_settings_of_the_file_without_a_url_are_refused() {
        let e = load_toml("[clickhouse]\npassword = \"hunter2\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "clickhouse.password");
        assert!(e.message.contains("REVLINE_CLICKHOUSE_URL"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let c = load_toml(
            "[clickhouse]\nuser = \"revline\"\n",
            &[("REVLINE_CLICKHOUSE_URL", "https://ch.example:8443")],
        )
        .unwrap();
        assert_eq!(c.clickhouse.unwrap().user.as_deref(), Some("revline"));
    }
}
