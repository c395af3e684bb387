//! Optional enrichment from Stripe's API: what webhooks do not carry.
//!
//! - The balance transaction of each charge and refund (`GET /v1/balance_transactions/{id}`),
//!   which holds Stripe's fee, the net amount, the settlement currency and the exchange rate;
//!   appended to the event log as an event of its own (`revline.balance_transaction`), like
//!   everything below, so `revline replay` rebuilds it without the API (written to the
//!   warehouse directly only where no log is at hand).
//! - The balance transactions of each automatic payout once Stripe has reconciled it
//!   (`GET /v1/balance_transactions?payout=po_…`, paged): appended to the event log as
//!   records of their own ([`schemas::stripe::fetched`]), which the consumer turns into
//!   `payout_items` and `balance_transactions` rows like any event, so `revline replay`
//!   rebuilds them without the API.
//! - The remaining lines of each finalized invoice whose webhook carried only the first page
//!   (`lines.has_more`; `GET /v1/invoices/{id}/lines`, paged), appended to the log the same
//!   way and reconciled into `invoice_lines`.
//!
//! Without `STRIPE_API_KEY` the `balance_transactions` table only holds what payloads carry
//! (disputes' expanded transactions), so fee and net columns of charges and refunds stay
//! empty and payouts are not itemised.
//!
//! It runs beside the consumer, never in its way: a periodic sweep asks the warehouse what is
//! missing, fetches it within a rate limit, retries 429, 5xx and network errors with backoff
//! (honouring `Retry-After`). The warehouse is the to-do list, so nothing queued is lost on a
//! crash.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use eventlog::{Appended, LogError};
use schemas::facts::{BalanceTransactionRow, FactSet, InvoiceRow, PayoutRow, TieRow};
use schemas::stripe::decode_balance_transaction;
use schemas::stripe::fetched::{
    balance_transaction_event, invoice_lines_event, payout_items_event, refetched_event,
    InvoiceContext, FETCHED_ENDPOINT, FETCH_API_VERSION,
};
use schemas::{Envelope, LogRecord};
use tokio::sync::watch;
use warehouse::{Filter, MissingBalanceTransaction, Warehouse};

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

/// Appends a record to the event log the consumer reads (the embedded log or the Kafka
/// topic), resolving once it is durable.
pub type Appender = Arc<
    dyn Fn(LogRecord) -> Pin<Box<dyn Future<Output = Result<Appended, LogError>> + Send>>
        + Send
        + Sync,
>;

/// An [`Appender`] onto `log`.
pub fn appender<L: eventlog::EventLog>(log: Arc<L>) -> Appender {
    Arc::new(move |record| {
        let log = log.clone();
        Box::pin(async move { log.append(record).await })
    })
}

/// How one request ended.
enum Got<T> {
    Ok(T),
    /// 404 or an undecodable object: do not ask again in this process.
    Skip(String),
    /// Still failing after the retries: ask again at the next sweep.
    Later(String),
    /// The key was refused: enrichment cannot work.
    Refused(u16),
}

impl<T> Got<T> {
    /// The value, or what stopped it, as a `Got` of the caller's type.
    fn ok<U>(self) -> Result<T, Got<U>> {
        match self {
            Got::Ok(value) => Ok(value),
            Got::Skip(why) => Err(Got::Skip(why)),
            Got::Later(why) => Err(Got::Later(why)),
            Got::Refused(status) => Err(Got::Refused(status)),
        }
    }
}

/// Balance transactions per page of a payout's list (Stripe's maximum).
const PAGE_LIMIT: usize = 100;

/// Attempts per balance transaction within one sweep.
const MAX_ATTEMPTS: usize = 5;
const PAGE: usize = 1_000;

struct Client {
    http: reqwest::Client,
    api: StripeApi,
    next_slot: tokio::time::Instant,
}

