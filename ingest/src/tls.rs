//! HTTPS for the webhook listener: Stripe delivers live-mode events to `https://` URLs
//! only. Either a reverse proxy terminates TLS in front of revline, or revline does it
//! itself with a certificate chain and key in PEM files (rustls with the ring provider,
//! the one provider in the binary; TLS 1.2 and 1.3, HTTP/1.1).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use rustls::ServerConfig;

/// What is wrong with the certificate or the key, naming which; never the key's bytes.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate file {path}: {why}")]
    Certificate { path: String, why: String },
    #[error("key file {path}: {why}")]
    Key { path: String, why: String },
    #[error("the certificate and the key do not go together: {0}")]
    Pair(String),
}

/// The server configuration of the webhook listener: the chain of `cert_file` (leaf
/// first, then intermediates) and the private key of `key_file` (PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<ServerConfig, TlsError> {
    let cert_error = |why: String| TlsError::Certificate {
        path: cert_file.display().to_string(),
        why,
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no PEM certificate in it".into()));
    }
    // The error of a key's parser may quote what it read: say only that it failed.
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Key {
        path: key_file.display().to_string(),
        why: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key in it".into(),
            rustls::pki_types::pem::Error::Io(io) => io.to_string(),
            _ => "not a readable PEM private key (PKCS#8, PKCS#1 or SEC1)".into(),
        },
    })?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Pair(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Pair(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = std::env::temp_dir().join(format!("revline-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = server_config(&dir.join("nope.pem"), &empty).unwrap_err();
        assert!(
            matches!(err, TlsError::Certificate { .. }),
            "a missing certificate file is the certificate's error: {err}"
        );
        let err = server_config(&empty, &empty).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "certificate file {}: no PEM certificate in it",
                empty.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
