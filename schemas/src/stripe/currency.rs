//! Stripe's currency exponents (<https://docs.stripe.com/currencies>), used wherever major
//! units are produced. Amounts stay integers; conversion is string formatting, never `÷100`
//! and never a float.

/// Zero-decimal currencies (exponent 0).
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];
/// Three-decimal currencies (exponent 3).
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

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

/// Minor units as a major-unit decimal string: `jpy 1200 → "1200"`, `usd 1200 → "12.00"`,
/// `kwd 5120 → "5.120"`, `usd -5 → "-0.05"`.
pub fn format_major(amount: i64, currency: &str) -> String {
    let exp = exponent(currency);
    let negative = amount < 0;
    let abs = amount.unsigned_abs();
    let sign = if negative { "-" } else { "" };
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
    }
}
