//! The monthly bill (SPEC §5) over a contract's history (SPEC §6): pure arithmetic on explicit
//! Asia/Tokyo dates and integer yen. No clock, no I/O; the ledger supplies the call counts.

mod money;
pub(crate) mod month;
mod statement;

use thiserror::Error;

use crate::contract::ContractError;

pub use money::{days_late, due_date, format_yen, late_interest, prorate, tax_contained};
pub use month::YearMonth;
pub use statement::{statement, Line, LineKind, ProRata, Statement, Usage};

/// Why a bill cannot be produced.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BillingError {
    /// Not a strict `YYYY-MM` month (quoted, truncated to 32 characters).
    #[error("invalid month {0:?}: expected YYYY-MM with month 01-12")]
    InvalidMonth(String),
    /// No bill exists for a month before the contract's first month.
    #[error("no bill for {month}: the contract starts in {start_month}")]
    MonthBeforeStart {
        month: YearMonth,
        start_month: YearMonth,
    },
    /// No bill exists for a month after the contract's last month (SPEC §5 line 88).
    #[error("no bill for {month}: the contract ended in {end_month}")]
    MonthAfterEnd {
        month: YearMonth,
        end_month: YearMonth,
    },
    /// The contract history breaks a contract rule.
    #[error("invalid contract: {0}")]
    Contract(#[from] ContractError),
    /// A date computation left chrono's representable range (only for absurd dates).
    #[error("date out of the representable range")]
    DateOutOfRange,
}
