//! `revline backfill --since <date|duration>`: fetches events Stripe generated but revline
//! never received (an outage longer than Stripe's three days of retries, an endpoint
//! added late, Stripe's own `event_generation_failure`) from `GET /v1/events` and appends
//! each to the event log like a webhook, marked `revline-endpoint: backfill` (it carries no
//! signature: it came from the API with the key). The reconciler then treats it like any
//! other event; events come in the API version of their creation, which the decoder reads.
//!
//! Nothing is counted twice: the log and the warehouse keep one copy per event id, so a
//! backfill over events already received changes nothing. Stripe keeps events for 30 days,
//! so `--since` further back is an error rather than a silent gap.
//!
//! Pages go newest to oldest below a fixed upper bound (the first run's start), so a page
//! never shifts under the cursor; after each page is durable the cursor is saved in
//! `<data dir>/backfill/<account>.json`, and a killed or failed backfill run again continues
//! after the last saved page instead of starting over (down to the older of the two
//! `--since` bounds). The file is removed when the backfill completes.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use eventlog::embedded::EmbeddedLog;
use eventlog::kafka::{KafkaLog, ProducerSettings};
use eventlog::{Appended, EventLog};
use reconcile::enrich::{ApiClient, StripeApi};
use schemas::{Envelope, LogRecord};
use serde::{Deserialize, Serialize};

use crate::backends;
use crate::config::Config;
use crate::cursor_file;
use crate::UsageError;

/// The `revline-endpoint` of backfilled events.
pub const BACKFILL_ENDPOINT: &str = "backfill";
/// How far back Stripe's `GET /v1/events` reaches.
const RETENTION_SECS: i64 = 30 * 86_400;
/// Events per page: Stripe's maximum.
const PAGE_LIMIT: usize = 100;

#[derive(clap::Args)]
pub struct BackfillArgs {
    /// Oldest events to fetch: a date (`2026-11-20`), an instant (`2026-11-20T06:00:00Z`) or
    /// a duration back from now (`36h`, `3d`, `2w`); 30 days at most.
    #[arg(long)]
    since: String,
    /// A connected account to backfill (`acct_…`, sent as `Stripe-Account`); repeat for
    /// several. Without it, the platform's own events.
    #[arg(long = "account")]
    accounts: Vec<String>,
    /// Only events Stripe failed to deliver to a webhook endpoint (`delivery_success=false`).
    #[arg(long)]
    undelivered: bool,
}

pub async fn run(config: Config, args: BackfillArgs) -> anyhow::Result<()> {
    let Some(api) = config.stripe.clone() else {
        bail!(
            "invalid configuration: STRIPE_API_KEY: `revline backfill` lists events with \
             Stripe's API, so it needs a key (a restricted key with read access to events is enough)"
        );
    };
    let now = now_secs();
    let since = parse_since(&args.since, now).map_err(UsageError)?;
    if let Some(bad) = args.accounts.iter().find(|a| !valid_account(a)) {
        return Err(UsageError(format!(
            "--account {bad}: must be a connected account id like acct_1A2b3C"
        ))
        .into());
    }
    let accounts: Vec<Option<&str>> = if args.accounts.is_empty() {
        vec![None]
    } else {
        args.accounts.iter().map(|a| Some(a.as_str())).collect()
    };
    let job = Job {
        since,
        now,
        undelivered: args.undelivered,
        state_dir: config.data_dir.join("backfill"),
    };
    match &config.kafka {
        Some(k) => {
            let log = KafkaLog::new(ProducerSettings {
                connection: backends::kafka_connection(k),
                topic: k.topic.clone(),
                dedupe_cache: k.dedupe_cache,
                message_timeout_ms: k.message_timeout_ms,
                max_record_bytes: config.body_limit_bytes,
            })
            .context("cannot create the kafka producer")?;
            let result = job.run_all(&log, api, &accounts).await;
            log.close().await;
            result
        }
        None => {
            let log = EmbeddedLog::open_limited(
                &config.data_dir,
                config.body_limit_bytes,
                config.log_max_mb.map(|mb| mb << 20),
            )?;
            let result = job.run_all(&log, api, &accounts).await;
            log.close().await;
            result
        }
    }
}

