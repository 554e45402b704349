//! Whether the service is open at an instant, and when that changes (SPEC §2).
//!
//! ```text
//!   business day (Mon–Fri, not holiday, not closure):
//!     00:00 ── Closed(BeforeHours) ── open ── Open ── close ── Closed(AfterHours) ── 24:00
//!   any other day:
//!     00:00 ─────────── Closed(Weekend | Holiday | Closure) ─────────────────────── 24:00
//! ```
//!
//! Every rule is applied to the Asia/Tokyo wall clock; instants go in and out as UTC. Japan has
//! kept no daylight saving time since 1952, so each local time maps to exactly one instant.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{
    DateTime, Datelike, Days, FixedOffset, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    SecondsFormat, TimeDelta, TimeZone, Utc, Weekday,
};
use chrono_tz::Asia::Tokyo;
use serde::Serialize;

use crate::hours::config::{CalendarConfig, ClosureSpan};
use crate::hours::holidays::{
    holidays_in_year, is_official_year, Holiday, HolidayKind, RULE_YEARS,
};
use crate::hours::HoursError;

/// How far ahead a search for the next opening goes. A little over a year, so that any
/// realistic closure (even a whole year) is crossed, while a calendar configured to be closed
/// for ever fails fast instead of looping.
pub const SEARCH_HORIZON_DAYS: u32 = 400;

/// How many upcoming changes [`Calendar::explain`] lists.
pub const EXPLAIN_CHANGES: usize = 10;

/// Why the service is closed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClosedReason {
    /// A business day before opening time.
    BeforeHours,
    /// A business day at or after closing time.
    AfterHours,
    /// Saturday or Sunday.
    Weekend,
    /// A national, substitute or citizens' holiday, or one the admins added.
    Holiday { name: String },
    /// A company closure day from configuration.
    Closure,
}

/// Open or closed at an instant, with the instant that ends this state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    Open {
        closes_at: DateTime<Utc>,
    },
    Closed {
        reopens_at: DateTime<Utc>,
        reason: ClosedReason,
    },
}

impl Status {
    pub fn is_open(&self) -> bool {
        matches!(self, Self::Open { .. })
    }

    /// The instant at which this status ends (open ↔ closed).
    pub fn next_change(&self) -> DateTime<Utc> {
        match self {
            Self::Open { closes_at } => *closes_at,
            Self::Closed { reopens_at, .. } => *reopens_at,
        }
    }
}

/// The machine-readable reason codes of [`Explanation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    WeekdayHours,
    BeforeHours,
    AfterHours,
    Weekend,
    Holiday,
    Closure,
}

impl From<&ClosedReason> for Reason {
    fn from(r: &ClosedReason) -> Self {
        match r {
            ClosedReason::BeforeHours => Self::BeforeHours,
            ClosedReason::AfterHours => Self::AfterHours,
            ClosedReason::Weekend => Self::Weekend,
            ClosedReason::Holiday { .. } => Self::Holiday,
            ClosedReason::Closure => Self::Closure,
        }
    }
}

/// One upcoming open/closed change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// RFC 3339 in +09:00.
    pub at: String,
    pub open: bool,
    pub reason: Reason,
}

/// Why the service is open or closed at an instant, for the admin console and `explain`
/// commands. Times are RFC 3339 in +09:00, the zone the rules are written in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub at: String,
    pub open: bool,
    pub reason: Reason,
    /// Japanese name of the holiday on that Tokyo date, whether or not it is the reason (a
    /// closure may cover 元日).
    pub holiday_name: Option<String>,
    /// The date's holidays come from the rules, not the Cabinet Office's list.
    pub provisional: bool,
    /// `None` when the service does not open within [`SEARCH_HORIZON_DAYS`].
    pub next_change: Option<String>,
    /// Up to [`EXPLAIN_CHANGES`] upcoming changes; fewer if the horizon ends them.
    pub changes: Vec<Change>,
}

