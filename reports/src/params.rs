//! What a caller asks for: the report's name and its parameters, parsed from `name=value`
//! pairs. The CLI (`--from 2026-01`) and the admin listener (`?from=2026-01`) both hand
//! their pairs to [`Params::parse`], so both accept and refuse exactly the same input, and
//! every refusal names the parameter.

use std::fmt;

use warehouse::Account;

use crate::calendar::{parse_date, Month};
use crate::money::is_known_currency;
use crate::output::Format;

/// The reports revline serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportName {
    Mrr,
    MrrMovements,
    Revenue,
    Invoices,
    Customers,
    RevenueRecognition,
    ArAging,
    Payouts,
    Journal,
}

impl ReportName {
    /// Every report, in the order `revline report --help` lists them.
    pub const ALL: &'static [ReportName] = &[
        ReportName::Mrr,
        ReportName::MrrMovements,
        ReportName::Revenue,
        ReportName::Invoices,
        ReportName::Customers,
        ReportName::RevenueRecognition,
        ReportName::ArAging,
        ReportName::Payouts,
        ReportName::Journal,
    ];

    pub fn parse(name: &str) -> Result<ReportName, ParamError> {
        Self::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == name)
            .ok_or_else(|| ParamError::UnknownReport(name.to_owned()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReportName::Mrr => "mrr",
            ReportName::MrrMovements => "mrr-movements",
            ReportName::Revenue => "revenue",
            ReportName::Invoices => "invoices",
            ReportName::Customers => "customers",
            ReportName::RevenueRecognition => "revenue-recognition",
            ReportName::ArAging => "ar-aging",
            ReportName::Payouts => "payouts",
            ReportName::Journal => "journal",
        }
    }

    /// Refuses the parameters this report does not take (naming them), so a parameter
    /// never silently does nothing.
    pub fn check(self, params: &Params) -> Result<(), ParamError> {
        let months = !matches!(self, ReportName::ArAging);
        let from = months && self != ReportName::Customers;
        let as_of = self == ReportName::ArAging;
        let detail = matches!(
            self,
            ReportName::ArAging | ReportName::RevenueRecognition | ReportName::Payouts
        );
        let refuse = |name: &str, why: &str| {
            Err(ParamError::invalid(
                name,
                format!("the {self} report {why}"),
            ))
        };
        if params.from.is_some() && !from {
            return refuse(
                "from",
                if months {
                    "is lifetime figures as of the end of `to`: it takes no `from`"
                } else {
                    "is as of one day (`as_of`): it takes no `from`"
                },
            );
        }
        if params.to.is_some() && !months {
            return refuse("to", "is as of one day (`as_of`): it takes no `to`");
        }
        if params.as_of.is_some() && !as_of {
            return refuse("as_of", "covers months (`from`, `to`): it takes no `as_of`");
        }
        if params.detail && !detail {
            return refuse("detail", "has no detail rows");
        }
        Ok(())
    }
}

impl fmt::Display for ReportName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request: an unknown report, or a parameter that is malformed, unknown,
/// repeated or inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown report {0:?} (known: {known})", known = known_reports())]
    UnknownReport(String),
    #[error("{parameter}: {message}")]
    Invalid { parameter: String, message: String },
}

fn known_reports() -> String {
    ReportName::ALL
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl ParamError {
    pub(crate) fn invalid(parameter: &str, message: impl Into<String>) -> ParamError {
        ParamError::Invalid {
            parameter: parameter.to_owned(),
            message: message.into(),
        }
    }

    /// The stable code of the error, for the `error` field of an HTTP answer.
    pub fn code(&self) -> &'static str {
        match self {
            ParamError::UnknownReport(_) => "unknown_report",
            ParamError::Invalid { .. } => "invalid_parameter",
        }
    }

    /// The parameter at fault (`report` for an unknown report).
    pub fn parameter(&self) -> &str {
        match self {
            ParamError::UnknownReport(_) => "report",
            ParamError::Invalid { parameter, .. } => parameter,
        }
    }
}

/// A report's parameters; `None` means "the default", which [`crate::Reports`] works out
/// from the data and the clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pub from: Option<Month>,
    pub to: Option<Month>,
    pub currency: Option<String>,
    pub livemode: Option<bool>,
    /// `None`: the platform's own data (no Connect account).
    pub account: Option<Account>,
    pub format: Option<Format>,
    /// A day, as the Unix instant of its midnight (UTC): `ar-aging` is as of its end.
    pub as_of: Option<i64>,
    /// One row per item instead of the summary (`ar-aging`, `revenue-recognition`).
    pub detail: bool,
}

/// The parameter names, as the query string's `name=` (the CLI's `--as-of` is `as_of`).
pub const NAMES: &[&str] = &[
    "from", "to", "currency", "livemode", "account", "format", "as_of", "detail",
];

