//! `revenue-recognition`: what was billed, what was earned (recognised) and what is still
//! owed as service (deferred), per month × currency; `--detail` gives one row per invoice
//! line × month for audit.
//!
//! Each line of a finalized invoice has a schedule over its service period
//! `[period.start, period.end)`: the cumulative amount recognised by an instant is linear
//! in time, from 0 at the start to the line's `recognizable_amount` at the end. Around it:
//!
//! - nothing is recognised before the invoice's finalization; at finalization the elapsed
//!   part is caught up. A line without a period (or with end ≤ start) is recognised whole
//!   at finalization;
//! - a void reverses, at `voided_at`, everything the line had billed and recognised;
//! - a credit note (amount excluding tax) reduces its invoice line from the credit note's
//!   creation: what was recognised by then stays and the rest of the schedule is scaled so
//!   the line totals its amount less the credit; a credit larger than what remains is
//!   negative recognition at once. A credit note line without a reference to an invoice
//!   line (or a credit note without lines) is spread over the invoice's lines in
//!   proportion to their amounts, in whole minor units (largest remainder). A voided credit
//!   note gives its credit back at `voided_at`, by the same rule.
//!
//! Nothing is restated: every event changes the month it happens in. An event at an
//! instant counts in the month holding that instant (a finalization at exactly 00:00:00 on
//! the first is that month's). Schedules are exact rationals; a line's cumulative figure is
//! rounded half-even to the minor unit at each month boundary, and a month's figure is the
//! difference of two rounded cumulatives, so a line's months always add up to its
//! rounded total. The month in progress is recognised up to now.
//!
//! Lines are streamed ordered by invoice, so memory holds one invoice's lines at a time;
//! voids and credit notes (far fewer) are loaded first.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures_util::TryStreamExt;
use schemas::facts::{CreditNoteLineRow, CreditNoteRow, InvoiceLineRow, InvoiceRow};
use warehouse::{Filter, Result, RowQuery, TimeRange, Warehouse};

use crate::ratio::Ratio;
use crate::{money, Month, Scope, Table};

pub const COLUMNS: &[&str] = &["month", "currency", "billed", "recognized", "deferred_end"];

pub const DETAIL_COLUMNS: &[&str] = &["invoice_id", "line_id", "currency", "month", "recognized"];

/// A change to a line's schedule at an instant: a credit (positive) or a credit given back
/// (negative, a voided credit note).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Credit {
    pub at: i64,
    pub amount: i64,
}

/// One invoice line's recognition schedule, built up in time order.
#[derive(Debug, Clone)]
pub struct Schedule {
    finalized: i64,
    voided: Option<i64>,
    start: i64,
    end: i64,
    /// The schedule is linear from `(max(start, anchor_at), anchor)` to `(end, target)`.
    anchor_at: i64,
    anchor: Ratio,
    target: Ratio,
}

impl Schedule {
    /// A line of `net` minor units, finalized at `finalized`, serving `[start, end)`.
    pub fn new(net: i64, finalized: i64, period: Option<(i64, i64)>) -> Schedule {
        let (start, end) = match period {
            Some((s, e)) if e > s => (s, e),
            _ => (finalized, finalized),
        };
        Schedule {
            finalized,
            voided: None,
            start,
            end,
            anchor_at: start,
            anchor: Ratio::ZERO,
            target: Ratio::int(net),
        }
    }

    /// What the schedule has recognised by `x`, before finalization and voids are applied.
    fn base(&self, x: i64) -> Ratio {
        let from = self.start.max(self.anchor_at);
        if x >= self.end {
            self.target
        } else if x <= from {
            self.anchor
        } else {
            let done = Ratio::new(i128::from(x - from), i128::from(self.end - from));
            self.anchor + (self.target - self.anchor) * done
        }
    }

