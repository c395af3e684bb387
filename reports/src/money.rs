//! Money as reports print it: integers in the currency's minor unit turned into a decimal
//! string in major units with exactly the currency's number of decimals (`usd 1200` →
//! `12.00`, `jpy 1200` → `1200`, `kwd 5120` → `5.120`). Formatting only: never a float,
//! never a division by 100. The exponents and the list of currencies are `schemas::currency`'s.

pub use schemas::currency::{exponent, is_known_currency};

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
