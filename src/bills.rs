//! Monthly statements from the ledger: the one path `smartdesk bill` and the contractor
//! portal share (issue #3 §4, issue #8 §2). The arithmetic is [`crate::billing`]'s; this
//! reads the contract history and the billable counts of the month (Asia/Tokyo bounds).

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::Serialize;

use crate::billing::{statement, BillingError, Statement, Usage, YearMonth};
use crate::ledger::{Contractor, Ledger, LedgerError};

/// One contractor's statement as `bill --json` prints it.
#[derive(Debug, Serialize)]
pub struct ContractorStatement {
    pub contractor_id: i64,
    pub contractor_name: String,
    #[serde(flatten)]
    pub statement: Statement,
}

#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("month out of range")]
    OutOfRange,
    #[error("contractor {0}: {1}")]
    Billing(i64, BillingError),
}

/// The instant (UTC) a day begins in Asia/Tokyo; `None` only for absurd dates.
pub fn tokyo_midnight(d: NaiveDate) -> Option<DateTime<Utc>> {
    chrono_tz::Asia::Tokyo
        .from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// `[first instant, first instant of the next month)` of a month in Asia/Tokyo.
pub fn month_bounds(m: YearMonth) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    Some((
        tokyo_midnight(m.first_day())?,
        tokyo_midnight(m.next()?.first_day())?,
    ))
}

/// The statement of one contractor for one month, from the ledger; `None` when the
/// contract does not cover the month.
pub async fn contractor_statement(
    ledger: &Ledger,
    c: &Contractor,
    month: YearMonth,
    paid_on: Option<NaiveDate>,
) -> Result<Option<ContractorStatement>, StatementError> {
    let contractor_id = c.id;
    let h = ledger.contract_history(c).await?;
    let (from, to) = month_bounds(month).ok_or(StatementError::OutOfRange)?;
    let counts = ledger.billable_counts(contractor_id, from, to).await?;
    let usage = Usage {
        billable_calls: counts.iter().map(|c| c.count).sum(),
        by_outcome: counts.into_iter().map(|c| (c.outcome, c.count)).collect(),
    };
    match statement(&h, month, &usage, paid_on) {
        Ok(statement) => Ok(Some(ContractorStatement {
            contractor_id,
            contractor_name: c.name.clone(),
            statement,
        })),
        Err(BillingError::MonthBeforeStart { .. } | BillingError::MonthAfterEnd { .. }) => Ok(None),
        Err(e) => Err(StatementError::Billing(contractor_id, e)),
    }
}