    /// Applies a credit of `amount` at `at` (negative: a credit given back).
    fn credit(&mut self, at: i64, amount: i64) {
        let recognised = self.base(at);
        let target = self.target - Ratio::int(amount);
        let (left, left_after) = (self.target - recognised, target - recognised);
        let scales = at < self.end
            && !left.is_zero()
            && (left_after.is_zero() || left_after.signum() == left.signum());
        self.anchor_at = at;
        self.target = target;
        // Scaled: from what is recognised now to the new total at the period's end. Else
        // everything left (possibly negative) is recognised at once.
        self.anchor = if scales { recognised } else { target };
    }

    /// Whether the invoice counts at `x`: finalized before it and not voided before it.
    fn live(&self, x: i64) -> bool {
        self.finalized < x && self.voided.is_none_or(|v| v >= x)
    }

    /// Recognised strictly before `x`, rounded half-even to the minor unit.
    fn recognised(&self, x: i64) -> i64 {
        if self.live(x) {
            self.base(x).round_half_even()
        } else {
            0
        }
    }

    /// Billed strictly before `x`: the line's amount less credits, once finalized, until
    /// voided.
    fn billed(&self, x: i64) -> i64 {
        if self.live(x) {
            self.target.round_half_even()
        } else {
            0
        }
    }

    /// The last instant at which the figures can still change.
    fn settles_at(&self, credits: &[Credit]) -> i64 {
        let last_credit = credits.last().map_or(i64::MIN, |c| c.at);
        self.end
            .max(self.finalized)
            .max(self.voided.unwrap_or(i64::MIN))
            .max(last_credit)
    }

    /// Walks month boundaries from the month of finalization (or first credit) until the
    /// figures settle or `until`, handing each month's (billed, recognised) change to `f`.
    /// `credits` must be sorted by time.
    pub fn months(&self, credits: &[Credit], until: i64, mut f: impl FnMut(Month, i64, i64)) {
        let first = credits
            .first()
            .map_or(self.finalized, |c| c.at.min(self.finalized));
        let settles = self.settles_at(credits);
        let mut schedule = self.clone();
        let mut pending = credits.iter().peekable();
        let (mut billed, mut recognised) = (0, 0);
        let mut month = Month::of(first);
        loop {
            let boundary = month.end().min(until);
            while let Some(c) = pending.next_if(|c| c.at < boundary) {
                schedule.credit(c.at, c.amount);
            }
            let (b, r) = (schedule.billed(boundary), schedule.recognised(boundary));
            if b != billed || r != recognised {
                f(month, b - billed, r - recognised);
            }
            (billed, recognised) = (b, r);
            if boundary >= until || month.start() > settles {
                break;
            }
            month = month.next();
        }
    }
}

/// Credits of one invoice, as loaded: per referenced line, and unreferenced (to spread).
#[derive(Debug, Default)]
struct InvoiceCredits {
    by_line: HashMap<String, Vec<Credit>>,
    spread: Vec<Credit>,
}

/// Voids and credit notes of the scope, by invoice.
struct Adjustments {
    voided: HashMap<String, i64>,
    credits: HashMap<String, InvoiceCredits>,
}

