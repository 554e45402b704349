//! The transaction table for one transport context: demultiplexing (§17.1.3, §17.2.3),
//! the deadline queue, and the drain-until-idle interface.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use super::envelope::{Kind, Method, TsxMessage, WireBuilder};
use super::error::TsxError;
use super::event::{LayerStats, PeerId, Transmit, TsxEvent, TsxState};
use super::key::{Role, TsxKey};
use super::machine::{Next, Sink, Tsx};
use super::timer::{Reliability, Timer, TimerConfig};

/// Live transactions allowed at once. At roughly 1–2 KiB per transaction (request plus one
/// response) this caps the table near 200 MiB, while 100 000 is far above what 64·T1 + T4
/// (37 s) of a busy trunk produces: 1 000 calls/s would need ~40 000.
pub const DEFAULT_MAX_TRANSACTIONS: usize = 100_000;

/// Slack over the live timer count before the deadline queue is rebuilt. Cancelled deadlines
/// stay queued until due (lazy deletion); rebuilding past this keeps the queue bounded by the
/// table, not by the request rate.
const QUEUE_SLACK: usize = 64;

/// Configuration of a [`TransactionLayer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerConfig {
    pub timers: TimerConfig,
    pub max_transactions: usize,
}

impl Default for LayerConfig {
    fn default() -> Self {
        LayerConfig {
            timers: TimerConfig::default(),
            max_transactions: DEFAULT_MAX_TRANSACTIONS,
        }
    }
}

/// Internal handle: deadline-queue entries refer to transactions by a never-reused number so
/// that they need not clone keys and cannot hit a later transaction with the same key.
type TsxId = u64;

/// All client and server transactions of one transport context (RFC 3261 §17), sans-IO.
///
/// Contract: after any `handle_*`/`send_*` call, drain [`Self::poll_transmit`] and
/// [`Self::poll_event`] until `None`, then sleep until [`Self::poll_timeout`] and call
/// [`Self::handle_timeout`]. The layer never reads a clock; `now` is always an input.
pub struct TransactionLayer {
    config: LayerConfig,
    builder: Box<dyn WireBuilder>,
    table: HashMap<TsxId, Tsx>,
    index: HashMap<TsxKey, TsxId>,
    next_id: TsxId,
    queue: BinaryHeap<Reverse<(Instant, u8, TsxId, Timer)>>,
    sink: Sink,
    stats: LayerStats,
}

