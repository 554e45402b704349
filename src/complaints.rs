//! Applying the complaint rule (SPEC §6) to a contractor's records in the ledger: the pure
//! rule is [`crate::contract::complaint_flag`]; this decides what to do with its answer.
//!
//! Only complaints after the contractor's last suspension ended count, so that a contractor
//! the company resumed is not suspended again for the same complaints.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::contract::{complaint_flag, ComplaintWindow};
use crate::ledger::{ContractorState, Ledger, LedgerError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComplaintVerdict {
    pub contractor_id: i64,
    /// The window that trips the rule, if any.
    pub flagged: Option<ComplaintWindow>,
    /// True when this evaluation suspended the contractor (configuration says automatic).
    pub suspended_now: bool,
}

pub async fn evaluate(
    ledger: &Ledger,
    contractor_id: i64,
    auto_suspend: bool,
    now: DateTime<Utc>,
) -> Result<ComplaintVerdict, LedgerError> {
    let c = ledger.contractor(contractor_id).await?;
    let since = ledger
        .suspensions(contractor_id)
        .await?
        .iter()
        .filter_map(|s| s.ended_at)
        .max();
    let tokyo = chrono_tz::Asia::Tokyo;
    let days: Vec<_> = ledger
        .complaint_call_times(contractor_id, since)
        .await?
        .into_iter()
        .map(|t| t.with_timezone(&tokyo).date_naive())
        .collect();
    let flagged = complaint_flag(&days);
    let mut suspended_now = false;
    if let (Some(w), true, ContractorState::Active) = (&flagged, auto_suspend, c.state) {
        let reason = format!(
            "complaint rule: {} complaints {}..{}",
            w.count, w.first_day, w.last_day
        );
        ledger
            .suspend(
                contractor_id,
                &reason,
                now.with_timezone(&tokyo).date_naive(),
                now,
            )
            .await?;
        tracing::warn!(
            contractor_id,
            count = w.count,
            "contractor suspended by the complaint rule"
        );
        suspended_now = true;
    }
    Ok(ComplaintVerdict {
        contractor_id,
        flagged,
        suspended_now,
    })
}
