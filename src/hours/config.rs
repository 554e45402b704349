//! The `[hours]` configuration: opening times and company closure days (SPEC §2 "a company
//! closure day in configuration (for example 12/29–1/3)"), plus admin corrections to the holiday
//! list.
//!
//! Closure ends are kept as strings on load and parsed by [`CalendarConfig::validate`], so that
//! `check-config` can report every bad entry at once instead of stopping at the first serde
//! error.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, NaiveTime};
use serde::Deserialize;

use crate::hours::holidays::{holiday_on, RULE_YEARS};

/// SPEC §2: service hours start at 09:00 Asia/Tokyo.
pub const DEFAULT_OPEN: NaiveTime = match NaiveTime::from_hms_opt(9, 0, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};

/// SPEC §2: service hours end at 19:00 Asia/Tokyo (19:00:00 itself is closed).
pub const DEFAULT_CLOSE: NaiveTime = match NaiveTime::from_hms_opt(19, 0, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};

/// SPEC §2's example closure, the customary Japanese year-end break (年末年始 12/29–1/3).
pub const DEFAULT_NEW_YEAR_CLOSURE: (&str, &str) = ("12-29", "01-03");

/// Configuration of the service calendar. All times are Asia/Tokyo wall-clock times.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalendarConfig {
    /// First open instant of a business day ("09:00" or "09:00:00").
    pub open: NaiveTime,
    /// First closed instant after opening; must be after `open`.
    pub close: NaiveTime,
    /// Company closure days. Setting this key replaces the default year-end closure.
    pub closures: Vec<ClosureRule>,
    /// Days the admins add as holidays (e.g. a new holiday the shipped list lacks). Taken as
    /// given: no substitute or citizens' holiday is derived from them.
    pub extra_holidays: Vec<ExtraHoliday>,
    /// Days the admins remove from the holiday list (e.g. the government moved a holiday).
    pub removed_holidays: Vec<NaiveDate>,
    /// Days that stay open although a closure rule covers them (per-year exceptions). They do
    /// not open weekends or holidays.
    pub closure_exceptions: Vec<NaiveDate>,
    /// Years whose holidays an admin has checked against the Cabinet Office list (after the
    /// corrections above). Silences [`crate::hours::Calendar::coverage_warning`] for them.
    pub confirmed_years: Vec<i32>,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        let (from, to) = DEFAULT_NEW_YEAR_CLOSURE;
        Self {
            open: DEFAULT_OPEN,
            close: DEFAULT_CLOSE,
            closures: vec![ClosureRule {
                from: from.to_owned(),
                to: to.to_owned(),
            }],
            extra_holidays: Vec::new(),
            removed_holidays: Vec::new(),
            closure_exceptions: Vec::new(),
            confirmed_years: Vec::new(),
        }
    }
}

/// One closure range, both ends inclusive. Either both ends are month-days (`"12-29"` to
/// `"01-03"`, repeating every year, wrapping the year end when `from` is after `to`) or both are
/// dates (`"2027-05-06"` to `"2027-05-06"`, once).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClosureRule {
    pub from: String,
    pub to: String,
}

/// A holiday added by the admins.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraHoliday {
    pub date: NaiveDate,
    /// Japanese name, used in announcements and `explain`.
    pub name: String,
}

/// A month and day valid in every year (29 February is refused: a yearly rule on it would
/// silently vanish three years in four).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MonthDay {
    month: u32,
    day: u32,
}

impl MonthDay {
    fn of(date: NaiveDate) -> Self {
        Self {
            month: date.month(),
            day: date.day(),
        }
    }
}

/// A parsed [`ClosureRule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClosureSpan {
    Yearly { from: MonthDay, to: MonthDay },
    Dated { from: NaiveDate, to: NaiveDate },
}

impl ClosureSpan {
    pub(crate) fn covers(&self, date: NaiveDate) -> bool {
        match *self {
            Self::Dated { from, to } => from <= date && date <= to,
            Self::Yearly { from, to } => {
                let md = MonthDay::of(date);
                if from <= to {
                    from <= md && md <= to
                } else {
                    md >= from || md <= to
                }
            }
        }
    }
}

enum End {
    Yearly(MonthDay),
    Dated(NaiveDate),
}

fn parse_end(raw: &str, key: &str) -> Result<End, String> {
    let bytes = raw.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        bytes
            .get(r)
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    match bytes.len() {
        5 if digits(0..2) && bytes.get(2) == Some(&b'-') && digits(3..5) => {
            let month = raw.get(0..2).and_then(|s| s.parse::<u32>().ok());
            let day = raw.get(3..5).and_then(|s| s.parse::<u32>().ok());
            match (month, day) {
                (Some(2), Some(29)) => Err(format!(
                    "{key}: \"02-29\" exists only in leap years; use a dated range (YYYY-MM-DD)"
                )),
                // 2000 is a leap year, so this accepts exactly the month-days of a calendar.
                (Some(month), Some(day)) if NaiveDate::from_ymd_opt(2000, month, day).is_some() => {
                    Ok(End::Yearly(MonthDay { month, day }))
                }
                _ => Err(format!("{key}: \"{raw}\" is not a valid month-day")),
            }
        }
        10 => NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .map(End::Dated)
            .map_err(|_| format!("{key}: \"{raw}\" is not a valid date")),
        _ => Err(format!(
            "{key}: \"{raw}\" is neither a month-day (MM-DD) nor a date (YYYY-MM-DD)"
        )),
    }
}

