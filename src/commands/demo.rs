//! `revline demo`: generates a Stripe event history ([`crate::demo`]), posts it signed to a
//! running revline (shuffled, some events twice, as Stripe may deliver), waits until the
//! configured warehouse has reconciled it, and prints the `mrr` report of it.
//!
//! It signs with the configuration's `STRIPE_WEBHOOK_SECRET`, else the secret `revline
//! serve` stored in the data dir on its first run, and it reads the configured warehouse
//! (ClickHouse when `REVLINE_CLICKHOUSE_URL` is set, else the embedded one): run it with the
//! same configuration as the server. The events are test mode, so they never mix with live
//! figures; when the warehouse already holds events the demo stops unless given `--yes`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use futures_util::{stream, StreamExt};
use ingest::signature::{sign, WebhookSecret};
use reports::{Format, Params, ReportName, Reports};
use warehouse::{AggregateQuery, Filter, Warehouse};

use crate::config::Config;
use crate::demo::{self, Event};
use crate::{backends, commands, secret_file, UsageError};

/// Requests in flight at once.
const CONCURRENCY: usize = 8;
/// Attempts per event when the server answers 5xx or cannot be reached.
const ATTEMPTS: u32 = 6;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Webhook URL to post to (default: this configuration's listener, /webhooks/stripe).
    #[arg(long)]
    pub url: Option<String>,
    /// Customers in the generated business (1–100000).
    #[arg(long, default_value_t = 50)]
    pub customers: usize,
    /// Months of history, ending now (1–120).
    #[arg(long, default_value_t = 12)]
    pub months: u32,
    /// Seed of the generator: the same seed gives the same history.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Add the demo's events even though the warehouse already holds events.
    #[arg(long)]
    pub yes: bool,
    /// How long to wait for reconcile before printing what is there (seconds).
    #[arg(long, default_value_t = 300)]
    pub wait_secs: u64,
    /// Write the generated events to this file instead of posting them: one event body
    /// per line (JSON lines), each event once, in the order they happened. For load and
    /// fault tests, or another tool; needs no server and no secret.
    #[arg(long, value_name = "FILE")]
    pub write: Option<std::path::PathBuf>,
}

pub async fn run(config: Config, args: DemoArgs) -> anyhow::Result<()> {
    if !(1..=100_000).contains(&args.customers) {
        return Err(UsageError(format!(
            "--customers: {} is not between 1 and 100000",
            args.customers
        ))
        .into());
    }
    if !(1..=120).contains(&args.months) {
        return Err(UsageError(format!(
            "--months: {} is not between 1 and 120",
            args.months
        ))
        .into());
    }
    if let Some(path) = &args.write {
        return write_events(path, &args, backends::report_clock(&config)());
    }
    let secret = match config.default_secrets.first() {
        Some(secret) => secret.clone(),
        None => secret_file::load(&config.data_dir)?.ok_or_else(|| {
            anyhow::anyhow!(
                "no signing secret: set STRIPE_WEBHOOK_SECRET to the server's, or start \
                 `revline serve` once with this data dir ({}) so that it generates one",
                config.data_dir.display()
            )
        })?,
    };
    let url = args.url.clone().unwrap_or_else(|| {
        let mut addr = config.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}/webhooks/stripe")
    });
    let now = backends::report_clock(&config)();
    // The server may not have created the tables yet (it migrates at start, as the demo
    // does here: migrating twice is harmless).
    match &config.clickhouse {
        Some(ch) => {
            let clickhouse = backends::migrated(backends::clickhouse(ch)?).await?;
            demo(Arc::new(clickhouse), &config, &args, &secret, &url, now).await
        }
        None => {
            let embedded = backends::migrated(backends::embedded(&config)?).await?;
            demo(Arc::new(embedded), &config, &args, &secret, &url, now).await
        }
    }
}

/// Writes the generated history to `path` as JSON lines.
fn write_events(path: &std::path::Path, args: &DemoArgs, now: i64) -> anyhow::Result<()> {
    use std::io::Write;
    let events = demo::generate(&demo::Options {
        customers: args.customers,
        months: args.months,
        seed: args.seed,
        now,
    });
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for event in &events {
        out.write_all(&event.body)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "revline demo: wrote {} events ({} customers, {} months) to {}",
        events.len(),
        args.customers,
        args.months,
        path.display()
    );
    Ok(())
}

