//! What the transaction layer hands back to its caller: datagrams to send and events for the TU.

use std::sync::Arc;

use super::envelope::TsxMessage;
use super::key::{TsxKey, Unmatchable};
use super::timer::Timer;

/// An opaque peer identity chosen by the transport edge (a socket address, a connection id).
/// Responses go back to the peer a request came from, the rport-like behaviour of
/// RFC 3581 that is also what §18.2.2 amounts to for connection-oriented transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// One message for the edge to put on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub to: PeerId,
    pub bytes: Arc<[u8]>,
    /// The transaction that sent it, so a send failure can be reported back through
    /// [`super::TransactionLayer::handle_transport_error`] (§17.1.1.2, §17.2.4).
    pub key: Option<TsxKey>,
}

/// Why a request could not be matched statefully and is handed to the TU as is.
pub type NoMatchReason = Unmatchable;

/// Something the TU must learn about or act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TsxEvent {
    /// A new server transaction exists; the TU must answer it with
    /// [`super::TransactionLayer::send_response`].
    NewRequest {
        key: TsxKey,
        msg: TsxMessage,
        from: PeerId,
    },
    /// A response on a client transaction. Provisional ones may repeat (§17.1.1.2); at most
    /// one final response is ever reported per transaction.
    Response { key: TsxKey, msg: TsxMessage },
    /// Timer B, C, F or H fired: the transaction failed (§17.1.1.2, §17.1.2.2, §17.2.1). The
    /// TU treats a client timeout as 408 (§8.1.3.1).
    Timeout { key: TsxKey, timer: Timer },
    /// The edge reported that a send for this transaction failed (§17.1.1.2, §17.2.4).
    TransportError { key: TsxKey },
    /// The transaction has been removed from the table.
    Terminated { key: TsxKey },
    /// An ACK that matches no INVITE server transaction: the ACK for a 2xx, which the TU
    /// (dialog layer) consumes (§17.2.3, §13.3.1.4).
    AckFor2xx { msg: TsxMessage, from: PeerId },
    /// A response that matches no live client transaction, typically a retransmitted 2xx
    /// after the INVITE client transaction ended; the UAC core re-sends its ACK (§13.2.2.4,
    /// §17.1.1.2).
    StrayResponse { msg: TsxMessage, from: PeerId },
    /// A new request arrived while the table is full: the TU should answer it 503
    /// statelessly (§21.5.4) via [`super::TransactionLayer::send_stateless`].
    Overloaded { msg: TsxMessage, from: PeerId },
    /// A request the layer does not match statefully (no magic cookie, oversized key).
    NoTransactionMatch {
        msg: TsxMessage,
        from: PeerId,
        reason: NoMatchReason,
    },
}

/// The observable state of a live transaction (§17 figures 5–8). Terminated transactions are
/// removed, so they have no state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TsxState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
}

/// Counters for monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Retransmitted requests or responses absorbed by a live transaction.
    pub absorbed_retransmissions: u64,
    /// Messages dropped because no state accepts them (e.g. a 1xx after a final response).
    pub discarded: u64,
    /// New requests refused because the table was full.
    pub overloaded: u64,
}