impl Adjustments {
    async fn load<W: Warehouse>(w: &W, scope: &Scope) -> Result<Adjustments> {
        let until = scope.until();
        let before = |column| Filter {
            time: Some(TimeRange {
                column,
                from: None,
                until: Some(until),
            }),
            ..scope.filter()
        };
        let mut voided = HashMap::new();
        let query = RowQuery {
            filter: before("voided_at"),
            order_by: vec!["id"],
        };
        let mut rows = w.rows::<InvoiceRow>(&query);
        while let Some(inv) = rows.try_next().await? {
            if let Some(at) = inv.voided_at {
                voided.insert(inv.id, i64::from(at));
            }
        }

        let query = RowQuery {
            filter: before("created_at"),
            order_by: vec!["credit_note_id", "id"],
        };
        let mut lines_of: HashMap<String, Vec<CreditNoteLineRow>> = HashMap::new();
        let mut rows = w.rows::<CreditNoteLineRow>(&query);
        while let Some(line) = rows.try_next().await? {
            lines_of
                .entry(line.credit_note_id.clone())
                .or_default()
                .push(line);
        }
        let query = RowQuery {
            filter: before("created_at"),
            order_by: vec!["id"],
        };
        let mut credits: HashMap<String, InvoiceCredits> = HashMap::new();
        let mut rows = w.rows::<CreditNoteRow>(&query);
        while let Some(note) = rows.try_next().await? {
            let Some(invoice) = note.invoice_id.clone() else {
                continue;
            };
            let entry = credits.entry(invoice).or_default();
            let created = i64::from(note.created_at);
            let voided = note.voided_at.map(i64::from).filter(|v| *v < until);
            let mut add = |line: Option<&str>, amount: i64| {
                let mut events = vec![Credit {
                    at: created,
                    amount,
                }];
                events.extend(voided.map(|at| Credit {
                    at,
                    amount: -amount,
                }));
                match line {
                    Some(line) => entry
                        .by_line
                        .entry(line.to_owned())
                        .or_default()
                        .extend(events),
                    None => entry.spread.extend(events),
                }
            };
            match lines_of.remove(&note.id) {
                Some(lines) => {
                    for line in lines {
                        add(line.invoice_line_id.as_deref(), line.amount_excluding_tax);
                    }
                }
                None => add(None, credit_note_untaxed(&note, None)),
            }
        }
        Ok(Adjustments { voided, credits })
    }
}

/// What a credit note credits excluding tax: the sum of its lines' amounts excluding tax
/// when revline has its lines, else its `total_excluding_tax` (or subtotal less discounts).
pub fn credit_note_untaxed(note: &CreditNoteRow, lines: Option<&[CreditNoteLineRow]>) -> i64 {
    match lines {
        Some(lines) if !lines.is_empty() => lines.iter().map(|l| l.amount_excluding_tax).sum(),
        _ => note
            .total_excluding_tax
            .unwrap_or(note.subtotal - note.discount_amount),
    }
}

/// Splits `amount` over `weights` in proportion, in whole units: each gets the floor of
/// its exact share and the units left go to the largest remainders (the first on ties),
/// so the parts always add up to `amount`; a negative amount splits like its opposite.
/// All weights zero: equal shares.
pub fn spread(amount: i64, weights: &[i64]) -> Vec<i64> {
    if weights.is_empty() {
        return Vec::new();
    }
    if amount < 0 {
        // Symmetric: a negative amount splits like its opposite.
        return spread(amount.saturating_neg(), weights)
            .into_iter()
            .map(|p| -p)
            .collect();
    }
    let total: i128 = weights.iter().map(|w| i128::from(*w)).sum();
    let (weights, total): (Vec<i128>, i128) = if total == 0 {
        (vec![1; weights.len()], weights.len() as i128)
    } else {
        (weights.iter().map(|w| i128::from(*w)).collect(), total)
    };
    let exact: Vec<(i128, i128)> = weights
        .iter()
        .map(|w| {
            let n = i128::from(amount) * w;
            (n.div_euclid(total), n.rem_euclid(total))
        })
        .collect();
    let mut parts: Vec<i64> = exact
        .iter()
        .map(|(q, _)| i64::try_from(*q).unwrap_or(0))
        .collect();
    let mut left = amount - parts.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|a, b| exact[*b].1.cmp(&exact[*a].1).then(a.cmp(b)));
    for i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        let step = left.signum();
        parts[*i] += step;
        left -= step;
    }
    parts
}

/// Per month × currency: billed and recognised in the month.
type Cells = BTreeMap<(Month, String), (i64, i64)>;