/// Why a request to Stripe's API gave no body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 or 403: the key is wrong or lacks the permission.
    #[error("Stripe refused the API key (HTTP {0}): check STRIPE_API_KEY and its permissions")]
    Refused(u16),
    /// An answer that asking again will not change (404, 400, …).
    #[error("{0}")]
    Failed(String),
    /// 429, 5xx or network errors, still failing after the retries.
    #[error("{0}, still after {MAX_ATTEMPTS} attempts")]
    Unavailable(String),
}

/// Stripe's API for other commands (`revline backfill`): the enrichment's client, with its
/// rate limit, retries of 429, 5xx and network errors (honouring `Retry-After`) and the
/// `Stripe-Version` fetched records are decoded with.
pub struct ApiClient(Client);

impl ApiClient {
    pub fn new(api: StripeApi) -> Result<Self, ApiError> {
        let http = http_client().map_err(|e| ApiError::Failed(e.without_url().to_string()))?;
        Ok(ApiClient(Client {
            http,
            api,
            next_slot: tokio::time::Instant::now(),
        }))
    }

    /// `GET {base}{path_and_query}` on behalf of `account` (a Connect account) when given.
    pub async fn get(
        &mut self,
        path_and_query: &str,
        account: Option<&str>,
    ) -> Result<Vec<u8>, ApiError> {
        let url = format!("{}{path_and_query}", self.0.base());
        match self.0.get(&url, account).await {
            Got::Ok(body) => Ok(body),
            Got::Skip(why) => Err(ApiError::Failed(why)),
            Got::Later(why) => Err(ApiError::Unavailable(why)),
            Got::Refused(status) => Err(ApiError::Refused(status)),
        }
    }
}

fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("revline/", env!("CARGO_PKG_VERSION")))
        .build()
}

impl Client {
    async fn wait_for_slot(&mut self) {
        let gap = Duration::from_secs(1) / self.api.requests_per_second.max(1);
        let now = tokio::time::Instant::now();
        let slot = self.next_slot.max(now);
        self.next_slot = slot + gap;
        tokio::time::sleep_until(slot).await;
    }