/// The service calendar: a validated-enough [`CalendarConfig`] with the holiday list resolved.
#[derive(Debug, Clone)]
pub struct Calendar {
    open: NaiveTime,
    close: NaiveTime,
    closures: Vec<ClosureSpan>,
    closure_exceptions: BTreeSet<NaiveDate>,
    /// Every holiday of [`RULE_YEARS`] (official list where shipped) with the admins'
    /// additions and removals applied; about 2,400 entries, so lookups never regenerate years.
    holidays: BTreeMap<NaiveDate, Holiday>,
    confirmed_years: BTreeSet<i32>,
}

impl Calendar {
    /// Builds the calendar. Entries that [`CalendarConfig::validate`] would reject are skipped
    /// (a bad closure rule closes nothing), and `open ≥ close` means never open, so callers
    /// should validate first or use [`Calendar::try_new`].
    pub fn new(cfg: CalendarConfig) -> Self {
        let closures = cfg
            .closures
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.parse(&format!("hours.closures[{i}]")).ok())
            .collect();
        let mut holidays: BTreeMap<NaiveDate, Holiday> = RULE_YEARS
            .flat_map(holidays_in_year)
            .map(|h| (h.date, h))
            .collect();
        for date in &cfg.removed_holidays {
            holidays.remove(date);
        }
        for extra in cfg.extra_holidays {
            holidays.insert(
                extra.date,
                Holiday {
                    date: extra.date,
                    name: extra.name,
                    kind: HolidayKind::National,
                },
            );
        }
        Self {
            open: cfg.open,
            close: cfg.close,
            closures,
            closure_exceptions: cfg.closure_exceptions.into_iter().collect(),
            holidays,
            confirmed_years: cfg.confirmed_years.into_iter().collect(),
        }
    }

    /// Builds the calendar only if [`CalendarConfig::validate`] finds no problem.
    pub fn try_new(cfg: CalendarConfig) -> Result<Self, HoursError> {
        let problems = cfg.validate();
        if problems.is_empty() {
            Ok(Self::new(cfg))
        } else {
            Err(HoursError::InvalidConfig(problems))
        }
    }

    /// The effective holiday on a Tokyo date (official or rule list, with admin corrections).
    pub fn holiday_on(&self, date: NaiveDate) -> Option<&Holiday> {
        self.holidays.get(&date)
    }

    /// Whether a closure rule closes `date` (after closure exceptions).
    pub fn is_closure_day(&self, date: NaiveDate) -> bool {
        !self.closure_exceptions.contains(&date) && self.closures.iter().any(|c| c.covers(date))
    }

    /// SPEC §2 "weekdays": Monday–Friday, not a holiday, not a closure day.
    pub fn is_business_day(&self, date: NaiveDate) -> bool {
        self.day_closed_reason(date).is_none()
    }

    /// Why the whole of `date` is closed, or `None` on a business day. When several reasons
    /// apply, the company closure wins (it is what callers are told, e.g. 年末年始休業 on 元日),
    /// then the holiday, then the weekend.
    fn day_closed_reason(&self, date: NaiveDate) -> Option<ClosedReason> {
        if self.is_closure_day(date) {
            return Some(ClosedReason::Closure);
        }
        if let Some(h) = self.holidays.get(&date) {
            return Some(ClosedReason::Holiday {
                name: h.name.clone(),
            });
        }
        if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            return Some(ClosedReason::Weekend);
        }
        None
    }

    /// Open or closed at `at`, and until when.
    ///
    /// Errors when the service does not open again within [`SEARCH_HORIZON_DAYS`], or never
    /// opens at all because `open ≥ close`.
    pub fn status_at(&self, at: DateTime<Utc>) -> Result<Status, HoursError> {
        if self.open >= self.close {
            return Err(HoursError::EmptyDay {
                open: self.open,
                close: self.close,
            });
        }
        let local = tokyo_local(at).ok_or(HoursError::DateOutOfRange)?;
        let (date, time) = (local.date(), local.time());
        let reason = match self.day_closed_reason(date) {
            None if time < self.open => {
                return Ok(Status::Closed {
                    reopens_at: tokyo_instant(date.and_time(self.open))?,
                    reason: ClosedReason::BeforeHours,
                })
            }
            None if time < self.close => {
                return Ok(Status::Open {
                    closes_at: tokyo_instant(date.and_time(self.close))?,
                })
            }
            None => ClosedReason::AfterHours,
            Some(reason) => reason,
        };
        Ok(Status::Closed {
            reopens_at: self.next_opening_after(date)?,
            reason,
        })
    }

    /// Whether calls are answered at `at`; never fails, so the call path can ask it blindly
    /// (a calendar that cannot say is treated as closed).
    pub fn is_open_at(&self, at: DateTime<Utc>) -> bool {
        self.status_at(at).is_ok_and(|s| s.is_open())
    }

    /// The next instant at which open/closed flips.
    pub fn next_change(&self, at: DateTime<Utc>) -> Result<DateTime<Utc>, HoursError> {
        self.status_at(at).map(|s| s.next_change())
    }

    /// Opening time of the first business day after `date`.
    fn next_opening_after(&self, date: NaiveDate) -> Result<DateTime<Utc>, HoursError> {
        let mut day = date;
        for _ in 0..SEARCH_HORIZON_DAYS {
            day = day
                .checked_add_days(Days::new(1))
                .ok_or(HoursError::DateOutOfRange)?;
            if self.is_business_day(day) {
                return tokyo_instant(day.and_time(self.open));
            }
        }
        Err(HoursError::NoOpeningWithin {
            after: date,
            days: SEARCH_HORIZON_DAYS,
        })
    }

    /// Up to `n` upcoming changes after `at`, stopping early past the search horizon.
    pub fn changes_after(&self, at: DateTime<Utc>, n: usize) -> Vec<(DateTime<Utc>, Status)> {
        let mut out = Vec::with_capacity(n.min(EXPLAIN_CHANGES));
        let mut cursor = at;
        for _ in 0..n {
            let Ok(next) = self.next_change(cursor) else {
                break;
            };
            let Ok(status) = self.status_at(next) else {
                break;
            };
            out.push((next, status));
            cursor = next;
        }
        out
    }

    /// Why the service is open or closed at `at`, with the next [`EXPLAIN_CHANGES`] changes.
    pub fn explain(&self, at: DateTime<Utc>) -> Explanation {
        let date = tokyo_local(at).map(|l| l.date());
        let status = self.status_at(at);
        let (open, reason) = match &status {
            Ok(Status::Open { .. }) => (true, Reason::WeekdayHours),
            Ok(Status::Closed { reason, .. }) => (false, Reason::from(reason)),
            // Only the reopening search failed; the day itself still has a reason.
            Err(_) => (
                false,
                date.and_then(|d| self.day_closed_reason(d))
                    .as_ref()
                    .map_or(Reason::AfterHours, Reason::from),
            ),
        };
        let changes = self
            .changes_after(at, EXPLAIN_CHANGES)
            .into_iter()
            .map(|(t, s)| Change {
                at: tokyo_rfc3339(t),
                open: s.is_open(),
                reason: match &s {
                    Status::Open { .. } => Reason::WeekdayHours,
                    Status::Closed { reason, .. } => Reason::from(reason),
                },
            })
            .collect();
        Explanation {
            at: tokyo_rfc3339(at),
            open,
            reason,
            holiday_name: date
                .and_then(|d| self.holidays.get(&d))
                .map(|h| h.name.clone()),
            provisional: date.is_none_or(|d| !self.is_covered_year(d.year())),
            next_change: status.ok().map(|s| tokyo_rfc3339(s.next_change())),
            changes,
        }
    }

    fn is_covered_year(&self, year: i32) -> bool {
        is_official_year(year) || self.confirmed_years.contains(&year)
    }

    /// A warning when some date in the 12 months from `today` (Tokyo) has only provisional,
    /// rule-based holidays: neither the shipped Cabinet Office list nor an admin-confirmed year
    /// covers it. The Cabinet Office announces each next year's list in February, so this fires
    /// in time to ship the update.
    pub fn coverage_warning(&self, today: NaiveDate) -> Option<String> {
        let end = today.checked_add_months(Months::new(12)).unwrap_or(today);
        let first_uncovered = (today.year()..=end.year())
            .find(|y| !self.is_covered_year(*y))
            .map(|y| NaiveDate::from_ymd_opt(y, 1, 1).map_or(today, |jan1| jan1.max(today)))?;
        Some(format!(
            "hours: no official holiday list from {first_uncovered} (within 12 months of {today}); \
             holidays from then on are provisional, computed by rule. Ship the Cabinet Office \
             list for {} or confirm the year in hours.confirmed_years",
            first_uncovered.year()
        ))
    }
}