impl Params {
    /// Parses `name=value` pairs. Unknown and repeated names are refused, so a typo never
    /// silently falls back to a default.
    pub fn parse<I, K, V>(pairs: I) -> Result<Params, ParamError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut params = Params::default();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in pairs {
            let (name, value) = (name.as_ref(), value.as_ref());
            if !NAMES.contains(&name) {
                return Err(ParamError::invalid(
                    name,
                    format!("unknown parameter (known: {})", NAMES.join(", ")),
                ));
            }
            if seen.iter().any(|s| s == name) {
                return Err(ParamError::invalid(name, "given more than once"));
            }
            seen.push(name.to_owned());
            match name {
                "from" => params.from = Some(month(name, value)?),
                "to" => params.to = Some(month(name, value)?),
                "currency" => {
                    let code = value.to_ascii_lowercase();
                    if !is_known_currency(&code) {
                        return Err(ParamError::invalid(
                            name,
                            format!("{value:?} is not an ISO 4217 currency code Stripe uses"),
                        ));
                    }
                    params.currency = Some(code);
                }
                "livemode" => params.livemode = Some(boolean(name, value)?),
                "detail" => params.detail = boolean(name, value)?,
                "as_of" => {
                    params.as_of = Some(parse_date(value).ok_or_else(|| {
                        ParamError::invalid(
                            name,
                            format!("{value:?} is not a date of the form YYYY-MM-DD"),
                        )
                    })?)
                }
                "account" => params.account = Some(account(value)?),
                "format" => {
                    params.format = Some(Format::parse(value).ok_or_else(|| {
                        ParamError::invalid(
                            name,
                            format!("{value:?} is not a format (csv, json or table)"),
                        )
                    })?)
                }
                _ => unreachable!("every name in NAMES is handled"),
            }
        }
        if let (Some(from), Some(to)) = (params.from, params.to) {
            if from > to {
                return Err(ParamError::invalid(
                    "from",
                    format!("{from} is after to={to}"),
                ));
            }
        }
        Ok(params)
    }
}

fn boolean(name: &str, value: &str) -> Result<bool, ParamError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ParamError::invalid(
            name,
            format!("{value:?} is neither true nor false"),
        )),
    }
}

fn month(name: &str, value: &str) -> Result<Month, ParamError> {
    Month::parse(value).ok_or_else(|| {
        ParamError::invalid(
            name,
            format!("{value:?} is not a month of the form YYYY-MM"),
        )
    })
}

/// `all`, or a Connect account id (`acct_` and letters or digits).
fn account(value: &str) -> Result<Account, ParamError> {
    if value == "all" {
        return Ok(Account::All);
    }
    match value.strip_prefix("acct_") {
        Some(rest) if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Ok(Account::One(value.to_owned()))
        }
        _ => Err(ParamError::invalid(
            "account",
            format!("{value:?} is neither `all` nor a Connect account id (acct_…)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Params, ParamError> {
        Params::parse(pairs.iter().copied())
    }

    #[test]
    fn every_parameter_parses() {
        let p = parse(&[
            ("from", "2026-01"),
            ("to", "2026-03"),
            ("currency", "EUR"),
            ("livemode", "false"),
            ("account", "acct_1Abc"),
            ("format", "json"),
        ])
        .unwrap();
        assert_eq!(p.from, Month::parse("2026-01"));
        assert_eq!(p.to, Month::parse("2026-03"));
        assert_eq!(p.currency.as_deref(), Some("eur"));
        assert_eq!(p.livemode, Some(false));
        assert_eq!(p.account, Some(Account::One("acct_1Abc".into())));
        assert_eq!(p.format, Some(Format::Json));
        assert_eq!(
            parse(&[("account", "all")]).unwrap().account,
            Some(Account::All)
        );
        assert_eq!(parse(&[]).unwrap(), Params::default());
    }

    #[test]
    fn bad_input_names_the_parameter() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("from", "2026-13")], "from"),
            (&[("to", "26-01")], "to"),
            (&[("from", "2026-04"), ("to", "2026-03")], "from"),
            (&[("currency", "usdx")], "currency"),
            (&[("currency", "xyz")], "currency"),
            (&[("livemode", "yes")], "livemode"),
            (&[("account", "acct_")], "account"),
            (&[("account", "cus_1")], "account"),
            (&[("format", "xml")], "format"),
            (&[("month", "2026-01")], "month"),
            (&[("from", "2026-01"), ("from", "2026-02")], "from"),
        ];
        for (pairs, parameter) in cases {
            let err = parse(pairs).unwrap_err();
            assert_eq!(err.parameter(), *parameter, "{pairs:?}: {err}");
            assert_eq!(err.code(), "invalid_parameter");
            assert!(err.to_string().starts_with(parameter), "{err}");
        }
        let err = ReportName::parse("arr").unwrap_err();
        assert_eq!((err.code(), err.parameter()), ("unknown_report", "report"));
        assert!(err.to_string().contains("revenue"), "{err}");
        assert_eq!(ReportName::parse("invoices"), Ok(ReportName::Invoices));
    }
}
