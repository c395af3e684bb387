//! The first-run signing secret: when no secret is configured for `/webhooks/stripe`,
//! `revline serve` generates one, stores it in the data dir readable only by its owner,
//! and prints it once. Unsigned events are never accepted, first run or not.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ingest::signature::WebhookSecret;

pub const FILE_NAME: &str = "webhook_secret";

/// The stored secret, generating and announcing it if there is none yet.
pub fn load_or_generate(
    data_dir: &Path,
    listen: std::net::SocketAddr,
) -> anyhow::Result<WebhookSecret> {
    let path = data_dir.join(FILE_NAME);
    match load(data_dir)? {
        Some(secret) => {
            tracing::info!(path = %path.display(), "using the signing secret stored in the data dir");
            Ok(secret)
        }
        None => generate(data_dir, &path, listen),
    }
}

/// The stored secret, `None` when there is none yet.
pub fn load(data_dir: &Path) -> anyhow::Result<Option<WebhookSecret>> {
    let path = data_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => WebhookSecret::new(text.trim_end_matches(['\n', '\r']))
            .map(Some)
            .map_err(|e| anyhow::anyhow!("the signing secret stored in {} {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn generate(
    data_dir: &Path,
    path: &PathBuf,
    listen: std::net::SocketAddr,
) -> anyhow::Result<WebhookSecret> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let secret = WebhookSecret::generate()
        .map_err(|e| anyhow::anyhow!("cannot read random bytes for a signing secret: {e}"))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(format!("{}\n", secret.expose()).as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    if WebhookSecret::new(secret.expose()).is_err() {
        bail!("generated an invalid secret");
    }
    // Printed once, to stdout (not the logs), so the operator can copy it.
    println!(
        "\nNo STRIPE_WEBHOOK_SECRET is set, so revline generated a signing secret and saved it to\n\
         {path} (readable only by you). It is shown this once:\n\n    {secret}\n\n\
         Use it as the signing secret of a Stripe webhook endpoint that posts to\n\
         http://{listen}/webhooks/stripe. With the Stripe CLI instead, run\n\
         `stripe listen --forward-to localhost:{port}/webhooks/stripe` and restart revline with\n\
         STRIPE_WEBHOOK_SECRET set to the whsec_… that command prints (the CLI signs with its own secret).\n",
        path = path.display(),
        secret = secret.expose(),
        port = listen.port(),
    );
    tracing::info!(path = %path.display(), "generated a webhook signing secret");
    Ok(secret)
}
