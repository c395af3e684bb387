//! The RFC 3339 timestamps thin events carry in `created` (snapshot events use integer Unix
//! seconds), read into Unix seconds with the `time` crate.
//!
//! [`parse_rfc3339`] only narrows what `time` accepts and restores one convention of the
//! parser it replaced; the calendar arithmetic is `time`'s.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into Unix seconds: the fraction is
/// dropped (rounded down) and the offset applied. `T` and `Z` may be lowercase, and a space
/// may separate the date from the time (RFC 3339 section 5.6 allows it).
///
/// Anything else is `None`, including offsets beyond `±23:59` and a `:60` second anywhere
/// but where a leap second can fall.
///
/// Two adjustments around [`OffsetDateTime::parse`]:
/// - `time` takes any single byte between the date and the time; anything other than `T`,
///   `t` or a space is refused here, as before;
/// - a leap second (`23:59:60` UTC on the last day of a month, the only place `time` accepts
///   one) counts as the first second of the next day, as in POSIX time and as before: `time`
///   itself reads it as `23:59:59.999999999`.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let at = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    // A successful parse puts the seconds at bytes 17..19.
    let leap_second = s.get(17..19) == Some("60");
    Some(at.unix_timestamp() + i64::from(leap_second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_forms() {
        assert_eq!(
            parse_rfc3339("2026-02-01T00:00:42.000Z"),
            Some(1_769_904_042)
        );
        assert_eq!(parse_rfc3339("2026-02-01T00:00:42Z"), Some(1_769_904_042));
        assert_eq!(
            parse_rfc3339("2026-02-01T01:00:42+01:00"),
            Some(1_769_904_042)
        );
        assert_eq!(parse_rfc3339("2026-02-30T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-02-01"), None);
        assert_eq!(parse_rfc3339("2026-02-01T00:00:42.Z"), None);
        assert_eq!(parse_rfc3339("2026-02-01T00:00:42"), None);
    }

    #[test]
    fn rfc3339_separators_case_fractions_and_offsets() {
        let at = Some(1_769_904_042);
        assert_eq!(parse_rfc3339("2026-02-01t00:00:42z"), at);
        assert_eq!(parse_rfc3339("2026-02-01 00:00:42Z"), at);
        assert_eq!(parse_rfc3339("2026-02-01X00:00:42Z"), None);
        assert_eq!(parse_rfc3339("2026-02-01_00:00:42Z"), None);
        assert_eq!(parse_rfc3339("2026-02-01T00:00:42.999999999999Z"), at);
        assert_eq!(parse_rfc3339("2026-01-31T19:30:42-04:30"), at);
        assert_eq!(parse_rfc3339("2026-02-01T00:00:42-00:00"), at);
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.5Z"), Some(-1));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(parse_rfc3339("2026-02-01T24:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-02-01T00:00:42+1:00"), None);
        assert_eq!(parse_rfc3339("2026-02-01T00:00:42 "), None);
        assert_eq!(parse_rfc3339(" 2026-02-01T00:00:42Z"), None);
    }

    #[test]
    fn rfc3339_leap_seconds_and_offset_ranges() {
        // The leap second at the end of 2016 is the first second of 2017.
        assert_eq!(parse_rfc3339("2016-12-31T23:59:60Z"), Some(1_483_228_800));
        assert_eq!(
            parse_rfc3339("2017-01-01T00:59:60+01:00"),
            Some(1_483_228_800)
        );
        assert_eq!(parse_rfc3339("2017-01-01T00:00:00Z"), Some(1_483_228_800));
        // No leap second can fall anywhere else, and offsets stay within ±23:59.
        assert_eq!(parse_rfc3339("2026-02-01T00:00:60Z"), None);
        assert_eq!(parse_rfc3339("2026-02-01T00:00:42+24:00"), None);
        assert_eq!(parse_rfc3339("2026-02-01T00:00:42+01:60"), None);
        assert_eq!(parse_rfc3339("2026-02-01T00:00:42++1:00"), None);
    }
}
