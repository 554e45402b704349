//! Requests from other tasks (the control socket, the web console) to the call core.
//!
//! The core task owns the sans-IO endpoint, so nothing else may touch call or seat state.
//! Other tasks hold a [`CoreHandle`] and send a [`CoreRequest`] carrying a oneshot for the
//! answer; the core answers between two inputs, never awaiting, so a request costs the call
//! path one message. New live commands add a variant here and an arm in
//! `sip::Core::handle_request`.

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::profiles::Trunk;
use crate::sip::b2bua::{B2buaStats, HangupError, LiveCall};
use crate::sip::counters::SipCounters;
use crate::sip::seats::RegistryConfig;

use super::prompts::Prompts;

/// How many requests may wait for the core; more get [`CoreError::Busy`].
pub const REQUEST_QUEUE: usize = 256;

#[derive(Debug)]
pub enum CoreRequest {
    /// Counters of the call path.
    Stats(oneshot::Sender<B2buaStats>),
    /// Calls, seats, trunks and counters as they are now (status, `calls --live`, metrics).
    Snapshot(oneshot::Sender<CoreSnapshot>),
    /// End the call whose ledger row is `id` (see `sip::b2bua::ops` for what each phase gets).
    Hangup {
        id: i64,
        reply: oneshot::Sender<Result<(), HangupError>>,
    },
    /// Stop taking new calls (503 + Retry-After); calls in progress continue.
    Drain(oneshot::Sender<()>),
    /// The grace period is over: end every call that can be ended; answers how many remain.
    HangupAll(oneshot::Sender<usize>),
    /// Reloaded profiles and prompts (already validated); an `Err` keeps the old ones.
    Reload(Box<Reload>, oneshot::Sender<Result<(), String>>),
    /// The operator pauses the seat (休憩, 後処理…) from the console: no new calls until
    /// resumed. Answered `true` when the call path took it into account.
    SeatPause {
        seat: i64,
        reason: String,
        reply: oneshot::Sender<bool>,
    },
    /// The operator resumes a paused seat.
    SeatResume {
        seat: i64,
        reply: oneshot::Sender<bool>,
    },
    /// The operator submitted the first-response record of `call_row`: wrap-up (後処理)
    /// for that call is over and the seat may take the next call.
    RecordSubmitted {
        seat: i64,
        call_row: i64,
        reply: oneshot::Sender<bool>,
    },
}

/// What a reload hands to the core.
#[derive(Debug)]
pub struct Reload {
    pub trunks: Vec<Trunk>,
    pub registry: RegistryConfig,
    pub prompts: Prompts,
}

/// A seat the registrar knows, with what the call path is doing with it.
#[derive(Debug, Clone, Serialize)]
pub struct SeatView {
    pub id: i64,
    pub name: String,
    /// `idle`, `ringing` or `on_call` (the ACD adds `paused`, `wrap_up` …).
    pub state: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrunkView {
    pub name: String,
    pub sources: Vec<String>,
    /// Seconds since the carrier's last OPTIONS keep-alive; `None` if none since start.
    pub last_options_s: Option<u64>,
}

/// The core's state at one instant.
#[derive(Debug, Clone, Default)]
pub struct CoreSnapshot {
    pub calls: Vec<LiveCall>,
    pub seats: Vec<SeatView>,
    pub trunks: Vec<TrunkView>,
    /// Calls waiting for a free seat. Always 0 until the ACD (issue #6) queues calls.
    pub queue_depth: usize,
    pub stats: B2buaStats,
    pub sip: SipCounters,
    pub auth_failures: u64,
    pub draining: bool,
    /// Calls in progress whose outcome is not recorded yet.
    pub calls_unfinished: usize,
    /// BYEs and CANCELs without a final response (shutdown waits for them).
    pub requests_outstanding: usize,
    pub transactions: usize,
    pub registration_writes_dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    #[error("the call core is not running")]
    Gone,
    #[error("the call core is overloaded; try again")]
    Busy,
}

/// A cloneable way to ask the running core something.
#[derive(Debug, Clone)]
pub struct CoreHandle {
    tx: mpsc::Sender<CoreRequest>,
}

pub fn channel() -> (CoreHandle, mpsc::Receiver<CoreRequest>) {
    let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
    (CoreHandle { tx }, rx)
}

impl CoreHandle {
    /// Sends a request built around a fresh oneshot and waits for its answer.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> CoreRequest,
    ) -> Result<T, CoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx.try_send(make(tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => CoreError::Busy,
            mpsc::error::TrySendError::Closed(_) => CoreError::Gone,
        })?;
        rx.await.map_err(|_| CoreError::Gone)
    }

    pub async fn stats(&self) -> Result<B2buaStats, CoreError> {
        self.ask(CoreRequest::Stats).await
    }

    pub async fn snapshot(&self) -> Result<CoreSnapshot, CoreError> {
        self.ask(CoreRequest::Snapshot).await
    }

    pub async fn hangup(&self, id: i64) -> Result<Result<(), HangupError>, CoreError> {
        self.ask(|reply| CoreRequest::Hangup { id, reply }).await
    }

    pub async fn drain(&self) -> Result<(), CoreError> {
        self.ask(CoreRequest::Drain).await
    }

    pub async fn hangup_all(&self) -> Result<usize, CoreError> {
        self.ask(CoreRequest::HangupAll).await
    }

    pub async fn reload(&self, r: Reload) -> Result<Result<(), String>, CoreError> {
        self.ask(|reply| CoreRequest::Reload(Box::new(r), reply))
            .await
    }

    pub async fn seat_pause(&self, seat: i64, reason: String) -> Result<bool, CoreError> {
        self.ask(|reply| CoreRequest::SeatPause {
            seat,
            reason,
            reply,
        })
        .await
    }

    pub async fn seat_resume(&self, seat: i64) -> Result<bool, CoreError> {
        self.ask(|reply| CoreRequest::SeatResume { seat, reply })
            .await
    }

    pub async fn record_submitted(&self, seat: i64, call_row: i64) -> Result<bool, CoreError> {
        self.ask(|reply| CoreRequest::RecordSubmitted {
            seat,
            call_row,
            reply,
        })
        .await
    }
}
