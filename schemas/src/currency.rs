//! Currencies as Stripe defines them (<https://docs.stripe.com/currencies>): the ISO 4217
//! codes it charges in and the exponent of each one's minor unit. One table for the whole
//! workspace: the decoder refuses an amount in a currency not listed here (a dead letter
//! with the reason, never a fact), reports format amounts with the exponents and tell a
//! typo in `--currency` from a currency without data.

/// Zero-decimal currencies (exponent 0).
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];
/// Three-decimal currencies (exponent 3).
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

/// Every ISO 4217 code Stripe can charge in (<https://docs.stripe.com/currencies>), sorted.
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
    // Every decoded object asks: a binary search of the sorted list.
    KNOWN.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_known_list_is_sorted_and_unique_so_that_it_can_be_searched() {
        assert!(KNOWN.windows(2).all(|w| w[0] < w[1]));
        assert!(is_known_currency("aed") && is_known_currency("zmw") && is_known_currency("usd"));
        assert!(!is_known_currency("xyz") && !is_known_currency("USD"));
    }
}
