//! First-response records (一次対応): immutable rows; a correction is a new row that
//! supersedes the old one (the schema's triggers refuse UPDATE and DELETE).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::reports::idempotency_key;
use super::{on_pool, CallView, Ledger, LedgerError};

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
    /// Writes a record without queueing reports (tests and imports); the console and the
    /// CLI use [`Ledger::write_first_response`].
    pub async fn add_first_response(&self, r: &NewFirstResponse) -> Result<i64, LedgerError> {
        self.insert_first_response(r, None).await.map(|(id, _)| id)
    }

    /// Writes a record and, in the same transaction, queues its report to every live
    /// channel of the contractor (issue #7 §3: a record is never written without its
    /// reports). `payload(record_id, version)` is the report body. Returns the record id
    /// and how many outbox rows were queued.
    pub async fn write_first_response(
        &self,
        r: &NewFirstResponse,
        payload: &(dyn Fn(i64, i64) -> serde_json::Value + Sync),
    ) -> Result<(i64, usize), LedgerError> {
        self.insert_first_response(r, Some(payload)).await
    }

    /// The one write of a record (version, immutability, one first record per call), with its
    /// reports queued in the same transaction when `payload` is given.
    async fn insert_first_response(
        &self,
        r: &NewFirstResponse,
        payload: Option<&(dyn Fn(i64, i64) -> serde_json::Value + Sync)>,
    ) -> Result<(i64, usize), LedgerError> {
        if !CATEGORIES.contains(&r.category.as_str()) {
            return Err(LedgerError::Conflict(format!(
                "category {:?} is not one of {}",
                r.category,
                CATEGORIES.join(", ")
            )));
        }
        let res: Result<(i64, usize), sqlx::Error> = on_pool!(self, |p| {
            async {
                let mut tx = p.begin().await?;
                let version: i64 = match r.supersedes {
                    None => 1,
                    Some(old) => {
                        let v: Option<(i64, i64)> = sqlx::query_as(
                            "SELECT version, call_id FROM first_responses WHERE id = $1",
                        )
                        .bind(old)
                        .fetch_optional(&mut *tx)
                        .await?;
                        match v {
                            Some((v, call)) if call == r.call_row => v + 1,
                            _ => return Err(sqlx::Error::RowNotFound),
                        }
                    }
                };
                let id: i64 = sqlx::query_scalar(
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
                .fetch_one(&mut *tx)
                .await?;
                let Some(payload) = payload else {
                    tx.commit().await?;
                    return Ok((id, 0));
                };
                let channels: Vec<(i64, String, String)> = sqlx::query_as(
                    "SELECT id, kind, target FROM report_channels
                     WHERE contractor_id = $1 AND removed_at IS NULL ORDER BY id",
                )
                .bind(r.contractor_id)
                .fetch_all(&mut *tx)
                .await?;
                let body = payload(id, version).to_string();
                let mut queued = 0usize;
                for (channel_id, kind, target) in channels {
                    queued += sqlx::query(
                        "INSERT INTO outbox (contractor_id, record_id, call_id, channel_id, channel_kind, target,
                             payload, idempotency_key, report_kind, state, attempts, next_attempt_at, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'record', 'pending', 0, $9, $9)",
                    )
                    .bind(r.contractor_id)
                    .bind(id)
                    .bind(r.call_row)
                    .bind(channel_id)
                    .bind(&kind)
                    .bind(&target)
                    .bind(&body)
                    .bind(idempotency_key("record", id, channel_id))
                    .bind(r.created_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected() as usize;
                }
                tx.commit().await?;
                Ok((id, queued))
            }
            .await
        });
        match res {
            Err(sqlx::Error::RowNotFound) => Err(LedgerError::NotFound {
                what: "first-response record of this call",
                id: r.supersedes.unwrap_or_default().to_string(),
            }),
            Err(e) if LedgerError::is_unique_violation(&e) => {
                Err(LedgerError::Conflict(match r.supersedes {
                    Some(old) => format!(
                        "record {old} has already been corrected; correct the latest version"
                    ),
                    None => format!(
                        "call {} already has a record; write a correction instead",
                        r.call_row
                    ),
                }))
            }
            other => Ok(other?),
        }
    }

    /// Records with their call, newest call first, as the filter selects.
    pub async fn first_responses(&self, f: &RecordFilter) -> Result<Vec<RecordView>, LedgerError> {
        let (op_name, op_seat) = match &f.operator {
            Some((n, s)) => (Some(n.clone()), Some(*s)),
            None => (None, None),
        };
        let rows: Vec<RecordRow> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT r.id, r.call_id, r.contractor_id, k.name AS contractor_name, s.name AS seat,
                        r.version, r.supersedes, n.id AS superseded_by, r.caller_name, r.callback_number,
                        r.callback_wanted, r.purpose, r.category, r.hearing_answers, r.written_by,
                        r.created_at, c.started_at AS call_started_at, c.caller, c.caller_withheld,
                        c.number
                 FROM first_responses r
                 JOIN calls c ON c.id = r.call_id
                 JOIN contractors k ON k.id = r.contractor_id
                 LEFT JOIN seats s ON s.id = r.seat_id
                 LEFT JOIN first_responses n ON n.supersedes = r.id
                 WHERE ($1 IS NULL OR r.contractor_id = $1)
                   AND ($2 IS NULL OR c.started_at >= $2)
                   AND ($3 IS NULL OR c.started_at < $3)
                   AND ($4 IS NULL OR r.id = $4)
                   AND ($5 IS NULL OR r.written_by = $5 OR c.seat_id = $6)
                   AND ($7 IS NULL OR r.call_id = $7)
                 ORDER BY c.started_at DESC, r.id DESC
                 LIMIT $8",
            )
            .bind(f.contractor_id)
            .bind(f.from)
            .bind(f.to)
            .bind(f.id)
            .bind(op_name)
            .bind(op_seat)
            .bind(f.call_id)
            .bind(f.limit.unwrap_or(100_000))
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(RecordView::from).collect())
    }

    /// One call row by id.
    pub async fn call_by_id(&self, id: i64) -> Result<Option<CallView>, LedgerError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT c.id, c.trunk, c.sip_call_id AS call_id, c.contractor_id, c.number, c.caller,
                        c.caller_withheld, c.outcome, c.billable, c.started_at, c.answered_at,
                        c.ended_at, s.name AS seat
                 FROM calls c LEFT JOIN seats s ON s.id = c.seat_id WHERE c.id = $1",
            )
            .bind(id)
            .fetch_optional(p)
            .await?
        }))
    }

    /// The seat a call was answered at, as the ledger has it.
    pub async fn call_seat(&self, id: i64) -> Result<Option<i64>, LedgerError> {
        let v: Option<Option<i64>> = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT seat_id FROM calls WHERE id = $1")
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        Ok(v.flatten())
    }

    /// Earlier calls from `caller` to this contractor (before call `before`), newest first,
    /// with the purpose and category of each call's current record. Caller numbers are
    /// personal data: callers of this function must not log them.
    pub async fn earlier_calls(
        &self,
        contractor_id: i64,
        caller: &str,
        before: i64,
        limit: i64,
    ) -> Result<Vec<EarlierCall>, LedgerError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT c.id AS call_id, c.started_at, c.outcome, r.purpose, r.category, r.caller_name
                 FROM calls c
                 LEFT JOIN first_responses r ON r.call_id = c.id
                      AND NOT EXISTS (SELECT 1 FROM first_responses n WHERE n.supersedes = r.id)
                 WHERE c.contractor_id = $1 AND c.caller = $2 AND c.id <> $3
                   AND c.started_at <= (SELECT started_at FROM calls WHERE id = $3)
                 ORDER BY c.started_at DESC, c.id DESC LIMIT $4",
            )
            .bind(contractor_id)
            .bind(caller)
            .bind(before)
            .bind(limit)
            .fetch_all(p)
            .await?
        }))
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

