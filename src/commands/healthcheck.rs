//! `revline healthcheck`: asks a running revline on this machine whether it is ready, for
//! container health checks (the runtime image has no curl). It reads the same
//! configuration as the server, so it finds the listener (`REVLINE_LISTEN`, HTTPS when
//! `REVLINE_TLS_CERT_FILE` is set) without being told; exit status 0 when `/readyz`
//! answers 200, 1 otherwise, with the reason on stderr.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::config::Config;

#[derive(clap::Args)]
pub struct HealthcheckArgs {
    /// Ask this URL instead of the configured listener's `/readyz`.
    #[arg(long)]
    url: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
}

pub async fn run(config: Config, args: HealthcheckArgs) -> anyhow::Result<()> {
    let url = args
        .url
        .unwrap_or_else(|| readyz_url(config.listen, config.tls.is_some()));
    // The server's certificate names its public host, not loopback: this probe checks that
    // the server answers, the certificate is checked by the clients that matter.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_secs))
        .danger_accept_invalid_certs(true)
        .build()
        .context("cannot build the HTTP client")?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("{url}: no answer"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!("{url}: {status} {}", body.trim());
    }
    Ok(())
}

/// The `/readyz` URL of a listener bound to `listen`: a wildcard address is asked on
/// loopback.
fn readyz_url(listen: SocketAddr, https: bool) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{}/readyz", SocketAddr::new(ip, listen.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_asked_on_loopback() {
        let url = |s: &str, https| readyz_url(s.parse().unwrap(), https);
        assert_eq!(url("0.0.0.0:8080", false), "http://127.0.0.1:8080/readyz");
        assert_eq!(url("[::]:8443", true), "https://[::1]:8443/readyz");
        assert_eq!(url("10.0.0.5:9100", false), "http://10.0.0.5:9100/readyz");
    }
}
