//! First-response records (一次対応): immutable rows; a correction is a new row that
//! supersedes the old one (the schema's triggers refuse UPDATE and DELETE).

use chrono::{DateTime, Utc};

use super::{on_pool, Ledger, LedgerError};

/// Operator categories (issue #7); `complaint` feeds the complaint rule (SPEC §6).
pub const CATEGORIES: &[&str] = &[
    "normal",
    "wrong_number",
    "silent",
    "sales",
    "complaint",
    "other",
];

#[derive(Debug, Clone)]
pub struct NewFirstResponse {
    pub call_row: i64,
    pub contractor_id: i64,
    pub seat_id: Option<i64>,
    /// The record this one corrects, if any.
    pub supersedes: Option<i64>,
    pub caller_name: String,
    pub callback_number: Option<String>,
    pub callback_wanted: bool,
    pub purpose: String,
    pub category: String,
    pub hearing_answers: serde_json::Value,
    pub written_by: String,
    pub created_at: DateTime<Utc>,
}

impl Ledger {
    pub async fn add_first_response(&self, r: &NewFirstResponse) -> Result<i64, LedgerError> {
        if !CATEGORIES.contains(&r.category.as_str()) {
            return Err(LedgerError::Conflict(format!(
                "category {:?} is not one of {}",
                r.category,
                CATEGORIES.join(", ")
            )));
        }
        let version: i64 = match r.supersedes {
            None => 1,
            Some(old) => {
                let v: Option<i64> = on_pool!(self, |p| {
                    sqlx::query_scalar("SELECT version FROM first_responses WHERE id = $1")
                        .bind(old)
                        .fetch_optional(p)
                        .await?
                });
                v.ok_or(LedgerError::NotFound {
                    what: "first-response record",
                    id: old.to_string(),
                })? + 1
            }
        };
        let res: Result<i64, sqlx::Error> = on_pool!(self, |p| {
            sqlx::query_scalar(
                "INSERT INTO first_responses (call_id, contractor_id, seat_id, version, supersedes, caller_name,
                     callback_number, callback_wanted, purpose, category, hearing_answers, written_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
            )
            .bind(r.call_row)
            .bind(r.contractor_id)
            .bind(r.seat_id)
            .bind(version)
            .bind(r.supersedes)
            .bind(&r.caller_name)
            .bind(&r.callback_number)
            .bind(r.callback_wanted)
            .bind(&r.purpose)
            .bind(&r.category)
            .bind(r.hearing_answers.to_string())
            .bind(&r.written_by)
            .bind(r.created_at)
            .fetch_one(p)
            .await
        });
        match res {
            Err(e) if LedgerError::is_unique_violation(&e) => Err(LedgerError::Conflict(format!(
                "record {} has already been corrected; correct the latest version",
                r.supersedes.unwrap_or_default()
            ))),
            other => Ok(other?),
        }
    }

    /// Start instants of the calls whose *current* record (not superseded) is a complaint,
    /// for calls started at or after `since`.
    pub async fn complaint_call_times(
        &self,
        contractor_id: i64,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<DateTime<Utc>>, LedgerError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_scalar(
                "SELECT c.started_at FROM first_responses r JOIN calls c ON c.id = r.call_id
                 WHERE r.contractor_id = $1 AND r.category = 'complaint'
                   AND NOT EXISTS (SELECT 1 FROM first_responses n WHERE n.supersedes = r.id)
                   AND ($2 IS NULL OR c.started_at >= $2)
                 ORDER BY c.started_at",
            )
            .bind(contractor_id)
            .bind(since)
            .fetch_all(p)
            .await?
        }))
    }
}
