//! The dated rules of contract life (SPEC §6), as free functions so the CLI and the ledger can
//! answer "when would this take effect?" before anything is recorded.

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::billing::YearMonth;
use crate::contract::plan::legacy_open_on;
use crate::contract::{ContractError, Plan};

/// Last day of a month on which a plan change or cancellation notice still counts for that month
/// (SPEC §6 lines 99–103: "on or before the 25th").
pub const NOTICE_CUTOFF_DAY: u32 = 25;

/// Length of a contract term in months (SPEC §6 line 97).
pub const TERM_MONTHS: u32 = 6;

/// Refuses a new contract on a legacy plan that starts after 2022-06-30 (SPEC §4 line 60).
///
/// The SPEC closes legacy plans to *applications* after 2022-06-30; the contract history only
/// records the start date, so the start date stands in for the application date. SD plans are
/// accepted on any date: the SPEC says when they went on sale (2022-07-01) but not that earlier
/// contracts could not hold one, and contracts migrated onto SD plans may carry older dates.
pub fn check_plan_for_start(plan: Plan, start: NaiveDate) -> Result<(), ContractError> {
    if plan.is_legacy() && !legacy_open_on(start) {
        return Err(ContractError::LegacyPlanClosed { plan, on: start });
    }
    Ok(())
}

/// Refuses a plan change *to* a legacy plan received after 2022-06-30 (SPEC §4 line 60: legacy
/// plans are closed to new applications; existing contracts keep theirs).
///
/// `current` is the plan the contract would be on just before this change. Keeping the same
/// legacy plan (a change that only adds or drops the hearing option) is not a new application
/// for that plan and is allowed.
pub fn check_plan_change(
    current: Plan,
    requested: Plan,
    received: NaiveDate,
) -> Result<(), ContractError> {
    if requested.is_legacy() && requested != current && !legacy_open_on(received) {
        return Err(ContractError::LegacyPlanClosed {
            plan: requested,
            on: received,
        });
    }
    Ok(())
}

/// First day on which a plan change takes effect (SPEC §6 lines 99–101): received on or before
/// the 25th → the 1st of the next month; on the 26th or later → the 1st of the month after next.
///
/// SPEC §8 example 5: 2026-12-25 → 2027-01-01; 2026-12-26 → 2027-02-01.
pub fn plan_change_effective(received: NaiveDate) -> Result<NaiveDate, ContractError> {
    let months_ahead = if received.day() <= NOTICE_CUTOFF_DAY {
        1
    } else {
        2
    };
    YearMonth::of(received)
        .plus_months(months_ahead)
        .map(|m| m.first_day())
        .ok_or(ContractError::DateOutOfRange)
}

/// Last day of a contract cancelled by the contractor (SPEC §6 lines 102–104): a notice received
/// on or before the 25th ends it at the end of that month, on the 26th or later at the end of the
/// next month. A notice may name a later `end_month`; naming an earlier one is refused.
///
/// SPEC §8 example 3: received 2027-01-20 → ends 2027-01-31.
pub fn cancellation_end(
    received: NaiveDate,
    end_month: Option<YearMonth>,
) -> Result<NaiveDate, ContractError> {
    let months_ahead = if received.day() <= NOTICE_CUTOFF_DAY {
        0
    } else {
        1
    };
    let earliest = YearMonth::of(received)
        .plus_months(months_ahead)
        .ok_or(ContractError::DateOutOfRange)?;
    match end_month {
        None => Ok(earliest.last_day()),
        Some(named) if named >= earliest => Ok(named.last_day()),
        Some(named) => Err(ContractError::EndMonthTooEarly {
            end_month: named,
            earliest,
        }),
    }
}

/// One six-month contract term, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
}

/// The term containing `date` for a contract started on `start` (SPEC §6 lines 97–98): terms are
/// six months from the first day of the start month and renew back to back, so term *k* covers
/// months `6k … 6k+5` counted from the start month.
///
/// `None` when `date` lies before the start month (no term contains it) or past chrono's range.
///
/// SPEC §8 example 3: start 2026-11-16 → term 2026-11-01 … 2027-04-30.
pub fn term_containing(start: NaiveDate, date: NaiveDate) -> Option<Term> {
    let start_month = YearMonth::of(start);
    let elapsed = u32::try_from(YearMonth::of(date).months_since(start_month)).ok()?;
    let offset = elapsed / TERM_MONTHS * TERM_MONTHS;
    let first = start_month.plus_months(offset)?;
    let last = first.plus_months(TERM_MONTHS - 1)?;
    Some(Term {
        first_day: first.first_day(),
        last_day: last.last_day(),
    })
}

