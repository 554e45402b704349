//! One contract's recorded history and what follows from it on a given day or month (SPEC §6).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::billing::YearMonth;
use crate::contract::rules::{
    cancellation_end, cancellation_fee_waived, check_plan_change, check_plan_for_start,
    plan_change_effective, term_containing, Term,
};
use crate::contract::{ContractError, Plan};

/// A plan change request as received (SPEC §6 lines 99–101). It takes effect on
/// [`plan_change_effective`]`(received)`; `hearing` is whether the hearing option is wanted from
/// then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChange {
    pub received: NaiveDate,
    pub plan: Plan,
    pub hearing: bool,
}

/// A cancellation notice from the contractor (SPEC §6 lines 102–107), optionally naming a later
/// end month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    pub received: NaiveDate,
    pub end_month: Option<YearMonth>,
}

/// A suspension by the company (SPEC §6 lines 108–109), both ends inclusive; `to: None` means
/// still suspended. Suspensions never change fees ("keep paying their base fees"); they only make
/// calls non-billable (SPEC §3 lines 45–47).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
}

impl Suspension {
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.from <= date
            && match self.to {
                Some(to) => date <= to,
                None => true,
            }
    }
}

/// Everything recorded about one contract that bears on fees. All dates are Asia/Tokyo dates.
///
/// Fields are plain data (as stored); [`ContractHistory::validate`] checks them against the rules
/// and every derived answer that depends on validity returns a `Result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractHistory {
    /// First day of service.
    pub start: NaiveDate,
    /// Plan at the start.
    pub plan: Plan,
    /// Hearing option at the start.
    pub hearing: bool,
    /// Plan change requests, in any order.
    #[serde(default)]
    pub plan_changes: Vec<PlanChange>,
    /// The contractor's cancellation notice, if any.
    #[serde(default)]
    pub cancellation: Option<Cancellation>,
    /// Termination by the company (SPEC §6 lines 113–114): the contract ends at once. This date is
    /// the contract's last day, inclusive, like the end date of a cancellation.
    #[serde(default)]
    pub terminated_on: Option<NaiveDate>,
}

/// What ended a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndCause {
    /// The contractor's notice (SPEC §6 lines 102–107); the cancellation fee may apply.
    Cancellation,
    /// The company's termination (SPEC §6 lines 113–114); no cancellation fee, all unpaid
    /// amounts fall due at once.
    Termination,
}

/// The last day of a contract (inclusive) and what ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractEnd {
    pub date: NaiveDate,
    pub cause: EndCause,
}

/// Whether a contract is in force on a day, regardless of suspension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractStatus {
    NotStarted,
    InForce,
    Ended,
}

/// What happens to a call that reaches a contract's assigned number on a day (SPEC §3 lines
/// 38–47): only `InForce` calls are billable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    InForce,
    NotStarted,
    Ended,
    Suspended,
}

impl ContractHistory {
    /// A fresh contract with no changes, notice or termination.
    pub fn new(start: NaiveDate, plan: Plan, hearing: bool) -> Self {
        Self {
            start,
            plan,
            hearing,
            plan_changes: Vec::new(),
            cancellation: None,
            terminated_on: None,
        }
    }

    /// Plan changes ordered by receipt; equal dates keep their recorded order, so the later
    /// record wins.
    fn changes_by_receipt(&self) -> Vec<&PlanChange> {
        let mut changes: Vec<&PlanChange> = self.plan_changes.iter().collect();
        changes.sort_by_key(|c| c.received);
        changes
    }

    /// Checks the history against the rules: the start plan was on sale (SPEC §4 line 60), no
    /// change moves onto a closed legacy plan, the cancellation notice names an allowed end
    /// month (SPEC §6 line 104) and the contract does not end before it starts.
    pub fn validate(&self) -> Result<(), ContractError> {
        check_plan_for_start(self.plan, self.start)?;
        let mut current = self.plan;
        for change in self.changes_by_receipt() {
            check_plan_change(current, change.plan, change.received)?;
            current = change.plan;
        }
        self.end().map(|_| ())
    }

