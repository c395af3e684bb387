//! Money as reports print it: integers in the currency's minor unit turned into a decimal
//! string in major units with exactly the currency's number of decimals (`usd 1200` →
//! `12.00`, `jpy 1200` → `1200`, `kwd 5120` → `5.120`). Formatting only: never a float,
//! never a division by 100. Exponents as Stripe defines them
//! (<https://docs.stripe.com/currencies#zero-decimal>).

/// Zero-decimal currencies (exponent 0).
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];
/// Three-decimal currencies (exponent 3).
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

/// Every ISO 4217 code Stripe can charge in (<https://docs.stripe.com/currencies>), for
/// telling a typo in `--currency` apart from a currency without data.
const KNOWN: &[&str] = &[
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt",
    "bgn", "bhd", "bif", "bmd", "bnd", "bob", "brl", "bsd", "bwp", "byn", "bzd", "cad", "cdf",
    "chf", "clp", "cny", "cop", "crc", "cve", "czk", "djf", "dkk", "dop", "dzd", "egp", "etb",
    "eur", "fjd", "fkp", "gbp", "gel", "gip", "gmd", "gnf", "gtq", "gyd", "hkd", "hnl", "htg",
    "huf", "idr", "ils", "inr", "isk", "jmd", "jod", "jpy", "kes", "kgs", "khr", "kmf", "krw",
    "kwd", "kyd", "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga", "mkd", "mmk",
    "mnt", "mop", "mur", "mvr", "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok", "npr",
    "nzd", "omr", "pab", "pen", "pgk", "php", "pkr", "pln", "pyg", "qar", "ron", "rsd", "rub",
    "rwf", "sar", "sbd", "scr", "sek", "sgd", "shp", "sle", "sos", "srd", "std", "szl", "thb",
    "tjs", "tnd", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "usd", "uyu", "uzs", "vnd",
    "vuv", "wst", "xaf", "xcd", "xof", "xpf", "yer", "zar", "zmw",
];

/// Number of decimals of a currency's minor unit as Stripe defines it (2 unless listed;
/// `isk` and `huf` are 2 in the API).
pub fn exponent(currency: &str) -> u32 {
    let c = currency.to_ascii_lowercase();
    if ZERO_DECIMAL.contains(&c.as_str()) {
        0
    } else if THREE_DECIMAL.contains(&c.as_str()) {
        3
    } else {
        2
    }
}

/// Whether `code` (lowercase) is a currency Stripe knows.
pub fn is_known_currency(code: &str) -> bool {
    KNOWN.contains(&code)
}

/// Minor units as a major-unit decimal string: `jpy 1200 → "1200"`, `usd 1200 → "12.00"`,
/// `kwd 5120 → "5.120"`, `usd -5 → "-0.05"`.
pub fn format_major(amount: i64, currency: &str) -> String {
    let exp = exponent(currency);
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    if exp == 0 {
        return format!("{sign}{abs}");
    }
    let scale = 10u64.pow(exp);
    format!(
        "{sign}{}.{:0width$}",
        abs / scale,
        abs % scale,
        width = exp as usize
    )
}

/// A major-unit decimal string as [`format_major`] prints it, back in minor units
/// (`usd "12.00"` → 1200); `None` unless it has exactly the currency's decimals.
pub fn parse_major(text: &str, currency: &str) -> Option<i64> {
    let exp = exponent(currency) as usize;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = match digits.split_once('.') {
        Some((w, f)) if exp > 0 => (w, f),
        None if exp == 0 => (digits, ""),
        _ => return None,
    };
    if whole.is_empty()
        || frac.len() != exp
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let magnitude: i64 = format!("{whole}{frac}").parse().ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_and_formatting() {
        assert_eq!(exponent("usd"), 2);
        assert_eq!(exponent("JPY"), 0);
        assert_eq!(exponent("kwd"), 3);
        assert_eq!(exponent("isk"), 2);
        assert_eq!(format_major(1200, "jpy"), "1200");
        assert_eq!(format_major(1200, "usd"), "12.00");
        assert_eq!(format_major(5120, "kwd"), "5.120");
        assert_eq!(format_major(-5, "usd"), "-0.05");
        assert_eq!(format_major(0, "eur"), "0.00");
        assert_eq!(format_major(i64::MIN, "usd"), "-92233720368547758.08");
        assert!(is_known_currency("usd") && is_known_currency("jpy"));
        assert!(!is_known_currency("xyz") && !is_known_currency("USD"));
        for (amount, currency) in [
            (1200, "usd"),
            (-5, "usd"),
            (1200, "jpy"),
            (5120, "kwd"),
            (0, "eur"),
        ] {
            assert_eq!(
                parse_major(&format_major(amount, currency), currency),
                Some(amount)
            );
        }
        for (bad, currency) in [
            ("12.0", "usd"),
            ("12", "usd"),
            ("12.00", "jpy"),
            ("", "usd"),
            ("1a.00", "usd"),
            ("-", "jpy"),
        ] {
            assert_eq!(parse_major(bad, currency), None, "{bad} {currency}");
        }
    }
}