/// Events of test mode in the warehouse.
async fn test_mode_events<W: Warehouse>(w: &W) -> anyhow::Result<u64> {
    let query = AggregateQuery {
        filter: Filter {
            livemode: Some(false),
            ..Filter::default()
        },
        ..AggregateQuery::count("stripe_events")
    };
    let rows = w
        .aggregate(&query)
        .await
        .context("cannot read the warehouse")?;
    Ok(rows.first().map_or(0, |r| r.count))
}

async fn demo<W: Warehouse>(
    warehouse: Arc<W>,
    config: &Config,
    args: &DemoArgs,
    secret: &WebhookSecret,
    url: &str,
    now: i64,
) -> anyhow::Result<()> {
    let held = warehouse
        .count("stripe_events")
        .await
        .context("cannot read the warehouse")?;
    if held > 0 && !args.yes {
        return Err(UsageError(format!(
            "the warehouse already holds {held} events; the demo would add test-mode events \
             (ids evt_demo_…) to them. Run `revline demo --yes` to go ahead"
        ))
        .into());
    }
    let before = test_mode_events(&*warehouse).await?;
    let events = demo::generate(&demo::Options {
        customers: args.customers,
        months: args.months,
        seed: args.seed,
        now,
    });
    let sent = demo::delivery(&events, args.seed);
    eprintln!(
        "revline demo: posting {} events ({} customers, {} months; {} sent twice, in shuffled order) to {url}",
        events.len(),
        args.customers,
        args.months,
        sent.len() - events.len()
    );
    let fresh = post_all(url, secret, &sent).await?;
    eprintln!(
        "revline demo: all acknowledged ({fresh} new); waiting for reconcile into the warehouse"
    );
    let target = before + fresh;
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    let mut last_report = Instant::now();
    loop {
        let seen = test_mode_events(&*warehouse).await?;
        if seen >= target {
            break;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "revline: warning: only {} of {fresh} events reconciled after {}s (is a \
                 reconciler running against this warehouse?); the report shows what is there",
                seen.saturating_sub(before),
                args.wait_secs
            );
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "revline demo: {} of {fresh} reconciled",
                seen.saturating_sub(before)
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let reports = Reports::new(warehouse, backends::report_clock(config));
    let params = Params {
        livemode: Some(false),
        format: Some(Format::Table),
        ..Params::default()
    };
    commands::report::print(&reports, ReportName::Mrr, &params).await?;
    eprintln!(
        "revline demo: more with `revline report <mrr-movements|revenue|invoices|customers|\
         revenue-recognition|ar-aging> --livemode false`"
    );
    if let Some(admin) = config.admin.listen {
        eprintln!("revline demo: charts on the dashboard of the server: http://{admin}/");
    }
    Ok(())
}

/// Posts every event signed; returns how many the server had not seen before.
async fn post_all(url: &str, secret: &WebhookSecret, sent: &[&Event]) -> anyhow::Result<u64> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build an HTTP client")?;
    let results: Vec<anyhow::Result<bool>> = stream::iter(sent.iter())
        .map(|event| post(&client, url, secret, event))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut fresh = 0;
    for result in results {
        fresh += u64::from(result?);
    }
    Ok(fresh)
}

/// Posts one event until it is acknowledged; `true` when it was new to the server.
async fn post(
    client: &reqwest::Client,
    url: &str,
    secret: &WebhookSecret,
    event: &Event,
) -> anyhow::Result<bool> {
    let mut wait = Duration::from_millis(250);
    for attempt in 1..=ATTEMPTS {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("stripe-signature", sign(secret, now, &event.body))
            .body(event.body.clone())
            .send()
            .await;
        let retry_reason = match response {
            Ok(r) if r.status().is_success() => {
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                return Ok(body["duplicate"] != serde_json::Value::Bool(true));
            }
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                format!("{}", r.status())
            }
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                let hint = if status.as_u16() == 400 && body.contains("signature") {
                    " (does the server use this configuration's signing secret?)"
                } else {
                    ""
                };
                bail!("{url} refused event {}: {status} {body}{hint}", event.id);
            }
            Err(err) if attempt == 1 && err.is_connect() => {
                bail!("cannot reach {url}: is `revline serve` running? ({err})")
            }
            Err(err) => err.to_string(),
        };
        if attempt == ATTEMPTS {
            bail!(
                "{url} did not acknowledge event {} after {ATTEMPTS} attempts: {retry_reason}",
                event.id
            );
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    unreachable!("the loop returns or fails on its last attempt")
}