impl std::fmt::Debug for TransactionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionLayer")
            .field("config", &self.config)
            .field("live", &self.table.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl TransactionLayer {
    pub fn new(
        config: LayerConfig,
        builder: Box<dyn WireBuilder>,
    ) -> Result<TransactionLayer, TsxError> {
        config.timers.validate()?;
        if config.max_transactions == 0 {
            return Err(TsxError::InvalidConfig("max_transactions must be positive"));
        }
        Ok(TransactionLayer {
            config,
            builder,
            table: HashMap::new(),
            index: HashMap::new(),
            next_id: 0,
            queue: BinaryHeap::new(),
            sink: Sink::default(),
            stats: LayerStats::default(),
        })
    }

    /// Feeds one message received from `from` over a transport of the given reliability.
    pub fn handle_incoming(
        &mut self,
        now: Instant,
        msg: TsxMessage,
        reliability: Reliability,
        from: PeerId,
    ) {
        match &msg.kind {
            Kind::Request { method } => {
                let is_ack = *method == Method::Ack;
                self.incoming_request(now, msg, is_ack, reliability, from);
            }
            Kind::Response { .. } => self.incoming_response(now, msg, from),
        }
    }

    fn incoming_request(
        &mut self,
        now: Instant,
        msg: TsxMessage,
        is_ack: bool,
        reliability: Reliability,
        from: PeerId,
    ) {
        let key = match TsxKey::for_server_request(&msg) {
            Ok(key) => key,
            Err(reason) => {
                self.sink
                    .events
                    .push_back(TsxEvent::NoTransactionMatch { msg, from, reason });
                return;
            }
        };
        if let Some(&id) = self.index.get(&key) {
            let Some(tsx) = self.table.get_mut(&id) else {
                return;
            };
            let next = if is_ack {
                tsx.on_ack(now, &self.config.timers, &mut self.sink)
            } else {
                tsx.on_retransmitted_request(&mut self.sink);
                Next::Stay
            };
            self.apply(id, next);
            return;
        }
        if is_ack {
            // §17.2.3: an ACK never creates a server transaction.
            self.sink
                .events
                .push_back(TsxEvent::AckFor2xx { msg, from });
            return;
        }
        if self.table.len() >= self.config.max_transactions {
            self.stats.overloaded += 1;
            self.sink
                .events
                .push_back(TsxEvent::Overloaded { msg, from });
            return;
        }
        let id = self.allocate_id();
        let tsx = Tsx::start_server(
            now,
            key.clone(),
            msg,
            from,
            reliability,
            &self.config.timers,
            &mut self.sink,
        );
        self.table.insert(id, tsx);
        self.index.insert(key, id);
        self.apply(id, Next::Stay);
    }

    fn incoming_response(&mut self, now: Instant, msg: TsxMessage, from: PeerId) {
        let id = TsxKey::for_client_response(&msg)
            .ok()
            .and_then(|key| self.index.get(&key).copied());
        let Some(id) = id else {
            self.sink
                .events
                .push_back(TsxEvent::StrayResponse { msg, from });
            return;
        };
        let Some(tsx) = self.table.get_mut(&id) else {
            return;
        };
        let next = tsx.on_response(
            now,
            msg,
            &self.config.timers,
            &*self.builder,
            &mut self.sink,
        );
        self.apply(id, next);
    }

    /// Starts a client transaction and queues the request for `to` (§17.1.1, §17.1.2).
    /// The TU must have put a fresh `z9hG4bK` branch in the top Via (§8.1.1.7).
    pub fn send_request(
        &mut self,
        now: Instant,
        msg: TsxMessage,
        to: PeerId,
        reliability: Reliability,
    ) -> Result<TsxKey, TsxError> {
        let method = msg.method().ok_or(TsxError::NotARequest)?;
        if *method == Method::Ack {
            return Err(TsxError::AckIsNotATransaction);
        }
        if msg.cseq_method != *method {
            return Err(TsxError::CSeqMethodMismatch {
                method: method.clone(),
                cseq: msg.cseq_method.clone(),
            });
        }
        let key = TsxKey::for_client_request(&msg).map_err(|_| TsxError::InvalidBranch)?;
        if self.index.contains_key(&key) {
            return Err(TsxError::DuplicateTransaction);
        }
        if self.table.len() >= self.config.max_transactions {
            return Err(TsxError::CapacityReached);
        }
        let id = self.allocate_id();
        let tsx = Tsx::start_client(
            now,
            key.clone(),
            msg,
            to,
            reliability,
            &self.config.timers,
            &mut self.sink,
        );
        self.table.insert(id, tsx);
        self.index.insert(key.clone(), id);
        self.apply(id, Next::Stay);
        Ok(key)
    }

    /// The TU answers the server transaction `key` (§17.2.1, §17.2.2).
    pub fn send_response(
        &mut self,
        now: Instant,
        key: &TsxKey,
        msg: TsxMessage,
    ) -> Result<(), TsxError> {
        if key.role() != Role::Server {
            return Err(TsxError::NotAServerTransaction);
        }
        let id = *self.index.get(key).ok_or(TsxError::UnknownTransaction)?;
        let tsx = self
            .table
            .get_mut(&id)
            .ok_or(TsxError::UnknownTransaction)?;
        let next = tsx.on_tu_response(now, msg, &self.config.timers, &mut self.sink)?;
        self.apply(id, next);
        Ok(())
    }

    /// Queues a message outside any transaction: the ACK for a 2xx (§13.2.2.4), a 2xx
    /// retransmission (§13.3.1.4) or a stateless 503 (§21.5.4).
    pub fn send_stateless(&mut self, to: PeerId, bytes: Arc<[u8]>) {
        self.sink.transmits.push_back(Transmit {
            to,
            bytes,
            key: None,
        });
    }

    /// The edge failed to send a message of transaction `key` (§17.1.1.2, §17.2.4).
    pub fn handle_transport_error(&mut self, key: &TsxKey) {
        let Some(&id) = self.index.get(key) else {
            return;
        };
        let Some(tsx) = self.table.get_mut(&id) else {
            return;
        };
        let next = tsx.on_transport_error(&mut self.sink);
        self.apply(id, next);
    }

    /// Fires every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, _, id, timer))) = self.queue.peek() {
            if at > now {
                break;
            }
            self.queue.pop();
            let Some(tsx) = self.table.get_mut(&id) else {
                continue;
            };
            if !tsx.timers().is_armed_at(timer, at) {
                continue;
            }
            let next = tsx.on_timer(
                now,
                timer,
                &self.config.timers,
                &*self.builder,
                &mut self.sink,
            );
            self.apply(id, next);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.sink.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TsxEvent> {
        self.sink.events.pop_front()
    }

    /// The earliest deadline of any live timer. Takes `&mut self` to discard deadlines of
    /// timers that were cancelled, so the caller never wakes for nothing.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, _, id, timer))) = self.queue.peek() {
            let live = self
                .table
                .get(&id)
                .is_some_and(|tsx| tsx.timers().is_armed_at(timer, at));
            if live {
                return Some(at);
            }
            self.queue.pop();
        }
        None
    }

    /// The live INVITE server transaction a CANCEL targets (§9.2), for the TU to answer the
    /// CANCEL 200 and the INVITE 487, or the CANCEL 481 when this returns `None`.
    pub fn find_invite_server_for_cancel(&self, cancel: &TsxMessage) -> Option<TsxKey> {
        let key = TsxKey::invite_for_cancel(cancel).ok()?;
        let id = self.index.get(&key)?;
        self.table
            .get(id)
            .filter(|tsx| tsx.is_invite_server())
            .map(|tsx| tsx.key().clone())
    }

    /// The state of a live transaction; `None` once it has terminated.
    pub fn state(&self, key: &TsxKey) -> Option<TsxState> {
        let id = self.index.get(key)?;
        self.table.get(id).map(Tsx::state)
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn stats(&self) -> LayerStats {
        self.stats
    }

    pub fn config(&self) -> &LayerConfig {
        &self.config
    }

    /// Queued deadlines, live or cancelled; for tests of the queue bound.
    #[cfg(test)]
    pub(crate) fn queued_deadlines(&self) -> usize {
        self.queue.len()
    }

    fn allocate_id(&mut self) -> TsxId {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// Commits the outputs of one step of transaction `id`.
    fn apply(&mut self, id: TsxId, next: Next) {
        for (timer, at) in self.sink.armed.drain(..) {
            self.queue.push(Reverse((at, timer.priority(), id, timer)));
        }
        self.stats.absorbed_retransmissions += std::mem::take(&mut self.sink.absorbed);
        self.stats.discarded += std::mem::take(&mut self.sink.discarded);
        if next == Next::Terminate {
            if let Some(tsx) = self.table.remove(&id) {
                let key = tsx.key().clone();
                self.index.remove(&key);
                self.sink.events.push_back(TsxEvent::Terminated { key });
            }
        }
        self.compact_queue_if_bloated();
    }

    fn compact_queue_if_bloated(&mut self) {
        let limit = self
            .table
            .len()
            .saturating_mul(4)
            .saturating_add(QUEUE_SLACK);
        if self.queue.len() <= limit {
            return;
        }
        self.queue = self
            .table
            .iter()
            .flat_map(|(&id, tsx)| {
                tsx.timers()
                    .iter()
                    .map(move |(timer, at)| Reverse((at, timer.priority(), id, timer)))
            })
            .collect();
    }
}
