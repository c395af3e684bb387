//! `revline report <name>`: one report on the configured warehouse (ClickHouse when
//! `REVLINE_CLICKHOUSE_URL` is set, else the embedded one under the data dir), printed to
//! stdout: a table on a terminal, CSV otherwise, or `--format`. Warnings go to stderr.
//! Bad parameters exit with status 2 and a message naming the parameter.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use reports::{Format, Params, ReportError, ReportName, Reports};
use warehouse::Warehouse;

use crate::backends;
use crate::config::Config;
use crate::UsageError;

/// `revline report`'s arguments. Values are checked by [`Params::parse`], the parser the
/// admin listener uses too, so both refuse the same input with the same message.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// mrr | mrr-movements | revenue | invoices | customers | revenue-recognition | ar-aging |
    /// payouts | journal
    pub name: String,
    /// First month, YYYY-MM (default: the first month with data).
    #[arg(long)]
    pub from: Option<String>,
    /// Last month, YYYY-MM (default: the current month).
    #[arg(long)]
    pub to: Option<String>,
    /// Only this currency (ISO code, e.g. usd).
    #[arg(long)]
    pub currency: Option<String>,
    /// true | false (default: true when any live-mode event exists).
    #[arg(long)]
    pub livemode: Option<String>,
    /// A Connect account (acct_…), or `all` (default: the platform's own data).
    #[arg(long)]
    pub account: Option<String>,
    /// csv | json | table (default: table on a terminal, else csv).
    #[arg(long)]
    pub format: Option<String>,
    /// ar-aging: the day, YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    pub as_of: Option<String>,
    /// ar-aging, revenue-recognition, payouts: one row per item (invoice, line × month,
    /// balance transaction).
    #[arg(long)]
    pub detail: bool,
}

impl ReportArgs {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("from", &self.from),
            ("to", &self.to),
            ("currency", &self.currency),
            ("livemode", &self.livemode),
            ("account", &self.account),
            ("format", &self.format),
            ("as_of", &self.as_of),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .chain(self.detail.then_some(("detail", "true")))
        .collect()
    }
}

pub async fn run(config: Config, args: ReportArgs) -> anyhow::Result<()> {
    let name = ReportName::parse(&args.name).map_err(|e| UsageError(e.to_string()))?;
    let params = Params::parse(args.pairs()).map_err(|e| UsageError(e.to_string()))?;
    let clock = backends::report_clock(&config);
    match &config.clickhouse {
        Some(ch) => {
            let reports = Reports::new(Arc::new(backends::clickhouse(ch)?), clock)
                .with_accounts(config.ledger.clone());
            print(&reports, name, &params).await
        }
        None => {
            // A fresh data dir has no tables yet: an empty report, not an error.
            let embedded = backends::migrated(backends::embedded(&config)?).await?;
            let reports =
                Reports::new(Arc::new(embedded), clock).with_accounts(config.ledger.clone());
            print(&reports, name, &params).await
        }
    }
}

pub(crate) async fn print<W: Warehouse>(
    reports: &Reports<W>,
    name: ReportName,
    params: &Params,
) -> anyhow::Result<()> {
    let table = match reports.run(name, params).await {
        Ok(table) => table,
        Err(ReportError::Params(err)) => return Err(UsageError(err.to_string()).into()),
        Err(ReportError::Warehouse(err)) => {
            return Err(anyhow::anyhow!(err).context(format!("report {name}")))
        }
    };
    for warning in &table.warnings {
        eprintln!("revline: warning: {warning}");
    }
    let stdout = std::io::stdout();
    let format = params.format.unwrap_or(if stdout.is_terminal() {
        Format::Table
    } else {
        Format::Csv
    });
    let mut out = stdout.lock();
    out.write_all(table.render(format).as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write the report to stdout")
}