    /// How the contract ends, if it does. A company termination ends it at once, so it wins over
    /// a cancellation that would end later; when the notice ends the contract on or before the
    /// termination date, the contract had already ended by cancellation.
    pub fn end(&self) -> Result<Option<ContractEnd>, ContractError> {
        let by_notice = match self.cancellation {
            Some(c) => Some(ContractEnd {
                date: cancellation_end(c.received, c.end_month)?,
                cause: EndCause::Cancellation,
            }),
            None => None,
        };
        let by_company = self.terminated_on.map(|date| ContractEnd {
            date,
            cause: EndCause::Termination,
        });
        let end = match (by_notice, by_company) {
            (Some(n), Some(t)) if t.date < n.date => Some(t),
            (Some(n), _) => Some(n),
            (None, t) => t,
        };
        if let Some(e) = end {
            if e.date < self.start {
                return Err(ContractError::EndsBeforeStart {
                    start: self.start,
                    end: e.date,
                });
            }
        }
        Ok(end)
    }

    /// The contract's last day (inclusive), if it ends.
    pub fn end_date(&self) -> Result<Option<NaiveDate>, ContractError> {
        Ok(self.end()?.map(|e| e.date))
    }

    /// The last month billed, if the contract ends (SPEC §5 line 88).
    pub fn end_month(&self) -> Result<Option<YearMonth>, ContractError> {
        Ok(self.end_date()?.map(YearMonth::of))
    }

    /// The month of the first bill.
    pub fn start_month(&self) -> YearMonth {
        YearMonth::of(self.start)
    }

    /// Plan and hearing option in effect on `day`: the initial ones, replaced by the
    /// latest-received change whose effective date is on or before `day`. Because the effective
    /// date grows with the receipt date, the latest-received change that is in effect is also the
    /// one that took effect last.
    pub fn plan_on(&self, day: NaiveDate) -> (Plan, bool) {
        self.changes_by_receipt()
            .into_iter()
            .rfind(|c| plan_change_effective(c.received).is_ok_and(|eff| eff <= day))
            .map_or((self.plan, self.hearing), |c| (c.plan, c.hearing))
    }

    /// The plan a month is billed on: a month is billed wholly on one plan (SPEC §6 line 101),
    /// the one in effect on its first day, or on the start day for the first month.
    pub fn plan_for_month(&self, month: YearMonth) -> (Plan, bool) {
        self.plan_on(month.first_day().max(self.start))
    }

    /// Whether the contract is in force on `date` (start and end days inclusive).
    pub fn status_on(&self, date: NaiveDate) -> Result<ContractStatus, ContractError> {
        if date < self.start {
            return Ok(ContractStatus::NotStarted);
        }
        match self.end_date()? {
            Some(end) if date > end => Ok(ContractStatus::Ended),
            _ => Ok(ContractStatus::InForce),
        }
    }

    /// The contract term containing `date` (SPEC §6 line 97), `None` before the start month.
    pub fn term_on(&self, date: NaiveDate) -> Option<Term> {
        term_containing(self.start, date)
    }

    /// The non-taxable cancellation fee owed on the last month's bill, if any (SPEC §6 lines
    /// 104–107): the fee of the plan billed in the last month, unless the contract ends on a
    /// term's last day with at least one month's notice. A company termination is not a
    /// cancellation by the contractor, so it carries no cancellation fee.
    pub fn cancellation_fee_due(&self) -> Result<Option<i64>, ContractError> {
        let (Some(end), Some(notice)) = (self.end()?, self.cancellation) else {
            return Ok(None);
        };
        if end.cause != EndCause::Cancellation
            || cancellation_fee_waived(self.start, end.date, notice.received)
        {
            return Ok(None);
        }
        let (plan, _) = self.plan_for_month(YearMonth::of(end.date));
        Ok(Some(plan.cancellation_fee()))
    }
}

