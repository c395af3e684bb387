//! The `[tls]` section: HTTPS on the webhook listener. Stripe delivers live-mode events to
//! `https://` URLs only; either a reverse proxy terminates TLS in front of revline, or
//! revline does with these two PEM files. Both or neither.

use std::path::PathBuf;

use serde::Deserialize;

use super::source::{needs, Key, Layer, Sourced};
use super::{ConfigError, Env};

/// `REVLINE_TLS_CERT_FILE` / `tls.cert_file`: the certificate chain (PEM, leaf first).
pub(super) const CERT_FILE: Key<'static> = Key {
    env: "REVLINE_TLS_CERT_FILE",
    file: "tls.cert_file",
};
/// `REVLINE_TLS_KEY_FILE` / `tls.key_file`: its private key (PEM); never shown.
pub(super) const KEY_FILE: Key<'static> = Key {
    env: "REVLINE_TLS_KEY_FILE",
    file: "tls.key_file",
};

/// The `[tls]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTls {
    /// `tls.cert_file`: the certificate chain.
    cert_file: Option<String>,
    /// `tls.key_file`: its private key.
    key_file: Option<String>,
}

/// The files of the webhook listener's certificate; read when the listener starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

pub(super) fn load(file: FileTls, env: &Env) -> Result<Option<TlsFiles>, ConfigError> {
    let readable = |f: Sourced<String>| {
        f.check(
            |f| std::path::Path::new(f).is_file(),
            "must name a readable PEM file",
        )
        .map(|f| PathBuf::from(f.value))
    };
    let cert = Layer::new(env, CERT_FILE, file.cert_file).text();
    let key = Layer::new(env, KEY_FILE, file.key_file).text();
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), None) => Err(needs(
            &cert.key,
            KEY_FILE,
            "HTTPS needs the certificate's key",
        )),
        (None, Some(key)) => Err(needs(&key.key, CERT_FILE, "HTTPS needs a certificate")),
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert_file: readable(cert)?,
            key_file: readable(key)?,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::env;

    #[test]
    fn both_or_neither() {
        assert_eq!(load(FileTls::default(), &env(&[])).unwrap(), None);
        let err = load(
            FileTls::default(),
            &env(&[("REVLINE_TLS_CERT_FILE", "/etc/hostname")]),
        )
        .unwrap_err();
        assert_eq!(err.key, "REVLINE_TLS_CERT_FILE");
        assert!(
            err.message.contains("REVLINE_TLS_KEY_FILE"),
            "{}",
            err.message
        );
        let err = load(
            FileTls::default(),
            &env(&[
                ("REVLINE_TLS_CERT_FILE", "/etc/hostname"),
                ("REVLINE_TLS_KEY_FILE", "/nonexistent/key.pem"),
            ]),
        )
        .unwrap_err();
        assert_eq!(err.key, "REVLINE_TLS_KEY_FILE");
        assert_eq!(err.message, "must name a readable PEM file");
        let file = FileTls {
            cert_file: Some("/etc/hostname".into()),
            key_file: Some("/etc/hostname".into()),
        };
        assert_eq!(
            load(file, &env(&[])).unwrap(),
            Some(TlsFiles {
                cert_file: "/etc/hostname".into(),
                key_file: "/etc/hostname".into(),
            })
        );
    }
}
