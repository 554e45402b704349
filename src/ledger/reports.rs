//! Reports to contractors (issue #7 §3): where they go (`report_channels`) and the durable
//! outbox that carries them (`outbox`, one row per report and channel).
//!
//! Exactly once per (report, channel): the outbox row's `idempotency_key` is unique, so a
//! report cannot be queued twice for one channel; a worker *claims* a due row by moving its
//! `next_attempt_at` forward in the same statement that checks it is due and pending
//! ([`Ledger::claim_report`]), so two workers (or a worker and its restarted self) never
//! send the same row at once; and a delivery is recorded by an UPDATE that only a pending
//! row matches. The one gap no outbox can close — the receiver accepted, the process died
//! before the UPDATE — is why every delivery carries the idempotency key for the receiver.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{on_pool, Ledger, LedgerError};

/// Channel kinds (the schema's CHECK).
pub const CHANNEL_KINDS: &[&str] = &["email", "webhook", "slack"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChannel {
    pub kind: String,
    pub target: String,
    /// The webhook's HMAC key.
    pub secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ReportChannel {
    pub id: i64,
    pub contractor_id: i64,
    pub kind: String,
    pub target: String,
    /// Never printed.
    #[serde(skip)]
    pub secret: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One outbox row: a report on its way to one channel.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub contractor_id: i64,
    pub record_id: Option<i64>,
    pub call_id: Option<i64>,
    pub channel_id: Option<i64>,
    pub channel_kind: String,
    #[serde(skip)]
    pub target: String,
    #[serde(skip)]
    pub payload: String,
    pub idempotency_key: String,
    pub report_kind: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Counts by state, for `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
}

const OUTBOX_COLUMNS: &str = "id, contractor_id, record_id, call_id, channel_id, channel_kind, target, payload,
     idempotency_key, report_kind, state, attempts, next_attempt_at, last_error, created_at, delivered_at";

/// The idempotency key of a report to one channel: stable across retries and restarts.
/// One outbox row for a voice message (report kind `message`); a second one for the same
/// call and channel is ignored.
pub(super) const INSERT_MESSAGE_REPORT: &str =
    "INSERT INTO outbox (contractor_id, record_id, call_id, channel_id, channel_kind, target,
         payload, idempotency_key, report_kind, state, attempts, next_attempt_at, created_at)
     VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, 'message', 'pending', 0, $8, $8)
     ON CONFLICT (idempotency_key) DO NOTHING";

pub fn idempotency_key(report_kind: &str, report_id: i64, channel_id: i64) -> String {
    format!("smartdesk-{report_kind}-{report_id}-ch{channel_id}")
}

impl Ledger {
    /// Replaces the contractor's channels: the current ones are retired (kept for the
    /// history of reports sent to them), `channels` become the live set.
    pub async fn set_report_channels(
        &self,
        contractor_id: i64,
        channels: &[NewChannel],
        at: DateTime<Utc>,
    ) -> Result<Vec<ReportChannel>, LedgerError> {
        self.contractor(contractor_id).await?;
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(
                "UPDATE report_channels SET removed_at = $1
                 WHERE contractor_id = $2 AND removed_at IS NULL",
            )
            .bind(at)
            .bind(contractor_id)
            .execute(&mut *tx)
            .await?;
            for c in channels {
                sqlx::query(
                    "INSERT INTO report_channels (contractor_id, kind, target, secret, created_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(contractor_id)
                .bind(&c.kind)
                .bind(&c.target)
                .bind(&c.secret)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        self.report_channels(contractor_id).await
    }

    /// The contractor's live channels.
    pub async fn report_channels(
        &self,
        contractor_id: i64,
    ) -> Result<Vec<ReportChannel>, LedgerError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id, contractor_id, kind, target, secret, created_at FROM report_channels
                 WHERE contractor_id = $1 AND removed_at IS NULL ORDER BY id",
            )
            .bind(contractor_id)
            .fetch_all(p)
            .await?
        }))
    }

    /// A channel by id, retired or not (the worker sends to the channel a row was queued for).
    pub async fn report_channel(&self, id: i64) -> Result<Option<ReportChannel>, LedgerError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id, contractor_id, kind, target, secret, created_at FROM report_channels
                 WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(p)
            .await?
        }))
    }

    /// Queues a message left on overflow (ACD) for every live channel of the contractor, one
    /// report per call. Returns how many outbox rows were queued (0 when already queued).
    pub async fn queue_message_report(
        &self,
        contractor_id: i64,
        call_id: i64,
        payload: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<usize, LedgerError> {
        self.queue_for_live_channels(
            contractor_id,
            Some(call_id),
            "message",
            call_id,
            payload,
            at,
        )
        .await
    }

    /// Queues a test report (kind `test`, "send test report" in the portal) for every live
    /// channel of the contractor; `test_id` makes its idempotency keys unique. Returns how
    /// many outbox rows were queued (0: the contractor has no channel).
    pub async fn queue_test_report(
        &self,
        contractor_id: i64,
        test_id: i64,
        payload: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<usize, LedgerError> {
        self.queue_for_live_channels(contractor_id, None, "test", test_id, payload, at)
            .await
    }

    /// One outbox row of report `report_kind` / `report_id` per live channel of the
    /// contractor, in one transaction; a row already queued (same key) is left alone.
    async fn queue_for_live_channels(
        &self,
        contractor_id: i64,
        call_id: Option<i64>,
        report_kind: &str,
        report_id: i64,
        payload: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<usize, LedgerError> {
        let mut queued = 0;
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let channels: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT id, kind, target FROM report_channels
                 WHERE contractor_id = $1 AND removed_at IS NULL ORDER BY id",
            )
            .bind(contractor_id)
            .fetch_all(&mut *tx)
            .await?;
            for (channel_id, kind, target) in channels {
                queued += sqlx::query(
                    "INSERT INTO outbox (contractor_id, record_id, call_id, channel_id, channel_kind,
                         target, payload, idempotency_key, report_kind, state, attempts,
                         next_attempt_at, created_at)
                     VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $9)
                     ON CONFLICT (idempotency_key) DO NOTHING",
                )
                .bind(contractor_id)
                .bind(call_id)
                .bind(channel_id)
                .bind(&kind)
                .bind(&target)
                .bind(payload.to_string())
                .bind(idempotency_key(report_kind, report_id, channel_id))
                .bind(report_kind)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected() as usize;
            }
            tx.commit().await?;
        });
        Ok(queued)
    }

    /// The contractor's most recent outbox rows (portal settings: did the test arrive?).
    pub async fn recent_reports(
        &self,
        contractor_id: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, LedgerError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE contractor_id = $1 ORDER BY id DESC LIMIT $2"
        );
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(contractor_id)
            .bind(limit)
            .fetch_all(p)
            .await?))
    }

    /// Rows due for an attempt (pending, `next_attempt_at <= now`), oldest first.
    pub async fn due_reports(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, LedgerError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1
             ORDER BY next_attempt_at, id LIMIT $2"
        );
        Ok(on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(now)
                .bind(limit)
                .fetch_all(p)
                .await?
        }))
    }

    /// Takes a due row for one attempt: counts the attempt and moves `next_attempt_at` to
    /// `lease_until`, in the statement that checks it is still pending and due. `false`:
    /// someone else has it (or it is done). A worker that dies mid-attempt leaves the row to
    /// be retried once the lease has passed.
    pub async fn claim_report(
        &self,
        id: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let n = on_pool!(self, |p| {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1
                 WHERE id = $2 AND state = 'pending' AND next_attempt_at <= $3",
            )
            .bind(lease_until)
            .bind(id)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// At a start: every pending row is due now. The process before this one may have died
    /// mid-attempt, leaving its claim's lease (up to a minute) on the row; nobody else works
    /// on this ledger's outbox (one daemon per ledger), so waiting for it would only delay the
    /// report. Rows waiting out a backoff are retried at once too: a restart is a retry.
    /// Returns how many rows were brought forward.
    pub async fn release_report_claims(&self, now: DateTime<Utc>) -> Result<u64, LedgerError> {
        Ok(on_pool!(self, |p| {
            sqlx::query(
                "UPDATE outbox SET next_attempt_at = $1
                 WHERE state = 'pending' AND next_attempt_at > $1",
            )
            .bind(now)
            .execute(p)
            .await?
            .rows_affected()
        }))
    }

    /// Records a delivery. `false` if the row was not pending (already delivered or failed).
    pub async fn report_delivered(&self, id: i64, at: DateTime<Utc>) -> Result<bool, LedgerError> {
        let n = on_pool!(self, |p| {
            sqlx::query(
                "UPDATE outbox SET state = 'delivered', delivered_at = $1, last_error = NULL
                 WHERE id = $2 AND state = 'pending'",
            )
            .bind(at)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// A failed attempt: try again at `next_at`, or, with `None`, give up (state `failed`).
    pub async fn report_attempt_failed(
        &self,
        id: i64,
        error: &str,
        next_at: Option<DateTime<Utc>>,
    ) -> Result<(), LedgerError> {
        on_pool!(self, |p| {
            match next_at {
                Some(t) => sqlx::query(
                    "UPDATE outbox SET last_error = $1, next_attempt_at = $2
                     WHERE id = $3 AND state = 'pending'",
                )
                .bind(error)
                .bind(t)
                .bind(id)
                .execute(p)
                .await?
                .rows_affected(),
                None => sqlx::query(
                    "UPDATE outbox SET last_error = $1, state = 'failed' WHERE id = $2 AND state = 'pending'",
                )
                .bind(error)
                .bind(id)
                .execute(p)
                .await?
                .rows_affected(),
            }
        });
        Ok(())
    }

    /// Puts a failed report back in the queue (after the admin fixed the channel).
    pub async fn retry_report(&self, id: i64, at: DateTime<Utc>) -> Result<(), LedgerError> {
        let n = on_pool!(self, |p| {
            sqlx::query(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $1
                 WHERE id = $2 AND state = 'failed'",
            )
            .bind(at)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()
        });
        LedgerError::touched(n, "failed report", id)
    }

    /// Outbox rows of these records (delivery status per record and channel).
    pub async fn reports_of_records(&self, ids: &[i64]) -> Result<Vec<OutboxRow>, LedgerError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Ids are integers from the ledger itself: inlining them is safe and keeps one
        // statement for both backends (no array binding in SQLite).
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE record_id IN ({list}) ORDER BY record_id, id"
        );
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .fetch_all(p)
            .await?))
    }

    /// Reports that exhausted their retry budget, newest first.
    pub async fn failed_reports(&self, limit: i64) -> Result<Vec<OutboxRow>, LedgerError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state = 'failed' ORDER BY id DESC LIMIT $1"
        );
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(limit)
            .fetch_all(p)
            .await?))
    }

    pub async fn outbox_counts(&self) -> Result<OutboxCounts, LedgerError> {
        let rows: Vec<(String, i64)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT state, COUNT(*) FROM outbox GROUP BY state")
                .fetch_all(p)
                .await?
        });
        let mut c = OutboxCounts::default();
        for (state, n) in rows {
            match state.as_str() {
                "pending" => c.pending = n,
                "delivered" => c.delivered = n,
                "failed" => c.failed = n,
                _ => {}
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate, Utc};

    use super::super::testing::both_backends;
    use super::*;
    use crate::ledger::{NewCall, NewContractor, NewFirstResponse, RecordFilter};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    async fn contractor_and_call(l: &Ledger, caller: &str, started: &str, tag: &str) -> (i64, i64) {
        let c = match l.contractors().await.expect("list").first() {
            Some(c) => c.id,
            None => {
                l.add_contractor(
                    &NewContractor {
                        name: "株式会社ABC".into(),
                        greeting: "はい、株式会社ABCでございます".into(),
                        plan: "SD100".parse().expect("plan"),
                        hearing: false,
                        hearing_items: vec![],
                        start_date: NaiveDate::from_ymd_opt(2026, 11, 1).expect("d"),
                    },
                    at("2026-11-01T00:00:00Z"),
                )
                .await
                .expect("contractor")
                .id
            }
        };
        let (call, _) = l
            .insert_call(&NewCall {
                trunk: "t".into(),
                sip_call_id: format!("call-{tag}"),
                from_tag: tag.into(),
                contractor_id: Some(c),
                number: "+81312345678".into(),
                caller: Some(caller.into()),
                caller_withheld: false,
                billable: true,
                outcome: Some("answered".into()),
                started_at: at(started),
            })
            .await
            .expect("call");
        (c, call)
    }

    fn record(c: i64, call: i64, supersedes: Option<i64>) -> NewFirstResponse {
        NewFirstResponse {
            call_row: call,
            contractor_id: c,
            seat_id: None,
            supersedes,
            caller_name: "山田".into(),
            callback_number: Some("090-1234-5678".into()),
            callback_wanted: true,
            purpose: "見積もり".into(),
            category: "normal".into(),
            hearing_answers: serde_json::json!([]),
            written_by: "op1".into(),
            created_at: at("2026-11-25T01:05:00Z"),
        }
    }

    both_backends!(a_voice_message_queues_its_report_in_the_same_write, |l| {
        let (c, call) = contractor_and_call(l, "+819012345678", "2026-11-25T01:00:00Z", "vm").await;
        l.set_report_channels(
            c,
            &[NewChannel {
                kind: "webhook".into(),
                target: "http://127.0.0.1:9/hook".into(),
                secret: Some("0123456789abcdef".into()),
            }],
            at("2026-11-20T00:00:00Z"),
        )
        .await
        .expect("channels");
        let m = crate::ledger::NewVoiceMessage {
            call_id: call,
            path: format!("/var/lib/smartdesk/recordings/{call}.wav"),
            duration_ms: 4200,
            created_at: at("2026-11-25T01:02:00Z"),
        };
        l.add_voice_message(&m).await.expect("message");
        // Written again (a retried batch): neither the row nor its report doubles.
        l.apply_call_updates(&[crate::ledger::CallUpdate::VoiceMessage(m.clone())])
            .await
            .expect("replay");
        let due = l
            .due_reports(at("2026-11-25T02:00:00Z"), 10)
            .await
            .expect("due");
        assert_eq!(due.len(), 1, "{due:?}");
        let r = &due[0];
        assert_eq!(r.report_kind, "message");
        assert_eq!(r.call_id, Some(call));
        assert_eq!(r.record_id, None);
        assert_eq!(
            r.idempotency_key,
            idempotency_key("message", call, r.channel_id.unwrap_or(0))
        );
        let report: crate::reports::Report = serde_json::from_str(&r.payload).expect("payload");
        assert_eq!(report.kind, "message");
        assert_eq!(report.contractor_name, "株式会社ABC");
        assert_eq!(report.number, "0312345678");
        let vm = report.voice_message.clone().expect("voice message facts");
        assert_eq!(vm.duration_ms, 4200);
        assert_eq!(vm.recording, format!("{call}.wav"));
        let text = report.text();
        assert!(text.contains("伝言の長さ：4秒"), "{text}");
        assert!(
            report.email_subject().starts_with("【伝言】"),
            "{}",
            report.email_subject()
        );
        // Without a channel the message is stored and nothing is queued.
        let (_, call2) =
            contractor_and_call(l, "+819012345679", "2026-11-25T03:00:00Z", "vm2").await;
        l.set_report_channels(c, &[], at("2026-11-25T02:30:00Z"))
            .await
            .expect("no channels");
        l.add_voice_message(&crate::ledger::NewVoiceMessage {
            call_id: call2,
            ..m.clone()
        })
        .await
        .expect("message 2");
        let msgs = l
            .voice_messages_since(at("2026-11-01T00:00:00Z"))
            .await
            .expect("messages");
        assert_eq!(msgs.len(), 2);
        let due = l
            .due_reports(at("2026-11-26T00:00:00Z"), 10)
            .await
            .expect("due");
        assert!(due.iter().all(|r| r.call_id != Some(call2)), "{due:?}");
    });

    both_backends!(record_and_reports_are_one_transaction, |l| {
        let (c, call) = contractor_and_call(l, "+819012345678", "2026-11-25T01:00:00Z", "a").await;
        let channels = l
            .set_report_channels(
                c,
                &[
                    NewChannel {
                        kind: "email".into(),
                        target: "ops@example.jp".into(),
                        secret: None,
                    },
                    NewChannel {
                        kind: "webhook".into(),
                        target: "http://127.0.0.1:9/hook".into(),
                        secret: Some("0123456789abcdef".into()),
                    },
                ],
                at("2026-11-20T00:00:00Z"),
            )
            .await
            .expect("channels");
        assert_eq!(channels.len(), 2);
        let payload = |id: i64, v: i64| serde_json::json!({"record_id": id, "version": v});
        let (id, queued) = l
            .write_first_response(&record(c, call, None), &payload)
            .await
            .expect("write");
        assert_eq!(queued, 2);
        // a second first record of the same call is refused, and queues nothing
        let e = l
            .write_first_response(&record(c, call, None), &payload)
            .await
            .expect_err("one first record per call");
        assert!(e.to_string().contains("already has a record"), "{e}");
        let rows = l.reports_of_records(&[id]).await.expect("rows");
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.state == "pending" && r.attempts == 0));
        assert_eq!(
            rows[0].idempotency_key,
            idempotency_key("record", id, channels[0].id)
        );
        // Claim: only one claimant wins; the lease hides the row from due_reports.
        let now = at("2026-11-25T01:05:01Z");
        let lease = at("2026-11-25T01:06:01Z");
        let due = l.due_reports(now, 10).await.expect("due");
        assert_eq!(due.len(), 2);
        assert!(l.claim_report(due[0].id, now, lease).await.expect("claim"));
        assert!(!l
            .claim_report(due[0].id, now, lease)
            .await
            .expect("claim twice"));
        assert_eq!(l.due_reports(now, 10).await.expect("due").len(), 1);
        // A restart (the claimant died mid-attempt) makes the claimed row due at once; it
        // is claimed again (the same idempotency key goes out), and only once.
        assert_eq!(l.release_report_claims(now).await.expect("release"), 1);
        assert_eq!(l.due_reports(now, 10).await.expect("due").len(), 2);
        assert!(l
            .claim_report(due[0].id, now, lease)
            .await
            .expect("claim again"));
        assert!(!l
            .claim_report(due[0].id, now, lease)
            .await
            .expect("claim twice"));
        assert_eq!(l.release_report_claims(now).await.expect("release"), 1);
        assert!(l.claim_report(due[0].id, now, lease).await.expect("claim"));
        // Delivered once: a second mark does nothing.
        assert!(l.report_delivered(due[0].id, now).await.expect("mark"));
        assert!(!l
            .report_delivered(due[0].id, now)
            .await
            .expect("mark twice"));
        // The other: fails, retried later, then fails for good.
        assert!(l.claim_report(due[1].id, now, lease).await.expect("claim"));
        l.report_attempt_failed(due[1].id, "HTTP 500", Some(at("2026-11-25T01:05:03Z")))
            .await
            .expect("retry");
        assert!(l.due_reports(now, 10).await.expect("due").is_empty());
        let later = at("2026-11-25T01:05:04Z");
        assert_eq!(l.due_reports(later, 10).await.expect("due").len(), 1);
        assert!(l
            .claim_report(due[1].id, later, lease)
            .await
            .expect("claim"));
        l.report_attempt_failed(due[1].id, "HTTP 500", None)
            .await
            .expect("give up");
        let counts = l.outbox_counts().await.expect("counts");
        assert_eq!((counts.pending, counts.delivered, counts.failed), (0, 1, 1));
        let failed = l.failed_reports(10).await.expect("failed");
        assert_eq!(failed[0].attempts, 2);
        assert_eq!(failed[0].last_error.as_deref(), Some("HTTP 500"));
        l.retry_report(failed[0].id, later).await.expect("requeue");
        assert_eq!(l.due_reports(later, 10).await.expect("due").len(), 1);
        // A correction is a new record with its own reports; the old stays.
        let (id2, queued2) = l
            .write_first_response(&record(c, call, Some(id)), &payload)
            .await
            .expect("correction");
        assert_eq!(queued2, 2);
        let all = l
            .first_responses(&RecordFilter::default())
            .await
            .expect("list");
        assert_eq!(all.len(), 2);
        let old = all.iter().find(|r| r.id == id).expect("old");
        assert_eq!(old.superseded_by, Some(id2));
        assert_eq!(all.iter().find(|r| r.id == id2).expect("new").version, 2);
        // Retired channels get nothing new.
        l.set_report_channels(c, &[], at("2026-11-25T02:00:00Z"))
            .await
            .expect("clear");
        let (_, queued3) = l
            .write_first_response(&record(c, call, Some(id2)), &payload)
            .await
            .expect("second correction");
        assert_eq!(queued3, 0);
    });

    both_backends!(earlier_calls_from_the_same_number, |l| {
        let (c, first) = contractor_and_call(l, "+819011112222", "2026-11-20T01:00:00Z", "1").await;
        let payload = |_: i64, _: i64| serde_json::json!({});
        l.write_first_response(&record(c, first, None), &payload)
            .await
            .expect("record");
        let (_, _other) =
            contractor_and_call(l, "+819099998888", "2026-11-21T01:00:00Z", "2").await;
        let (_, now) = contractor_and_call(l, "+819011112222", "2026-11-25T01:00:00Z", "3").await;
        let e = l
            .earlier_calls(c, "+819011112222", now, 10)
            .await
            .expect("earlier");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].call_id, first);
        assert_eq!(e[0].purpose.as_deref(), Some("見積もり"));
    });
}
