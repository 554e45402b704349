//! Requests from other tasks (the control socket, the web console) to the call core.
//!
//! The core task owns the sans-IO endpoint, so nothing else may touch call or seat state.
//! Other tasks hold a [`CoreHandle`] and send a [`CoreRequest`] carrying a oneshot for the
//! answer; the core answers between two inputs, never awaiting, so a request costs the call
//! path one message. New live commands add a variant here and an arm in
//! `sip::Core::handle_request`.

use std::net::SocketAddr;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::acd::{AcdError, AcdSnapshot};
use crate::config::profiles::Trunk;
use crate::sip::b2bua::{B2buaStats, HangupError, LiveCall, SeatCommand, SeatRef};
use crate::sip::counters::SipCounters;
use crate::sip::seats::RegistryConfig;

use super::prompts::Prompts;

/// How many requests may wait for the core; more get [`CoreError::Busy`].
pub const REQUEST_QUEUE: usize = 256;

#[derive(Debug)]
pub enum CoreRequest {
    /// Counters of the call path.
    Stats(oneshot::Sender<B2buaStats>),
    /// Waiting callers and seat states (`smartdesk queue`).
    Queue(oneshot::Sender<AcdSnapshot>),
    /// `smartdesk seat pause|resume|reset` (by name) and the console's pause/resume (by id).
    Seat(SeatCommand, oneshot::Sender<Result<(), AcdError>>),
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
    /// The operator submitted the first-response record of `call_row` (the console):
    /// wrap-up (後処理) for that call is over and the seat may take the next call. Answers
    /// whether it applied (the seat's last answered call is `call_row`; see
    /// `B2bua::record_submitted`).
    RecordSubmitted {
        seat: i64,
        call_row: i64,
        reply: oneshot::Sender<bool>,
    },
    /// A browser seat's user agent (`daemon::browser_seat`) listens at `agent` (`Some`,
    /// refreshed while the page is connected) or is gone (`None`). Answers whether the seat
    /// is known.
    BrowserSeat {
        seat: String,
        agent: SocketAddr,
        online: bool,
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

/// A seat of the ledger with its ACD state (issue #6 §1).
#[derive(Debug, Clone, Serialize)]
pub struct SeatView {
    pub id: i64,
    pub name: String,
    /// `offline`, `available`, `ringing`, `on_call`, `wrap_up` or `paused`.
    pub state: &'static str,
    /// Why the seat is paused (`paused` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seconds in this state.
    pub in_state_s: u64,
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
    /// Calls waiting in the ACD's queue (a seat may be ringing for them).
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

    pub async fn queue(&self) -> Result<AcdSnapshot, CoreError> {
        self.ask(CoreRequest::Queue).await
    }

    pub async fn seat(&self, command: SeatCommand) -> Result<Result<(), AcdError>, CoreError> {
        self.ask(|reply| CoreRequest::Seat(command, reply)).await
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

    /// The console's pause (the operator's own seat, by id): answers whether it applied.
    pub async fn seat_pause(&self, seat: i64, reason: String) -> Result<bool, CoreError> {
        let command = SeatCommand::Pause {
            seat: SeatRef::Id(seat),
            reason,
        };
        Ok(self.seat(command).await?.is_ok())
    }

    /// The console's resume: answers whether it applied.
    pub async fn seat_resume(&self, seat: i64) -> Result<bool, CoreError> {
        let command = SeatCommand::Resume {
            seat: SeatRef::Id(seat),
        };
        Ok(self.seat(command).await?.is_ok())
    }

    pub async fn record_submitted(&self, seat: i64, call_row: i64) -> Result<bool, CoreError> {
        self.ask(|reply| CoreRequest::RecordSubmitted {
            seat,
            call_row,
            reply,
        })
        .await
    }

    /// Attaches (`online`) or detaches a browser seat's agent; answers whether the seat is
    /// known.
    pub async fn browser_seat(
        &self,
        seat: String,
        agent: SocketAddr,
        online: bool,
    ) -> Result<bool, CoreError> {
        self.ask(|reply| CoreRequest::BrowserSeat {
            seat,
            agent,
            online,
            reply,
        })
        .await
    }
}
