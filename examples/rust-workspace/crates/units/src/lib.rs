//! Money amounts in whole cents, parsed from and printed as `-12.34`.

use std::fmt;
use std::ops::{Add, Neg};
use std::str::FromStr;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cents(pub i64);

#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    Empty,
    BadDigit(char),
    TooManyDecimals,
    Overflow,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => write!(f, "empty amount"),
            ParseError::BadDigit(c) => write!(f, "unexpected character {c:?} in amount"),
            ParseError::TooManyDecimals => write!(f, "more than two decimals"),
            ParseError::Overflow => write!(f, "amount too large"),
        }
    }
}

impl std::error::Error for ParseError {}

impl FromStr for Cents {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if digits.is_empty() {
            return Err(ParseError::Empty);
        }
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if fraction.len() > 2 {
            return Err(ParseError::TooManyDecimals);
        }
        let mut cents: i64 = 0;
        for c in whole.chars().chain(format!("{fraction:0<2}").chars()) {
            let digit = c.to_digit(10).ok_or(ParseError::BadDigit(c))?;
            cents = cents
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(digit)))
                .ok_or(ParseError::Overflow)?;
        }
        Ok(Cents(if negative { -cents } else { cents }))
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        // pad, not write!, so that callers' width and alignment apply.
        f.pad(&format!("{sign}{}.{:02}", abs / 100, abs % 100))
    }
}

impl Add for Cents {
    type Output = Cents;
    fn add(self, other: Cents) -> Cents {
        Cents(self.0 + other.0)
    }
}

impl Neg for Cents {
    type Output = Cents;
    fn neg(self) -> Cents {
        Cents(-self.0)
    }
}

impl std::iter::Sum for Cents {
    fn sum<I: Iterator<Item = Cents>>(iter: I) -> Cents {
        iter.fold(Cents(0), Add::add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_and_fractional_amounts() {
        assert_eq!("12".parse(), Ok(Cents(1200)));
        assert_eq!("12.3".parse(), Ok(Cents(1230)));
        assert_eq!("12.34".parse(), Ok(Cents(1234)));
        assert_eq!(" -0.05 ".parse(), Ok(Cents(-5)));
    }

    #[test]
    fn rejects_bad_amounts() {
        assert_eq!("".parse::<Cents>(), Err(ParseError::Empty));
        assert_eq!("1.234".parse::<Cents>(), Err(ParseError::TooManyDecimals));
        assert_eq!("1x".parse::<Cents>(), Err(ParseError::BadDigit('x')));
        assert_eq!("99999999999999999999".parse::<Cents>(), Err(ParseError::Overflow));
    }

    #[test]
    fn displays_with_two_decimals() {
        assert_eq!(Cents(1234).to_string(), "12.34");
        assert_eq!(Cents(-5).to_string(), "-0.05");
        assert_eq!(Cents(0).to_string(), "0.00");
        assert_eq!(format!("[{:>6}]", Cents(150)), "[  1.50]");
    }

    #[test]
    fn sums() {
        let total: Cents = [Cents(1), Cents(2), -Cents(4)].into_iter().sum();
        assert_eq!(total, Cents(-1));
    }

    #[test]
    #[ignore = "exhaustive; run with --ignored"]
    fn round_trips_every_amount_up_to_a_million() {
        for cents in -100_000_000..100_000_000 {
            assert_eq!(Cents(cents).to_string().parse(), Ok(Cents(cents)));
        }
    }
}