pub async fn run<W: Warehouse>(w: &W, scope: &Scope) -> Result<Table> {
    let mut cells = Cells::new();
    let mut detail = Table::new(DETAIL_COLUMNS.to_vec());
    let unreferenced = walk(w, scope, |line, month, billed, recognised| {
        let cell = cells.entry((month, line.currency.clone())).or_default();
        cell.0 += billed;
        cell.1 += recognised;
        if scope.detail
            && recognised != 0
            && scope.from.is_none_or(|f| month >= f)
            && month <= scope.to
        {
            detail.push(vec![
                Some(line.invoice_id.clone()),
                Some(line.line_id.clone()),
                Some(line.currency.clone()),
                Some(month.to_string()),
                money(recognised, &line.currency),
            ]);
        }
    })
    .await?;
    let mut table = if scope.detail {
        detail.rows.sort();
        detail
    } else {
        summary(scope, &cells)
    };
    if unreferenced {
        table.warn(UNREFERENCED);
    }
    incomplete_lines(w, scope, &mut table).await?;
    Ok(table)
}

/// The warning when a credit note line names an invoice line revline does not have.
pub const UNREFERENCED: &str = "some credit note lines name an invoice line revline does not \
     have; their credit is spread over the invoice's known lines";

/// Runs every line's schedule up to the scope's end, handing `f` each (line, month, billed,
/// recognised) change in time order per line. True when some credit named a line revline
/// does not have (spread instead).
pub async fn walk<W: Warehouse>(
    w: &W,
    scope: &Scope,
    mut f: impl FnMut(&InvoiceLineRow, Month, i64, i64),
) -> Result<bool> {
    let until = scope.until();
    let mut adjustments = Adjustments::load(w, scope).await?;
    let query = RowQuery {
        filter: Filter {
            time: Some(TimeRange {
                column: "invoice_finalized_at",
                from: None,
                until: Some(until),
            }),
            ..scope.filter()
        },
        order_by: vec!["invoice_id", "id"],
    };
    let mut unreferenced = false;
    let mut lines = w.rows::<InvoiceLineRow>(&query);
    let mut next = lines.try_next().await?;
    while let Some(first) = next.take() {
        // One invoice's lines.
        let mut invoice = vec![first];
        loop {
            next = lines.try_next().await?;
            match &next {
                Some(line) if line.invoice_id == invoice[0].invoice_id => {
                    invoice.push(next.take().expect("just matched"))
                }
                _ => break,
            }
        }
        let id = invoice[0].invoice_id.clone();
        let voided = adjustments.voided.get(&id).copied();
        let mut credits = adjustments.credits.remove(&id).unwrap_or_default();
        let mut per_line: Vec<Vec<Credit>> = invoice
            .iter()
            .map(|l| credits.by_line.remove(&l.line_id).unwrap_or_default())
            .collect();
        // Credits naming a line this invoice does not have are spread like the rest.
        for (_, orphan) in credits.by_line.drain() {
            unreferenced = true;
            credits.spread.extend(orphan);
        }
        let weights: Vec<i64> = invoice.iter().map(|l| l.recognizable_amount).collect();
        for credit in &credits.spread {
            for (line, part) in per_line.iter_mut().zip(spread(credit.amount, &weights)) {
                line.push(Credit {
                    at: credit.at,
                    amount: part,
                });
            }
        }
        for (line, mut credits) in invoice.iter().zip(per_line) {
            credits.sort_unstable();
            let Some(finalized) = line.invoice_finalized_at else {
                continue;
            };
            let period = line
                .period_start
                .zip(line.period_end)
                .map(|(s, e)| (i64::from(s), i64::from(e)));
            let mut schedule =
                Schedule::new(line.recognizable_amount, i64::from(finalized), period);
            schedule.voided = voided;
            schedule.months(&credits, until, |month, billed, recognised| {
                f(line, month, billed, recognised)
            });
        }
    }
    Ok(unreferenced)
}

