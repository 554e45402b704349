//! Contract life (SPEC §4 plan availability, §6 term, plan change, cancellation, suspension,
//! complaint rule, termination by the company). Pure functions over explicit Asia/Tokyo dates:
//! no clock, no I/O.

mod complaint;
mod history;
mod plan;
mod rules;

use chrono::NaiveDate;
use thiserror::Error;

use crate::billing::YearMonth;

pub use complaint::{complaint_flag, ComplaintWindow, COMPLAINT_THRESHOLD, COMPLAINT_WINDOW_DAYS};
pub use history::{
    call_disposition, Cancellation, ContractEnd, ContractHistory, ContractStatus, Disposition,
    EndCause, PlanChange, Suspension,
};
pub use plan::Plan;
pub use rules::{
    cancellation_end, cancellation_fee_waived, check_plan_change, check_plan_for_start,
    plan_change_effective, term_containing, Term, NOTICE_CUTOFF_DAY, TERM_MONTHS,
};

/// Why a contract rule refuses an input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContractError {
    /// A name that is not a plan of the price list (quoted, truncated to 32 characters).
    #[error("unknown plan {0:?}")]
    UnknownPlan(String),
    /// Legacy plans took applications only up to 2022-06-30 (SPEC §4 line 60).
    #[error("plan {plan} is closed to new applications after 2022-06-30 (requested {on})")]
    LegacyPlanClosed { plan: Plan, on: NaiveDate },
    /// A cancellation notice named an end month before the earliest the notice allows
    /// (SPEC §6 lines 102–104).
    #[error("end_month {end_month} is before the earliest end month {earliest} for this notice")]
    EndMonthTooEarly {
        end_month: YearMonth,
        earliest: YearMonth,
    },
    /// The contract would end before it starts.
    #[error("contract ends on {end}, before its start {start}")]
    EndsBeforeStart { start: NaiveDate, end: NaiveDate },
    /// A date computation left chrono's representable range (only for absurd dates).
    #[error("date out of the representable range")]
    DateOutOfRange,
}
