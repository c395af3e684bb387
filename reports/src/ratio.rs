//! Exact rational numbers for money rates (MRR): an item's monthly amount is a price times
//! a quantity times `52/12` or `365/12` over an interval count, less percentages, so it is
//! rarely a whole number of minor units. Kept exact until a customer's total is rounded,
//! half to even, to the minor unit. `i128` parts, reduced after every operation; amounts are
//! `i64` minor units, so the numbers stay far from the limits.

use std::cmp::Ordering;
use std::ops::{Add, Div, Mul, Sub};

/// `num / den`, `den > 0`, in lowest terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ratio {
    num: i128,
    den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

impl Ratio {
    pub const ZERO: Ratio = Ratio { num: 0, den: 1 };

    pub fn new(num: i128, den: i128) -> Ratio {
        assert!(den != 0, "a ratio needs a non-zero denominator");
        let sign = if den < 0 { -1 } else { 1 };
        let g = gcd(num, den);
        Ratio {
            num: sign * num / g,
            den: sign * den / g,
        }
    }

    pub fn int(n: i64) -> Ratio {
        Ratio::new(i128::from(n), 1)
    }

    /// An exact decimal text (`"12.5"`, `"-0.25"`, `"7"`), as Stripe writes `percent_off`
    /// and `unit_amount_decimal`.
    pub fn parse_decimal(text: &str) -> Option<Ratio> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && frac.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 18
        {
            return None;
        }
        let num: i128 = format!("{whole}{frac}").parse().ok().or(Some(0))?;
        let den = 10i128.checked_pow(frac.len() as u32)?;
        Some(Ratio::new(if negative { -num } else { num }, den))
    }

    pub fn is_zero(self) -> bool {
        self.num == 0
    }

    /// The largest integer not above.
    /// -1, 0 or 1.
    pub fn signum(self) -> i32 {
        self.num.signum() as i32
    }

    pub fn floor(self) -> i64 {
        let floor = self.num.div_euclid(self.den);
        i64::try_from(floor).unwrap_or(if floor < 0 { i64::MIN } else { i64::MAX })
    }

    /// The nearest integer, ties to the even one (banker's rounding).
    pub fn round_half_even(self) -> i64 {
        let floor = self.num.div_euclid(self.den);
        let rest = self.num.rem_euclid(self.den);
        let twice = 2 * rest;
        let rounded = match twice.cmp(&self.den) {
            Ordering::Less => floor,
            Ordering::Greater => floor + 1,
            Ordering::Equal if floor % 2 == 0 => floor,
            Ordering::Equal => floor + 1,
        };
        i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX })
    }
}

impl Add for Ratio {
    type Output = Ratio;
    fn add(self, other: Ratio) -> Ratio {
        Ratio::new(
            self.num * other.den + other.num * self.den,
            self.den * other.den,
        )
    }
}

impl Sub for Ratio {
    type Output = Ratio;
    fn sub(self, other: Ratio) -> Ratio {
        self + Ratio::new(-other.num, other.den)
    }
}

impl Mul for Ratio {
    type Output = Ratio;
    fn mul(self, other: Ratio) -> Ratio {
        Ratio::new(self.num * other.num, self.den * other.den)
    }
}

impl Div for Ratio {
    type Output = Ratio;
    /// `self / other`; panics when `other` is zero.
    fn div(self, other: Ratio) -> Ratio {
        Ratio::new(self.num * other.den, self.den * other.num)
    }
}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ratio {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.num * other.den).cmp(&(other.num * self.den))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_exact_and_rounding_is_half_even() {
        let weekly = Ratio::int(1000) * Ratio::new(52, 12);
        assert_eq!(weekly, Ratio::new(13000, 3));
        assert_eq!(weekly.round_half_even(), 4333);
        assert_eq!(Ratio::new(5, 2).round_half_even(), 2);
        assert_eq!(Ratio::new(7, 2).round_half_even(), 4);
        assert_eq!(Ratio::new(-5, 2).round_half_even(), -2);
        assert_eq!(Ratio::new(-7, 2).round_half_even(), -4);
        assert_eq!(Ratio::new(-1, 3).round_half_even(), 0);
        assert_eq!(Ratio::new(2, 3).round_half_even(), 1);
        assert_eq!(Ratio::parse_decimal("12.5"), Some(Ratio::new(25, 2)));
        assert_eq!(Ratio::parse_decimal("-0.25"), Some(Ratio::new(-1, 4)));
        assert_eq!(
            Ratio::parse_decimal("33.333"),
            Some(Ratio::new(33333, 1000))
        );
        assert_eq!(Ratio::parse_decimal("7"), Some(Ratio::int(7)));
        assert_eq!(Ratio::parse_decimal("x"), None);
        assert_eq!(Ratio::parse_decimal(""), None);
        let a = Ratio::new(1, 3);
        assert_eq!(a + a + a, Ratio::int(1));
        assert_eq!(
            (Ratio::int(10) - Ratio::int(3)) / Ratio::int(7),
            Ratio::int(1)
        );
        assert!(Ratio::new(1, 3) < Ratio::new(1, 2));
        assert_eq!(Ratio::new(1, 3).min(Ratio::new(1, 2)), Ratio::new(1, 3));
        assert_eq!(Ratio::new(7, 2).floor(), 3);
        assert_eq!(Ratio::new(-7, 2).floor(), -4);
    }
}
