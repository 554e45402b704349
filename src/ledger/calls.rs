//! Call rows and call events: the billing truth (SPEC §3).
//!
//! A call row is keyed by (trunk, Call-ID, From-tag). The insert is
//! `ON CONFLICT DO NOTHING`, so a retransmitted or re-sent INVITE of the same call finds
//! the existing row instead of counting again, and two racing inserts cannot both win.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{on_pool, Ledger, LedgerError};

/// A message's call: contractor, its name, arrival, caller, number.
type MessageFacts = (i64, String, DateTime<Utc>, Option<String>, String);

#[derive(Debug, Clone)]
pub struct NewCall {
    pub trunk: String,
    pub sip_call_id: String,
    /// Empty for RFC 2543 peers that send no From-tag.
    pub from_tag: String,
    pub contractor_id: Option<i64>,
    /// The called number, E.164.
    pub number: String,
    /// `None` when the caller withheld its identity (非通知).
    pub caller: Option<String>,
    pub caller_withheld: bool,
    pub billable: bool,
    /// Set when the outcome is known at arrival (e.g. `suspended`, `not_in_contract`).
    pub outcome: Option<String>,
    pub started_at: DateTime<Utc>,
}

/// What `calls --json` prints (issue #2 §5 names these fields).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct CallView {
    pub id: i64,
    pub trunk: String,
    /// The carrier leg's SIP Call-ID.
    pub call_id: String,
    pub contractor_id: Option<i64>,
    pub number: String,
    pub caller: Option<String>,
    pub caller_withheld: bool,
    pub outcome: Option<String>,
    pub billable: bool,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The seat's name.
    pub seat: Option<String>,
}

/// A change to a call row after its insert (see [`Ledger::apply_call_updates`]).
/// Serialisable so that the spool can keep it while PostgreSQL is away (`ledger::spool`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum CallUpdate {
    Answered {
        id: i64,
        seat_id: i64,
        at: DateTime<Utc>,
    },
    Finished {
        id: i64,
        outcome: String,
        seat_id: Option<i64>,
        at: DateTime<Utc>,
    },
    /// An entry of the queue log (issue #6 §7), in order with the call's other updates.
    QueueEvent(super::queue::NewQueueEvent),
    /// A caller's voice message (see [`Ledger::add_voice_message`]).
    VoiceMessage(super::queue::NewVoiceMessage),
}

impl CallUpdate {
    /// The call row this update is about.
    pub fn call_id(&self) -> i64 {
        match self {
            CallUpdate::Answered { id, .. } | CallUpdate::Finished { id, .. } => *id,
            CallUpdate::QueueEvent(e) => e.call_id,
            CallUpdate::VoiceMessage(m) => m.call_id,
        }
    }

