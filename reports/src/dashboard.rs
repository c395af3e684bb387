//! The dashboard page (`GET /` on the admin listener): per currency, MRR over time (a
//! line), MRR movements per month (stacked bars: new, expansion, reactivation up;
//! contraction, churn down), revenue per month (collected, refunded, net) and AR aging
//! today, each with its figures in a table below it.
//!
//! Drawn here as inline SVG inside plain HTML: no JavaScript, no external resource, so it
//! works offline, behind a strict proxy and in a text browser (which shows the tables). It
//! reads through the same report code as `revline report` ([`Reports::run`]) and shows the
//! very strings those reports print; chart geometry is integer arithmetic on minor units.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use warehouse::Warehouse;

use crate::money::parse_major;
use crate::{ParamError, Params, ReportError, ReportName, Reports, Table};

/// Chart size (SVG user units) and the plot area inside it.
const WIDTH: i64 = 720;
const HEIGHT: i64 = 240;
const LEFT: i64 = 96;
const RIGHT: i64 = 704;
const TOP: i64 = 16;
const BOTTOM: i64 = 208;

/// Series colours, readable on white and for the common colour-vision deficiencies.
const GREEN: &str = "#1b9e77";
const BLUE: &str = "#377eb8";
const PURPLE: &str = "#7570b3";
const ORANGE: &str = "#d95f02";
const RED: &str = "#c0392b";

/// A report's rows for one currency, cells looked up by column name.
struct Rows<'t> {
    table: &'t Table,
    rows: Vec<&'t Vec<Option<String>>>,
}

impl<'t> Rows<'t> {
    fn of(table: &'t Table, currency: &str) -> Rows<'t> {
        let at = table.columns.iter().position(|c| *c == "currency");
        let rows = table
            .rows
            .iter()
            .filter(|r| at.is_some_and(|i| r[i].as_deref() == Some(currency)))
            .collect();
        Rows { table, rows }
    }

    fn cell(&self, row: usize, column: &str) -> &'t str {
        let i = self
            .table
            .columns
            .iter()
            .position(|c| *c == column)
            .unwrap_or_else(|| panic!("the report has a {column} column"));
        self.rows[row][i].as_deref().unwrap_or("")
    }
}

/// One series of a chart: a name, a colour, and per point the printed figure.
struct Series<'a> {
    name: &'a str,
    colour: &'a str,
    /// Drawn below the axis (movements that lower MRR).
    down: bool,
    values: Vec<&'a str>,
}

