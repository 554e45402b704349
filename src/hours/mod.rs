//! Service calendar: when calls are handled (SPEC §2).
//!
//! Weekdays 09:00–19:00 Asia/Tokyo, except Japanese national holidays (with 振替休日 and
//! 国民の休日) and company closure days. Pure: every question takes the instant or date it is
//! about, nothing reads a clock.
//!
//! - [`holidays`]: the Cabinet Office list and the Holiday Act rules.
//! - [`config`]: the `[hours]` configuration and its validation.
//! - [`calendar`]: open/closed at an instant, next change, explanations.

pub mod calendar;
pub mod config;
pub mod holidays;

use chrono::{NaiveDate, NaiveTime};

pub use calendar::{
    Calendar, Change, ClosedReason, Explanation, Reason, Status, EXPLAIN_CHANGES,
    SEARCH_HORIZON_DAYS,
};
pub use config::{CalendarConfig, ClosureRule, ExtraHoliday};
pub use holidays::{
    holiday_on, holidays_in_year, is_official_year, Holiday, HolidayKind, OFFICIAL_YEARS,
    RULE_YEARS,
};

/// Errors of the service calendar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    /// Bounded search (SEARCH_HORIZON_DAYS) found no business day: the configuration closes the
    /// service for over a year.
    #[error("the service does not open within {days} days after {after} (Asia/Tokyo)")]
    NoOpeningWithin { after: NaiveDate, days: u32 },
    #[error("opening time {open} is not before closing time {close}: the service never opens")]
    EmptyDay { open: NaiveTime, close: NaiveTime },
    #[error("date out of the supported range")]
    DateOutOfRange,
    #[error("invalid hours configuration: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),
}