    /// The same update for call row `id` (the spool's replay maps provisional ids).
    pub fn for_call(mut self, row: i64) -> CallUpdate {
        match &mut self {
            CallUpdate::Answered { id, .. } | CallUpdate::Finished { id, .. } => *id = row,
            CallUpdate::QueueEvent(e) => e.call_id = row,
            CallUpdate::VoiceMessage(m) => m.call_id = row,
        }
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// Inclusive lower bound on `started_at`.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound on `started_at`.
    pub to: Option<DateTime<Utc>>,
    pub contractor_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutcomeCount {
    pub outcome: String,
    pub count: u32,
}

/// Outcome label for calls whose row has no outcome yet.
pub const IN_PROGRESS: &str = "in_progress";

impl Ledger {
    /// Durably record that a call exists. Returns the row id and whether this call
    /// created it (`false` = a duplicate of an already-counted call).
    pub async fn insert_call(&self, c: &NewCall) -> Result<(i64, bool), LedgerError> {
        let rows = self.insert_calls(std::slice::from_ref(c)).await?;
        rows.first()
            .copied()
            .ok_or_else(|| LedgerError::Conflict("call insert returned no row".into()))
    }

    /// Durably records a batch of calls in one transaction (one disk flush for all of them:
    /// the daemon's group commit). Same per-row semantics as [`Self::insert_call`].
    pub async fn insert_calls(&self, calls: &[NewCall]) -> Result<Vec<(i64, bool)>, LedgerError> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let out: Vec<(i64, bool)> = on_pool!(self, |p| {
            async {
                let mut tx = p.begin().await?;
                let mut out = Vec::with_capacity(calls.len());
                for c in calls {
                    let inserted: Option<i64> = sqlx::query_scalar(
                        "INSERT INTO calls (trunk, sip_call_id, from_tag, contractor_id, number, caller,
                                            caller_withheld, outcome, billable, started_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                         ON CONFLICT (trunk, sip_call_id, from_tag) DO NOTHING RETURNING id",
                    )
                    .bind(&c.trunk)
                    .bind(&c.sip_call_id)
                    .bind(&c.from_tag)
                    .bind(c.contractor_id)
                    .bind(&c.number)
                    .bind(&c.caller)
                    .bind(c.caller_withheld)
                    .bind(&c.outcome)
                    .bind(c.billable)
                    .bind(c.started_at)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let row = match inserted {
                        Some(id) => (id, true),
                        None => {
                            let id: i64 = sqlx::query_scalar(
                                "SELECT id FROM calls WHERE trunk = $1 AND sip_call_id = $2 AND from_tag = $3",
                            )
                            .bind(&c.trunk)
                            .bind(&c.sip_call_id)
                            .bind(&c.from_tag)
                            .fetch_one(&mut *tx)
                            .await?;
                            (id, false)
                        }
                    };
                    out.push(row);
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(out)
            }
            .await?
        });
        Ok(out)
    }

    /// Applies answered/finished updates in one transaction. Every update only fills
    /// fields still empty (COALESCE), so replaying a batch after a failure is harmless.
    pub async fn apply_call_updates(&self, updates: &[CallUpdate]) -> Result<(), LedgerError> {
        if updates.is_empty() {
            return Ok(());
        }
        on_pool!(self, |p| {
            async {
                let mut tx = p.begin().await?;
                for u in updates {
                    match u {
                        CallUpdate::Answered { id, seat_id, at } => {
                            sqlx::query(
                                "UPDATE calls SET seat_id = COALESCE(seat_id, $1),
                                        answered_at = COALESCE(answered_at, $2) WHERE id = $3",
                            )
                            .bind(seat_id)
                            .bind(at)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        }
                        CallUpdate::Finished {
                            id,
                            outcome,
                            seat_id,
                            at,
                        } => {
                            sqlx::query(
                                "UPDATE calls SET outcome = COALESCE(outcome, $1),
                                        seat_id = COALESCE(seat_id, $2),
                                        ended_at = COALESCE(ended_at, $3) WHERE id = $4",
                            )
                            .bind(outcome)
                            .bind(seat_id)
                            .bind(at)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        }
                        CallUpdate::QueueEvent(e) => {
                            sqlx::query(super::queue::INSERT_QUEUE_EVENT)
                                .bind(e.call_id)
                                .bind(e.contractor_id)
                                .bind(&e.kind)
                                .bind(e.seat_id)
                                .bind(e.wait_ms)
                                .bind(e.position)
                                .bind(e.at)
                                .execute(&mut *tx)
                                .await?;
                        }
                        CallUpdate::VoiceMessage(m) => {
                            let new = sqlx::query(super::queue::INSERT_VOICE_MESSAGE)
                                .bind(m.call_id)
                                .bind(&m.path)
                                .bind(m.duration_ms)
                                .bind(m.created_at)
                                .execute(&mut *tx)
                                .await?
                                .rows_affected()
                                > 0;
                            if !new {
                                continue;
                            }
                            // The message reaches the contractor through the report outbox:
                            // queued in this transaction, so a stored message is never left
                            // unreported (and a replayed batch queues nothing twice).
                            let facts: Option<MessageFacts> = sqlx::query_as(
                                "SELECT c.contractor_id, k.name, c.started_at, c.caller, c.number
                                     FROM calls c JOIN contractors k ON k.id = c.contractor_id
                                     WHERE c.id = $1",
                            )
                            .bind(m.call_id)
                            .fetch_optional(&mut *tx)
                            .await?;
                            let Some((contractor_id, name, received_at, caller, number)) = facts
                            else {
                                continue;
                            };
                            let recording = std::path::Path::new(&m.path)
                                .file_name()
                                .map(|f| f.to_string_lossy().into_owned())
                                .unwrap_or_default();
                            let report = crate::reports::Report::voice_message(
                                &crate::reports::MessageFacts {
                                    call_id: m.call_id,
                                    contractor_id,
                                    contractor_name: name,
                                    received_at,
                                    caller,
                                    number,
                                    duration_ms: m.duration_ms,
                                    recording,
                                    at: m.created_at,
                                },
                            );
                            let payload = serde_json::to_string(&report).unwrap_or_default();
                            let channels: Vec<(i64, String, String)> = sqlx::query_as(
                                "SELECT id, kind, target FROM report_channels
                                 WHERE contractor_id = $1 AND removed_at IS NULL ORDER BY id",
                            )
                            .bind(contractor_id)
                            .fetch_all(&mut *tx)
                            .await?;
                            for (channel_id, kind, target) in channels {
                                sqlx::query(super::reports::INSERT_MESSAGE_REPORT)
                                    .bind(contractor_id)
                                    .bind(m.call_id)
                                    .bind(channel_id)
                                    .bind(&kind)
                                    .bind(&target)
                                    .bind(&payload)
                                    .bind(super::idempotency_key("message", m.call_id, channel_id))
                                    .bind(m.created_at)
                                    .execute(&mut *tx)
                                    .await?;
                            }
                        }
                    }
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(())
            }
            .await?
        });
        Ok(())
    }

    /// At start-up: calls left open by a previous run that died (crash, `kill -9`, power
    /// loss) are closed. They stay counted (their billable flag is untouched); the outcome
    /// says what is known: `answered` if an operator had answered, else `failed`.
    pub async fn close_orphaned_calls(&self, at: DateTime<Utc>) -> Result<u64, LedgerError> {
        Ok(on_pool!(self, |p| {
            sqlx::query(
                "UPDATE calls SET outcome = CASE WHEN answered_at IS NULL THEN 'failed' ELSE 'answered' END,
                        ended_at = COALESCE(ended_at, $1)
                 WHERE outcome IS NULL",
            )
            .bind(at)
            .execute(p)
            .await?
            .rows_affected()
        }))
    }

    /// Record the end state of a call. Fields already set are kept (COALESCE), so a
    /// late or repeated update cannot erase what an earlier one wrote.
    pub async fn finish_call(
        &self,
        id: i64,
        outcome: &str,
        seat_id: Option<i64>,
        answered_at: Option<DateTime<Utc>>,
        ended_at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        on_pool!(self, |p| {
            sqlx::query(
                "UPDATE calls SET outcome = COALESCE(outcome, $1), seat_id = COALESCE(seat_id, $2),
                        answered_at = COALESCE(answered_at, $3), ended_at = COALESCE(ended_at, $4)
                 WHERE id = $5",
            )
            .bind(outcome)
            .bind(seat_id)
            .bind(answered_at)
            .bind(ended_at)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    pub async fn add_call_event(
        &self,
        call_row: i64,
        kind: &str,
        seat_id: Option<i64>,
        detail: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO call_events (call_id, at, kind, seat_id, detail) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(call_row)
            .bind(at)
            .bind(kind)
            .bind(seat_id)
            .bind(detail.to_string())
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    pub async fn calls(&self, f: &CallFilter) -> Result<Vec<CallView>, LedgerError> {
        let rows: Vec<CallView> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT c.id, c.trunk, c.sip_call_id AS call_id, c.contractor_id, c.number, c.caller,
                        c.caller_withheld, c.outcome, c.billable, c.started_at, c.answered_at,
                        c.ended_at, s.name AS seat
                 FROM calls c LEFT JOIN seats s ON s.id = c.seat_id
                 WHERE ($1 IS NULL OR c.started_at >= $1)
                   AND ($2 IS NULL OR c.started_at < $2)
                   AND ($3 IS NULL OR c.contractor_id = $3)
                 ORDER BY c.started_at, c.id",
            )
            .bind(f.from)
            .bind(f.to)
            .bind(f.contractor_id)
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }

    /// All calls and the billable ones started in `[from, to)` (`status`: today's counts).
    pub async fn call_totals(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(i64, i64), LedgerError> {
        let row: (i64, Option<i64>) = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT COUNT(*), SUM(CASE WHEN billable THEN 1 ELSE 0 END) FROM calls
                 WHERE started_at >= $1 AND started_at < $2",
            )
            .bind(from)
            .bind(to)
            .fetch_one(p)
            .await?
        });
        Ok((row.0, row.1.unwrap_or(0)))
    }

    /// Billable calls of one contractor in `[from, to)`, by outcome (SPEC §3, §5).
    pub async fn billable_counts(
        &self,
        contractor_id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<OutcomeCount>, LedgerError> {
        let rows: Vec<(Option<String>, i64)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT outcome, COUNT(*) FROM calls
                 WHERE contractor_id = $1 AND billable = $2 AND started_at >= $3 AND started_at < $4
                 GROUP BY outcome ORDER BY outcome",
            )
            .bind(contractor_id)
            .bind(true)
            .bind(from)
            .bind(to)
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(o, n)| OutcomeCount {
                outcome: o.unwrap_or_else(|| IN_PROGRESS.to_string()),
                count: u32::try_from(n).unwrap_or(u32::MAX),
            })
            .collect())
    }
}
