//! `mrr` and `mrr-movements`: monthly recurring revenue per customer, its changes, and their
//! monthly sums.
//!
//! The subscription item history (`subscription_items`, one row per item per snapshot) is
//! streamed ordered by customer, so memory holds one customer's history at a time, plus the
//! discounts and coupons (one row each). For each customer:
//!
//! 1. Every subscription's snapshots become intervals: a snapshot holds from its event's
//!    `created` until the next snapshot of that subscription; a cancellation with an
//!    `ended_at` takes effect at `ended_at` when that is earlier.
//! 2. At every instant where something may change (a snapshot starts, a discount starts,
//!    ends or is deleted), the customer's MRR per currency is computed exactly
//!    ([`Ratio`]): Σ over subscriptions that count (`active` or `past_due`, collection not
//!    paused) of Σ over items of the item's price for its quantity, normalised to a month,
//!    less forever discounts. The total is rounded half-even to the minor unit.
//! 3. Each change of that rounded value is a movement: new, reactivation, expansion,
//!    contraction or churn. All changes of one customer within one second are one change,
//!    since instants are whole seconds.
//!
//! Monthly figures are sums of the rounded customer values and movements, so
//! `mrr_end = mrr_start + new + reactivation + expansion − contraction − churn` holds
//! exactly in what is printed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures_util::TryStreamExt;
use schemas::facts::{CouponRow, DiscountRow, SubscriptionItemRow};
use warehouse::{Condition, Filter, Result, RowQuery, TimeRange, Warehouse};

use crate::calendar::format_utc;
use crate::ratio::Ratio;
use crate::{money, Month, Scope, Table};

pub const COLUMNS: &[&str] = &[
    "month",
    "currency",
    "mrr_start",
    "new",
    "expansion",
    "contraction",
    "churn",
    "reactivation",
    "mrr_end",
    "arr_end",
    "subscribers_end",
];

pub const MOVEMENT_COLUMNS: &[&str] = &[
    "effective_at_utc",
    "customer_id",
    "currency",
    "movement",
    "mrr_before",
    "mrr_after",
    "delta",
    "subscription_id",
    "event_id",
];

/// What kind of change a movement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    New,
    Reactivation,
    Expansion,
    Contraction,
    Churn,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::New => "new",
            Kind::Reactivation => "reactivation",
            Kind::Expansion => "expansion",
            Kind::Contraction => "contraction",
            Kind::Churn => "churn",
        }
    }
}

/// One change of one customer's MRR in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub at: i64,
    pub customer: String,
    pub currency: String,
    pub kind: Kind,
    pub before: i64,
    pub after: i64,
    /// Set when exactly one subscription changed at that instant.
    pub subscription: Option<String>,
    pub event: Option<String>,
}

/// The terms of a forever discount, as MRR applies them.
#[derive(Debug, Clone)]
struct Terms {
    percent_off: Option<Ratio>,
    amount_off: Option<(i64, String)>,
    products: Vec<String>,
}

/// Discounts and coupons of the scope, by id, and the customer-level discounts.
struct Discounts {
    by_id: HashMap<String, DiscountRow>,
    coupons: HashMap<String, CouponRow>,
    /// Discounts on a customer as a whole (no subscription, item or invoice).
    of_customer: HashMap<String, Vec<String>>,
}

impl Discounts {
    async fn load<W: Warehouse>(w: &W, scope: &Scope) -> Result<Discounts> {
        let filter = Filter {
            currency: None,
            ..scope.filter()
        };
        let query = RowQuery {
            filter: filter.clone(),
            order_by: vec!["id"],
        };
        let mut by_id = HashMap::new();
        let mut of_customer: HashMap<String, Vec<String>> = HashMap::new();
        let mut rows = w.rows::<DiscountRow>(&query);
        while let Some(d) = rows.try_next().await? {
            if let (Some(customer), None, None, None) = (
                &d.customer_id,
                &d.subscription_id,
                &d.subscription_item_id,
                &d.invoice_id,
            ) {
                of_customer
                    .entry(customer.clone())
                    .or_default()
                    .push(d.id.clone());
            }
            by_id.insert(d.id.clone(), d);
        }
        let mut coupons = HashMap::new();
        let mut rows = w.rows::<CouponRow>(&RowQuery {
            filter,
            order_by: vec!["id"],
        });
        while let Some(c) = rows.try_next().await? {
            coupons.insert(c.id.clone(), c);
        }
        Ok(Discounts {
            by_id,
            coupons,
            of_customer,
        })
    }

