//! Reports: the answers analysts and finance want from the facts (MRR and its movements,
//! monthly revenue, the invoice register), read through the warehouse port only ([`warehouse::Warehouse`]),
//! so they print the same bytes on ClickHouse and on the embedded warehouse.
//!
//! The warehouse sums integers (minor units) and streams narrow, ordered rows; everything
//! else (merging, division, rounding, formatting) happens here, in integers or exact
//! rationals ([`ratio::Ratio`]), never in floats and never in SQL.
//!
//! One code path serves the CLI (`revline report`) and the admin listener
//! (`GET /reports/<name>`): both parse their input with [`Params::parse`], run
//! [`Reports::run`] and render the [`Table`] with [`output`].

pub mod aging;
pub mod calendar;
pub mod customers;
pub mod dashboard;
pub mod invoices;
pub mod journal;
pub mod money;
pub mod mrr;
pub mod output;
pub mod params;
pub mod payouts;
pub mod ratio;
pub mod recognition;
pub mod revenue;

use std::sync::Arc;

use warehouse::{Account, AggregateQuery, Condition, Filter, Warehouse, WarehouseError};

pub use calendar::Month;
pub use output::{Format, Table};
pub use params::{ParamError, Params, ReportName};

/// Why a report has no answer.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The request is wrong (HTTP 400/404, CLI exit status 2).
    #[error(transparent)]
    Params(#[from] ParamError),
    /// The warehouse failed or is unreachable.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
}

/// "Now" as Unix seconds. Reports take it from here, so tests can fix it.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    })
}

/// A report's parameters with every default worked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub livemode: bool,
    pub account: Account,
    pub currency: Option<String>,
    /// `None`: from the first month with data (each report knows which data that is).
    pub from: Option<Month>,
    pub to: Month,
    /// Figures are as of this instant (Unix seconds): nothing later counts.
    pub now: i64,
    /// The day `ar-aging` is as of (its midnight, Unix seconds): today unless asked.
    pub as_of: i64,
    /// One row per item instead of the summary.
    pub detail: bool,
}

impl Scope {
    /// The warehouse filter of this scope: mode, account and currency.
    pub fn filter(&self) -> Filter {
        Filter {
            livemode: Some(self.livemode),
            account: self.account.clone(),
            currency: self.currency.clone(),
            ..Filter::default()
        }
    }

    /// The end of the reported period: the end of `to`, or now if earlier (exclusive).
    pub fn until(&self) -> i64 {
        self.to.end().min(self.now + 1)
    }
}

/// Runs reports against one warehouse.
pub struct Reports<W> {
    warehouse: Arc<W>,
    clock: Clock,
    accounts: Arc<journal::Accounts>,
}

impl<W> Clone for Reports<W> {
    fn clone(&self) -> Self {
        Reports {
            warehouse: self.warehouse.clone(),
            clock: self.clock.clone(),
            accounts: self.accounts.clone(),
        }
    }
}

impl<W: Warehouse> Reports<W> {
    pub fn new(warehouse: Arc<W>, clock: Clock) -> Reports<W> {
        Reports {
            warehouse,
            clock,
            accounts: Arc::default(),
        }
    }

    /// The same, posting the journal to these account codes.
    pub fn with_accounts(mut self, accounts: journal::Accounts) -> Reports<W> {
        self.accounts = Arc::new(accounts);
        self
    }

    /// Runs one report.
    pub async fn run(&self, name: ReportName, params: &Params) -> Result<Table, ReportError> {
        name.check(params)?;
        let scope = self.scope(params).await?;
        let w = &*self.warehouse;
        Ok(match name {
            ReportName::Mrr => mrr::run(w, &scope).await?,
            ReportName::MrrMovements => mrr::movements(w, &scope).await?,
            ReportName::Revenue => revenue::run(w, &scope).await?,
            ReportName::Invoices => invoices::run(w, &scope).await?,
            ReportName::Customers => customers::run(w, &scope).await?,
            ReportName::RevenueRecognition => recognition::run(w, &scope).await?,
            ReportName::ArAging => aging::run(w, &scope).await?,
            ReportName::Payouts => payouts::run(w, &scope).await?,
            ReportName::Journal => journal::run(w, &scope, &self.accounts).await?,
        })
    }

    /// The rows that close `month` of the journal for the scope of `params` (mode and
    /// account), for the caller to write: see [`journal::close`].
    pub async fn close(
        &self,
        month: Month,
        params: &Params,
    ) -> Result<
        (
            schemas::facts::LedgerCloseRow,
            Vec<schemas::facts::LedgerClosedLineRow>,
        ),
        journal::CloseError,
    > {
        let scope = self.scope(params).await.map_err(|e| match e {
            ReportError::Warehouse(w) => journal::CloseError::Warehouse(w),
            ReportError::Params(p) => journal::CloseError::Refused(p.to_string()),
        })?;
        journal::close(&*self.warehouse, &scope, month).await
    }

    /// Works out the defaults: live mode if any live event exists (never mixed), the
    /// platform's own account, up to the current month.
    pub async fn scope(&self, params: &Params) -> Result<Scope, ReportError> {
        let now = (self.clock)();
        let livemode = match params.livemode {
            Some(live) => live,
            None => {
                let live_events = AggregateQuery {
                    filter: Filter {
                        livemode: Some(true),
                        ..Filter::default()
                    },
                    ..AggregateQuery::count("stripe_events")
                };
                let rows = self.warehouse.aggregate(&live_events).await?;
                rows.first().is_some_and(|r| r.count > 0)
            }
        };
        Ok(Scope {
            livemode,
            account: params.account.clone().unwrap_or(Account::Platform),
            currency: params.currency.clone(),
            from: params.from,
            to: params.to.unwrap_or_else(|| Month::of(now)),
            now,
            as_of: params.as_of.unwrap_or(now - now.rem_euclid(calendar::DAY)),
            detail: params.detail,
        })
    }
}

/// A month key of an aggregate (`YYYY-MM`), `None` for a null instant.
fn month_key(key: &Option<String>) -> Option<Month> {
    key.as_deref().and_then(Month::parse)
}

/// A text column equal to `value`.
fn eq(column: &'static str, value: &str) -> Condition {
    Condition::Eq(column, value.to_owned())
}

/// Money as a report cell.
fn money(amount: i64, currency: &str) -> Option<String> {
    Some(money::format_major(amount, currency))
}

/// An optional instant as a `_utc` cell.
fn instant(unix: Option<u32>) -> Option<String> {
    unix.map(|t| calendar::format_utc(i64::from(t)))
}
