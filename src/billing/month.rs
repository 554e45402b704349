//! The billing month: a calendar month in Asia/Tokyo (SPEC §5 line 81).
//!
//! Callers convert instants to Asia/Tokyo dates before they get here; this type only ever sees
//! calendar dates, so it has no time-zone logic of its own.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::billing::BillingError;

/// A calendar month, e.g. `2026-11`.
///
/// The first and last day are computed once at construction, so every accessor is infallible and
/// no method can panic: a `YearMonth` exists only if both of its ends are representable dates.
/// Fields are private for that reason; build one with [`YearMonth::new`], [`YearMonth::of`] or
/// `"YYYY-MM".parse()`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    first: NaiveDate,
    last: NaiveDate,
}

/// Days in a month of the proleptic Gregorian calendar (the one chrono and Japan use).
fn days_in(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

impl YearMonth {
    /// The month `year`-`month`; `None` when `month` is not 1–12 or the year is outside chrono's
    /// range.
    pub fn new(year: i32, month: u32) -> Option<Self> {
        NaiveDate::from_ymd_opt(year, month, 1).map(Self::of)
    }

    /// The month containing `date`.
    pub fn of(date: NaiveDate) -> Self {
        let days = days_in(date.year(), date.month());
        // Neither fallback can be taken: chrono's range is whole years, so the first and last
        // day of any representable date's month are representable too.
        let first = date.with_day(1).unwrap_or(date);
        let last = date.with_day(days).unwrap_or(date);
        Self { first, last }
    }

    pub fn year(&self) -> i32 {
        self.first.year()
    }

    /// 1–12.
    pub fn month(&self) -> u32 {
        self.first.month()
    }

    pub fn first_day(&self) -> NaiveDate {
        self.first
    }

    pub fn last_day(&self) -> NaiveDate {
        self.last
    }

    /// 28, 29, 30 or 31: the `days_in_month` of the pro-rata formula (SPEC §5 line 85).
    pub fn days(&self) -> u32 {
        self.last.day()
    }

    /// The following month; `None` only past chrono's last representable month.
    pub fn next(&self) -> Option<Self> {
        self.last.succ_opt().map(Self::of)
    }

    /// The preceding month; `None` only before chrono's first representable month.
    pub fn prev(&self) -> Option<Self> {
        self.first.pred_opt().map(Self::of)
    }

    /// The month `n` months later; `None` past chrono's range.
    pub fn plus_months(&self, n: u32) -> Option<Self> {
        self.first.checked_add_months(Months::new(n)).map(Self::of)
    }

    /// Whole months from `earlier` to `self` (negative when `self` is before `earlier`).
    pub fn months_since(&self, earlier: YearMonth) -> i64 {
        let a = i64::from(self.year()) * 12 + i64::from(self.month());
        let b = i64::from(earlier.year()) * 12 + i64::from(earlier.month());
        a - b
    }

    /// Whether `date` falls in this month.
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.first <= date && date <= self.last
    }
}

impl fmt::Display for YearMonth {
    /// `YYYY-MM`; round-trips through [`FromStr`] for years 0000–9999.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

impl fmt::Debug for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "YearMonth({self})")
    }
}

/// Longest slice of a rejected input quoted back in an error, so a hostile input cannot make
/// the error (and the log line it ends up in) arbitrarily large.
const QUOTE_LIMIT: usize = 32;

pub(crate) fn quote_input(s: &str) -> String {
    s.chars().take(QUOTE_LIMIT).collect()
}

impl FromStr for YearMonth {
    type Err = BillingError;