/// Whether the cancellation fee is waived (SPEC §6 lines 104–107): only when **both** the contract
/// ends on the last day of a term **and** the notice was received at least one month before that
/// day.
///
/// "One month before" uses chrono's calendar month subtraction, which clamps to the month's end:
/// a term ending 2027-04-30 needs notice on or before 2027-03-30 (the SPEC's own example); one
/// ending 2027-03-31 needs notice on or before 2027-02-28.
pub fn cancellation_fee_waived(start: NaiveDate, end_date: NaiveDate, received: NaiveDate) -> bool {
    let Some(term) = term_containing(start, end_date) else {
        return false;
    };
    if end_date != term.last_day {
        return false;
    }
    match end_date.checked_sub_months(Months::new(1)) {
        Some(deadline) => received <= deadline,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn ym(s: &str) -> YearMonth {
        s.parse().unwrap()
    }

    /// SPEC §8 example 5, verbatim.
    #[test]
    fn spec_example_5_plan_change_effective() {
        assert_eq!(
            plan_change_effective(d(2026, 12, 25)).unwrap(),
            d(2027, 1, 1)
        );
        assert_eq!(
            plan_change_effective(d(2026, 12, 26)).unwrap(),
            d(2027, 2, 1)
        );
    }

    #[test]
    fn plan_change_boundaries() {
        assert_eq!(
            plan_change_effective(d(2026, 11, 1)).unwrap(),
            d(2026, 12, 1)
        );
        assert_eq!(
            plan_change_effective(d(2026, 11, 30)).unwrap(),
            d(2027, 1, 1)
        );
        assert_eq!(
            plan_change_effective(d(2028, 2, 29)).unwrap(),
            d(2028, 4, 1)
        );
        assert_eq!(
            plan_change_effective(d(2027, 1, 31)).unwrap(),
            d(2027, 3, 1)
        );
        assert_eq!(
            plan_change_effective(NaiveDate::MAX),
            Err(ContractError::DateOutOfRange)
        );
    }

    #[test]
    fn cancellation_25th_vs_26th() {
        assert_eq!(
            cancellation_end(d(2027, 1, 25), None).unwrap(),
            d(2027, 1, 31)
        );
        assert_eq!(
            cancellation_end(d(2027, 1, 26), None).unwrap(),
            d(2027, 2, 28)
        );
        assert_eq!(
            cancellation_end(d(2028, 1, 26), None).unwrap(),
            d(2028, 2, 29)
        );
        assert_eq!(
            cancellation_end(d(2026, 12, 31), None).unwrap(),
            d(2027, 1, 31)
        );
    }

    #[test]
    fn cancellation_named_end_month() {
        // A later month is allowed.
        assert_eq!(
            cancellation_end(d(2027, 1, 20), Some(ym("2027-04"))).unwrap(),
            d(2027, 4, 30)
        );
        // Naming the earliest allowed month is the same as naming none.
        assert_eq!(
            cancellation_end(d(2027, 1, 26), Some(ym("2027-02"))).unwrap(),
            d(2027, 2, 28)
        );
        // Earlier than the notice allows: refused, naming end_month.
        let err = cancellation_end(d(2027, 1, 26), Some(ym("2027-01"))).unwrap_err();
        assert_eq!(
            err,
            ContractError::EndMonthTooEarly {
                end_month: ym("2027-01"),
                earliest: ym("2027-02"),
            }
        );
        assert!(err.to_string().contains("end_month 2027-01"), "{err}");
    }

    #[test]
    fn terms_renew_every_six_months() {
        let start = d(2026, 11, 16);
        let first = Term {
            first_day: d(2026, 11, 1),
            last_day: d(2027, 4, 30),
        };
        assert_eq!(term_containing(start, start), Some(first));
        assert_eq!(term_containing(start, d(2026, 11, 1)), Some(first));
        assert_eq!(term_containing(start, d(2027, 4, 30)), Some(first));
        assert_eq!(
            term_containing(start, d(2027, 5, 1)),
            Some(Term {
                first_day: d(2027, 5, 1),
                last_day: d(2027, 10, 31),
            })
        );
        assert_eq!(
            term_containing(start, d(2029, 12, 5)),
            Some(Term {
                first_day: d(2029, 11, 1),
                last_day: d(2030, 4, 30),
            })
        );
        assert_eq!(term_containing(start, d(2026, 10, 31)), None);
    }

    #[test]
    fn fee_waiver_needs_term_end_and_one_month_notice() {
        let start = d(2026, 11, 16);
        // Term ends 2027-04-30: notice on 2027-03-30 is exactly one month before.
        assert!(cancellation_fee_waived(
            start,
            d(2027, 4, 30),
            d(2027, 3, 30)
        ));
        assert!(cancellation_fee_waived(
            start,
            d(2027, 4, 30),
            d(2026, 12, 1)
        ));
        // One day late.
        assert!(!cancellation_fee_waived(
            start,
            d(2027, 4, 30),
            d(2027, 3, 31)
        ));
        // Not a term's last day (SPEC §8 example 3).
        assert!(!cancellation_fee_waived(
            start,
            d(2027, 1, 31),
            d(2026, 12, 1)
        ));
        // Second term ends 2027-10-31; one month before is 2027-09-30.
        assert!(cancellation_fee_waived(
            start,
            d(2027, 10, 31),
            d(2027, 9, 30)
        ));
        assert!(!cancellation_fee_waived(
            start,
            d(2027, 10, 31),
            d(2027, 10, 1)
        ));
    }

    #[test]
    fn fee_waiver_month_end_clamping() {
        // Start 2026-10-05: terms end 2027-03-31, 2027-09-30, …
        let start = d(2026, 10, 5);
        // 2027-03-31 minus one month clamps to 2027-02-28.
        assert!(cancellation_fee_waived(
            start,
            d(2027, 3, 31),
            d(2027, 2, 28)
        ));
        assert!(!cancellation_fee_waived(
            start,
            d(2027, 3, 31),
            d(2027, 3, 1)
        ));
        // Start 2027-03-01: first term ends 2027-08-31 → deadline 2027-07-31.
        let start = d(2027, 3, 1);
        assert!(cancellation_fee_waived(
            start,
            d(2027, 8, 31),
            d(2027, 7, 31)
        ));
        assert!(!cancellation_fee_waived(
            start,
            d(2027, 8, 31),
            d(2027, 8, 1)
        ));
    }

    #[test]
    fn legacy_plans_only_for_old_contracts() {
        assert!(check_plan_for_start(Plan::Standard, d(2022, 6, 30)).is_ok());
        assert_eq!(
            check_plan_for_start(Plan::Standard, d(2022, 7, 1)),
            Err(ContractError::LegacyPlanClosed {
                plan: Plan::Standard,
                on: d(2022, 7, 1),
            })
        );
        for plan in Plan::ALL.into_iter().filter(|p| !p.is_legacy()) {
            assert!(check_plan_for_start(plan, d(2020, 1, 1)).is_ok());
            assert!(check_plan_for_start(plan, d(2030, 1, 1)).is_ok());
        }
    }

    #[test]
    fn plan_change_to_legacy_refused_after_cutoff() {
        assert!(check_plan_change(Plan::Sd100, Plan::Business, d(2022, 6, 30)).is_ok());
        assert!(check_plan_change(Plan::Sd100, Plan::Business, d(2022, 7, 1)).is_err());
        assert!(check_plan_change(Plan::Standard, Plan::Business, d(2023, 1, 1)).is_err());
        // Keeping one's legacy plan (e.g. only toggling the hearing option) is allowed.
        assert!(check_plan_change(Plan::Standard, Plan::Standard, d(2030, 1, 1)).is_ok());
        assert!(check_plan_change(Plan::Standard, Plan::Sd300, d(2030, 1, 1)).is_ok());
    }
}
