//! SIP transactions (RFC 3261 §17), sans-IO.
//!
//! A [`TransactionLayer`] owns every client and server transaction of one transport context.
//! It never touches a socket or a clock: the edge feeds it messages and `now`, drains
//! [`TransactionLayer::poll_transmit`] and [`TransactionLayer::poll_event`], and sleeps until
//! [`TransactionLayer::poll_timeout`]. Timers are data ([`Timer`]), named as in RFC 3261 §A.
//!
//! Messages are seen through [`TsxMessage`], the few fields §17 matches on plus the opaque
//! wire bytes; the two messages the layer must originate (ACK for a non-2xx, 100 Trying)
//! come from a [`WireBuilder`] the integrator implements with the message layer.
//!
//! Choices beyond the RFC text:
//! * Only RFC 3261 branches (`z9hG4bK…`) are matched; others reach the TU as
//!   [`TsxEvent::NoTransactionMatch`] for stateless handling (§17.2.3's RFC 2543 rules are
//!   not implemented).
//! * 100 Trying is sent by the layer when the TU has not answered an INVITE within
//!   [`TimerConfig::trying_delay`] (default 200 ms, §17.2.1).
//! * The INVITE client transaction in Proceeding is bounded by Timer C (default 181 s), so a
//!   lost final response cannot keep it alive forever.
//! * Pure RFC 3261 (not RFC 6026): an INVITE server transaction ends on 2xx, so a late INVITE
//!   retransmission reaches the TU as a new request, which the dialog layer recognises by
//!   Call-ID/CSeq and answers with its 2xx again; 2xx retransmissions are the TU's job, see
//!   [`Uas2xxRetransmitter`].
//! * Over reliable transports the zero-length wait timers (D, I, J, K) are not armed: the
//!   transaction terminates on the spot.
//! * Server transactions have no timer before the TU answers: the TU must answer every
//!   [`TsxEvent::NewRequest`]; [`LayerConfig::max_transactions`] bounds memory regardless.
//!
//! # INVITE client transaction (§17.1.1, figure 5)
//!
//! ```text
//!                         |INVITE from TU
//!       Timer A fires     |INVITE sent        Timer B fires
//!       Reset A,          V                   -> Timeout to TU
//!       INVITE sent +-----------+
//!         +---------|  Calling  |----------------------------+
//!         |         +-----------+                            |
//!         +-------->|  |     |                               |
//!                   |  |1xx  |2xx -> TU                      |
//!  300-699 -> TU,   |  |->TU +---------------------------+   |
//!  ACK sent         |  V                                 |   |
//!        +----------|+-----------+  Timer C fires        |   |
//!        |           | Proceeding|-> Timeout to TU ------+-->|
//!        |           +-----------+                       |   |
//!        |  300-699   |  |1xx -> TU, reset C             |   |
//!        |  -> TU,    |  |2xx -> TU ---------------------+   |
//!        |  ACK sent  |  |                               |   |
//!        V            V  +-<-+                           |   |
//!      +-----------+                                     |   |
//!      | Completed |  300-699: ACK resent                |   |
//!      +-----------+                                     |   |
//!            | Timer D fires (0 s over reliable)         |   |
//!            V                                           V   V
//!      +-----------------------------------------------------+
//!      |                     Terminated                      |
//!      +-----------------------------------------------------+
//! ```
//!
//! # non-INVITE client transaction (§17.1.2, figure 6)
//!
//! ```text
//!                         |request from TU, request sent
//!   Timer E: resend,      V
//!   E = min(2E, T2) +-----------+   Timer F or transport error -> inform TU
//!         +---------|  Trying   |-------------------------------+
//!         +-------->+-----------+                               |
//!                     |       |200-699 -> TU                    |
//!                1xx  |       +--------------------+            |
//!                -> TU|                            |            |
//!   Timer E: resend,  V                            |            |
//!   E = T2      +-----------+  Timer F -> inform TU|            |
//!         +-----| Proceeding|----------------------+----------->|
//!         +---->+-----------+ 200-699 -> TU        |            |
//!               1xx -> TU  |                       |            |
//!                          V                       V            |
//!                    +-----------+                              |
//!                    | Completed | responses absorbed           |
//!                    +-----------+                              |
//!                          | Timer K (0 s over reliable)        |
//!                          V                                    V
//!                    +------------------------------------------+
//!                    |                Terminated                |
//!                    +------------------------------------------+
//! ```
//!
//! # INVITE server transaction (§17.2.1, figure 7)
//!
//! ```text
//!                     |INVITE -> TU (NewRequest); 100 after trying_delay if TU silent
//!   INVITE: resend    V
//!   last 1xx   +-----------+   2xx from TU: sent (TU retransmits it, §13.3.1.4)
//!     +--------| Proceeding|-----------------------------------+
//!     +------->+-----------+                                   |
//!               |  1xx from TU: sent                           |
//!               |  300-699 from TU: sent, arm G (UDP) and H    |
//!   INVITE: resend final                                       |
//!   Timer G: resend,  V                                        |
//!   G = min(2G, T2)+-----------+  Timer H -> Timeout to TU     |
//!     +------------| Completed |-----------------------------> |
//!     +----------->+-----------+                               |
//!                      | ACK                                   |
//!                      V                                       |
//!                 +-----------+ ACK, INVITE: absorbed          |
//!                 | Confirmed |                                |
//!                 +-----------+                                |
//!                      | Timer I (0 s over reliable)           |
//!                      V                                       V
//!                 +--------------------------------------------+
//!                 |                 Terminated                 |
//!                 +--------------------------------------------+
//! ```
//!
//! # non-INVITE server transaction (§17.2.2, figure 8)
//!
//! ```text
//!                       |request -> TU (NewRequest)
//!                       V
//!   request:       +-----------+  200-699 from TU: sent
//!   absorbed  +----|  Trying   |-----------------------+
//!             +--->+-----------+                       |
//!                       | 1xx from TU: sent            |
//!   request: resend     V                              |
//!   last 1xx  +----+-----------+  200-699 from TU: sent|
//!             |    | Proceeding|---------------------->|
//!             +--->+-----------+                       |
//!                   1xx from TU: sent                  V
//!                                  request:     +-----------+
//!                                  resend final | Completed |
//!                                               +-----------+
//!                                                     | Timer J (0 s over reliable)
//!                                                     V
//!                                               +------------+
//!                                               | Terminated |
//!                                               +------------+
//! ```

pub mod envelope;
mod error;
mod event;
mod key;
mod layer;
mod machine;
mod timer;
mod uas;

#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod testkit;

pub use envelope::{Kind, Method, TsxMessage, WireBuilder};
pub use error::TsxError;
pub use event::{LayerStats, NoMatchReason, PeerId, Transmit, TsxEvent, TsxState};
pub use key::{Role, TsxKey, Unmatchable, MAGIC_COOKIE, MAX_KEY_FIELD_LEN};
pub use layer::{LayerConfig, TransactionLayer, DEFAULT_MAX_TRANSACTIONS};
pub use timer::{
    Reliability, Timer, TimerConfig, DEFAULT_T1, DEFAULT_T2, DEFAULT_T4, DEFAULT_TIMER_C,
    DEFAULT_TIMER_D, DEFAULT_TRYING_DELAY,
};
pub use uas::{Uas2xxEvent, Uas2xxRetransmitter, Uas2xxState};
