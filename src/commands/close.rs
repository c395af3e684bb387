//! `revline close YYYY-MM`: closes a month of the journal, so that what was exported for it
//! never changes. The month's journal lines are kept as they are now (in the warehouse,
//! `ledger_closed_lines`); an event that arrives later and changes that month is posted on
//! the first day of the next open month instead, with the original date in the memo.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use reports::journal::CloseError;
use reports::{Month, Params, Reports};
use schemas::facts::FactSet;
use warehouse::Warehouse;

use crate::backends;
use crate::config::Config;
use crate::UsageError;

#[derive(Debug, Args)]
pub struct CloseArgs {
    /// The month to close, YYYY-MM (it must be over).
    pub month: String,
    /// true | false (default: true when any live-mode event exists).
    #[arg(long)]
    pub livemode: Option<String>,
    /// A Connect account (acct_…), or `all` (default: the platform's own data).
    #[arg(long)]
    pub account: Option<String>,
}

pub async fn run(config: Config, args: CloseArgs) -> anyhow::Result<()> {
    let month = Month::parse(&args.month).ok_or_else(|| {
        UsageError(format!(
            "month: {:?} is not a month of the form YYYY-MM",
            args.month
        ))
    })?;
    let pairs: Vec<(&str, &str)> = [("livemode", &args.livemode), ("account", &args.account)]
        .into_iter()
        .filter_map(|(n, v)| v.as_deref().map(|v| (n, v)))
        .collect();
    let params = Params::parse(pairs).map_err(|e| UsageError(e.to_string()))?;
    let clock = backends::report_clock(&config);
    match &config.clickhouse {
        Some(ch) => {
            let w = backends::migrated(backends::clickhouse(ch)?).await?;
            close(Arc::new(w), clock, month, &params).await
        }
        None => {
            let w = backends::migrated(backends::embedded(&config)?).await?;
            close(Arc::new(w), clock, month, &params).await
        }
    }
}

async fn close<W: Warehouse>(
    warehouse: Arc<W>,
    clock: reports::Clock,
    month: Month,
    params: &Params,
) -> anyhow::Result<()> {
    let reports = Reports::new(warehouse.clone(), clock);
    let (marker, lines) = match reports.close(month, params).await {
        Ok(rows) => rows,
        Err(CloseError::Refused(why)) => return Err(UsageError(why).into()),
        Err(CloseError::Warehouse(err)) => {
            return Err(anyhow::anyhow!(err).context(format!("close {month}")))
        }
    };
    let scope = marker.scope.clone();
    let count = lines.len();
    let facts = FactSet {
        ledger_closed_lines: lines,
        ..FactSet::default()
    };
    // The lines first, the marker last: a close interrupted in between is simply not
    // closed (lines without a marker are never read) and can be run again.
    warehouse
        .write(Arc::new(facts))
        .await
        .with_context(|| format!("cannot record the close of {month}"))?;
    let marker_only = FactSet {
        ledger_closes: vec![marker],
        ..FactSet::default()
    };
    warehouse
        .write(Arc::new(marker_only))
        .await
        .with_context(|| format!("cannot record the close of {month}"))?;
    println!(
        "revline: closed {month} for {scope}: its {count} journal lines stay as they are; \
         later changes to it are posted in the next open month"
    );
    Ok(())
}
