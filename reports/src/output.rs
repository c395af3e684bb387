//! A report's result and its three renderings, shared by the CLI and the HTTP endpoint:
//! CSV (RFC 4180, LF line ends, no BOM, a header row, an empty field for null), JSON (an
//! array of objects with the same keys, every value a string or null) and a text table for
//! terminals.

use std::fmt::Write as _;

/// Rows of text cells under fixed columns; `None` is null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Option<String>>>,
    /// Things the reader must know about the figures (missing data, ignored discounts).
    pub warnings: Vec<String>,
}

/// How a table is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Table,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "table" => Some(Format::Table),
            _ => None,
        }
    }

    /// The HTTP content type of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::Table => "text/plain; charset=utf-8",
        }
    }
}

impl Table {
    pub fn new(columns: Vec<&'static str>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Adds a row; its length must match the columns.
    pub fn push(&mut self, row: Vec<Option<String>>) {
        debug_assert_eq!(row.len(), self.columns.len(), "row width");
        self.rows.push(row);
    }

    /// Adds a warning once.
    pub fn warn(&mut self, warning: impl Into<String>) {
        let warning = warning.into();
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Csv => self.csv(),
            Format::Json => self.json(),
            Format::Table => self.text(),
        }
    }

    fn csv(&self) -> String {
        fn field(out: &mut String, value: &str) {
            if value.contains([',', '"', '\n', '\r']) {
                out.push('"');
                out.push_str(&value.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(value);
            }
        }
        let mut out = String::new();
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            field(&mut out, c);
        }
        out.push('\n');
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                field(&mut out, cell.as_deref().unwrap_or(""));
            }
            out.push('\n');
        }
        out
    }

    /// Objects written key by key, so keys keep the column order (a JSON map would sort
    /// them).
    fn json(&self) -> String {
        let quote = |s: &str| serde_json::to_string(s).expect("a string serialises");
        let mut out = String::from("[");
        for (r, row) in self.rows.iter().enumerate() {
            out.push_str(if r == 0 { "{" } else { ",{" });
            for (i, (column, cell)) in self.columns.iter().zip(row).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&quote(column));
                out.push(':');
                match cell {
                    Some(v) => out.push_str(&quote(v)),
                    None => out.push_str("null"),
                }
            }
            out.push('}');
        }
        out.push_str("]\n");
        out
    }

    /// Aligned columns for a terminal; line breaks and tabs inside a cell become spaces so
    /// that every row stays on one line.
    fn text(&self) -> String {
        let flat = |cell: &Option<String>| -> String {
            cell.as_deref()
                .unwrap_or("")
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect()
        };
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(flat).collect())
            .collect();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(c.len())
            })
            .collect();
        let mut out = String::new();
        let line = |out: &mut String, cells: Vec<&str>| {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                // Numbers right-aligned, text left-aligned.
                let numeric = !cell.is_empty()
                    && cell
                        .trim_start_matches('-')
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'.');
                if numeric {
                    let _ = write!(text, "{cell:>width$}");
                } else {
                    let _ = write!(text, "{cell:<width$}");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&mut out, self.columns.to_vec());
        line(
            &mut out,
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect(),
        );
        for row in &rows {
            line(&mut out, row.iter().map(String::as_str).collect());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(vec!["month", "currency", "memo", "amount"]);
        t.push(vec![
            Some("2026-01".into()),
            Some("usd".into()),
            Some("say \"hi\", then\nleave".into()),
            Some("12.00".into()),
        ]);
        t.push(vec![
            Some("2026-02".into()),
            Some("jpy".into()),
            None,
            Some("-1200".into()),
        ]);
        t
    }

    #[test]
    fn csv_quotes_per_rfc_4180_with_lf_line_ends_and_empty_nulls() {
        assert_eq!(
            sample().render(Format::Csv),
            "month,currency,memo,amount\n2026-01,usd,\"say \"\"hi\"\", then\nleave\",12.00\n2026-02,jpy,,-1200\n"
        );
    }

    #[test]
    fn json_is_an_array_of_string_objects() {
        let json: serde_json::Value = serde_json::from_str(&sample().render(Format::Json)).unwrap();
        assert_eq!(json[0]["amount"], "12.00");
        assert_eq!(json[1]["memo"], serde_json::Value::Null);
        assert_eq!(json.as_array().unwrap().len(), 2);
        let text = sample().render(Format::Json);
        assert!(
            text.starts_with(r#"[{"month":"2026-01","currency":"usd","memo":"#),
            "keys keep the column order: {text}"
        );
    }

    #[test]
    fn text_tables_align_columns() {
        let text = sample().render(Format::Table);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("month    currency"), "{text}");
        assert!(lines[1].starts_with("-------  --------"), "{text}");
        assert_eq!(lines.len(), 4, "one line per row: {text}");
        assert!(lines[2].contains("say \"hi\", then leave"), "{text}");
        assert!(lines[3].ends_with("-1200"), "{text}");
    }
}
