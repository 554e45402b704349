//! The outbox worker: takes due reports from the ledger and delivers each to its channel
//! (SMTP e-mail, signed webhook, Slack-compatible webhook), with exponential backoff.
//!
//! Nothing is kept in memory that the ledger does not have: a restart (or `kill -9`) picks
//! up every pending row where it stood. A row is claimed before its attempt (the lease in
//! [`Ledger::claim_report`]) and marked delivered only while still pending, so a report is
//! delivered once per channel; should the process die between a receiver's acceptance and
//! that mark, the next attempt carries the same idempotency key (`Idempotency-Key` header
//! and body field for webhooks, `Message-ID` for e-mail) for the receiver to drop.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::{Notify, Semaphore};

use super::{backoff, sign, Report, IDEMPOTENCY_HEADER, SIGNATURE_HEADER};
use crate::config::ReportsConfig;
use crate::ledger::{Ledger, OutboxRow};

/// Rows fetched per pass.
const BATCH: i64 = 64;
/// Deliveries in flight at once.
const PARALLEL: usize = 8;
/// How often the outbox is looked at when nobody wakes the worker.
const POLL: Duration = Duration::from_secs(1);
/// One attempt's time limit (connect + send + answer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// A claimed row is retried by anyone after this, should its worker have died.
const LEASE: Duration = Duration::from_secs(60);

/// What the worker needs from the daemon.
pub struct Worker {
    ledger: Ledger,
    cfg: ReportsConfig,
    now: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    http: reqwest::Client,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    wake: Arc<Notify>,
}

/// Builds the SMTP transport of `reports.smtp` (`smtp://host:port`, plain SMTP to a relay).
pub fn smtp_transport(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    if url.is_empty() {
        return Err("reports.smtp is not set".into());
    }
    let u = reqwest::Url::parse(url).map_err(|e| format!("reports.smtp: {e}"))?;
    let host = match (u.scheme(), u.host_str()) {
        ("smtp", Some(h)) => h.trim_start_matches('[').trim_end_matches(']').to_owned(),
        _ => return Err("reports.smtp: must be smtp://HOST:PORT".into()),
    };
    // Plain SMTP to the relay (no STARTTLS): the relay is local or on a private link and
    // does TLS onward; see the README.
    Ok(
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(u.port().unwrap_or(25))
            .timeout(Some(ATTEMPT_TIMEOUT))
            .build(),
    )
}