impl ClosureRule {
    /// Parses the rule; `key` is its config path (e.g. `hours.closures[1]`) for messages.
    pub(crate) fn parse(&self, key: &str) -> Result<ClosureSpan, Vec<String>> {
        let from = parse_end(&self.from, &format!("{key}.from"));
        let to = parse_end(&self.to, &format!("{key}.to"));
        match (from, to) {
            (Ok(End::Yearly(from)), Ok(End::Yearly(to))) => Ok(ClosureSpan::Yearly { from, to }),
            (Ok(End::Dated(from)), Ok(End::Dated(to))) if from <= to => {
                Ok(ClosureSpan::Dated { from, to })
            }
            (Ok(End::Dated(from)), Ok(End::Dated(to))) => {
                Err(vec![format!("{key}.to: {to} is before {key}.from {from}")])
            }
            (Ok(_), Ok(_)) => Err(vec![format!(
                "{key}: from and to must both be month-days (MM-DD) or both dates (YYYY-MM-DD)"
            )]),
            (from, to) => Err([from.err(), to.err()].into_iter().flatten().collect()),
        }
    }
}

impl CalendarConfig {
    /// Every problem in the configuration, each prefixed with its key (`hours.closures[1].from:
    /// …`); empty when the configuration is usable. Meant for `check-config`, which must list
    /// all problems at once (ARCHITECTURE "all errors reported at once").
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.open >= self.close {
            problems.push(format!(
                "hours.open: {} is not before hours.close {}",
                self.open, self.close
            ));
        }

        let mut spans = Vec::new();
        for (i, rule) in self.closures.iter().enumerate() {
            match rule.parse(&format!("hours.closures[{i}]")) {
                Ok(span) => spans.push(span),
                Err(mut errs) => problems.append(&mut errs),
            }
        }

        let mut extra_dates = BTreeSet::new();
        for (i, extra) in self.extra_holidays.iter().enumerate() {
            if extra.name.trim().is_empty() {
                problems.push(format!("hours.extra_holidays[{i}].name: must not be empty"));
            }
            if !extra_dates.insert(extra.date) {
                problems.push(format!(
                    "hours.extra_holidays[{i}].date: {} is listed twice",
                    extra.date
                ));
            }
        }

        let mut removed = BTreeSet::new();
        for (i, date) in self.removed_holidays.iter().enumerate() {
            let key = format!("hours.removed_holidays[{i}]");
            if !removed.insert(*date) {
                problems.push(format!("{key}: {date} is listed twice"));
            } else if extra_dates.contains(date) {
                problems.push(format!(
                    "{key}: {date} is also in hours.extra_holidays; keep only one"
                ));
            } else if holiday_on(*date).is_none() {
                problems.push(format!("{key}: {date} is not a holiday in the list"));
            }
        }

        for (i, date) in self.closure_exceptions.iter().enumerate() {
            if !spans.iter().any(|s| s.covers(*date)) {
                problems.push(format!(
                    "hours.closure_exceptions[{i}]: {date} is not inside any hours.closures range"
                ));
            }
        }