    /// `GET url` with the key (and the connected account), retried with backoff: the body
    /// of a 200.
    async fn get(&mut self, url: &str, account: Option<&str>) -> Got<Vec<u8>> {
        // 0.5 s doubling to 30 s between attempts, unless Stripe says how long to wait.
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(MAX_ATTEMPTS - 1)
            .build();
        let mut last;
        loop {
            self.wait_for_slot().await;
            // The objects' shape depends on the API version: ask for the one fetched
            // records are decoded with.
            let mut request = self
                .http
                .get(url)
                .bearer_auth(&self.api.api_key)
                .header("Stripe-Version", FETCH_API_VERSION);
            if let Some(account) = account {
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
                        200 => match resp.bytes().await {
                            Ok(body) => return Got::Ok(body.to_vec()),
                            Err(err) => last = err.without_url().to_string(),
                        },
                        401 | 403 => return Got::Refused(status),
                        404 => return Got::Skip("not found".into()),
                        429 | 500..=599 => last = format!("HTTP {status}"),
                        other => return Got::Skip(format!("HTTP {other}")),
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
        Got::Later(last)
    }

    fn base(&self) -> &str {
        self.api.base_url.trim_end_matches('/')
    }

    /// The balance transaction: appended to the log when there is one (`append`), so a
    /// replay needs no API, else as a row to write directly.
    async fn fetch(
        &mut self,
        missing: &MissingBalanceTransaction,
        append: Option<&Appender>,
    ) -> Got<Option<BalanceTransactionRow>> {
        let url = format!("{}/v1/balance_transactions/{}", self.base(), missing.id);
        let body = match self.get(&url, missing.account.as_deref()).await.ok() {
            Ok(body) => body,
            Err(stop) => return stop,
        };
        if let Some(append) = append {
            // Checked first, so that what is appended decodes.
            if let Err(err) = decode_balance_transaction(&body) {
                return Got::Skip(format!("undecodable balance transaction: {err}"));
            }
            let text = String::from_utf8_lossy(&body);
            let record = balance_transaction_event(
                &missing.id,
                missing.account.as_deref(),
                missing.livemode == 1,
                now_secs(),
                &text,
            );
            let env = Envelope::parse(&record, None);
            let record = LogRecord::new(record, &env, FETCHED_ENDPOINT, now_secs() * 1000);
            return match append(record).await {
                Ok(_) => Got::Ok(None),
                Err(err) => Got::Later(format!("cannot append to the event log: {err}")),
            };
        }
        match decode_balance_transaction(&body) {
            Ok(bt) => Got::Ok(Some(balance_transaction_row(
                &bt,
                missing.account.clone(),
                missing.livemode,
                missing.source_event_id.clone(),
            ))),
            Err(err) => Got::Skip(format!("undecodable balance transaction: {err}")),
        }
    }

    /// Fetches every page of the list at `url` (which has its query string) and appends
    /// each page to the log as `record(page, list text)`: the number of pages.
    async fn pages(
        &mut self,
        url: &str,
        account: Option<&str>,
        append: &Appender,
        record: impl Fn(u32, &str) -> Vec<u8>,
    ) -> Got<u32> {
        let mut page = 0u32;
        let mut after: Option<String> = None;
        loop {
            let url = match &after {
                Some(after) => format!("{url}&starting_after={after}"),
                None => url.to_owned(),
            };
            let body = match self.get(&url, account).await.ok() {
                Ok(body) => body,
                Err(stop) => return stop,
            };
            let Ok(text) = std::str::from_utf8(&body) else {
                return Got::Skip("the list is not UTF-8".into());
            };
            let list: serde_json::Value = match serde_json::from_str(text) {
                Ok(v @ serde_json::Value::Object(_)) => v,
                _ => return Got::Skip("the list is not a JSON object".into()),
            };
            let body = record(page, text);
            let env = Envelope::parse(&body, None);
            let log_record = LogRecord::new(body, &env, FETCHED_ENDPOINT, now_secs() * 1000);
            if let Err(err) = append(log_record).await {
                return Got::Later(format!("cannot append to the event log: {err}"));
            }
            page += 1;
            after = list["data"]
                .as_array()
                .and_then(|d| d.last())
                .and_then(|item| item["id"].as_str())
                .map(str::to_owned);
            if list["has_more"] != serde_json::Value::Bool(true) || after.is_none() {
                return Got::Ok(page);
            }
        }
    }

    /// Every page of `payout`'s balance transactions, appended to the log.
    async fn itemise(&mut self, payout: &PayoutRow, append: &Appender) -> Got<u32> {
        let url = format!(
            "{}/v1/balance_transactions?payout={}&limit={PAGE_LIMIT}",
            self.base(),
            payout.id
        );
        let record = |page, list: &str| {
            payout_items_event(
                &payout.id,
                page,
                payout.account.as_deref(),
                payout.livemode == 1,
                now_secs(),
                list,
            )
        };
        self.pages(&url, payout.account.as_deref(), append, record)
            .await
    }

    /// The object of a same-second tie as it is now, appended to the log (it is newer than
    /// both snapshots, so it settles the tie).
    async fn refetch(&mut self, tie: &TieRow, append: &Appender) -> Got<u32> {
        let path = match tie.object_type.as_str() {
            "charge" => "charges",
            "invoice" => "invoices",
            "invoice_payment" => "invoice_payments",
            "dispute" => "disputes",
            other => return Got::Skip(format!("no API path for {other}")),
        };
        let url = format!("{}/v1/{path}/{}", self.base(), tie.object_id);
        let body = match self.get(&url, tie.account.as_deref()).await.ok() {
            Ok(body) => body,
            Err(stop) => return stop,
        };
        let Ok(text) = std::str::from_utf8(&body) else {
            return Got::Skip("the object is not UTF-8".into());
        };
        if !matches!(serde_json::from_str(text), Ok(serde_json::Value::Object(_))) {
            return Got::Skip("the object is not a JSON object".into());
        }
        let record = refetched_event(
            &tie.object_id,
            tie.created_at,
            tie.account.as_deref(),
            tie.livemode == 1,
            now_secs(),
            text,
        );
        let env = Envelope::parse(&record, None);
        let record = LogRecord::new(record, &env, FETCHED_ENDPOINT, now_secs() * 1000);
        match append(record).await {
            Ok(_) => Got::Ok(1),
            Err(err) => Got::Later(format!("cannot append to the event log: {err}")),
        }
    }

    /// Every page of `invoice`'s lines, appended to the log.
    async fn lines(&mut self, invoice: &InvoiceRow, append: &Appender) -> Got<u32> {
        let url = format!(
            "{}/v1/invoices/{}/lines?limit={PAGE_LIMIT}",
            self.base(),
            invoice.id
        );
        let context = InvoiceContext {
            invoice: invoice.id.clone(),
            customer: invoice.customer_id.clone(),
            subscription: invoice.subscription_id.clone(),
            currency: invoice.currency.clone(),
            finalized_at: invoice.finalized_at.map(i64::from),
        };
        let record = |page, list: &str| {
            invoice_lines_event(
                &context,
                page,
                invoice.account.as_deref(),
                invoice.livemode == 1,
                now_secs(),
                list,
            )
        };
        self.pages(&url, invoice.account.as_deref(), append, record)
            .await
    }
}

/// Counts how a fetch ended in the metrics; `false` when Stripe refused the key, which
/// stops the enrichment (logged once).
fn counted<T>(got: &Got<T>, metrics: &ReconcileMetrics) -> bool {
    let outcome = match got {
        Got::Ok(_) => "fetched",
        Got::Skip(_) => "skipped",
        Got::Later(_) => "failed",
        Got::Refused(status) => {
            tracing::error!(
                status,
                "enrichment: Stripe refused the API key (STRIPE_API_KEY); enrichment stops"
            );
            return false;
        }
    };
    metrics
        .enrichment
        .get_or_create(&OutcomeLabel { outcome })
        .inc();
    true
}

/// What to fetch into the event log: a list page by page, or one object again.
enum Job {
    Payout(PayoutRow),
    Lines(InvoiceRow),
    Refetch(TieRow),
}

impl Job {
    fn name(&self) -> (&'static str, &str) {
        match self {
            Job::Payout(p) => ("payout", &p.id),
            Job::Lines(i) => ("invoice", &i.id),
            Job::Refetch(t) => ("tie", &t.id),
        }
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whether this process does the enrichment: once per deployment, not once per replica
/// (every member of a consumer group would otherwise fetch the same objects). With Kafka
/// the member holding partition 0 of the events topic does it, and the duty moves with the
/// partition on a rebalance; the embedded log has one reader, which always does.
#[derive(Clone, Debug)]
pub struct Duty(Option<Arc<std::sync::atomic::AtomicBool>>);

impl Duty {
    /// Always on duty (one process reads the log).
    pub fn always() -> Duty {
        Duty(None)
    }

    /// On duty while `flag` is set (by the consumer's rebalance callbacks).
    pub fn while_set(flag: Arc<std::sync::atomic::AtomicBool>) -> Duty {
        Duty(Some(flag))
    }

    fn on(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(|f| f.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// Runs sweeps until `shutdown` turns true, while `duty` says this process is the one that
/// enriches. Returns early (with a log line) if Stripe refuses the key; warehouse errors
/// wait for the next sweep.
/// Payouts go to `append` (the event log); without one they are not itemised.
pub async fn run<W: Warehouse>(
    api: StripeApi,
    warehouse: Arc<W>,
    append: Option<Appender>,
    metrics: ReconcileMetrics,
    duty: Duty,
    mut shutdown: watch::Receiver<bool>,
) {
    let http = match http_client() {
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
    let mut listed: HashSet<String> = HashSet::new();
    // Balance transactions appended to the log, and when: not asked for again while the
    // consumer gets them into the warehouse. After ten minutes a lagging consumer may see
    // one fetched twice, which is harmless (same id, same content).
    let mut appended: std::collections::HashMap<String, std::time::Instant> =
        std::collections::HashMap::new();
    let mut was_on = None;
    loop {
        let on = duty.on();
        if was_on != Some(on) {
            if on {
                tracing::info!(
                    "enrichment: this member holds partition 0 of the events topic, so it enriches"
                );
            } else {
                tracing::info!("enrichment: another member holds partition 0 of the events topic and enriches; this one waits");
            }
            was_on = Some(on);
        }
        if !on {
            tokio::select! {
                _ = tokio::time::sleep(interval.min(Duration::from_secs(1))) => {}
                _ = crate::consumer::stopped(&mut shutdown) => return,
            }
            continue;
        }
        appended.retain(|_, at| at.elapsed() < Duration::from_secs(600));
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
                .filter(|m| !skipped.contains(&m.id) && !appended.contains_key(&m.id))
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
                let got = client.fetch(m, append.as_ref()).await;
                if !counted(&got, &metrics) {
                    return;
                }
                // Fetched or given up on: the next page of the to-do list differs.
                progress |= !matches!(got, Got::Later(_));
                match got {
                    Got::Ok(Some(row)) => rows.push(row),
                    // In the log: the consumer writes it; not asked for again meanwhile.
                    Got::Ok(None) => {
                        appended.insert(m.id.clone(), std::time::Instant::now());
                    }
                    Got::Skip(reason) => {
                        tracing::warn!(balance_transaction = %m.id, %reason, "enrichment: balance transaction skipped");
                        skipped.insert(m.id.clone());
                    }
                    Got::Later(reason) => {
                        tracing::warn!(balance_transaction = %m.id, %reason, "enrichment: Stripe API unavailable; will retry");
                    }
                    Got::Refused(_) => unreachable!("counted() stops on a refused key"),
                }
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
        if let Some(append) = &append {
            // Lists fetched page by page and appended to the log: payouts' balance
            // transactions, and the lines of invoices whose webhook carried only the first
            // page of them.
            let mut todo: Vec<Job> = Vec::new();
            match warehouse::fetched::payouts_to_itemise(&*warehouse).await {
                Ok(payouts) => todo.extend(payouts.into_iter().map(Job::Payout)),
                Err(err) => {
                    tracing::warn!(error = %err, "enrichment: cannot list payouts to itemise")
                }
            }
            match warehouse::fetched::invoices_missing_lines(&*warehouse, &Filter::default()).await
            {
                Ok(invoices) => todo.extend(invoices.into_iter().map(Job::Lines)),
                Err(err) => {
                    tracing::warn!(error = %err, "enrichment: cannot list invoices missing lines")
                }
            }
            match warehouse::fetched::ties_to_refetch(&*warehouse).await {
                Ok(ties) => todo.extend(ties.into_iter().map(Job::Refetch)),
                Err(err) => {
                    tracing::warn!(error = %err, "enrichment: cannot list same-second ties")
                }
            }
            // Appended pages reach the warehouse through the consumer: until they do, an
            // object is not asked for again in this process.
            for job in &todo {
                if *shutdown.borrow() {
                    break;
                }
                let (kind, id) = job.name();
                if listed.contains(id) {
                    continue;
                }
                let got = match job {
                    Job::Payout(payout) => client.itemise(payout, append).await,
                    Job::Lines(invoice) => client.lines(invoice, append).await,
                    Job::Refetch(tie) => client.refetch(tie, append).await,
                };
                if !counted(&got, &metrics) {
                    return;
                }
                match got {
                    Got::Ok(pages) => {
                        tracing::info!(
                            object = kind,
                            id,
                            pages,
                            "enrichment: list fetched into the event log"
                        );
                        listed.insert(id.to_owned());
                    }
                    Got::Skip(reason) => {
                        tracing::warn!(object = kind, id, %reason, "enrichment: list skipped");
                        listed.insert(id.to_owned());
                    }
                    Got::Later(reason) => {
                        tracing::warn!(object = kind, id, %reason, "enrichment: cannot fetch the list yet; will retry");
                    }
                    Got::Refused(_) => unreachable!("counted() stops on a refused key"),
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = crate::consumer::stopped(&mut shutdown) => return,
        }
    }
}
