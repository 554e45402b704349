//! Requests from other tasks (the control socket, the web console) to the call core.
//!
//! The core task owns the sans-IO endpoint, so nothing else may touch call or seat state.
//! Other tasks hold a [`CoreHandle`] and send a [`CoreRequest`] carrying a oneshot for the
//! answer; the core answers between two inputs, never awaiting, so a request costs the call
//! path one message. New live commands add a variant here and an arm in
//! `sip::Core::handle_request`.

use tokio::sync::{mpsc, oneshot};

use crate::sip::b2bua::B2buaStats;

/// How many requests may wait for the core; more get [`CoreError::Busy`].
pub const REQUEST_QUEUE: usize = 256;

#[derive(Debug)]
pub enum CoreRequest {
    /// Counters of the call path.
    Stats(oneshot::Sender<B2buaStats>),
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
