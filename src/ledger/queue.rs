//! The queue log and voice messages (issue #6 §4, §7).
//!
//! Both are written by the call core's row-update writer (in order with the call's other
//! updates, batched, retried: see `daemon::admission::run_updates`), through
//! [`super::CallUpdate::QueueEvent`] and [`super::CallUpdate::VoiceMessage`], or directly with
//! [`Ledger::add_voice_message`].
//!
//! **The report outbox.** A `voice_messages` row is the durable fact "this caller left a
//! message for this contractor": the transaction that writes it also queues one outbox row
//! (report kind `message`, [`crate::reports::Report::voice_message`]) per live channel of
//! the contractor, delivered like a first-response record's report.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{on_pool, Ledger, LedgerError};

pub(super) const INSERT_QUEUE_EVENT: &str = "INSERT INTO queue_events
    (call_id, contractor_id, kind, seat_id, wait_ms, position, at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// One row per call: a retried write is a no-op.
pub(super) const INSERT_VOICE_MESSAGE: &str = "INSERT INTO voice_messages
    (call_id, path, duration_ms, created_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (call_id) DO NOTHING";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NewQueueEvent {
    /// The call row.
    pub call_id: i64,
    pub contractor_id: i64,
    /// entered, offered, no_answer, busy, declined, connected, abandoned, overflow.
    pub kind: String,
    pub seat_id: Option<i64>,
    pub wait_ms: Option<i64>,
    pub position: Option<i64>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct QueueEventRow {
    pub call_id: i64,
    pub contractor_id: i64,
    pub kind: String,
    pub seat_id: Option<i64>,
    pub wait_ms: Option<i64>,
    pub position: Option<i64>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NewVoiceMessage {
    pub call_id: i64,
    pub path: String,
    pub duration_ms: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct VoiceMessage {
    pub call_id: i64,
    pub contractor_id: Option<i64>,
    pub path: String,
    pub duration_ms: i64,
    pub created_at: DateTime<Utc>,
}

impl Ledger {
    /// Queue log entries with `from <= at < to`, in order.
    pub async fn queue_events(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<QueueEventRow>, LedgerError> {
        let rows: Vec<QueueEventRow> = on_pool!(self, |p| sqlx::query_as(
            "SELECT call_id, contractor_id, kind, seat_id, wait_ms, position, at
             FROM queue_events WHERE at >= $1 AND at < $2 ORDER BY at, id"
        )
        .bind(from)
        .bind(to)
        .fetch_all(p)
        .await?);
        Ok(rows)
    }

    /// Stores a caller's voice message for call row `m.call_id` (once per call; a second
    /// write for the same call is ignored). The new row is what the report outbox delivers.
    /// Its report to the contractor is queued in the outbox in the same transaction, one per
    /// live channel (see [`super::CallUpdate::VoiceMessage`]).
    pub async fn add_voice_message(&self, m: &NewVoiceMessage) -> Result<(), LedgerError> {
        self.apply_call_updates(&[super::CallUpdate::VoiceMessage(m.clone())])
            .await
    }

    /// Voice messages created at or after `since`, oldest first, with their contractor.
    pub async fn voice_messages_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<VoiceMessage>, LedgerError> {
        let rows: Vec<VoiceMessage> = on_pool!(self, |p| sqlx::query_as(
            "SELECT v.call_id, c.contractor_id, v.path, v.duration_ms, v.created_at
             FROM voice_messages v JOIN calls c ON c.id = v.call_id
             WHERE v.created_at >= $1 ORDER BY v.created_at, v.call_id"
        )
        .bind(since)
        .fetch_all(p)
        .await?);
        Ok(rows)
    }

    /// The voice message of call row `call_id`, with its contractor.
    pub async fn voice_message(&self, call_id: i64) -> Result<Option<VoiceMessage>, LedgerError> {
        Ok(on_pool!(self, |p| sqlx::query_as(
            "SELECT v.call_id, c.contractor_id, v.path, v.duration_ms, v.created_at
             FROM voice_messages v JOIN calls c ON c.id = v.call_id WHERE v.call_id = $1"
        )
        .bind(call_id)
        .fetch_optional(p)
        .await?))
    }

    /// A contractor's voice messages of calls started in `[from, to)`, newest first.
    pub async fn contractor_voice_messages(
        &self,
        contractor_id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<VoiceMessage>, LedgerError> {
        Ok(on_pool!(self, |p| sqlx::query_as(
            "SELECT v.call_id, c.contractor_id, v.path, v.duration_ms, v.created_at
             FROM voice_messages v JOIN calls c ON c.id = v.call_id
             WHERE c.contractor_id = $1 AND c.started_at >= $2 AND c.started_at < $3
             ORDER BY c.started_at DESC, v.call_id DESC"
        )
        .bind(contractor_id)
        .bind(from)
        .bind(to)
        .fetch_all(p)
        .await?))
    }
}
