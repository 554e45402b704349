//! Requests from other tasks (the control socket, the web console) to the call core.
//!
//! The core task owns the sans-IO endpoint, so nothing else may touch call or seat state.
//! Other tasks hold a [`CoreHandle`] and send a [`CoreRequest`] carrying a oneshot for the
//! answer; the core answers between two inputs, never awaiting, so a request costs the call
//! path one message. New live commands add a variant here and an arm in
//! `sip::Core::handle_request`.

use tokio::sync::{mpsc, oneshot};

use crate::acd::{AcdError, AcdSnapshot};
use crate::sip::b2bua::{B2buaStats, SeatCommand};

/// How many requests may wait for the core; more get [`CoreError::Busy`].
pub const REQUEST_QUEUE: usize = 256;

#[derive(Debug)]
pub enum CoreRequest {
    /// Counters of the call path.
    Stats(oneshot::Sender<B2buaStats>),
    /// Waiting callers and seat states (`smartdesk queue`).
    Queue(oneshot::Sender<AcdSnapshot>),
    /// `smartdesk seat pause|resume|reset`.
    Seat(SeatCommand, oneshot::Sender<Result<(), AcdError>>),
    /// The operator of `seat_id` submitted the first-response record (the console): its
    /// wrap-up ends. Answers whether the seat was in wrap-up.
    WrapUpDone {
        seat_id: i64,
        reply: oneshot::Sender<bool>,
    },
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

    /// For the console: a submitted first-response record ends the seat's wrap-up.
    pub async fn wrap_up_done(&self, seat_id: i64) -> Result<bool, CoreError> {
        self.ask(|reply| CoreRequest::WrapUpDone { seat_id, reply })
            .await
    }
}
