//! Contractors, their contract history (plan changes, cancellation, suspensions) and
//! assigned numbers.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::{on_pool, Ledger, LedgerError};
use crate::billing::YearMonth;
use crate::contract::{self, ContractHistory, Plan};
use crate::number::E164;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContractorState {
    Active,
    Suspended,
    Ended,
}

impl ContractorState {
    fn parse(s: &str) -> Result<Self, LedgerError> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "ended" => Ok(Self::Ended),
            other => Err(LedgerError::Corrupt {
                field: "contractors.state",
                value: other.into(),
            }),
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Ended => "ended",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contractor {
    pub id: i64,
    pub name: String,
    pub greeting: String,
    pub plan: Plan,
    pub hearing: bool,
    pub hearing_items: Vec<String>,
    pub start_date: NaiveDate,
    /// Stored state: `suspended` while a suspension is open, `ended` after a company
    /// termination; a contract that ran out by cancellation is `active` here and its
    /// end shows through [`CancellationRow`] (callers derive the state on a date).
    pub state: ContractorState,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewContractor {
    pub name: String,
    pub greeting: String,
    pub plan: Plan,
    pub hearing: bool,
    pub hearing_items: Vec<String>,
    pub start_date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanChangeRow {
    pub id: i64,
    pub contractor_id: i64,
    pub plan: Plan,
    pub hearing: bool,
    pub received_on: NaiveDate,
    pub effective_on: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CancellationRow {
    pub contractor_id: i64,
    pub received_on: NaiveDate,
    pub end_month: Option<String>,
    pub effective_end: NaiveDate,
    pub fee_waived: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuspensionRow {
    pub id: i64,
    pub contractor_id: i64,
    pub reason: String,
    pub received_on: NaiveDate,
    pub effective_from: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NumberRow {
    pub number: String,
    pub contractor_id: i64,
    pub contractor_name: String,
    pub assigned_at: DateTime<Utc>,
}

/// (id, reason, received_on, effective_from, ended_at)
type SuspensionTuple = (i64, String, NaiveDate, DateTime<Utc>, Option<DateTime<Utc>>);

#[derive(sqlx::FromRow)]
struct ContractorRaw {
    id: i64,
    name: String,
    greeting: String,
    plan: String,
    hearing: bool,
    hearing_items: String,
    start_date: NaiveDate,
    state: String,
    created_at: DateTime<Utc>,
}

fn parse_plan(s: &str, field: &'static str) -> Result<Plan, LedgerError> {
    s.parse().map_err(|_| LedgerError::Corrupt {
        field,
        value: s.into(),
    })
}

impl TryFrom<ContractorRaw> for Contractor {
    type Error = LedgerError;
    fn try_from(r: ContractorRaw) -> Result<Self, LedgerError> {
        Ok(Contractor {
            id: r.id,
            plan: parse_plan(&r.plan, "contractors.plan")?,
            hearing_items: serde_json::from_str(&r.hearing_items).map_err(|_| {
                LedgerError::Corrupt {
                    field: "contractors.hearing_items",
                    value: r.hearing_items.clone(),
                }
            })?,
            state: ContractorState::parse(&r.state)?,
            name: r.name,
            greeting: r.greeting,
            hearing: r.hearing,
            start_date: r.start_date,
            created_at: r.created_at,
        })
    }
}

const CONTRACTOR_COLUMNS: &str =
    "id, name, greeting, plan, hearing, hearing_items, start_date, state, created_at";

impl Ledger {
    pub async fn add_contractor(
        &self,
        c: &NewContractor,
        at: DateTime<Utc>,
    ) -> Result<Contractor, LedgerError> {
        let items = serde_json::to_string(&c.hearing_items).unwrap_or_else(|_| "[]".into());
        let sql = format!(
            "INSERT INTO contractors (name, greeting, plan, hearing, hearing_items, start_date, state, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'active', $7) RETURNING {CONTRACTOR_COLUMNS}"
        );
        let raw: ContractorRaw = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(&c.name)
                .bind(&c.greeting)
                .bind(c.plan.to_string())
                .bind(c.hearing)
                .bind(&items)
                .bind(c.start_date)
                .bind(at)
                .fetch_one(p)
                .await?
        });
        raw.try_into()
    }

    pub async fn contractor(&self, id: i64) -> Result<Contractor, LedgerError> {
        let sql = format!("SELECT {CONTRACTOR_COLUMNS} FROM contractors WHERE id = $1");
        let raw: Option<ContractorRaw> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await?);
        raw.ok_or(LedgerError::NotFound {
            what: "contractor",
            id: id.to_string(),
        })?
        .try_into()
    }

    pub async fn contractors(&self) -> Result<Vec<Contractor>, LedgerError> {
        let sql = format!("SELECT {CONTRACTOR_COLUMNS} FROM contractors ORDER BY id");
        let raws: Vec<ContractorRaw> =
            on_pool!(self, |p| sqlx::query_as(&sql).fetch_all(p).await?);
        raws.into_iter().map(TryInto::try_into).collect()
    }

    pub async fn set_hearing_items(&self, id: i64, items: &[String]) -> Result<(), LedgerError> {
        self.contractor(id).await?;
        let items = serde_json::to_string(items).unwrap_or_else(|_| "[]".into());
        on_pool!(self, |p| {
            sqlx::query("UPDATE contractors SET hearing_items = $1 WHERE id = $2")
                .bind(&items)
                .bind(id)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    pub async fn add_plan_change(
        &self,
        contractor_id: i64,
        plan: Plan,
        hearing: bool,
        received_on: NaiveDate,
        effective_on: NaiveDate,
        at: DateTime<Utc>,
    ) -> Result<PlanChangeRow, LedgerError> {
        self.contractor(contractor_id).await?;
        let id: i64 = on_pool!(self, |p| {
            sqlx::query_scalar(
                "INSERT INTO plan_changes (contractor_id, plan, hearing, received_on, effective_on, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(contractor_id)
            .bind(plan.to_string())
            .bind(hearing)
            .bind(received_on)
            .bind(effective_on)
            .bind(at)
            .fetch_one(p)
            .await?
        });
        Ok(PlanChangeRow {
            id,
            contractor_id,
            plan,
            hearing,
            received_on,
            effective_on,
        })
    }

    /// Plan changes in the order they were received (later ones win for the same month).
    pub async fn plan_changes(
        &self,
        contractor_id: i64,
    ) -> Result<Vec<PlanChangeRow>, LedgerError> {
        let rows: Vec<(i64, String, bool, NaiveDate, NaiveDate)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id, plan, hearing, received_on, effective_on FROM plan_changes
                 WHERE contractor_id = $1 ORDER BY received_on, id",
            )
            .bind(contractor_id)
            .fetch_all(p)
            .await?
        });
        rows.into_iter()
            .map(|(id, plan, hearing, received_on, effective_on)| {
                Ok(PlanChangeRow {
                    id,
                    contractor_id,
                    plan: parse_plan(&plan, "plan_changes.plan")?,
                    hearing,
                    received_on,
                    effective_on,
                })
            })
            .collect()
    }

    pub async fn add_cancellation(
        &self,
        c: &CancellationRow,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.contractor(c.contractor_id).await?;
        let r = on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO cancellations (contractor_id, received_on, end_month, effective_end, fee_waived, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(c.contractor_id)
            .bind(c.received_on)
            .bind(&c.end_month)
            .bind(c.effective_end)
            .bind(c.fee_waived)
            .bind(at)
            .execute(p)
            .await
            .map(|_| ())
        });
        match r {
            Err(e) if LedgerError::is_unique_violation(&e) => Err(LedgerError::Conflict(format!(
                "contractor {} already has a cancellation notice",
                c.contractor_id
            ))),
            other => Ok(other?),
        }
    }

    pub async fn cancellation(
        &self,
        contractor_id: i64,
    ) -> Result<Option<CancellationRow>, LedgerError> {
        let row: Option<(NaiveDate, Option<String>, NaiveDate, bool)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT received_on, end_month, effective_end, fee_waived FROM cancellations WHERE contractor_id = $1",
            )
            .bind(contractor_id)
            .fetch_optional(p)
            .await?
        });
        Ok(row.map(
            |(received_on, end_month, effective_end, fee_waived)| CancellationRow {
                contractor_id,
                received_on,
                end_month,
                effective_end,
                fee_waived,
            },
        ))
    }