/// Tokyo offset of a UTC instant (+09:00 since 1952; chrono-tz knows the older history).
fn tokyo_offset(at: DateTime<Utc>) -> FixedOffset {
    Tokyo.offset_from_utc_datetime(&at.naive_utc()).fix()
}

/// The Tokyo wall clock at `at`; `None` only at the very ends of chrono's range, where
/// `with_timezone` would panic.
fn tokyo_local(at: DateTime<Utc>) -> Option<NaiveDateTime> {
    at.naive_utc().checked_add_offset(tokyo_offset(at))
}

/// The UTC instant of a Tokyo wall-clock time. Tokyo has no DST, so the mapping is single; the
/// fallback only keeps this total for historical zone data.
fn tokyo_instant(local: NaiveDateTime) -> Result<DateTime<Utc>, HoursError> {
    match Tokyo.from_local_datetime(&local).earliest() {
        Some(t) => Ok(t.with_timezone(&Utc)),
        None => local
            .checked_sub_signed(TimeDelta::hours(9))
            .map(|utc| Utc.from_utc_datetime(&utc))
            .ok_or(HoursError::DateOutOfRange),
    }
}

/// RFC 3339 in +09:00, or in UTC at the ends of chrono's range where +09:00 cannot be shown.
fn tokyo_rfc3339(at: DateTime<Utc>) -> String {
    if tokyo_local(at).is_some() {
        at.with_timezone(&tokyo_offset(at))
            .to_rfc3339_opts(SecondsFormat::AutoSi, false)
    } else {
        at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hours::config::{ClosureRule, ExtraHoliday};
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or(NaiveDate::MIN)
    }

    /// A Tokyo wall-clock instant, as UTC.
    fn jst(y: i32, mo: u32, day: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        let time = NaiveTime::from_hms_opt(h, mi, s).unwrap_or(NaiveTime::MIN);
        tokyo_instant(d(y, mo, day).and_time(time)).unwrap_or_default()
    }

    fn default_calendar() -> Calendar {
        Calendar::new(CalendarConfig::default())
    }

    fn closed(reopens_at: DateTime<Utc>, reason: ClosedReason) -> Result<Status, HoursError> {
        Ok(Status::Closed { reopens_at, reason })
    }

    #[test]
    fn opening_and_closing_boundaries_are_exact() {
        let cal = default_calendar();
        // Monday 2026-06-01.
        assert_eq!(
            cal.status_at(jst(2026, 6, 1, 8, 59, 59)),
            closed(jst(2026, 6, 1, 9, 0, 0), ClosedReason::BeforeHours)
        );
        assert_eq!(
            cal.status_at(jst(2026, 6, 1, 9, 0, 0)),
            Ok(Status::Open {
                closes_at: jst(2026, 6, 1, 19, 0, 0)
            })
        );
        assert_eq!(
            cal.status_at(jst(2026, 6, 1, 18, 59, 59)),
            Ok(Status::Open {
                closes_at: jst(2026, 6, 1, 19, 0, 0)
            })
        );
        assert_eq!(
            cal.status_at(jst(2026, 6, 1, 19, 0, 0)),
            closed(jst(2026, 6, 2, 9, 0, 0), ClosedReason::AfterHours)
        );
        // 09:00 JST is 00:00 UTC: the rules really run on Tokyo time.
        assert_eq!(
            jst(2026, 6, 1, 9, 0, 0).to_rfc3339(),
            "2026-06-01T00:00:00+00:00"
        );
        assert!(!cal.is_open_at(jst(2026, 6, 1, 19, 0, 0) - TimeDelta::nanoseconds(0)));
        assert!(cal.is_open_at(jst(2026, 6, 1, 19, 0, 0) - TimeDelta::nanoseconds(1)));
    }

    #[test]
    fn weekend_reopens_monday() {
        let cal = default_calendar();
        assert_eq!(
            cal.status_at(jst(2026, 6, 6, 10, 0, 0)),
            closed(jst(2026, 6, 8, 9, 0, 0), ClosedReason::Weekend)
        );
        assert_eq!(
            cal.status_at(jst(2026, 6, 5, 19, 0, 0)),
            closed(jst(2026, 6, 8, 9, 0, 0), ClosedReason::AfterHours)
        );
        assert!(!cal.is_business_day(d(2026, 6, 7)));
        assert!(cal.is_business_day(d(2026, 6, 8)));
    }

    #[test]
    fn holiday_weekends_are_crossed() {
        let cal = default_calendar();
        // Friday before 海の日 (Monday 2026-07-20): reopens Tuesday.
        assert_eq!(
            cal.status_at(jst(2026, 7, 17, 19, 0, 0)),
            closed(jst(2026, 7, 21, 9, 0, 0), ClosedReason::AfterHours)
        );
        assert_eq!(
            cal.status_at(jst(2026, 7, 20, 12, 0, 0)),
            closed(
                jst(2026, 7, 21, 9, 0, 0),
                ClosedReason::Holiday {
                    name: "海の日".to_owned()
                }
            )
        );
        // Silver Week 2026: Sat, Sun, 敬老の日, 国民の休日, 秋分の日 → Thursday.
        assert_eq!(
            cal.next_change(jst(2026, 9, 18, 19, 0, 0)),
            Ok(jst(2026, 9, 24, 9, 0, 0))
        );
        assert_eq!(
            cal.status_at(jst(2026, 9, 22, 9, 30, 0)),
            closed(
                jst(2026, 9, 24, 9, 0, 0),
                ClosedReason::Holiday {
                    name: "国民の休日".to_owned()
                }
            )
        );
        // Golden Week 2026: 5/2 Sat … 5/6 振替休日 → Thursday 5/7.
        assert_eq!(
            cal.next_change(jst(2026, 5, 1, 19, 0, 0)),
            Ok(jst(2026, 5, 7, 9, 0, 0))
        );
        // 2027-03-22 振替休日 after the Sunday equinox.
        assert_eq!(
            cal.next_change(jst(2027, 3, 19, 19, 0, 0)),
            Ok(jst(2027, 3, 23, 9, 0, 0))
        );
    }

    #[test]
    fn new_year_closure_reopens_on_january_4() {
        let cal = default_calendar();
        // Monday 12-28 is the last business day.
        assert!(cal.is_open_at(jst(2026, 12, 28, 18, 0, 0)));
        assert_eq!(
            cal.status_at(jst(2026, 12, 28, 19, 0, 0)),
            closed(jst(2027, 1, 4, 9, 0, 0), ClosedReason::AfterHours)
        );
        for day in [29, 30, 31] {
            assert_eq!(
                cal.status_at(jst(2026, 12, day, 10, 0, 0)),
                closed(jst(2027, 1, 4, 9, 0, 0), ClosedReason::Closure)
            );
        }
        // The closure is what callers hear on 元日; the holiday still shows in explain.
        assert_eq!(
            cal.status_at(jst(2027, 1, 1, 10, 0, 0)),
            closed(jst(2027, 1, 4, 9, 0, 0), ClosedReason::Closure)
        );
        assert!(cal.is_open_at(jst(2027, 1, 4, 9, 0, 0)));
    }

    #[test]
    fn dated_closure_and_closure_exception() {
        let cfg = CalendarConfig {
            closures: vec![
                ClosureRule {
                    from: "12-29".to_owned(),
                    to: "01-03".to_owned(),
                },
                ClosureRule {
                    from: "2027-05-06".to_owned(),
                    to: "2027-05-07".to_owned(),
                },
            ],
            closure_exceptions: vec![d(2026, 12, 29), d(2027, 1, 2)],
            ..CalendarConfig::default()
        };
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
        let cal = Calendar::new(cfg);
        // Tuesday 12-29 is open by exception; 12-30 is closed again.
        assert_eq!(
            cal.status_at(jst(2026, 12, 29, 10, 0, 0)),
            Ok(Status::Open {
                closes_at: jst(2026, 12, 29, 19, 0, 0)
            })
        );
        assert_eq!(
            cal.status_at(jst(2026, 12, 29, 19, 0, 0)),
            closed(jst(2027, 1, 4, 9, 0, 0), ClosedReason::AfterHours)
        );
        // An exception does not open a weekend (2027-01-02 is a Saturday).
        assert_eq!(
            cal.status_at(jst(2027, 1, 2, 10, 0, 0)),
            closed(jst(2027, 1, 4, 9, 0, 0), ClosedReason::Weekend)
        );
        // Golden Week 2027 made longer by the dated closure: Wed 5/5 → Mon 5/10.
        assert_eq!(
            cal.next_change(jst(2027, 4, 30, 19, 0, 0)),
            Ok(jst(2027, 5, 10, 9, 0, 0))
        );
        assert!(cal.is_open_at(jst(2027, 4, 30, 12, 0, 0)));
        assert_eq!(
            cal.status_at(jst(2027, 5, 6, 12, 0, 0)),
            closed(jst(2027, 5, 10, 9, 0, 0), ClosedReason::Closure)
        );
    }

    #[test]
    fn added_and_removed_holidays() {
        let cfg = CalendarConfig {
            extra_holidays: vec![ExtraHoliday {
                date: d(2026, 6, 15),
                name: "創立記念日".to_owned(),
            }],
            removed_holidays: vec![d(2026, 11, 3)],
            ..CalendarConfig::default()
        };
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
        let cal = Calendar::new(cfg);
        assert_eq!(
            cal.status_at(jst(2026, 6, 15, 12, 0, 0)),
            closed(
                jst(2026, 6, 16, 9, 0, 0),
                ClosedReason::Holiday {
                    name: "創立記念日".to_owned()
                }
            )
        );
        assert!(!cal.is_business_day(d(2026, 6, 15)));
        // 文化の日 (Tuesday) removed: an ordinary business day.
        assert!(cal.is_business_day(d(2026, 11, 3)));
        assert!(cal.is_open_at(jst(2026, 11, 3, 10, 0, 0)));
        assert_eq!(cal.holiday_on(d(2026, 11, 3)), None);
        // Default calendar still has both as they were.
        let plain = default_calendar();
        assert!(plain.is_business_day(d(2026, 6, 15)));
        assert!(!plain.is_business_day(d(2026, 11, 3)));
    }

    #[test]
    fn calendar_holidays_match_the_list() {
        let cal = default_calendar();
        for year in [1990, 2019, 2026, 2027, 2040, 2099] {
            for h in holidays_in_year(year) {
                assert_eq!(cal.holiday_on(h.date), Some(&h));
                if h.date.weekday().num_days_from_monday() < 5 {
                    assert!(!cal.is_business_day(h.date), "{h:?}");
                }
            }
        }
    }

    #[test]
    fn explain_serializes_the_agreed_fields() -> Result<(), serde_json::Error> {
        let cal = default_calendar();
        let json = serde_json::to_value(cal.explain(jst(2027, 1, 1, 12, 0, 0)))?;
        assert_eq!(json["at"], "2027-01-01T12:00:00+09:00");
        assert_eq!(json["open"], false);
        assert_eq!(json["reason"], "closure");
        assert_eq!(json["holiday_name"], "元日");
        assert_eq!(json["provisional"], false);
        assert_eq!(json["next_change"], "2027-01-04T09:00:00+09:00");
        let changes = json["changes"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(changes.len(), EXPLAIN_CHANGES);
        assert_eq!(
            changes.first(),
            Some(&serde_json::json!({
                "at": "2027-01-04T09:00:00+09:00", "open": true, "reason": "weekday_hours"
            }))
        );
        assert_eq!(
            changes.get(1),
            Some(&serde_json::json!({
                "at": "2027-01-04T19:00:00+09:00", "open": false, "reason": "after_hours"
            }))
        );
        // Friday 1/8 19:00 → 成人の日 Monday 1/11 → Tuesday 1/12.
        assert_eq!(
            changes.get(9).map(|c| &c["at"]),
            Some(&"2027-01-08T19:00:00+09:00".into())
        );

        let open = serde_json::to_value(cal.explain(jst(2026, 6, 1, 10, 0, 0)))?;
        assert_eq!(open["open"], true);
        assert_eq!(open["reason"], "weekday_hours");
        assert_eq!(open["holiday_name"], serde_json::Value::Null);
        assert_eq!(open["next_change"], "2026-06-01T19:00:00+09:00");

        let reasons: Vec<serde_json::Value> = [
            jst(2026, 6, 1, 8, 0, 0),
            jst(2026, 6, 1, 20, 0, 0),
            jst(2026, 6, 6, 10, 0, 0),
            jst(2026, 9, 22, 10, 0, 0),
        ]
        .into_iter()
        .map(|t| serde_json::to_value(cal.explain(t)).map(|v| v["reason"].clone()))
        .collect::<Result<_, _>>()?;
        assert_eq!(
            reasons,
            vec!["before_hours", "after_hours", "weekend", "holiday"]
        );
        assert_eq!(
            cal.explain(jst(2026, 9, 22, 10, 0, 0))
                .holiday_name
                .as_deref(),
            Some("国民の休日")
        );
        assert!(cal.explain(jst(2030, 1, 7, 10, 0, 0)).provisional);
        Ok(())
    }

    #[test]
    fn searches_are_bounded() {
        let always_closed = Calendar::new(CalendarConfig {
            closures: vec![ClosureRule {
                from: "01-01".to_owned(),
                to: "12-31".to_owned(),
            }],
            ..CalendarConfig::default()
        });
        let at = jst(2026, 6, 1, 10, 0, 0);
        assert_eq!(
            always_closed.status_at(at),
            Err(HoursError::NoOpeningWithin {
                after: d(2026, 6, 1),
                days: SEARCH_HORIZON_DAYS
            })
        );
        assert!(!always_closed.is_open_at(at));
        let explained = always_closed.explain(at);
        assert!(!explained.open);
        assert_eq!(explained.reason, Reason::Closure);
        assert_eq!(explained.next_change, None);
        assert!(explained.changes.is_empty());

        let inverted = Calendar::new(CalendarConfig {
            open: NaiveTime::from_hms_opt(19, 0, 0).unwrap_or(NaiveTime::MIN),
            close: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN),
            ..CalendarConfig::default()
        });
        assert!(matches!(
            inverted.status_at(at),
            Err(HoursError::EmptyDay { .. })
        ));
        assert!(matches!(
            Calendar::try_new(CalendarConfig {
                open: NaiveTime::MIN,
                close: NaiveTime::MIN,
                ..CalendarConfig::default()
            }),
            Err(HoursError::InvalidConfig(p)) if p.len() == 1
        ));

        // A long but finite closure is crossed.
        let sabbatical = Calendar::new(CalendarConfig {
            closures: vec![ClosureRule {
                from: "2026-06-01".to_owned(),
                to: "2027-05-31".to_owned(),
            }],
            ..CalendarConfig::default()
        });
        assert_eq!(sabbatical.next_change(at), Ok(jst(2027, 6, 1, 9, 0, 0)));
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let cal = default_calendar();
        for at in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            let _ = cal.status_at(at);
            let _ = cal.explain(at);
        }
    }

    #[test]
    fn coverage_warning_names_the_first_provisional_date() {
        let cal = default_calendar();
        assert_eq!(cal.coverage_warning(d(2026, 6, 1)), None);
        assert_eq!(cal.coverage_warning(d(2026, 12, 31)), None);
        let warning = cal.coverage_warning(d(2027, 1, 1)).unwrap_or_default();
        assert!(warning.contains("from 2028-01-01"), "{warning}");
        let late = cal.coverage_warning(d(2030, 5, 1)).unwrap_or_default();
        assert!(late.contains("from 2030-05-01"), "{late}");

        let confirmed = Calendar::new(CalendarConfig {
            confirmed_years: vec![2028],
            ..CalendarConfig::default()
        });
        assert_eq!(confirmed.coverage_warning(d(2027, 3, 1)), None);
        assert!(!confirmed.explain(jst(2028, 1, 4, 10, 0, 0)).provisional);
    }

    fn varied_calendar() -> Calendar {
        Calendar::new(CalendarConfig {
            closures: vec![
                ClosureRule {
                    from: "12-29".to_owned(),
                    to: "01-03".to_owned(),
                },
                ClosureRule {
                    from: "08-13".to_owned(),
                    to: "08-15".to_owned(),
                },
                ClosureRule {
                    from: "2027-05-06".to_owned(),
                    to: "2027-05-07".to_owned(),
                },
            ],
            closure_exceptions: vec![d(2026, 12, 29)],
            extra_holidays: vec![ExtraHoliday {
                date: d(2026, 6, 15),
                name: "創立記念日".to_owned(),
            }],
            removed_holidays: vec![d(2026, 11, 3)],
            ..CalendarConfig::default()
        })
    }

    proptest! {
        #[test]
        fn status_flips_exactly_at_next_change(
            secs in 1_704_067_200_i64..1_956_528_000_i64, // 2024-01-01 .. 2032-01-01 UTC
            nanos in 0_u32..1_000_000_000,
            permille in 0_i64..1000,
        ) {
            for cal in [default_calendar(), varied_calendar()] {
                let at = DateTime::from_timestamp(secs, nanos).unwrap_or_default();
                let status = cal.status_at(at);
                prop_assert!(status.is_ok(), "{status:?}");
                let status = status.unwrap_or(Status::Open { closes_at: at });
                let next = status.next_change();
                prop_assert!(next > at);
                let open = status.is_open();
                let just_before = next - TimeDelta::nanoseconds(1);
                prop_assert_eq!(cal.is_open_at(just_before), open);
                prop_assert_eq!(cal.status_at(just_before).map(|s| s.next_change()), Ok(next));
                prop_assert_eq!(cal.is_open_at(next), !open);
                // Any instant in between shares the state.
                let offset = (next - at).num_milliseconds() * permille / 1000;
                let between = at + TimeDelta::milliseconds(offset);
                prop_assert_eq!(cal.is_open_at(between), open);

                let changes = cal.changes_after(at, EXPLAIN_CHANGES);
                prop_assert_eq!(changes.len(), EXPLAIN_CHANGES);
                let mut prev_time = at;
                let mut prev_open = open;
                for (t, s) in &changes {
                    prop_assert!(*t > prev_time);
                    prop_assert_eq!(s.is_open(), !prev_open, "changes alternate");
                    prev_time = *t;
                    prev_open = s.is_open();
                }
            }
        }

        #[test]
        fn business_days_are_open_exactly_during_hours(days in 0_u64..3000, minute in 0_u32..1440) {
            let cal = varied_calendar();
            let date = d(2024, 1, 1) + Days::new(days);
            let time = NaiveTime::from_num_seconds_from_midnight_opt(minute * 60, 0)
                .unwrap_or(NaiveTime::MIN);
            let at = tokyo_instant(date.and_time(time)).unwrap_or_default();
            let in_hours = time >= DEFAULT_OPEN_T && time < DEFAULT_CLOSE_T;
            prop_assert_eq!(cal.is_open_at(at), cal.is_business_day(date) && in_hours);
        }
    }

    const DEFAULT_OPEN_T: NaiveTime = crate::hours::config::DEFAULT_OPEN;
    const DEFAULT_CLOSE_T: NaiveTime = crate::hours::config::DEFAULT_CLOSE;
}