/// Decides, for a call arriving on `date` (Asia/Tokyo), whether it is billable (SPEC §3 lines
/// 45–47): calls before the start or after the end are not, nor calls while suspended. A contract
/// not in force takes precedence over a suspension in the reported reason.
pub fn call_disposition(
    history: &ContractHistory,
    suspensions: &[Suspension],
    date: NaiveDate,
) -> Result<Disposition, ContractError> {
    Ok(match history.status_on(date)? {
        ContractStatus::NotStarted => Disposition::NotStarted,
        ContractStatus::Ended => Disposition::Ended,
        ContractStatus::InForce if suspensions.iter().any(|s| s.covers(date)) => {
            Disposition::Suspended
        }
        ContractStatus::InForce => Disposition::InForce,
    })
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

    fn change(received: NaiveDate, plan: Plan, hearing: bool) -> PlanChange {
        PlanChange {
            received,
            plan,
            hearing,
        }
    }

    #[test]
    fn plan_change_takes_effect_on_following_month() {
        let mut h = ContractHistory::new(d(2026, 11, 16), Plan::Sd100, false);
        h.plan_changes
            .push(change(d(2026, 12, 25), Plan::Sd300, true));
        assert_eq!(h.plan_for_month(ym("2026-11")), (Plan::Sd100, false));
        assert_eq!(h.plan_for_month(ym("2026-12")), (Plan::Sd100, false));
        assert_eq!(h.plan_for_month(ym("2027-01")), (Plan::Sd300, true));
        assert_eq!(h.plan_on(d(2026, 12, 31)), (Plan::Sd100, false));
        assert_eq!(h.plan_on(d(2027, 1, 1)), (Plan::Sd300, true));
    }

    #[test]
    fn plan_change_on_26th_waits_a_month() {
        let mut h = ContractHistory::new(d(2026, 11, 16), Plan::Sd100, false);
        h.plan_changes
            .push(change(d(2026, 12, 26), Plan::Sd200, false));
        assert_eq!(h.plan_for_month(ym("2027-01")), (Plan::Sd100, false));
        assert_eq!(h.plan_for_month(ym("2027-02")), (Plan::Sd200, false));
    }

    #[test]
    fn several_changes_latest_received_wins() {
        let mut h = ContractHistory::new(d(2026, 1, 1), Plan::Sd100, false);
        // Recorded out of order on purpose.
        h.plan_changes
            .push(change(d(2026, 3, 10), Plan::Sd500, false)); // from 04-01
        h.plan_changes
            .push(change(d(2026, 1, 27), Plan::Sd200, false)); // from 03-01
        h.plan_changes
            .push(change(d(2026, 2, 26), Plan::Sd300, true)); // from 04-01
        assert_eq!(h.plan_for_month(ym("2026-02")), (Plan::Sd100, false));
        assert_eq!(h.plan_for_month(ym("2026-03")), (Plan::Sd200, false));
        assert_eq!(h.plan_for_month(ym("2026-04")), (Plan::Sd500, false));
    }

    #[test]
    fn change_received_before_start_applies_to_first_month() {
        let mut h = ContractHistory::new(d(2026, 11, 16), Plan::Sd100, false);
        h.plan_changes
            .push(change(d(2026, 10, 20), Plan::Sd200, true)); // from 11-01
        assert_eq!(h.plan_for_month(ym("2026-11")), (Plan::Sd200, true));
    }

    #[test]
    fn validate_legacy_rules() {
        let ok = ContractHistory::new(d(2021, 4, 1), Plan::Premium, true);
        assert!(ok.validate().is_ok());
        let late = ContractHistory::new(d(2022, 7, 1), Plan::Premium, false);
        assert!(matches!(
            late.validate(),
            Err(ContractError::LegacyPlanClosed { .. })
        ));
        // Keeping the legacy plan while adding the hearing option: allowed.
        let mut keep = ok.clone();
        keep.plan_changes
            .push(change(d(2025, 5, 1), Plan::Premium, false));
        assert!(keep.validate().is_ok());
        // Moving to SD and back to legacy after the cutoff: refused.
        let mut back = ok.clone();
        back.plan_changes
            .push(change(d(2025, 5, 1), Plan::Sd500, false));
        back.plan_changes
            .push(change(d(2025, 8, 1), Plan::Premium, false));
        assert!(matches!(
            back.validate(),
            Err(ContractError::LegacyPlanClosed {
                plan: Plan::Premium,
                ..
            })
        ));
        // Legacy to another legacy plan before the cutoff: allowed.
        let mut early = ok;
        early
            .plan_changes
            .push(change(d(2022, 6, 30), Plan::Business, false));
        assert!(early.validate().is_ok());
    }

    #[test]
    fn end_by_cancellation_and_termination() {
        let mut h = ContractHistory::new(d(2026, 11, 16), Plan::Sd100, false);
        assert_eq!(h.end().unwrap(), None);
        h.cancellation = Some(Cancellation {
            received: d(2027, 1, 20),
            end_month: None,
        });
        assert_eq!(
            h.end().unwrap(),
            Some(ContractEnd {
                date: d(2027, 1, 31),
                cause: EndCause::Cancellation,
            })
        );
        h.terminated_on = Some(d(2027, 1, 10));
        assert_eq!(
            h.end().unwrap(),
            Some(ContractEnd {
                date: d(2027, 1, 10),
                cause: EndCause::Termination,
            })
        );
        assert_eq!(h.cancellation_fee_due().unwrap(), None);
        // A termination after the notice's end changes nothing.
        h.terminated_on = Some(d(2027, 2, 10));
        assert_eq!(h.end_date().unwrap(), Some(d(2027, 1, 31)));
        assert_eq!(h.cancellation_fee_due().unwrap(), Some(10_000));
    }

    #[test]
    fn invalid_histories_are_refused() {
        let mut h = ContractHistory::new(d(2026, 11, 16), Plan::Sd100, false);
        h.cancellation = Some(Cancellation {
            received: d(2027, 1, 27),
            end_month: Some(ym("2027-01")),
        });
        assert!(matches!(
            h.validate(),
            Err(ContractError::EndMonthTooEarly { .. })
        ));
        let mut h = ContractHistory::new(d(2026, 11, 16), Plan::Sd100, false);
        h.terminated_on = Some(d(2026, 11, 15));
        assert!(matches!(
            h.validate(),
            Err(ContractError::EndsBeforeStart { .. })
        ));
        let mut h = ContractHistory::new(d(2026, 11, 16), Plan::Sd100, false);
        h.cancellation = Some(Cancellation {
            received: d(2026, 10, 1),
            end_month: None,
        });
        assert!(h.validate().is_err());
    }

    #[test]
    fn status_and_call_disposition() {
        let mut h = ContractHistory::new(d(2026, 11, 16), Plan::Sd100, false);
        h.cancellation = Some(Cancellation {
            received: d(2027, 1, 20),
            end_month: None,
        });
        let none: &[Suspension] = &[];
        let disp = |date, s: &[Suspension]| call_disposition(&h, s, date).unwrap();
        assert_eq!(disp(d(2026, 11, 15), none), Disposition::NotStarted);
        assert_eq!(disp(d(2026, 11, 16), none), Disposition::InForce);
        assert_eq!(disp(d(2027, 1, 31), none), Disposition::InForce);
        assert_eq!(disp(d(2027, 2, 1), none), Disposition::Ended);
        let s = [Suspension {
            from: d(2026, 12, 10),
            to: Some(d(2026, 12, 12)),
        }];
        assert_eq!(disp(d(2026, 12, 9), &s), Disposition::InForce);
        assert_eq!(disp(d(2026, 12, 10), &s), Disposition::Suspended);
        assert_eq!(disp(d(2026, 12, 12), &s), Disposition::Suspended);
        assert_eq!(disp(d(2026, 12, 13), &s), Disposition::InForce);
        let open = [Suspension {
            from: d(2027, 1, 5),
            to: None,
        }];
        assert_eq!(disp(d(2027, 1, 31), &open), Disposition::Suspended);
        // Not in force wins over suspended.
        assert_eq!(disp(d(2027, 2, 1), &open), Disposition::Ended);
        assert_eq!(h.status_on(d(2027, 2, 1)).unwrap(), ContractStatus::Ended);
    }

    #[test]
    fn company_termination_day_is_last_day_in_force() {
        let mut h = ContractHistory::new(d(2026, 11, 16), Plan::Sd100, false);
        h.terminated_on = Some(d(2027, 2, 10));
        assert_eq!(
            h.status_on(d(2027, 2, 10)).unwrap(),
            ContractStatus::InForce
        );
        assert_eq!(h.status_on(d(2027, 2, 11)).unwrap(), ContractStatus::Ended);
        assert_eq!(h.end_month().unwrap(), Some(ym("2027-02")));
    }

    #[test]
    fn history_json_round_trip() {
        let mut h = ContractHistory::new(d(2026, 11, 16), Plan::Sd100, true);
        h.cancellation = Some(Cancellation {
            received: d(2027, 1, 20),
            end_month: Some(ym("2027-04")),
        });
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.contains("\"end_month\":\"2027-04\""), "{json}");
        let back: ContractHistory = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        let minimal: ContractHistory =
            serde_json::from_str(r#"{"start":"2026-11-16","plan":"sd100","hearing":false}"#)
                .unwrap();
        assert_eq!(
            minimal,
            ContractHistory::new(d(2026, 11, 16), Plan::Sd100, false)
        );
    }
}