        for (i, year) in self.confirmed_years.iter().enumerate() {
            if !RULE_YEARS.contains(year) {
                problems.push(format!(
                    "hours.confirmed_years[{i}]: {year} is outside the years the holiday rules cover ({}–{})",
                    RULE_YEARS.start(),
                    RULE_YEARS.end()
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or(NaiveDate::MIN)
    }

    fn rule(from: &str, to: &str) -> ClosureRule {
        ClosureRule {
            from: from.to_owned(),
            to: to.to_owned(),
        }
    }

    #[test]
    fn default_is_spec_hours_with_new_year_closure() {
        let cfg = CalendarConfig::default();
        assert_eq!(
            cfg.open,
            NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN)
        );
        assert_eq!(
            cfg.close,
            NaiveTime::from_hms_opt(19, 0, 0).unwrap_or(NaiveTime::MIN)
        );
        assert_eq!(cfg.closures, vec![rule("12-29", "01-03")]);
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    }

    #[test]
    fn deserializes_with_defaults_and_both_closure_forms() -> Result<(), serde_json::Error> {
        let empty: CalendarConfig = serde_json::from_str("{}")?;
        assert_eq!(empty, CalendarConfig::default());

        let cfg: CalendarConfig = serde_json::from_str(
            r#"{
                "open": "08:30",
                "close": "17:45:00",
                "closures": [
                    { "from": "12-29", "to": "01-03" },
                    { "from": "2027-05-06", "to": "2027-05-06" }
                ],
                "extra_holidays": [ { "date": "2027-06-15", "name": "創立記念日" } ],
                "removed_holidays": [ "2027-11-03" ],
                "closure_exceptions": [ "2026-12-29" ],
                "confirmed_years": [ 2028 ]
            }"#,
        )?;
        assert_eq!(
            cfg.open,
            NaiveTime::from_hms_opt(8, 30, 0).unwrap_or(NaiveTime::MIN)
        );
        assert_eq!(
            cfg.close,
            NaiveTime::from_hms_opt(17, 45, 0).unwrap_or(NaiveTime::MIN)
        );
        assert_eq!(cfg.closures.len(), 2);
        assert_eq!(cfg.extra_holidays[0].name, "創立記念日");
        assert_eq!(cfg.removed_holidays, vec![d(2027, 11, 3)]);
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());

        // An explicit empty list replaces the default closure.
        let none: CalendarConfig = serde_json::from_str(r#"{ "closures": [] }"#)?;
        assert!(none.closures.is_empty());
        Ok(())
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(serde_json::from_str::<CalendarConfig>(r#"{ "opens": "09:00" }"#).is_err());
        assert!(serde_json::from_str::<CalendarConfig>(
            r#"{ "closures": [ { "from": "12-29", "to": "01-03", "note": "x" } ] }"#
        )
        .is_err());
    }

    #[test]
    fn validate_lists_every_problem_with_its_key() {
        let cfg = CalendarConfig {
            open: DEFAULT_CLOSE,
            close: DEFAULT_OPEN,
            closures: vec![
                rule("12-29", "01-03"),
                rule("13-01", "01-03"),
                rule("02-30", "2027-1-1"),
                rule("02-29", "03-01"),
                rule("2027-05-07", "2027-05-06"),
                rule("12-29", "2027-01-03"),
            ],
            extra_holidays: vec![
                ExtraHoliday {
                    date: d(2027, 6, 15),
                    name: " ".to_owned(),
                },
                ExtraHoliday {
                    date: d(2027, 6, 15),
                    name: "創立記念日".to_owned(),
                },
            ],
            removed_holidays: vec![d(2026, 5, 7), d(2027, 6, 15)],
            closure_exceptions: vec![d(2026, 12, 28), d(2026, 12, 30)],
            confirmed_years: vec![2028, 2100],
        };
        let problems = cfg.validate();
        let expected_prefixes = [
            "hours.open: 19:00:00 is not before hours.close 09:00:00",
            "hours.closures[1].from: \"13-01\" is not a valid month-day",
            "hours.closures[2].from: \"02-30\" is not a valid month-day",
            "hours.closures[2].to: \"2027-1-1\" is neither",
            "hours.closures[3].from: \"02-29\" exists only in leap years",
            "hours.closures[4].to: 2027-05-06 is before hours.closures[4].from 2027-05-07",
            "hours.closures[5]: from and to must both be",
            "hours.extra_holidays[0].name: must not be empty",
            "hours.extra_holidays[1].date: 2027-06-15 is listed twice",
            "hours.removed_holidays[0]: 2026-05-07 is not a holiday",
            "hours.removed_holidays[1]: 2027-06-15 is also in hours.extra_holidays",
            "hours.closure_exceptions[0]: 2026-12-28 is not inside any hours.closures range",
            "hours.confirmed_years[1]: 2100 is outside",
        ];
        for prefix in expected_prefixes {
            assert!(
                problems.iter().any(|p| p.starts_with(prefix)),
                "missing {prefix:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected_prefixes.len(), "{problems:#?}");
    }

    #[test]
    fn yearly_ranges_wrap_the_year_end() -> Result<(), Vec<String>> {
        let new_year = rule("12-29", "01-03").parse("k")?;
        for (date, closed) in [
            (d(2026, 12, 28), false),
            (d(2026, 12, 29), true),
            (d(2026, 12, 31), true),
            (d(2027, 1, 1), true),
            (d(2027, 1, 3), true),
            (d(2027, 1, 4), false),
            (d(2027, 7, 1), false),
        ] {
            assert_eq!(new_year.covers(date), closed, "{date}");
        }
        let obon = rule("08-13", "08-15").parse("k")?;
        assert!(!obon.covers(d(2027, 8, 12)));
        assert!(obon.covers(d(2027, 8, 13)));
        assert!(obon.covers(d(2030, 8, 15)));
        assert!(!obon.covers(d(2027, 8, 16)));
        let once = rule("2027-05-06", "2027-05-06").parse("k")?;
        assert!(once.covers(d(2027, 5, 6)));
        assert!(!once.covers(d(2028, 5, 6)));
        assert!(!once.covers(d(2027, 5, 7)));
        Ok(())
    }

    #[test]
    fn malformed_month_days_never_panic() {
        for raw in [
            "",
            "1-1",
            "１２-29",
            "12-2x",
            "99-99",
            "00-10",
            "12-00",
            "2027-02-29",
            "é2-29",
        ] {
            assert!(rule(raw, raw).parse("k").is_err(), "{raw:?}");
        }
    }
}