    /// Strictly `YYYY-MM`: four ASCII digits, `-`, two ASCII digits, month 01–12. Nothing else
    /// (no `2026-1`, no surrounding spaces), because this names the bill a collection agent is
    /// chasing and a lenient parse could pick the wrong one.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || BillingError::InvalidMonth(quote_input(s));
        let b = s.as_bytes();
        let well_formed = b.len() == 7
            && b.get(4) == Some(&b'-')
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || c.is_ascii_digit());
        if !well_formed {
            return Err(invalid());
        }
        let year: i32 = s
            .get(0..4)
            .and_then(|y| y.parse().ok())
            .ok_or_else(invalid)?;
        let month: u32 = s
            .get(5..7)
            .and_then(|m| m.parse().ok())
            .ok_or_else(invalid)?;
        YearMonth::new(year, month).ok_or_else(invalid)
    }
}

impl Serialize for YearMonth {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for YearMonth {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ym(s: &str) -> YearMonth {
        s.parse().unwrap()
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn parses_strictly() {
        assert_eq!(ym("2026-11").year(), 2026);
        assert_eq!(ym("2026-11").month(), 11);
        assert_eq!(ym("0000-01").year(), 0);
        for bad in [
            "2026-1",
            "2026-13",
            "2026-00",
            "26-11",
            "2026/11",
            " 2026-11",
            "2026-11 ",
            "+026-11",
            "2026-1a",
            "２０２６-11",
            "",
            "2026-011",
            "-026-11",
        ] {
            assert!(
                bad.parse::<YearMonth>().is_err(),
                "{bad:?} must be rejected"
            );
        }
    }

    #[test]
    fn error_quotes_at_most_32_chars() {
        let long = "x".repeat(10_000);
        let err = long.parse::<YearMonth>().unwrap_err().to_string();
        assert!(err.len() < 100, "{err}");
    }

    #[test]
    fn month_lengths_28_29_30_31() {
        assert_eq!(ym("2027-02").days(), 28);
        assert_eq!(ym("2028-02").days(), 29); // leap year
        assert_eq!(ym("2100-02").days(), 28); // century, not leap
        assert_eq!(ym("2000-02").days(), 29); // 400-year rule
        assert_eq!(ym("2026-11").days(), 30);
        assert_eq!(ym("2026-12").days(), 31);
        assert_eq!(ym("2028-02").last_day(), d(2028, 2, 29));
        assert_eq!(ym("2026-11").first_day(), d(2026, 11, 1));
    }

    #[test]
    fn next_prev_cross_years() {
        assert_eq!(ym("2026-12").next(), Some(ym("2027-01")));
        assert_eq!(ym("2027-01").prev(), Some(ym("2026-12")));
        assert_eq!(YearMonth::of(d(2026, 11, 16)), ym("2026-11"));
        assert_eq!(ym("2027-01").months_since(ym("2026-11")), 2);
        assert_eq!(ym("2026-11").plus_months(5), Some(ym("2027-04")));
        assert!(ym("2026-11") < ym("2026-12"));
    }

    #[test]
    fn extreme_months_do_not_panic() {
        let last = YearMonth::of(NaiveDate::MAX);
        assert_eq!(last.next(), None);
        assert_eq!(last.last_day(), NaiveDate::MAX);
        let first = YearMonth::of(NaiveDate::MIN);
        assert_eq!(first.prev(), None);
        assert_eq!(first.first_day(), NaiveDate::MIN);
    }

    #[test]
    fn serde_as_string() {
        let m = ym("2026-11");
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"2026-11\"");
        let back: YearMonth = serde_json::from_str("\"2026-11\"").unwrap();
        assert_eq!(back, m);
        assert!(serde_json::from_str::<YearMonth>("\"2026-13\"").is_err());
        assert_eq!(format!("{m:?}"), "YearMonth(2026-11)");
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(y in 0i32..=9999, m in 1u32..=12) {
            let v = YearMonth::new(y, m).unwrap();
            prop_assert_eq!(v.to_string().parse::<YearMonth>().unwrap(), v);
            prop_assert_eq!(v.next().unwrap().prev().unwrap(), v);
            prop_assert!(v.contains(v.first_day()) && v.contains(v.last_day()));
            prop_assert_eq!(
                i64::from(v.days()),
                (v.last_day() - v.first_day()).num_days() + 1
            );
        }
    }
}