impl Worker {
    pub fn new(
        ledger: Ledger,
        cfg: ReportsConfig,
        now: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
        wake: Arc<Notify>,
    ) -> Worker {
        let smtp = if cfg.smtp.is_empty() {
            None
        } else {
            match smtp_transport(&cfg.smtp) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::error!(error = %e, "e-mail reports cannot be sent");
                    None
                }
            }
        };
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("smartdesk/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Worker {
            ledger,
            cfg,
            now,
            http,
            smtp,
            wake,
        }
    }

    /// Runs until aborted.
    pub async fn run(self) {
        match self.ledger.release_report_claims((self.now)()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                reports = n,
                "pending reports from before the start are due now"
            ),
            Err(e) => tracing::warn!(error = %e, "outbox not readable at start; leases run out"),
        }
        let me = Arc::new(self);
        let slots = Arc::new(Semaphore::new(PARALLEL));
        loop {
            let n = me.clone().pass(&slots).await;
            if n == 0 {
                tokio::select! {
                    _ = me.wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            } else {
                // Let the claimed ones run; due rows still waiting come in the next pass.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// One pass over the due rows; returns how many were claimed.
    pub async fn pass(self: Arc<Self>, slots: &Arc<Semaphore>) -> usize {
        let now = (self.now)();
        let due = match self.ledger.due_reports(now, BATCH).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "outbox not readable; retrying");
                return 0;
            }
        };
        let mut claimed = 0;
        for row in due {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let lease = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
            match self.ledger.claim_report(row.id, now, lease).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox claim failed");
                    continue;
                }
            }
            claimed += 1;
            let me = self.clone();
            tokio::spawn(async move {
                me.attempt(row).await;
                drop(permit);
            });
        }
        claimed
    }

    /// Delivers one claimed row and records the result.
    async fn attempt(&self, row: OutboxRow) {
        // `attempts` was counted by the claim.
        let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
        let result = self.deliver(&row).await;
        let now = (self.now)();
        match result {
            Ok(()) => match self.ledger.report_delivered(row.id, now).await {
                Ok(_) => tracing::info!(
                    outbox = row.id,
                    contractor_id = row.contractor_id,
                    record = row.record_id,
                    channel = %row.channel_kind,
                    attempts,
                    "report delivered"
                ),
                Err(e) => tracing::error!(
                    outbox = row.id, error = %e,
                    "report delivered but not marked; it will be sent again with the same idempotency key"
                ),
            },
            Err(error) => {
                let give_up = attempts >= self.cfg.max_attempts;
                let next = (!give_up).then(|| {
                    let wait = backoff(
                        attempts,
                        Duration::from_millis(self.cfg.retry_initial_ms),
                        Duration::from_millis(self.cfg.retry_max_ms),
                    );
                    now + chrono::Duration::from_std(wait).unwrap_or_default()
                });
                if let Err(e) = self
                    .ledger
                    .report_attempt_failed(row.id, &error, next)
                    .await
                {
                    tracing::error!(outbox = row.id, error = %e, "outbox not updated; the row is retried after its lease");
                }
                if give_up {
                    tracing::error!(
                        outbox = row.id,
                        contractor_id = row.contractor_id,
                        record = row.record_id,
                        channel = %row.channel_kind,
                        attempts,
                        error = %error,
                        "ALERT: report not delivered after the retry budget; fix the channel and run `smartdesk reports retry ID`"
                    );
                } else {
                    tracing::warn!(
                        outbox = row.id,
                        channel = %row.channel_kind,
                        attempts,
                        error = %error,
                        "report delivery failed; will retry"
                    );
                }
            }
        }
    }

    async fn deliver(&self, row: &OutboxRow) -> Result<(), String> {
        let report: Report = serde_json::from_str(&row.payload)
            .map_err(|e| format!("outbox payload unreadable: {e}"))?;
        match row.channel_kind.as_str() {
            "email" => self.email(row, &report).await,
            "webhook" => {
                let secret = match row.channel_id {
                    Some(id) => self
                        .ledger
                        .report_channel(id)
                        .await
                        .map_err(|e| e.to_string())?
                        .and_then(|c| c.secret),
                    None => None,
                }
                .ok_or("webhook channel has no secret")?;
                let body = report.webhook_body(&row.idempotency_key);
                let sig = sign(&secret, body.as_bytes());
                self.post(
                    &row.target,
                    body,
                    &[
                        (SIGNATURE_HEADER, sig.as_str()),
                        (IDEMPOTENCY_HEADER, row.idempotency_key.as_str()),
                    ],
                )
                .await
            }
            "slack" => {
                self.post(
                    &row.target,
                    report.slack_body(),
                    &[(IDEMPOTENCY_HEADER, row.idempotency_key.as_str())],
                )
                .await
            }
            other => Err(format!("unknown channel kind {other:?}")),
        }
    }

    async fn post(&self, url: &str, body: String, headers: &[(&str, &str)]) -> Result<(), String> {
        let mut req = self.http.post(url).header(
            reqwest::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        );
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        // Errors without the URL: webhook URLs often carry tokens.
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    }

    async fn email(&self, row: &OutboxRow, report: &Report) -> Result<(), String> {
        let smtp = self.smtp.as_ref().ok_or("no SMTP relay (reports.smtp)")?;
        let from = self
            .cfg
            .from
            .parse()
            .map_err(|e| format!("reports.from: {e}"))?;
        let to = row
            .target
            .parse()
            .map_err(|e| format!("e-mail address: {e}"))?;
        let msg = Message::builder()
            .from(from)
            .to(to)
            .subject(report.email_subject())
            .message_id(Some(format!("<{}@smartdesk>", row.idempotency_key)))
            .header(ContentType::TEXT_PLAIN)
            .body(report.text())
            .map_err(|e| e.to_string())?;
        smtp.send(msg).await.map(|_| ()).map_err(|e| e.to_string())
    }
}