/// One row per month × currency, from `from` (default: the first month with anything
/// billed) to `to`, with `deferred_end` the running balance since the first month.
fn summary(scope: &Scope, cells: &Cells) -> Table {
    let currencies: BTreeSet<&String> = cells
        .iter()
        .filter(|((m, _), (b, _))| *m <= scope.to && *b != 0)
        .map(|((_, c), _)| c)
        .collect();
    let mut table = Table::new(COLUMNS.to_vec());
    let Some(first) = cells.keys().map(|(m, _)| *m).min() else {
        return table;
    };
    let from = scope.from.unwrap_or_else(|| {
        cells
            .iter()
            .filter(|(_, (b, _))| *b != 0)
            .map(|((m, _), _)| *m)
            .min()
            .unwrap_or(first)
    });
    let mut deferred: HashMap<&String, i64> = HashMap::new();
    for month in first.min(from).through(scope.to) {
        for currency in &currencies {
            let (billed, recognised) = cells
                .get(&(month, (*currency).clone()))
                .copied()
                .unwrap_or_default();
            let balance = deferred.entry(currency).or_default();
            *balance += billed - recognised;
            if month >= from {
                table.push(vec![
                    Some(month.to_string()),
                    Some((*currency).clone()),
                    money(billed, currency),
                    money(recognised, currency),
                    money(*balance, currency),
                ]);
            }
        }
    }
    table
}