/// The page for `params` (`from`, `to`, `currency`, `livemode`, `account`).
pub async fn page<W: Warehouse>(
    reports: &Reports<W>,
    params: &Params,
) -> Result<String, ReportError> {
    for (given, name) in [
        (params.format.is_some(), "format"),
        (params.as_of.is_some(), "as_of"),
        (params.detail, "detail"),
    ] {
        if given {
            return Err(ParamError::invalid(name, "the dashboard takes no such parameter").into());
        }
    }
    let mrr = reports.run(ReportName::Mrr, params).await?;
    let revenue = reports.run(ReportName::Revenue, params).await?;
    let aging_params = Params {
        from: None,
        to: None,
        ..params.clone()
    };
    let aging = reports.run(ReportName::ArAging, &aging_params).await?;
    let scope = reports.scope(params).await?;

    let mut currencies = BTreeSet::new();
    for table in [&mrr, &revenue, &aging] {
        if let Some(i) = table.columns.iter().position(|c| *c == "currency") {
            currencies.extend(table.rows.iter().filter_map(|r| r[i].clone()));
        }
    }

    let mut html = String::from(HEAD);
    let mode = if scope.livemode {
        "live mode"
    } else {
        "test mode"
    };
    let _ = write!(
        html,
        "<h1>revline</h1>\n<p class=\"scope\">{mode} · months to {} · as of {}</p>\n",
        scope.to,
        crate::calendar::format_utc(scope.now)
    );
    let mut warnings: Vec<&String> = Vec::new();
    for w in mrr
        .warnings
        .iter()
        .chain(&revenue.warnings)
        .chain(&aging.warnings)
    {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    if !warnings.is_empty() {
        html.push_str("<ul class=\"warnings\">\n");
        for w in warnings {
            let _ = writeln!(html, "<li>{}</li>", escape(w));
        }
        html.push_str("</ul>\n");
    }
    if currencies.is_empty() {
        html.push_str(
            "<p class=\"empty\">No revenue data yet. Send Stripe events to the webhook \
             listener (or run <code>revline demo</code>) and reload.</p>\n",
        );
    }
    html.push_str("<nav>");
    for c in &currencies {
        let _ = write!(html, "<a href=\"#{c}\">{}</a> ", c.to_uppercase());
    }
    html.push_str("</nav>\n");
    for currency in &currencies {
        let _ = writeln!(
            html,
            "<section id=\"{currency}\"><h2>{}</h2>",
            currency.to_uppercase()
        );
        mrr_section(&mut html, &Rows::of(&mrr, currency), currency);
        revenue_section(&mut html, &Rows::of(&revenue, currency), currency);
        aging_section(&mut html, &Rows::of(&aging, currency), currency);
        html.push_str("</section>\n");
    }
    html.push_str("</body>\n</html>\n");
    Ok(html)
}

fn mrr_section(html: &mut String, rows: &Rows<'_>, currency: &str) {
    let n = rows.rows.len();
    let months: Vec<&str> = (0..n).map(|i| rows.cell(i, "month")).collect();
    let column = |name: &str| (0..n).map(|i| rows.cell(i, name)).collect::<Vec<_>>();
    let mrr_end = Series {
        name: "mrr_end",
        colour: BLUE,
        down: false,
        values: column("mrr_end"),
    };
    chart(
        html,
        "mrr",
        "MRR at month end",
        currency,
        &months,
        &[mrr_end],
        true,
    );
    table(
        html,
        "mrr",
        currency,
        &["month", "mrr_end", "arr_end", "subscribers_end"],
        rows,
    );
    let movements = [
        ("new", GREEN, false),
        ("expansion", BLUE, false),
        ("reactivation", PURPLE, false),
        ("contraction", ORANGE, true),
        ("churn", RED, true),
    ]
    .map(|(name, colour, down)| Series {
        name,
        colour,
        down,
        values: column(name),
    });
    chart(
        html,
        "mrr-movements",
        "MRR movements per month",
        currency,
        &months,
        &movements,
        false,
    );
    table(
        html,
        "mrr-movements",
        currency,
        &[
            "month",
            "new",
            "expansion",
            "reactivation",
            "contraction",
            "churn",
        ],
        rows,
    );
}

fn revenue_section(html: &mut String, rows: &Rows<'_>, currency: &str) {
    let n = rows.rows.len();
    let months: Vec<&str> = (0..n).map(|i| rows.cell(i, "month")).collect();
    let series =
        [("collected", GREEN), ("refunded", ORANGE), ("net", BLUE)].map(|(name, colour)| Series {
            name,
            colour,
            down: false,
            values: (0..n).map(|i| rows.cell(i, name)).collect(),
        });
    grouped_chart(
        html,
        "revenue",
        "Revenue per month",
        currency,
        &months,
        &series,
    );
    table(
        html,
        "revenue",
        currency,
        &["month", "collected", "refunded", "disputed", "fees", "net"],
        rows,
    );
}

fn aging_section(html: &mut String, rows: &Rows<'_>, currency: &str) {
    const BUCKETS: [(&str, &str); 6] = [
        ("current", "current"),
        ("days_1_30", "1–30 days"),
        ("days_31_60", "31–60"),
        ("days_61_90", "61–90"),
        ("days_91_120", "91–120"),
        ("days_over_120", "over 120"),
    ];
    if rows.rows.is_empty() {
        return;
    }
    let labels: Vec<&str> = BUCKETS.iter().map(|(_, label)| *label).collect();
    let owed = Series {
        name: "amount_remaining",
        colour: ORANGE,
        down: false,
        values: BUCKETS.iter().map(|(c, _)| rows.cell(0, c)).collect(),
    };
    grouped_chart(
        html,
        "ar-aging",
        "Accounts receivable by days past due, today",
        currency,
        &labels,
        &[owed],
    );
    let mut columns: Vec<&str> = BUCKETS.iter().map(|(c, _)| *c).collect();
    columns.push("total");
    table(html, "ar-aging", currency, &columns, rows);
}

/// Minor units of a printed figure (an empty cell is 0).
fn minor(text: &str, currency: &str) -> i64 {
    parse_major(text, currency).unwrap_or(0)
}

/// The value range a chart's axis spans: always includes 0.
fn range(series: &[Series<'_>], currency: &str, stacked: bool) -> (i64, i64) {
    let points = series.first().map_or(0, |s| s.values.len());
    let (mut low, mut high) = (0i64, 0i64);
    for p in 0..points {
        let (mut up, mut down) = (0i64, 0i64);
        for s in series {
            let v = minor(s.values[p], currency);
            if stacked {
                if s.down {
                    down -= v.abs();
                } else {
                    up += v;
                }
            } else {
                low = low.min(v);
                high = high.max(v);
            }
        }
        low = low.min(down);
        high = high.max(up);
    }
    if low == high {
        high = low + 1;
    }
    (low, high)
}

/// The y coordinate of `v` on an axis spanning `[low, high]`.
fn y(v: i64, (low, high): (i64, i64)) -> i64 {
    let span = i128::from(high) - i128::from(low);
    let off = (i128::from(v) - i128::from(low)) * i128::from(BOTTOM - TOP) / span;
    BOTTOM - i64::try_from(off).unwrap_or(0)
}

/// The opening of a chart: the figure, its caption, the axes and their labels.
fn open_chart(
    html: &mut String,
    kind: &str,
    caption: &str,
    currency: &str,
    labels: &[&str],
    span: (i64, i64),
    series: &[Series<'_>],
) {
    let _ = write!(
        html,
        "<figure data-chart=\"{kind}\" data-currency=\"{currency}\">\n<figcaption>{caption} ({})</figcaption>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"{caption}\">\n",
        currency.to_uppercase(),
    );
    for v in [span.0, 0, span.1] {
        let at = y(v, span);
        let _ = writeln!(
            html,
            "<line x1=\"{LEFT}\" y1=\"{at}\" x2=\"{RIGHT}\" y2=\"{at}\" class=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" class=\"axis\" text-anchor=\"end\">{}</text>",
            if v == 0 { "zero" } else { "grid" },
            LEFT - 6,
            at + 4,
            crate::money::format_major(v, currency)
        );
    }
    // Every label when they fit, else the first and the last.
    let n = labels.len().max(1) as i64;
    let slot = (RIGHT - LEFT) / n;
    for (i, label) in labels.iter().enumerate() {
        let (x, anchor) = if labels.len() <= 8 {
            (LEFT + slot * i as i64 + slot / 2, "middle")
        } else if i == 0 {
            (LEFT, "start")
        } else if i + 1 == labels.len() {
            (RIGHT, "end")
        } else {
            continue;
        };
        let _ = writeln!(
            html,
            "<text x=\"{x}\" y=\"{}\" class=\"axis\" text-anchor=\"{anchor}\">{label}</text>",
            HEIGHT - 14
        );
    }
    if series
        .iter()
        .all(|s| s.values.iter().all(|v| minor(v, currency) == 0))
    {
        let _ = writeln!(
            html,
            "<text x=\"{}\" y=\"{}\" class=\"empty\" text-anchor=\"middle\">all zero</text>",
            (LEFT + RIGHT) / 2,
            (TOP + BOTTOM) / 2
        );
    }
    let mut x = LEFT;
    for s in series {
        let _ = writeln!(
            html,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" class=\"legend\">{}</text>",
            HEIGHT - 10,
            s.colour,
            x + 14,
            HEIGHT - 1,
            s.name
        );
        x += 24 + 8 * s.name.len() as i64;
    }
}

/// A line chart (`line`) or stacked bars (`!line`) of `series` over `labels`.
fn chart(
    html: &mut String,
    kind: &str,
    caption: &str,
    currency: &str,
    labels: &[&str],
    series: &[Series<'_>],
    line: bool,
) {
    let span = range(series, currency, !line);
    open_chart(html, kind, caption, currency, labels, span, series);
    let n = labels.len().max(1) as i64;
    let slot = (RIGHT - LEFT) / n;
    let centre = |i: usize| LEFT + slot * i as i64 + slot / 2;
    if line {
        for s in series {
            let points: Vec<String> = s
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{},{}", centre(i), y(minor(v, currency), span)))
                .collect();
            let _ = writeln!(
                html,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
                s.colour,
                points.join(" ")
            );
            for (i, v) in s.values.iter().enumerate() {
                let _ = writeln!(
                    html,
                    "<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\" data-series=\"{}\" data-label=\"{}\" data-value=\"{}\"><title>{}: {} {}</title></circle>",
                    centre(i),
                    y(minor(v, currency), span),
                    s.colour,
                    s.name,
                    labels[i],
                    v,
                    labels[i],
                    s.name,
                    v
                );
            }
        }
    } else {
        let width = (slot * 3 / 4).max(1);
        for (i, label) in labels.iter().enumerate() {
            let (mut up, mut down) = (0i64, 0i64);
            for s in series {
                let v = minor(s.values[i], currency);
                if v == 0 {
                    continue;
                }
                let (from, to) = if s.down {
                    let from = down;
                    down -= v.abs();
                    (from, down)
                } else {
                    let from = up;
                    up += v;
                    (from, up)
                };
                bar(
                    html,
                    centre(i) - width / 2,
                    width,
                    (from, to),
                    span,
                    s,
                    label,
                    s.values[i],
                );
            }
        }
    }
    html.push_str("</svg>\n</figure>\n");
}

/// Bars side by side per label, one per series.
fn grouped_chart(
    html: &mut String,
    kind: &str,
    caption: &str,
    currency: &str,
    labels: &[&str],
    series: &[Series<'_>],
) {
    let span = range(series, currency, false);
    open_chart(html, kind, caption, currency, labels, span, series);
    let n = labels.len().max(1) as i64;
    let slot = (RIGHT - LEFT) / n;
    let width = (slot * 3 / 4 / series.len().max(1) as i64).max(1);
    for (i, label) in labels.iter().enumerate() {
        let start = LEFT + slot * i as i64 + slot / 8;
        for (k, s) in series.iter().enumerate() {
            let v = minor(s.values[i], currency);
            if v == 0 {
                continue;
            }
            bar(
                html,
                start + width * k as i64,
                width,
                (0, v),
                span,
                s,
                label,
                s.values[i],
            );
        }
    }
    html.push_str("</svg>\n</figure>\n");
}

/// One bar from value `from` to value `to`, carrying its printed figure.
#[allow(clippy::too_many_arguments)]
fn bar(
    html: &mut String,
    x: i64,
    width: i64,
    (from, to): (i64, i64),
    span: (i64, i64),
    s: &Series<'_>,
    label: &str,
    printed: &str,
) {
    let (a, b) = (y(from, span), y(to, span));
    let _ = writeln!(
        html,
        "<rect x=\"{x}\" y=\"{}\" width=\"{width}\" height=\"{}\" fill=\"{}\" data-series=\"{}\" data-label=\"{label}\" data-value=\"{printed}\"><title>{label}: {} {printed}</title></rect>",
        a.min(b),
        (a - b).abs().max(1),
        s.colour,
        s.name,
        s.name,
    );
}

/// The figures under a chart, as the report printed them.
fn table(html: &mut String, kind: &str, currency: &str, columns: &[&str], rows: &Rows<'_>) {
    let _ = write!(
        html,
        "<table data-table=\"{kind}\" data-currency=\"{currency}\">\n<thead><tr>"
    );
    for c in columns {
        let _ = write!(html, "<th>{c}</th>");
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for i in 0..rows.rows.len() {
        html.push_str("<tr>");
        for c in columns {
            let _ = write!(
                html,
                "<td data-column=\"{c}\">{}</td>",
                escape(rows.cell(i, c))
            );
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table>\n");
}

/// Text made safe for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const HEAD: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>revline dashboard</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem auto; max-width: 760px; color: #222; }
h1 { font-size: 1.4rem; margin-bottom: 0; }
h2 { border-bottom: 1px solid #ccc; margin-top: 2rem; }
.scope { color: #555; margin-top: 0.2rem; }
.warnings { background: #fff6e0; border: 1px solid #e0c070; padding: 0.5rem 1.5rem; }
figure { margin: 1rem 0 0.3rem; }
figcaption { font-weight: 600; }
svg { width: 100%; height: auto; }
svg .axis, svg .legend { font-size: 11px; fill: #555; }
svg .empty { font-size: 14px; fill: #888; }
svg .grid { stroke: #e3e3e3; }
svg .zero { stroke: #888; }
table { border-collapse: collapse; font-size: 12px; margin-bottom: 1rem; }
th, td { padding: 1px 8px; text-align: right; border-bottom: 1px solid #eee; }
th:first-child, td:first-child { text-align: left; }
nav a { margin-right: 0.6rem; }
</style>
</head>
<body>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_always_spans_zero_and_maps_into_the_plot() {
        let s = Series {
            name: "x",
            colour: BLUE,
            down: false,
            values: vec!["10.00", "-5.00"],
        };
        let span = range(&[s], "usd", false);
        assert_eq!(span, (-500, 1000));
        assert_eq!(y(1000, span), TOP);
        assert_eq!(y(-500, span), BOTTOM);
        assert!(y(0, span) > TOP && y(0, span) < BOTTOM);
        let flat = Series {
            name: "x",
            colour: BLUE,
            down: true,
            values: vec!["0.00"],
        };
        assert_eq!(range(&[flat], "usd", true), (0, 1));
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