struct Job {
    since: i64,
    /// Upper bound of a fresh run: events created later arrive as webhooks.
    now: i64,
    undelivered: bool,
    state_dir: PathBuf,
}

/// Where a backfill of one account stands, saved after every durable page.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Cursor {
    since: i64,
    until: i64,
    undelivered: bool,
    /// The oldest event of the last saved page: the next page starts after it.
    starting_after: Option<String>,
    pages: u64,
    appended: u64,
    already_there: u64,
}

/// One page of `GET /v1/events`, each event's JSON kept as Stripe sent it.
#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    data: Vec<&'a serde_json::value::RawValue>,
    has_more: bool,
}

impl Job {
    async fn run_all<L: EventLog>(
        &self,
        log: &L,
        api: StripeApi,
        accounts: &[Option<&str>],
    ) -> anyhow::Result<()> {
        let mut client = ApiClient::new(api)?;
        for account in accounts {
            self.run(log, &mut client, *account).await?;
        }
        Ok(())
    }

    async fn run<L: EventLog>(
        &self,
        log: &L,
        client: &mut ApiClient,
        account: Option<&str>,
    ) -> anyhow::Result<()> {
        let who = account.unwrap_or("platform");
        let path = self.state_dir.join(format!("{who}.json"));
        let mut cursor = match cursor_file::read::<Cursor>(&path, "remove it to start over")? {
            // A duration (`3d`) means another instant at every run: continue down to the
            // older of the two bounds; the pages already walked stay walked.
            Some(mut saved) if saved.undelivered == self.undelivered => {
                eprintln!(
                    "backfill {who}: continuing after page {} ({} events appended so far)",
                    saved.pages, saved.appended
                );
                saved.since = saved.since.min(self.since);
                saved
            }
            _ => Cursor {
                since: self.since,
                until: self.now,
                undelivered: self.undelivered,
                starting_after: None,
                pages: 0,
                appended: 0,
                already_there: 0,
            },
        };
        let terminal = std::io::stderr().is_terminal();
        loop {
            let mut query = format!(
                "/v1/events?limit={PAGE_LIMIT}&created%5Bgte%5D={}&created%5Blte%5D={}",
                cursor.since, cursor.until
            );
            if cursor.undelivered {
                query += "&delivery_success=false";
            }
            if let Some(after) = &cursor.starting_after {
                query += &format!("&starting_after={after}");
            }
            let page_no = cursor.pages + 1;
            let body = client.get(&query, account).await.with_context(|| {
                format!(
                    "backfill {who}: page {page_no} of GET /v1/events failed; pages 1 to {} \
                     are in the event log, run the same command again to continue",
                    cursor.pages
                )
            })?;
            let page: Page<'_> = serde_json::from_slice(&body).with_context(|| {
                format!("backfill {who}: page {page_no} of GET /v1/events is not an event list")
            })?;
            let received_at_ms = now_secs() * 1000;
            let mut oldest = None;
            for event in &page.data {
                let body = event.get().as_bytes().to_vec();
                let env = Envelope::parse(&body, None);
                if env.event_id.is_empty() {
                    bail!("backfill {who}: page {page_no} holds an event without an id");
                }
                oldest = Some((env.event_id.clone(), env.created));
                let record = LogRecord::new(body, &env, BACKFILL_ENDPOINT, received_at_ms);
                match log.append(record).await.with_context(|| {
                    format!(
                        "backfill {who}: cannot append event {} to the event log",
                        env.event_id
                    )
                })? {
                    Appended::Stored => cursor.appended += 1,
                    Appended::Duplicate => cursor.already_there += 1,
                }
            }
            cursor.pages = page_no;
            if let Some((id, _)) = &oldest {
                cursor.starting_after = Some(id.clone());
            }
            cursor_file::write(&path, &cursor)?;
            let back_to = match oldest.and_then(|(_, created)| created) {
                Some(created) => format!(", back to {}", reports::calendar::format_utc(created)),
                None => String::new(),
            };
            let line = format!(
                "backfill {who}: page {} — {} events appended, {} already in the log{back_to}",
                cursor.pages, cursor.appended, cursor.already_there
            );
            if terminal {
                eprint!("\r{line}");
                let _ = std::io::stderr().flush();
            } else {
                eprintln!("{line}");
            }
            if !page.has_more || page.data.is_empty() {
                break;
            }
        }
        if terminal {
            eprintln!();
        }
        cursor_file::remove(&path)?;
        println!(
            "backfill {who}: done: {} events appended, {} already in the log, {} pages",
            cursor.appended, cursor.already_there, cursor.pages
        );
        Ok(())
    }
}