    /// Open a suspension; the contractor's calls stop being routed at once (SPEC §6).
    pub async fn suspend(
        &self,
        contractor_id: i64,
        reason: &str,
        received_on: NaiveDate,
        at: DateTime<Utc>,
    ) -> Result<SuspensionRow, LedgerError> {
        let c = self.contractor(contractor_id).await?;
        if c.state == ContractorState::Ended {
            return Err(LedgerError::Conflict(format!(
                "contractor {contractor_id} has ended; it cannot be suspended"
            )));
        }
        let r: Result<i64, sqlx::Error> = on_pool!(self, |p| {
            async {
                let mut tx = p.begin().await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO suspensions (contractor_id, reason, received_on, effective_from, created_at)
                     VALUES ($1, $2, $3, $4, $4) RETURNING id",
                )
                .bind(contractor_id)
                .bind(reason)
                .bind(received_on)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query("UPDATE contractors SET state = 'suspended' WHERE id = $1")
                    .bind(contractor_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(id)
            }
            .await
        });
        let id = match r {
            Err(e) if LedgerError::is_unique_violation(&e) => {
                return Err(LedgerError::Conflict(format!(
                    "contractor {contractor_id} is already suspended"
                )))
            }
            other => other?,
        };
        Ok(SuspensionRow {
            id,
            contractor_id,
            reason: reason.to_string(),
            received_on,
            effective_from: at,
            ended_at: None,
        })
    }

