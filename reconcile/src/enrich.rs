//! Optional enrichment from Stripe's API: what webhooks do not carry. Today: the balance
//! transaction of each charge and refund (`GET /v1/balance_transactions/{id}`), which holds
//! Stripe's fee, the net amount, the settlement currency and the exchange rate. Without
//! `STRIPE_API_KEY` the `balance_transactions` table only holds what payloads carry
//! (disputes' expanded transactions), so fee and net columns of charges and refunds stay
//! empty.
//!
//! It runs beside the consumer, never in its way: a periodic sweep asks the warehouse which
//! referenced transactions are missing, fetches them within a rate limit, retries 429, 5xx
//! and network errors with backoff (honouring `Retry-After`), and writes the rows. The
//! warehouse is the to-do list, so nothing queued is lost on a crash.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use schemas::facts::{BalanceTransactionRow, FactSet};
use schemas::stripe::decode_balance_transaction;
use tokio::sync::watch;
use warehouse::{MissingBalanceTransaction, Warehouse};

use crate::matcher::payments::balance_transaction_row;
use crate::metrics::{OutcomeLabel, ReconcileMetrics};

/// Stripe API access.
#[derive(Clone)]
pub struct StripeApi {
    /// `sk_…` or `rk_…`; never logged.
    pub api_key: String,
    /// `https://api.stripe.com`, or a test double.
    pub base_url: String,
    pub requests_per_second: u32,
    /// Time between sweeps.
    pub interval: Duration,
}

impl std::fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeApi")
            .field("api_key", &"[redacted]")
            .field("base_url", &self.base_url)
            .field("requests_per_second", &self.requests_per_second)
            .finish()
    }
}

/// How one fetch ended.
enum Fetched {
    Row(Box<BalanceTransactionRow>),
    /// 404 or an undecodable object: do not ask again in this process.
    Skip(String),
    /// Still failing after the retries: ask again at the next sweep.
    Later(String),
    /// The key was refused: enrichment cannot work.
    Refused(u16),
}

/// Attempts per balance transaction within one sweep.
const MAX_ATTEMPTS: usize = 5;
const PAGE: usize = 1_000;

struct Client {
    http: reqwest::Client,
    api: StripeApi,
    next_slot: tokio::time::Instant,
}

impl Client {
    async fn wait_for_slot(&mut self) {
        let gap = Duration::from_secs(1) / self.api.requests_per_second.max(1);
        let now = tokio::time::Instant::now();
        let slot = self.next_slot.max(now);
        self.next_slot = slot + gap;
        tokio::time::sleep_until(slot).await;
    }

    async fn fetch(&mut self, missing: &MissingBalanceTransaction) -> Fetched {
        let url = format!(
            "{}/v1/balance_transactions/{}",
            self.api.base_url.trim_end_matches('/'),
            missing.id
        );
        // 0.5 s doubling to 30 s between attempts, unless Stripe says how long to wait.
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(MAX_ATTEMPTS - 1)
            .build();
        let mut last;
        loop {
            self.wait_for_slot().await;
            let mut request = self.http.get(&url).bearer_auth(&self.api.api_key);
            if let Some(account) = &missing.account {
                request = request.header("Stripe-Account", account);
            }
            let mut retry_after = None;
            match request.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(|secs| Duration::from_secs(secs.min(30)));
                    match status {
                        200 => {
                            let body = match resp.bytes().await {
                                Ok(body) => body,
                                Err(err) => {
                                    last = err.without_url().to_string();
                                    match delays.next() {
                                        Some(delay) => {
                                            tokio::time::sleep(delay).await;
                                            continue;
                                        }
                                        None => break,
                                    }
                                }
                            };
                            return match decode_balance_transaction(&body) {
                                Ok(bt) => Fetched::Row(Box::new(balance_transaction_row(
                                    &bt,
                                    missing.account.clone(),
                                    missing.livemode,
                                    missing.source_event_id.clone(),
                                ))),
                                Err(err) => {
                                    Fetched::Skip(format!("undecodable balance transaction: {err}"))
                                }
                            };
                        }
                        401 | 403 => return Fetched::Refused(status),
                        404 => return Fetched::Skip("not found".into()),
                        429 | 500..=599 => last = format!("HTTP {status}"),
                        other => return Fetched::Skip(format!("HTTP {other}")),
                    }
                }
                // `without_url`: error texts never carry more than they must.
                Err(err) => last = err.without_url().to_string(),
            }
            match delays.next() {
                Some(delay) => tokio::time::sleep(retry_after.unwrap_or(delay)).await,
                None => break,
            }
        }
        Fetched::Later(last)
    }
}

/// Runs sweeps until `shutdown` turns true. Returns early (with a log line) if Stripe
/// refuses the key; warehouse errors wait for the next sweep.
pub async fn run<W: Warehouse>(
    api: StripeApi,
    warehouse: Arc<W>,
    metrics: ReconcileMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("revline/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(http) => http,
        Err(err) => {
            tracing::error!(error = %err, "cannot build the Stripe API client; enrichment is off");
            return;
        }
    };
    let interval = api.interval;
    let mut client = Client {
        http,
        api,
        next_slot: tokio::time::Instant::now(),
    };
    tracing::info!(base_url = %client.api.base_url, "enrichment on: fetching balance transactions from Stripe's API");
    let mut skipped: HashSet<String> = HashSet::new();
    loop {
        'sweep: loop {
            let missing = match warehouse
                .missing_balance_transactions(PAGE + skipped.len())
                .await
            {
                Ok(missing) => missing,
                Err(err) => {
                    tracing::warn!(error = %err, "enrichment: cannot list missing balance transactions");
                    break 'sweep;
                }
            };
            let todo: Vec<_> = missing
                .into_iter()
                .filter(|m| !skipped.contains(&m.id))
                .take(PAGE)
                .collect();
            if todo.is_empty() {
                break 'sweep;
            }
            let mut rows = Vec::new();
            let mut progress = false;
            for m in &todo {
                if *shutdown.borrow() {
                    break;
                }
                let outcome = match client.fetch(m).await {
                    Fetched::Row(row) => {
                        rows.push(*row);
                        progress = true;
                        "fetched"
                    }
                    Fetched::Skip(reason) => {
                        tracing::warn!(balance_transaction = %m.id, %reason, "enrichment: balance transaction skipped");
                        skipped.insert(m.id.clone());
                        progress = true;
                        "skipped"
                    }
                    Fetched::Later(reason) => {
                        tracing::warn!(balance_transaction = %m.id, %reason, "enrichment: Stripe API unavailable; will retry");
                        "failed"
                    }
                    Fetched::Refused(status) => {
                        tracing::error!(status, "enrichment: Stripe refused the API key (STRIPE_API_KEY); enrichment stops");
                        return;
                    }
                };
                metrics
                    .enrichment
                    .get_or_create(&OutcomeLabel { outcome })
                    .inc();
            }
            if !rows.is_empty() {
                let facts = FactSet {
                    balance_transactions: rows,
                    ..FactSet::default()
                };
                if let Err(err) = warehouse.write(Arc::new(facts)).await {
                    tracing::warn!(error = %err, "enrichment: cannot write balance transactions; will retry");
                    break 'sweep;
                }
            }
            if !progress || *shutdown.borrow() {
                break 'sweep;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = crate::consumer::stopped(&mut shutdown) => return,
        }
    }
}