/// `--since`: a date, an instant or a duration back from `now`; within Stripe's 30 days.
fn parse_since(text: &str, now: i64) -> Result<i64, String> {
    let text = text.trim();
    let unit = |c: char| match c {
        'm' => Some(60),
        'h' => Some(3_600),
        'd' => Some(86_400),
        'w' => Some(7 * 86_400),
        _ => None,
    };
    let since = if let Some(scale) = text.chars().last().and_then(unit) {
        let n: i64 = text[..text.len() - 1].parse().map_err(|_| {
            format!("--since {text}: a duration is a whole number and m, h, d or w, like 3d")
        })?;
        now - n.saturating_mul(scale)
    } else if text.len() == 10 {
        reports::calendar::parse_date(text)
            .ok_or_else(|| format!("--since {text}: not a date like 2026-11-20"))?
    } else {
        reports::calendar::parse_utc(text).ok_or_else(|| {
            format!(
                "--since {text}: must be a date (2026-11-20), an instant (2026-11-20T06:00:00Z) \
                 or a duration (36h, 3d, 2w)"
            )
        })?
    };
    if since < now - RETENTION_SECS {
        return Err(format!(
            "--since {text}: Stripe keeps events for 30 days, so nothing before {} can be \
             fetched; older gaps need `revline replay` from the warehouse or Stripe's exports",
            reports::calendar::format_utc(now - RETENTION_SECS)
        ));
    }
    if since > now {
        return Err(format!("--since {text}: is in the future"));
    }
    Ok(since)
}

fn valid_account(account: &str) -> bool {
    account
        .strip_prefix("acct_")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000;

    #[test]
    fn since_takes_dates_instants_and_durations_within_thirty_days() {
        assert_eq!(parse_since("3d", NOW), Ok(NOW - 3 * 86_400));
        assert_eq!(parse_since("36h", NOW), Ok(NOW - 36 * 3_600));
        assert_eq!(parse_since("2w", NOW), Ok(NOW - 14 * 86_400));
        assert_eq!(parse_since("30d", NOW), Ok(NOW - RETENTION_SECS));
        let day = reports::calendar::format_utc(NOW - 86_400);
        let date = &day[..10];
        let midnight = reports::calendar::parse_utc(&format!("{date}T00:00:00Z")).unwrap();
        assert_eq!(parse_since(date, NOW), Ok(midnight));
        assert_eq!(parse_since(&day, NOW), Ok(NOW - 86_400));

        let err = parse_since("31d", NOW).unwrap_err();
        assert!(err.contains("Stripe keeps events for 30 days"), "{err}");
        assert!(parse_since("2020-01-01", NOW)
            .unwrap_err()
            .contains("30 days"));
        assert!(parse_since("-1d", NOW).unwrap_err().contains("future"));
        assert!(parse_since("xd", NOW).unwrap_err().contains("whole number"));
        assert!(parse_since("yesterday", NOW)
            .unwrap_err()
            .contains("must be a date"));
    }

    #[test]
    fn accounts_are_checked() {
        assert!(valid_account("acct_1A2b3C"));
        assert!(!valid_account("acct_"));
        assert!(!valid_account("cus_123"));
        assert!(!valid_account("acct_1/../x"));
    }
}