    pub async fn resume(&self, contractor_id: i64, at: DateTime<Utc>) -> Result<(), LedgerError> {
        self.contractor(contractor_id).await?;
        let changed: u64 = on_pool!(self, |p| {
            async {
                let mut tx = p.begin().await?;
                let n = sqlx::query(
                    "UPDATE suspensions SET ended_at = $1 WHERE contractor_id = $2 AND ended_at IS NULL",
                )
                .bind(at)
                .bind(contractor_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n > 0 {
                    sqlx::query("UPDATE contractors SET state = 'active' WHERE id = $1 AND state = 'suspended'")
                        .bind(contractor_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok::<u64, sqlx::Error>(n)
            }
            .await?
        });
        if changed == 0 {
            return Err(LedgerError::Conflict(format!(
                "contractor {contractor_id} is not suspended"
            )));
        }
        Ok(())
    }

    pub async fn suspensions(&self, contractor_id: i64) -> Result<Vec<SuspensionRow>, LedgerError> {
        let rows: Vec<SuspensionTuple> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id, reason, received_on, effective_from, ended_at FROM suspensions
                 WHERE contractor_id = $1 ORDER BY effective_from, id",
            )
            .bind(contractor_id)
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(id, reason, received_on, effective_from, ended_at)| SuspensionRow {
                    id,
                    contractor_id,
                    reason,
                    received_on,
                    effective_from,
                    ended_at,
                },
            )
            .collect())
    }

    /// Assign a number; a number held by anyone (this contractor included) is refused.
    pub async fn assign_number(
        &self,
        contractor_id: i64,
        number: &E164,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.contractor(contractor_id).await?;
        let r = on_pool!(self, |p| {
            sqlx::query("INSERT INTO assigned_numbers (number, contractor_id, assigned_at) VALUES ($1, $2, $3)")
                .bind(number.as_str())
                .bind(contractor_id)
                .bind(at)
                .execute(p)
                .await
                .map(|_| ())
        });
        match r {
            Err(e) if LedgerError::is_unique_violation(&e) => {
                let owner = self.number_owner(number).await?.unwrap_or_default();
                Err(LedgerError::Conflict(format!(
                    "number {number} is already assigned to contractor {owner}"
                )))
            }
            other => Ok(other?),
        }
    }

    pub async fn release_number(
        &self,
        number: &E164,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let n = on_pool!(self, |p| {
            sqlx::query("UPDATE assigned_numbers SET released_at = $1 WHERE number = $2 AND released_at IS NULL")
                .bind(at)
                .bind(number.as_str())
                .execute(p)
                .await?
                .rows_affected()
        });
        LedgerError::touched(n, "assigned number", number)
    }

    /// Who holds `number` now (the call path's lookup).
    pub async fn number_owner(&self, number: &E164) -> Result<Option<i64>, LedgerError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_scalar("SELECT contractor_id FROM assigned_numbers WHERE number = $1 AND released_at IS NULL")
                .bind(number.as_str())
                .fetch_optional(p)
                .await?
        }))
    }

    pub async fn numbers(&self) -> Result<Vec<NumberRow>, LedgerError> {
        let rows: Vec<(String, i64, String, DateTime<Utc>)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT n.number, n.contractor_id, c.name, n.assigned_at
                 FROM assigned_numbers n JOIN contractors c ON c.id = n.contractor_id
                 WHERE n.released_at IS NULL ORDER BY n.number",
            )
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(number, contractor_id, contractor_name, assigned_at)| NumberRow {
                    number,
                    contractor_id,
                    contractor_name,
                    assigned_at,
                },
            )
            .collect())
    }

    /// The contract as the pure billing and contract rules see it: start, plan changes and
    /// cancellation. Suspensions are kept apart: they never change fees (SPEC §6).
    pub async fn contract_history(&self, c: &Contractor) -> Result<ContractHistory, LedgerError> {
        let mut h = ContractHistory::new(c.start_date, c.plan, c.hearing);
        h.plan_changes = self
            .plan_changes(c.id)
            .await?
            .into_iter()
            .map(|p| contract::PlanChange {
                received: p.received_on,
                plan: p.plan,
                hearing: p.hearing,
            })
            .collect();
        if let Some(cn) = self.cancellation(c.id).await? {
            let end_month = match &cn.end_month {
                Some(m) => Some(m.parse::<YearMonth>().map_err(|_| LedgerError::Corrupt {
                    field: "cancellations.end_month",
                    value: m.clone(),
                })?),
                None => None,
            };
            h.cancellation = Some(contract::Cancellation {
                received: cn.received_on,
                end_month,
            });
        }
        Ok(h)
    }
}