    /// The discount's terms when it is a forever discount in effect at `at`; `None`
    /// otherwise (unknown, not forever, not started, ended or deleted).
    fn forever_at(&self, id: &str, at: i64, warnings: &mut BTreeSet<String>) -> Option<Terms> {
        let d = self.by_id.get(id)?;
        let started = d.start_at.is_none_or(|s| i64::from(s) <= at);
        let over = |t: Option<u32>| t.is_some_and(|t| i64::from(t) <= at);
        if !started || over(d.end_at) || over(d.deleted_at) {
            return None;
        }
        // The discount's own copy of the coupon, else the coupon's row.
        let (percent, amount, currency, duration, products) = match (&d.duration, &d.coupon_id) {
            (Some(_), _) => (
                d.percent_off.clone(),
                d.amount_off,
                d.amount_off_currency.clone(),
                d.duration.clone(),
                d.applies_to_products.clone(),
            ),
            (None, Some(coupon)) => match self.coupons.get(coupon) {
                Some(c) => (
                    c.percent_off.clone(),
                    c.amount_off,
                    c.currency.clone(),
                    c.duration.clone(),
                    c.applies_to_products.clone(),
                ),
                None => {
                    warnings.insert(format!(
                        "the terms of coupon {coupon} (discount {id}) are unknown: no coupon.* \
                         event carried them, so it is not taken off MRR"
                    ));
                    return None;
                }
            },
            (None, None) => return None,
        };
        if duration.as_deref() != Some("forever") {
            return None;
        }
        let percent_off = match percent.as_deref().map(Ratio::parse_decimal) {
            Some(Some(p)) => Some(p),
            Some(None) => {
                warnings.insert(format!("discount {id}: unreadable percent_off"));
                return None;
            }
            None => None,
        };
        Some(Terms {
            percent_off,
            amount_off: amount.zip(currency),
            products: products
                .split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// `1 month / interval`: how many of an item's intervals make a month.
fn per_month(interval: Option<&str>, count: i64) -> Option<Ratio> {
    let count = i128::from(count.max(1));
    Some(match interval? {
        "month" => Ratio::new(1, count),
        "year" => Ratio::new(1, 12 * count),
        "week" => Ratio::new(52, 12 * count),
        "day" => Ratio::new(365, 12 * count),
        _ => return None,
    })
}

/// One tier of a tiered price.
#[derive(Debug)]
struct Tier {
    up_to: Option<i64>,
    unit: Ratio,
    flat: Ratio,
}

fn parse_tiers(text: &str) -> Option<Vec<Tier>> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value
        .as_array()?
        .iter()
        .map(|t| {
            let decimal = |key: &str| match t.get(key) {
                Some(serde_json::Value::String(s)) => Ratio::parse_decimal(s),
                Some(serde_json::Value::Null) | None => Some(Ratio::ZERO),
                _ => None,
            };
            Some(Tier {
                up_to: t.get("up_to").and_then(serde_json::Value::as_i64),
                unit: decimal("unit")?,
                flat: decimal("flat")?,
            })
        })
        .collect()
}

/// What an item charges per billing period for its quantity; `None` when the payloads do
/// not say (no price amount, tiers not carried).
fn item_amount(row: &SubscriptionItemRow) -> Option<Ratio> {
    let q = row.quantity.max(0);
    if row.billing_scheme.as_deref() == Some("tiered") {
        let tiers = parse_tiers(row.tiers.as_deref()?)?;
        return match row.tiers_mode.as_deref() {
            Some("volume") => {
                let tier = tiers.iter().find(|t| t.up_to.is_none_or(|u| q <= u))?;
                Some(tier.unit * Ratio::int(q) + tier.flat)
            }
            Some("graduated") => {
                let mut total = Ratio::ZERO;
                let mut below = 0i64;
                for tier in &tiers {
                    if q <= below {
                        break;
                    }
                    let top = tier.up_to.map_or(q, |u| u.min(q));
                    total = total + tier.unit * Ratio::int(top - below) + tier.flat;
                    below = tier.up_to.unwrap_or(i64::MAX);
                }
                Some(total)
            }
            _ => None,
        };
    }
    let unit = match &row.unit_amount_decimal {
        Some(text) => Ratio::parse_decimal(text)?,
        None => Ratio::int(row.unit_amount?),
    };
    let units = match row.transform_divide_by {
        Some(by) if by > 0 => {
            let exact = Ratio::new(i128::from(q), i128::from(by));
            let down = exact.floor();
            if row.transform_round.as_deref() == Some("down") || Ratio::int(down) == exact {
                down
            } else {
                down + 1
            }
        }
        _ => q,
    };
    Some(unit * Ratio::int(units))
}

/// A subscription snapshot: its item rows and where it holds.
struct Snapshot {
    from: i64,
    rows: Vec<SubscriptionItemRow>,
}

impl Snapshot {
    fn first(&self) -> &SubscriptionItemRow {
        &self.rows[0]
    }

    fn counts(&self) -> bool {
        let row = self.first();
        matches!(row.status.as_str(), "active" | "past_due") && row.pause_collection.is_none()
    }
}

/// A subscription's snapshots in time order, each holding until the next one starts.
struct History {
    id: String,
    snapshots: Vec<Snapshot>,
}

impl History {
    /// The snapshot holding at `at`.
    fn at(&self, at: i64) -> Option<&Snapshot> {
        let i = self.snapshots.partition_point(|s| s.from <= at);
        i.checked_sub(1).map(|i| &self.snapshots[i])
    }
}

/// Builds a subscription's history from its rows (one customer's, any order).
fn histories(rows: Vec<SubscriptionItemRow>) -> Vec<History> {
    // Rows of one snapshot share the snapshot's version, the last segment of their id.
    let mut snapshots: BTreeMap<(String, i64, String), Vec<SubscriptionItemRow>> = BTreeMap::new();
    for row in rows {
        let snapshot = row.id.rsplit('/').next().unwrap_or_default().to_owned();
        snapshots
            .entry((
                row.subscription_id.clone(),
                i64::from(row.valid_from),
                snapshot,
            ))
            .or_default()
            .push(row);
    }
    let mut out: Vec<History> = Vec::new();
    for ((subscription, from, _), rows) in snapshots {
        // A cancellation counts from `ended_at` when that is earlier than its event.
        let first = &rows[0];
        let from = match first.ended_at {
            Some(ended) if first.status == "canceled" => from.min(i64::from(ended)),
            _ => from,
        };
        match out.last_mut() {
            Some(h) if h.id == subscription => h.snapshots.push(Snapshot { from, rows }),
            _ => out.push(History {
                id: subscription,
                snapshots: vec![Snapshot { from, rows }],
            }),
        }
    }
    for h in &mut out {
        // An earlier-effective cancellation hides the snapshots it precedes.
        h.snapshots.sort_by_key(|s| s.from);
    }
    out
}

/// The MRR of one snapshot at `at`, per currency, exactly.
fn snapshot_mrr(
    snapshot: &Snapshot,
    customer: &str,
    at: i64,
    discounts: &Discounts,
    warnings: &mut BTreeSet<String>,
) -> BTreeMap<String, Ratio> {
    let mut out = BTreeMap::new();
    if !snapshot.counts() {
        return out;
    }
    let first = snapshot.first();
    let sub_per_month = per_month(first.interval.as_deref(), first.interval_count);
    // Each item's monthly amount, with the item's product and currency.
    let mut items: Vec<(Ratio, Option<&str>, String)> = Vec::new();
    for row in &snapshot.rows {
        let Some(currency) = row.currency.clone() else {
            continue;
        };
        if row.usage_type.as_deref() == Some("metered") {
            items.push((Ratio::ZERO, row.product_id.as_deref(), currency));
            continue;
        }
        let amount = item_amount(row)
            .zip(per_month(row.interval.as_deref(), row.interval_count))
            .map(|(a, m)| a * m);
        let amount = amount.unwrap_or_else(|| {
            warnings.insert(format!(
                "the amount of subscription item {} (price {}) cannot be known from the \
                 payloads (tiers or amount not carried): it counts 0",
                row.item_id,
                row.price_id.as_deref().unwrap_or("unknown")
            ));
            Ratio::ZERO
        });
        items.push((amount, row.product_id.as_deref(), currency));
    }
    let ids = |text: &str| -> Vec<String> {
        text.split(',')
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect()
    };
    // The item's own discounts first, then the subscription's, else the customer's.
    for (i, row) in snapshot.rows.iter().enumerate() {
        for id in ids(&row.item_discount_ids) {
            if let Some(terms) = discounts.forever_at(&id, at, warnings) {
                apply(&mut items, &terms, Some(i), sub_per_month, &id, warnings);
            }
        }
    }
    let mut own = ids(&first.discount_ids);
    if own.is_empty() {
        own = discounts
            .of_customer
            .get(customer)
            .cloned()
            .unwrap_or_default();
    }
    for id in own {
        if let Some(terms) = discounts.forever_at(&id, at, warnings) {
            apply(&mut items, &terms, None, sub_per_month, &id, warnings);
        }
    }
    for (amount, _, currency) in items {
        let total = out.entry(currency).or_insert(Ratio::ZERO);
        *total = *total + amount;
    }
    out
}

/// Takes one discount off the items it applies to (`only`: one item's own discount), each
/// from what the previous discounts left; an amount off is normalised to a month with the
/// subscription's interval and capped at what is left, shared in proportion.
fn apply(
    items: &mut [(Ratio, Option<&str>, String)],
    terms: &Terms,
    only: Option<usize>,
    per_month: Option<Ratio>,
    id: &str,
    warnings: &mut BTreeSet<String>,
) {
    let applies = |i: usize, product: Option<&str>| {
        only.is_none_or(|o| o == i)
            && (terms.products.is_empty()
                || product.is_some_and(|p| terms.products.iter().any(|t| t == p)))
    };
    if let Some(percent) = terms.percent_off {
        let keep = Ratio::int(1) - percent / Ratio::int(100);
        for (i, (amount, product, _)) in items.iter_mut().enumerate() {
            if applies(i, *product) {
                *amount = *amount * keep.max(Ratio::ZERO);
            }
        }
        return;
    }
    let Some((off, currency)) = &terms.amount_off else {
        return;
    };
    let Some(per_month) = per_month else {
        return;
    };
    let chosen: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(i, (_, product, item_currency))| {
            applies(*i, *product) && item_currency == currency
        })
        .map(|(i, _)| i)
        .collect();
    if chosen.is_empty() {
        if items.iter().any(|(_, _, c)| c != currency) {
            warnings.insert(format!(
                "discount {id} takes an amount off in {currency}, which its subscription is \
                 not billed in: ignored"
            ));
        }
        return;
    }
    let base = chosen.iter().fold(Ratio::ZERO, |sum, &i| sum + items[i].0);
    if base.is_zero() {
        return;
    }
    let cut = (Ratio::int(*off) * per_month).min(base);
    for &i in &chosen {
        let share = cut * items[i].0 / base;
        items[i].0 = items[i].0 - share;
    }
}

/// One customer's movements, from their subscription item rows.
fn customer_movements(
    customer: &str,
    rows: Vec<SubscriptionItemRow>,
    discounts: &Discounts,
    scope: &Scope,
    warnings: &mut BTreeSet<String>,
) -> Vec<Movement> {
    let histories = histories(rows);
    // Every instant where the MRR may change.
    let mut points: BTreeSet<i64> = BTreeSet::new();
    for h in &histories {
        for s in &h.snapshots {
            points.insert(s.from);
            for row in &s.rows {
                let ids = row
                    .discount_ids
                    .split(',')
                    .chain(row.item_discount_ids.split(','))
                    .filter(|d| !d.is_empty());
                for id in ids {
                    add_discount_points(discounts, id, &mut points);
                }
            }
        }
    }
    for id in discounts.of_customer.get(customer).into_iter().flatten() {
        add_discount_points(discounts, id, &mut points);
    }
    let mut movements = Vec::new();
    let mut values: BTreeMap<String, i64> = BTreeMap::new();
    let mut ever_positive: BTreeSet<String> = BTreeSet::new();
    for &at in points.range(..=scope.now) {
        let mut exact: BTreeMap<String, Ratio> = BTreeMap::new();
        // Which subscriptions have a snapshot starting now, and the latest event among them.
        let mut starting: Vec<(&str, &str)> = Vec::new();
        for h in &histories {
            let Some(snapshot) = h.at(at) else {
                continue;
            };
            if snapshot.from == at {
                starting.push((&h.id, &snapshot.first().source_event_id));
            }
            for (currency, amount) in snapshot_mrr(snapshot, customer, at, discounts, warnings) {
                let total = exact.entry(currency).or_insert(Ratio::ZERO);
                *total = *total + amount;
            }
        }
        let currencies: BTreeSet<String> = values.keys().chain(exact.keys()).cloned().collect();
        for currency in currencies {
            let before = values.get(&currency).copied().unwrap_or(0);
            let after = exact.get(&currency).map_or(0, |r| r.round_half_even());
            if before == after {
                continue;
            }
            let kind = if before == 0 {
                if ever_positive.contains(&currency) {
                    Kind::Reactivation
                } else {
                    Kind::New
                }
            } else if after == 0 {
                Kind::Churn
            } else if after > before {
                Kind::Expansion
            } else {
                Kind::Contraction
            };
            if after > 0 {
                ever_positive.insert(currency.clone());
            }
            let subscriptions: BTreeSet<&str> = starting.iter().map(|(s, _)| *s).collect();
            movements.push(Movement {
                at,
                customer: customer.to_owned(),
                currency: currency.clone(),
                kind,
                before,
                after,
                subscription: (subscriptions.len() == 1)
                    .then(|| subscriptions.first().map(|s| (*s).to_owned()))
                    .flatten(),
                event: starting.iter().map(|(_, e)| *e).max().map(str::to_owned),
            });
            values.insert(currency, after);
        }
    }
    movements
}

fn add_discount_points(discounts: &Discounts, id: &str, points: &mut BTreeSet<i64>) {
    if let Some(d) = discounts.by_id.get(id) {
        points.extend(
            [d.start_at, d.end_at, d.deleted_at]
                .into_iter()
                .flatten()
                .map(i64::from),
        );
    }
}

/// Every movement of the scope's customers up to now, customer by customer (in customer
/// order), handed to `each` with the customer's id.
pub(crate) async fn for_each_customer<W: Warehouse>(
    w: &W,
    scope: &Scope,
    warnings: &mut BTreeSet<String>,
    mut each: impl FnMut(&str, Vec<Movement>),
) -> Result<()> {
    let discounts = Discounts::load(w, scope).await?;
    let query = RowQuery {
        filter: Filter {
            time: Some(TimeRange {
                column: "valid_from",
                from: None,
                until: Some(scope.until()),
            }),
            conditions: vec![Condition::NotNull("customer_id")],
            ..scope.filter()
        },
        order_by: vec!["customer_id", "valid_from"],
    };
    let mut rows = w.rows::<SubscriptionItemRow>(&query);
    let mut customer: Option<String> = None;
    let mut batch: Vec<SubscriptionItemRow> = Vec::new();
    while let Some(row) = rows.try_next().await? {
        if customer.as_deref() != row.customer_id.as_deref() {
            if let Some(c) = customer.take() {
                let movements =
                    customer_movements(&c, std::mem::take(&mut batch), &discounts, scope, warnings);
                each(&c, movements);
            }
            customer = row.customer_id.clone();
        }
        batch.push(row);
    }
    if let Some(c) = customer {
        let movements = customer_movements(&c, batch, &discounts, scope, warnings);
        each(&c, movements);
    }
    Ok(())
}

/// Sums of one month × currency.
#[derive(Debug, Default, Clone)]
struct Cell {
    new: i64,
    expansion: i64,
    contraction: i64,
    churn: i64,
    reactivation: i64,
    mrr_end: i64,
    subscribers_end: i64,
}

/// The `mrr` report.
pub async fn run<W: Warehouse>(w: &W, scope: &Scope) -> Result<Table> {
    let mut warnings = BTreeSet::new();
    let mut cells: BTreeMap<(Month, String), Cell> = BTreeMap::new();
    let mut first: Option<Month> = None;
    let to = scope.to;
    for_each_customer(w, scope, &mut warnings, |_, movements| {
        let Some(start) = movements.first().map(|m| Month::of(m.at)) else {
            return;
        };
        first = Some(first.map_or(start, |f| f.min(start)));
        let mut by_currency: BTreeMap<&str, Vec<&Movement>> = BTreeMap::new();
        for m in &movements {
            by_currency.entry(m.currency.as_str()).or_default().push(m);
            let cell = cells
                .entry((Month::of(m.at), m.currency.clone()))
                .or_default();
            let size = (m.after - m.before).abs();
            match m.kind {
                Kind::New => cell.new += size,
                Kind::Reactivation => cell.reactivation += size,
                Kind::Expansion => cell.expansion += size,
                Kind::Contraction => cell.contraction += size,
                Kind::Churn => cell.churn += size,
            }
        }
        // The customer's value at each month's end, from their first change on.
        for (currency, changes) in by_currency {
            let mut i = 0;
            let mut value = 0;
            for month in Month::of(changes[0].at).through(to) {
                while i < changes.len() && changes[i].at < month.end() {
                    value = changes[i].after;
                    i += 1;
                }
                let cell = cells.entry((month, currency.to_owned())).or_default();
                cell.mrr_end += value;
                cell.subscribers_end += i64::from(value > 0);
            }
        }
    })
    .await?;
    let currencies: BTreeSet<String> = cells
        .iter()
        .filter(|((m, _), c)| *m <= to && (c.mrr_end > 0 || c.new + c.reactivation > 0))
        .map(|((_, currency), _)| currency.clone())
        .collect();
    let from = scope.from.or(first).unwrap_or(to);
    let mut table = Table::new(COLUMNS.to_vec());
    for month in from.through(to) {
        for currency in &currencies {
            let before = month.prev();
            let start = cells
                .get(&(before, currency.clone()))
                .map_or(0, |c| c.mrr_end);
            let cell = cells
                .get(&(month, currency.clone()))
                .cloned()
                .unwrap_or_default();
            let c = currency.as_str();
            table.push(vec![
                Some(month.to_string()),
                Some(currency.clone()),
                money(start, c),
                money(cell.new, c),
                money(cell.expansion, c),
                money(cell.contraction, c),
                money(cell.churn, c),
                money(cell.reactivation, c),
                money(cell.mrr_end, c),
                money(cell.mrr_end * 12, c),
                Some(cell.subscribers_end.to_string()),
            ]);
        }
    }
    for warning in warnings {
        table.warn(warning);
    }
    Ok(table)
}

/// The `mrr-movements` report: one row per customer change in the period, by time.
pub async fn movements<W: Warehouse>(w: &W, scope: &Scope) -> Result<Table> {
    let mut warnings = BTreeSet::new();
    let mut all: Vec<Movement> = Vec::new();
    let from = scope.from.map(Month::start);
    let until = scope.until();
    for_each_customer(w, scope, &mut warnings, |_, movements| {
        all.extend(
            movements
                .into_iter()
                .filter(|m| from.is_none_or(|f| m.at >= f) && m.at < until),
        );
    })
    .await?;
    all.sort_by(|a, b| (a.at, &a.customer, &a.currency).cmp(&(b.at, &b.customer, &b.currency)));
    let mut table = Table::new(MOVEMENT_COLUMNS.to_vec());
    for m in all {
        let c = m.currency.as_str();
        table.push(vec![
            Some(format_utc(m.at)),
            Some(m.customer.clone()),
            Some(m.currency.clone()),
            Some(m.kind.as_str().to_owned()),
            money(m.before, c),
            money(m.after, c),
            money(m.after - m.before, c),
            m.subscription.clone(),
            m.event.clone(),
        ]);
    }
    for warning in warnings {
        table.warn(warning);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(unit: Option<i64>, quantity: i64) -> SubscriptionItemRow {
        serde_json::from_value(serde_json::json!({
            "id": "sub/si/1", "subscription_id": "sub", "item_id": "si", "account": null,
            "livemode": 1, "customer_id": "cus", "status": "active", "price_id": "price",
            "product_id": "prod", "currency": "usd", "unit_amount": unit, "quantity": quantity,
            "interval": "month", "interval_count": 1, "usage_type": "licensed",
            "unit_amount_decimal": null, "billing_scheme": null, "tiers_mode": null, "tiers": null,
            "transform_divide_by": null, "transform_round": null, "cancel_at_period_end": 0,
            "cancel_at": null, "canceled_at": null, "ended_at": null, "trial_start": null,
            "trial_end": null, "pause_collection": null, "cancellation_reason": null,
            "discount_ids": "", "item_discount_ids": "", "current_period_start": null,
            "current_period_end": null, "valid_from": 0, "valid_to": null,
            "source_event_id": "evt", "version": 1
        }))
        .unwrap()
    }

    #[test]
    fn prices_per_unit_tiered_and_transformed() {
        assert_eq!(item_amount(&item(Some(1500), 3)), Some(Ratio::int(4500)));
        assert_eq!(item_amount(&item(None, 3)), None, "no amount: unknown");
        let mut decimal = item(None, 3);
        decimal.unit_amount_decimal = Some("0.5".into());
        assert_eq!(item_amount(&decimal), Some(Ratio::new(3, 2)));
        // 12 seats in packs of 5, rounded up: 3 packs.
        let mut packs = item(Some(1000), 12);
        packs.transform_divide_by = Some(5);
        packs.transform_round = Some("up".into());
        assert_eq!(item_amount(&packs), Some(Ratio::int(3000)));
        packs.transform_round = Some("down".into());
        assert_eq!(item_amount(&packs), Some(Ratio::int(2000)));
        // Tiers: first 10 at 5.00, the rest at 4.00 plus a 10.00 flat fee.
        let mut tiered = item(None, 12);
        tiered.billing_scheme = Some("tiered".into());
        tiered.tiers = Some(
            r#"[{"up_to":10,"unit":"500","flat":null},{"up_to":null,"unit":"400","flat":"1000"}]"#
                .into(),
        );
        tiered.tiers_mode = Some("graduated".into());
        // 10 × 500 + 2 × 400 + 1000 = 6800.
        assert_eq!(item_amount(&tiered), Some(Ratio::int(6800)));
        tiered.tiers_mode = Some("volume".into());
        // All 12 in the second tier: 12 × 400 + 1000 = 5800.
        assert_eq!(item_amount(&tiered), Some(Ratio::int(5800)));
        tiered.tiers = None;
        assert_eq!(item_amount(&tiered), None, "tiers not carried: unknown");
    }

    #[test]
    fn intervals_normalise_to_a_month() {
        assert_eq!(per_month(Some("year"), 1), Some(Ratio::new(1, 12)));
        assert_eq!(per_month(Some("week"), 2), Some(Ratio::new(52, 24)));
        assert_eq!(per_month(Some("day"), 1), Some(Ratio::new(365, 12)));
        assert_eq!(per_month(Some("month"), 3), Some(Ratio::new(1, 3)));
        assert_eq!(per_month(None, 1), None);
    }
}
