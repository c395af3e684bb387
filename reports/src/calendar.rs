//! UTC calendar months and instants as reports print them: months `YYYY-MM`, instants
//! `YYYY-MM-DDTHH:MM:SSZ`. A month is `[first day 00:00:00, next month's first day)`, so a
//! change at exactly midnight on the first belongs to the month it starts.

use std::fmt;

use time::{Date, Month as TimeMonth, OffsetDateTime, Time};

/// Seconds in a (UTC) day.
pub const DAY: i64 = 86_400;

/// A calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    /// 1–12.
    pub month: u8,
}

impl Month {
    /// `YYYY-MM`, years 1970–9999.
    pub fn parse(text: &str) -> Option<Month> {
        let (y, m) = text.split_once('-')?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (year, month): (i32, u8) = (y.parse().ok()?, m.parse().ok()?);
        ((1970..=9999).contains(&year) && (1..=12).contains(&month))
            .then_some(Month { year, month })
    }

    /// The month holding a Unix instant.
    pub fn of(unix: i64) -> Month {
        let date = OffsetDateTime::from_unix_timestamp(unix.clamp(0, 253_402_300_799))
            .expect("clamped into range")
            .date();
        Month {
            year: date.year(),
            month: u8::from(date.month()),
        }
    }

    /// The month before.
    pub fn prev(self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// The first instant of the month (Unix seconds).
    pub fn start(self) -> i64 {
        let month = TimeMonth::try_from(self.month).expect("months are 1-12");
        Date::from_calendar_date(self.year, month, 1)
            .expect("valid first day")
            .with_time(Time::MIDNIGHT)
            .assume_utc()
            .unix_timestamp()
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// The first instant of the next month: this month's exclusive end.
    pub fn end(self) -> i64 {
        self.next().start()
    }

    /// Every month from `self` to `last`, inclusive.
    pub fn through(self, last: Month) -> impl Iterator<Item = Month> {
        std::iter::successors(Some(self), move |m| (*m < last).then(|| m.next()))
            .take_while(move |m| *m <= last)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// A Unix instant as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_utc(unix: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(unix.clamp(0, 253_402_300_799))
        .expect("clamped into range");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The UTC date of a Unix instant, `YYYY-MM-DD`.
pub fn format_date(unix: i64) -> String {
    format_utc(unix)[..10].to_owned()
}

/// `YYYY-MM-DD` as the Unix instant of its midnight (UTC).
pub fn parse_date(text: &str) -> Option<i64> {
    let (y, rest) = text.split_once('-')?;
    let (m, d) = rest.split_once('-')?;
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = TimeMonth::try_from(m.parse::<u8>().ok()?).ok()?;
    let date = Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()?;
    Some(date.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp())
}

/// `YYYY-MM-DDTHH:MM:SSZ` (what [`format_utc`] prints) as a Unix instant.
pub fn parse_utc(text: &str) -> Option<i64> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let midnight = parse_date(date)?;
    let mut parts = time.split(':');
    let mut seconds = 0i64;
    for (limit, scale) in [(24, 3600), (60, 60), (60, 1)] {
        let part = parts.next()?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: i64 = part.parse().ok()?;
        if n >= limit {
            return None;
        }
        seconds += n * scale;
    }
    parts.next().is_none().then_some(midnight + seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_print_and_bound_their_instants() {
        let feb = Month::parse("2026-02").unwrap();
        assert_eq!(feb.to_string(), "2026-02");
        assert_eq!(feb.start(), 1_769_904_000);
        assert_eq!(feb.end(), Month::parse("2026-03").unwrap().start());
        assert_eq!(
            Month::of(feb.start()),
            feb,
            "midnight on the first is in the month"
        );
        assert_eq!(Month::of(feb.start() - 1).to_string(), "2026-01");
        assert_eq!(
            Month::parse("2025-12").unwrap().next().to_string(),
            "2026-01"
        );
        for bad in [
            "2026-13", "2026-00", "26-01", "2026-1", "2026/01", "abcd-ef", "",
        ] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
        let months: Vec<String> = Month::parse("2025-11")
            .unwrap()
            .through(feb)
            .map(|m| m.to_string())
            .collect();
        assert_eq!(months, ["2025-11", "2025-12", "2026-01", "2026-02"]);
        assert_eq!(feb.through(Month::parse("2026-01").unwrap()).count(), 0);
        assert_eq!(format_utc(1_769_907_602), "2026-02-01T01:00:02Z");
        assert_eq!(parse_date("2026-02-01"), Some(1_769_904_000));
        assert_eq!(parse_date("2026-02-30"), None);
        assert_eq!(parse_utc("2026-02-01T01:00:02Z"), Some(1_769_907_602));
        for bad in [
            "2026-02-01T01:00:02",
            "2026-02-01T24:00:00Z",
            "2026-02-01 01:00:02Z",
            "2026-02-01T1:00:02Z",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }
}