/// Which records [`Ledger::first_responses`] returns.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    pub contractor_id: Option<i64>,
    /// Inclusive lower bound on the call's start.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound on the call's start.
    pub to: Option<DateTime<Utc>>,
    pub id: Option<i64>,
    pub call_id: Option<i64>,
    /// An operator's view: records written by this seat name or of calls answered at
    /// this seat id.
    pub operator: Option<(String, i64)>,
    pub limit: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct RecordRow {
    id: i64,
    call_id: i64,
    contractor_id: i64,
    contractor_name: String,
    seat: Option<String>,
    version: i64,
    supersedes: Option<i64>,
    superseded_by: Option<i64>,
    caller_name: String,
    callback_number: Option<String>,
    callback_wanted: bool,
    purpose: String,
    category: String,
    hearing_answers: String,
    written_by: String,
    created_at: DateTime<Utc>,
    call_started_at: DateTime<Utc>,
    caller: Option<String>,
    caller_withheld: bool,
    number: String,
}

/// A record as `records --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordView {
    pub id: i64,
    pub call_id: i64,
    pub contractor_id: i64,
    pub contractor_name: String,
    /// The seat the record was written at.
    pub seat: Option<String>,
    pub version: i64,
    pub supersedes: Option<i64>,
    /// The correction that replaced this version, if any (then this one is history).
    pub superseded_by: Option<i64>,
    pub caller_name: String,
    pub callback_number: Option<String>,
    pub callback_wanted: bool,
    pub purpose: String,
    pub category: String,
    pub hearing_answers: serde_json::Value,
    pub written_by: String,
    pub created_at: DateTime<Utc>,
    pub call_started_at: DateTime<Utc>,
    pub caller: Option<String>,
    pub caller_withheld: bool,
    /// The dialled (assigned) number.
    pub number: String,
}

impl From<RecordRow> for RecordView {
    fn from(r: RecordRow) -> RecordView {
        RecordView {
            id: r.id,
            call_id: r.call_id,
            contractor_id: r.contractor_id,
            contractor_name: r.contractor_name,
            seat: r.seat,
            version: r.version,
            supersedes: r.supersedes,
            superseded_by: r.superseded_by,
            caller_name: r.caller_name,
            callback_number: r.callback_number,
            callback_wanted: r.callback_wanted,
            purpose: r.purpose,
            category: r.category,
            hearing_answers: serde_json::from_str(&r.hearing_answers)
                .unwrap_or(serde_json::Value::Null),
            written_by: r.written_by,
            created_at: r.created_at,
            call_started_at: r.call_started_at,
            caller: r.caller,
            caller_withheld: r.caller_withheld,
            number: r.number,
        }
    }
}

/// An earlier call from the same number (console).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct EarlierCall {
    pub call_id: i64,
    pub started_at: DateTime<Utc>,
    pub outcome: Option<String>,
    pub purpose: Option<String>,
    pub category: Option<String>,
    pub caller_name: Option<String>,
}