/// Warns when some finalized invoice of the scope carried only the first page of its lines
/// and the rest was not fetched (no `STRIPE_API_KEY`, or not yet).
async fn incomplete_lines<W: Warehouse>(w: &W, scope: &Scope, table: &mut Table) -> Result<()> {
    let filter = Filter {
        time: Some(TimeRange {
            column: "finalized_at",
            from: None,
            until: Some(scope.until()),
        }),
        ..scope.filter()
    };
    let incomplete = warehouse::fetched::invoices_missing_lines(w, &filter)
        .await?
        .len();
    if incomplete > 0 {
        table.warn(format!(
            "{incomplete} finalized invoice(s) carried only the first page of their lines \
             (lines.has_more) and the rest is not fetched yet (set STRIPE_API_KEY so revline \
             fetches it): the lines not delivered are not recognised"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z and one day.
    const JAN: i64 = 1_767_225_600;
    const DAY: i64 = 86_400;

    fn months(s: &Schedule, credits: &[Credit], until: i64) -> Vec<(String, i64, i64)> {
        let mut out = Vec::new();
        s.months(credits, until, |m, b, r| out.push((m.to_string(), b, r)));
        out
    }

    #[test]
    fn a_year_is_recognised_by_the_second_and_caught_up_at_finalization() {
        // 365.00 over 2026: 31 days in January = 31.00, 28 in February = 28.00, …
        let year = Schedule::new(36500, JAN, Some((JAN, JAN + 365 * DAY)));
        let got = months(&year, &[], i64::MAX);
        assert_eq!(got.len(), 12);
        assert_eq!(got[0], ("2026-01".into(), 36500, 3100));
        assert_eq!(got[1], ("2026-02".into(), 0, 2800));
        assert_eq!(got.iter().map(|m| m.2).sum::<i64>(), 36500);
        // Finalized on 10 February: January's share is caught up in February.
        let late = Schedule::new(36500, JAN + 40 * DAY, Some((JAN, JAN + 365 * DAY)));
        let got = months(&late, &[], i64::MAX);
        assert_eq!(got[0], ("2026-02".into(), 36500, 5900));
        // No period: whole at finalization.
        let once = Schedule::new(999, JAN + 5, None);
        assert_eq!(months(&once, &[], i64::MAX), [("2026-01".into(), 999, 999)]);
    }

    #[test]
    fn rounding_is_half_even_on_the_cumulative() {
        // 1.00 over 3 days from 1 January: 0.333… a day; all in January.
        let s = Schedule::new(100, JAN, Some((JAN, JAN + 3 * DAY)));
        assert_eq!(s.base(JAN + DAY).round_half_even(), 33);
        assert_eq!(months(&s, &[], i64::MAX), [("2026-01".into(), 100, 100)]);
        // 0.05 over 2 days across a month end: half is 2.5, rounded to 2 (even).
        let dec31 = JAN - DAY;
        let s = Schedule::new(5, dec31, Some((dec31, dec31 + 2 * DAY)));
        assert_eq!(
            months(&s, &[], i64::MAX),
            [("2025-12".into(), 5, 2), ("2026-01".into(), 0, 3)]
        );
    }

    #[test]
    fn a_void_reverses_everything_in_its_month() {
        let mut s = Schedule::new(3000, JAN, Some((JAN, JAN + 30 * DAY)));
        s.voided = Some(JAN + 40 * DAY);
        let got = months(&s, &[], i64::MAX);
        assert_eq!(
            got,
            [
                ("2026-01".into(), 3000, 3000),
                ("2026-02".into(), -3000, -3000)
            ]
        );
    }

    #[test]
    fn a_credit_scales_the_rest_or_is_negative_recognition_at_once() {
        // 100.00 over 10 days; after 4 days (40.00 recognised) a 30.00 credit: the remaining
        // 60.00 becomes 30.00 over the last 6 days.
        let mut s = Schedule::new(10000, JAN, Some((JAN, JAN + 10 * DAY)));
        s.credit(JAN + 4 * DAY, 3000);
        assert_eq!(s.base(JAN + 4 * DAY), Ratio::int(4000));
        assert_eq!(s.base(JAN + 7 * DAY), Ratio::int(5500));
        assert_eq!(s.base(JAN + 10 * DAY), Ratio::int(7000));
        // A credit of 80.00 there exceeds what remains: −20.00 at once.
        let mut s = Schedule::new(10000, JAN, Some((JAN, JAN + 10 * DAY)));
        s.credit(JAN + 4 * DAY, 8000);
        assert_eq!(s.base(JAN + 4 * DAY), Ratio::int(2000));
        assert_eq!(s.base(JAN + 9 * DAY), Ratio::int(2000));
        // After the period: all negative recognition in the credit's month, and billed too.
        let s = Schedule::new(10000, JAN, Some((JAN, JAN + 10 * DAY)));
        let credit = [Credit {
            at: JAN + 40 * DAY,
            amount: 2500,
        }];
        assert_eq!(
            months(&s, &credit, i64::MAX),
            [
                ("2026-01".into(), 10000, 10000),
                ("2026-02".into(), -2500, -2500)
            ]
        );
        // A voided credit note gives the credit back at its void.
        let back = [
            Credit {
                at: JAN + 4 * DAY,
                amount: 3000,
            },
            Credit {
                at: JAN + 7 * DAY,
                amount: -3000,
            },
        ];
        let mut s = Schedule::new(10000, JAN, Some((JAN, JAN + 10 * DAY)));
        for c in back {
            s.credit(c.at, c.amount);
        }
        assert_eq!(s.base(JAN + 7 * DAY), Ratio::int(5500));
        assert_eq!(s.base(JAN + 10 * DAY), Ratio::int(10000));
    }

    #[test]
    fn the_month_in_progress_is_recognised_up_to_now() {
        let s = Schedule::new(3000, JAN, Some((JAN, JAN + 30 * DAY)));
        assert_eq!(
            months(&s, &[], JAN + 10 * DAY),
            [("2026-01".into(), 3000, 1000)]
        );
    }

    #[test]
    fn spreading_keeps_whole_units_and_the_total() {
        assert_eq!(spread(100, &[1, 1, 1]), [34, 33, 33]);
        assert_eq!(spread(-100, &[1, 1, 1]), [-34, -33, -33]);
        assert_eq!(spread(1000, &[3000, 1000]), [750, 250]);
        assert_eq!(spread(7, &[0, 0]), [4, 3]);
        assert_eq!(spread(5, &[]), Vec::<i64>::new());
        assert_eq!(spread(10, &[-500, 1500]).iter().sum::<i64>(), 10);
    }
}
