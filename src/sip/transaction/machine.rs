//! The four RFC 3261 §17 state machines. Each reacts to one input and writes its outputs
//! into a [`Sink`]; the layer owns the table and the timer queue.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::envelope::{Method, StatusClass, TsxMessage, WireBuilder};
use super::error::TsxError;
use super::event::{PeerId, Transmit, TsxEvent, TsxState};
use super::key::TsxKey;
use super::timer::{deadline, ArmedTimers, Reliability, Timer, TimerConfig};

/// Outputs produced while handling one input.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<TsxEvent>,
    /// Timers armed during this step, for the layer's deadline queue.
    pub(crate) armed: Vec<(Timer, Instant)>,
    pub(crate) absorbed: u64,
    pub(crate) discarded: u64,
}

/// Whether the transaction survives the step (§17: "transition to Terminated" means removal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Stay,
    Terminate,
}

/// §17.1.1 figure 5.
#[derive(Debug)]
enum InviteClient {
    Calling {
        interval: Duration,
    },
    Proceeding,
    /// The ACK is kept to answer retransmitted finals (§17.1.1.2).
    Completed {
        ack: Option<Arc<[u8]>>,
    },
}

/// §17.1.2 figure 6. Proceeding always retransmits at T2.
#[derive(Debug)]
enum NonInviteClient {
    Trying { interval: Duration },
    Proceeding,
    Completed,
}

/// §17.2.1 figure 7.
#[derive(Debug)]
enum InviteServer {
    Proceeding {
        provisional: Option<Arc<[u8]>>,
    },
    Completed {
        response: Arc<[u8]>,
        interval: Duration,
    },
    Confirmed,
}

/// §17.2.2 figure 8.
#[derive(Debug)]
enum NonInviteServer {
    Trying,
    Proceeding { provisional: Arc<[u8]> },
    Completed { response: Arc<[u8]> },
}

#[derive(Debug)]
enum Machine {
    InviteClient(InviteClient),
    NonInviteClient(NonInviteClient),
    InviteServer(InviteServer),
    NonInviteServer(NonInviteServer),
}

/// One live transaction. Its memory is bounded: the request, at most one stored response or
/// ACK (all `Arc`s of messages the message layer has already size-capped) and two timers.
#[derive(Debug)]
pub(crate) struct Tsx {
    key: TsxKey,
    peer: PeerId,
    reliability: Reliability,
    request: TsxMessage,
    machine: Machine,
    timers: ArmedTimers,
}

impl Tsx {
    /// Starts a client transaction and sends the request (§17.1.1.2, §17.1.2.2).
    pub(crate) fn start_client(
        now: Instant,
        key: TsxKey,
        request: TsxMessage,
        peer: PeerId,
        reliability: Reliability,
        cfg: &TimerConfig,
        sink: &mut Sink,
    ) -> Tsx {
        let invite = request.method() == Some(&Method::Invite);
        let (retransmit, timeout) = if invite {
            (Timer::A, Timer::B)
        } else {
            (Timer::E, Timer::F)
        };
        let machine = if invite {
            Machine::InviteClient(InviteClient::Calling { interval: cfg.t1 })
        } else {
            Machine::NonInviteClient(NonInviteClient::Trying { interval: cfg.t1 })
        };
        let mut tsx = Tsx {
            key,
            peer,
            reliability,
            request,
            machine,
            timers: ArmedTimers::default(),
        };
        tsx.send(sink, tsx.request.bytes.clone());
        tsx.arm_initial(now, retransmit, cfg, sink);
        tsx.arm_initial(now, timeout, cfg, sink);
        tsx
    }

    /// Creates a server transaction for a new request and tells the TU (§17.2.1, §17.2.2).
    pub(crate) fn start_server(
        now: Instant,
        key: TsxKey,
        request: TsxMessage,
        peer: PeerId,
        reliability: Reliability,
        cfg: &TimerConfig,
        sink: &mut Sink,
    ) -> Tsx {
        let invite = request.method() == Some(&Method::Invite);
        let machine = if invite {
            Machine::InviteServer(InviteServer::Proceeding { provisional: None })
        } else {
            Machine::NonInviteServer(NonInviteServer::Trying)
        };
        let mut tsx = Tsx {
            key: key.clone(),
            peer,
            reliability,
            request: request.clone(),
            machine,
            timers: ArmedTimers::default(),
        };
        if invite {
            tsx.arm_initial(now, Timer::Trying, cfg, sink);
        }
        sink.events.push_back(TsxEvent::NewRequest {
            key,
            msg: request,
            from: peer,
        });
        tsx
    }

    pub(crate) fn key(&self) -> &TsxKey {
        &self.key
    }

    pub(crate) fn timers(&self) -> &ArmedTimers {
        &self.timers
    }

    pub(crate) fn state(&self) -> TsxState {
        match &self.machine {
            Machine::InviteClient(InviteClient::Calling { .. }) => TsxState::Calling,
            Machine::InviteClient(InviteClient::Proceeding) => TsxState::Proceeding,
            Machine::InviteClient(InviteClient::Completed { .. }) => TsxState::Completed,
            Machine::NonInviteClient(NonInviteClient::Trying { .. }) => TsxState::Trying,
            Machine::NonInviteClient(NonInviteClient::Proceeding) => TsxState::Proceeding,
            Machine::NonInviteClient(NonInviteClient::Completed) => TsxState::Completed,
            Machine::InviteServer(InviteServer::Proceeding { .. }) => TsxState::Proceeding,
            Machine::InviteServer(InviteServer::Completed { .. }) => TsxState::Completed,
            Machine::InviteServer(InviteServer::Confirmed) => TsxState::Confirmed,
            Machine::NonInviteServer(NonInviteServer::Trying) => TsxState::Trying,
            Machine::NonInviteServer(NonInviteServer::Proceeding { .. }) => TsxState::Proceeding,
            Machine::NonInviteServer(NonInviteServer::Completed { .. }) => TsxState::Completed,
        }
    }

    pub(crate) fn is_invite_server(&self) -> bool {
        matches!(self.machine, Machine::InviteServer(_))
    }

    /// A response matched this client transaction (§17.1.3).
    pub(crate) fn on_response(
        &mut self,
        now: Instant,
        msg: TsxMessage,
        cfg: &TimerConfig,
        builder: &dyn WireBuilder,
        sink: &mut Sink,
    ) -> Next {
        let Some(class) = msg.status().and_then(StatusClass::of) else {
            sink.discarded += 1;
            return Next::Stay;
        };
        match &mut self.machine {
            Machine::InviteClient(InviteClient::Calling { .. } | InviteClient::Proceeding) => {
                match class {
                    StatusClass::Provisional => {
                        self.machine = Machine::InviteClient(InviteClient::Proceeding);
                        self.timers.clear();
                        self.arm_initial(now, Timer::C, cfg, sink);
                        self.report(sink, msg);
                        Next::Stay
                    }
                    // §17.1.1.2: a 2xx ends the transaction; its ACK belongs to the TU.
                    StatusClass::Success => {
                        self.report(sink, msg);
                        Next::Terminate
                    }
                    StatusClass::Failure => {
                        let ack = builder
                            .ack_for_non_2xx(&self.request, &msg)
                            .map(|ack| ack.bytes);
                        if let Some(bytes) = &ack {
                            self.send(sink, bytes.clone());
                        }
                        self.report(sink, msg);
                        self.machine = Machine::InviteClient(InviteClient::Completed { ack });
                        self.timers.clear();
                        self.wait_or_end(now, Timer::D, cfg, sink)
                    }
                }
            }
            Machine::InviteClient(InviteClient::Completed { ack }) => {
                match class {
                    StatusClass::Failure => {
                        // §17.1.1.2: retransmitted final, answer with the same ACK.
                        sink.absorbed += 1;
                        if let Some(bytes) = ack.clone() {
                            self.send(sink, bytes);
                        }
                    }
                    // A 2xx from another fork after our non-2xx: only the TU can ACK and BYE
                    // it (§13.2.2.4), and it handles those as stray responses.
                    StatusClass::Success => sink.events.push_back(TsxEvent::StrayResponse {
                        msg,
                        from: self.peer,
                    }),
                    StatusClass::Provisional => sink.discarded += 1,
                }
                Next::Stay
            }
            Machine::NonInviteClient(
                NonInviteClient::Trying { .. } | NonInviteClient::Proceeding,
            ) => {
                if class == StatusClass::Provisional {
                    // §17.1.2.2: Timer E keeps running, at T2 from the next firing on.
                    self.machine = Machine::NonInviteClient(NonInviteClient::Proceeding);
                    self.report(sink, msg);
                    Next::Stay
                } else {
                    self.report(sink, msg);
                    self.machine = Machine::NonInviteClient(NonInviteClient::Completed);
                    self.timers.clear();
                    self.wait_or_end(now, Timer::K, cfg, sink)
                }
            }
            Machine::NonInviteClient(NonInviteClient::Completed) => {
                sink.absorbed += 1;
                Next::Stay
            }
            Machine::InviteServer(_) | Machine::NonInviteServer(_) => {
                sink.discarded += 1;
                Next::Stay
            }
        }
    }

    /// A request with this server transaction's key arrived again: a retransmission
    /// (§17.2.1, §17.2.2). The latest response is resent, if any.
    pub(crate) fn on_retransmitted_request(&mut self, sink: &mut Sink) {
        sink.absorbed += 1;
        let resend = match &self.machine {
            Machine::InviteServer(InviteServer::Proceeding { provisional }) => provisional.clone(),
            Machine::InviteServer(InviteServer::Completed { response, .. }) => {
                Some(response.clone())
            }
            Machine::NonInviteServer(NonInviteServer::Proceeding { provisional }) => {
                Some(provisional.clone())
            }
            Machine::NonInviteServer(NonInviteServer::Completed { response }) => {
                Some(response.clone())
            }
            _ => None,
        };
        if let Some(bytes) = resend {
            self.send(sink, bytes);
        }
    }

    /// An ACK matched this INVITE server transaction (§17.2.1).
    pub(crate) fn on_ack(&mut self, now: Instant, cfg: &TimerConfig, sink: &mut Sink) -> Next {
        match &self.machine {
            Machine::InviteServer(InviteServer::Completed { .. }) => {
                self.machine = Machine::InviteServer(InviteServer::Confirmed);
                self.timers.clear();
                self.wait_or_end(now, Timer::I, cfg, sink)
            }
            Machine::InviteServer(InviteServer::Confirmed) => {
                sink.absorbed += 1;
                Next::Stay
            }
            _ => {
                sink.discarded += 1;
                Next::Stay
            }
        }
    }

    /// The TU answers this server transaction (§17.2.1, §17.2.2).
    pub(crate) fn on_tu_response(
        &mut self,
        now: Instant,
        msg: TsxMessage,
        cfg: &TimerConfig,
        sink: &mut Sink,
    ) -> Result<Next, TsxError> {
        let status = msg.status().ok_or(TsxError::NotAResponse)?;
        let class = StatusClass::of(status).ok_or(TsxError::InvalidStatus(status))?;
        let bytes = msg.bytes;
        match &self.machine {
            Machine::InviteServer(InviteServer::Proceeding { .. }) => {
                self.timers.disarm(Timer::Trying);
                self.send(sink, bytes.clone());
                match class {
                    StatusClass::Provisional => {
                        self.machine = Machine::InviteServer(InviteServer::Proceeding {
                            provisional: Some(bytes),
                        });
                        Ok(Next::Stay)
                    }
                    // §17.2.1: 2xx retransmission is the TU's job (§13.3.1.4).
                    StatusClass::Success => Ok(Next::Terminate),
                    StatusClass::Failure => {
                        self.machine = Machine::InviteServer(InviteServer::Completed {
                            response: bytes,
                            interval: cfg.t1,
                        });
                        self.arm_initial(now, Timer::G, cfg, sink);
                        self.arm_initial(now, Timer::H, cfg, sink);
                        Ok(Next::Stay)
                    }
                }
            }
            Machine::NonInviteServer(
                NonInviteServer::Trying | NonInviteServer::Proceeding { .. },
            ) => {
                self.send(sink, bytes.clone());
                if class == StatusClass::Provisional {
                    self.machine = Machine::NonInviteServer(NonInviteServer::Proceeding {
                        provisional: bytes,
                    });
                    Ok(Next::Stay)
                } else {
                    self.machine =
                        Machine::NonInviteServer(NonInviteServer::Completed { response: bytes });
                    Ok(self.wait_or_end(now, Timer::J, cfg, sink))
                }
            }
            Machine::InviteServer(_) | Machine::NonInviteServer(_) => {
                Err(TsxError::ResponseAfterFinal)
            }
            Machine::InviteClient(_) | Machine::NonInviteClient(_) => {
                Err(TsxError::NotAServerTransaction)
            }
        }
    }

    /// A timer armed on this transaction is due. The caller has checked it is still armed.
    pub(crate) fn on_timer(
        &mut self,
        now: Instant,
        timer: Timer,
        cfg: &TimerConfig,
        builder: &dyn WireBuilder,
        sink: &mut Sink,
    ) -> Next {
        self.timers.disarm(timer);
        match (&mut self.machine, timer) {
            (Machine::InviteClient(InviteClient::Calling { interval }), Timer::A) => {
                // §17.1.1.2: A doubles without the T2 cap that non-INVITE uses.
                *interval = interval.saturating_mul(2);
                let next = *interval;
                self.send(sink, self.request.bytes.clone());
                self.arm(now, Timer::A, next, sink);
                Next::Stay
            }
            (Machine::NonInviteClient(NonInviteClient::Trying { interval }), Timer::E) => {
                *interval = interval.saturating_mul(2).min(cfg.t2);
                let next = *interval;
                self.send(sink, self.request.bytes.clone());
                self.arm(now, Timer::E, next, sink);
                Next::Stay
            }
            (Machine::NonInviteClient(NonInviteClient::Proceeding), Timer::E) => {
                self.send(sink, self.request.bytes.clone());
                self.arm(now, Timer::E, cfg.t2, sink);
                Next::Stay
            }
            (Machine::InviteServer(InviteServer::Completed { response, interval }), Timer::G) => {
                *interval = interval.saturating_mul(2).min(cfg.t2);
                let next = *interval;
                let bytes = response.clone();
                self.send(sink, bytes);
                self.arm(now, Timer::G, next, sink);
                Next::Stay
            }
            (Machine::InviteServer(InviteServer::Proceeding { provisional }), Timer::Trying) => {
                if provisional.is_none() {
                    if let Some(trying) = builder.trying_for(&self.request) {
                        *provisional = Some(trying.bytes.clone());
                        self.send(sink, trying.bytes);
                    }
                }
                Next::Stay
            }
            (
                Machine::InviteClient(InviteClient::Calling { .. })
                | Machine::NonInviteClient(_)
                | Machine::InviteServer(InviteServer::Completed { .. }),
                Timer::B | Timer::F | Timer::H,
            )
            | (Machine::InviteClient(InviteClient::Proceeding), Timer::C) => {
                sink.events.push_back(TsxEvent::Timeout {
                    key: self.key.clone(),
                    timer,
                });
                Next::Terminate
            }
            (Machine::InviteClient(InviteClient::Completed { .. }), Timer::D)
            | (Machine::InviteServer(InviteServer::Confirmed), Timer::I)
            | (Machine::NonInviteServer(NonInviteServer::Completed { .. }), Timer::J)
            | (Machine::NonInviteClient(NonInviteClient::Completed), Timer::K) => Next::Terminate,
            // Unreachable while arming and state changes agree; ignoring is the safe reading.
            _ => Next::Stay,
        }
    }

    /// The edge could not deliver a message of this transaction (§17.1.1.2, §17.2.4).
    pub(crate) fn on_transport_error(&mut self, sink: &mut Sink) -> Next {
        sink.events.push_back(TsxEvent::TransportError {
            key: self.key.clone(),
        });
        Next::Terminate
    }

    fn report(&self, sink: &mut Sink, msg: TsxMessage) {
        sink.events.push_back(TsxEvent::Response {
            key: self.key.clone(),
            msg,
        });
    }

    fn send(&self, sink: &mut Sink, bytes: Arc<[u8]>) {
        sink.transmits.push_back(Transmit {
            to: self.peer,
            bytes,
            key: Some(self.key.clone()),
        });
    }

    fn arm(&mut self, now: Instant, timer: Timer, after: Duration, sink: &mut Sink) {
        let at = deadline(now, after);
        self.timers.arm(timer, at);
        sink.armed.push((timer, at));
    }

    /// Arms `timer` with its RFC initial value, unless the transport makes it unused.
    fn arm_initial(&mut self, now: Instant, timer: Timer, cfg: &TimerConfig, sink: &mut Sink) {
        if let Some(after) = cfg.initial(timer, self.reliability) {
            self.arm(now, timer, after, sink);
        }
    }

    /// Wait timers (D, I, J, K) are zero over reliable transports: the RFC's "transition to
    /// Terminated immediately" is taken literally instead of arming a zero timer.
    fn wait_or_end(
        &mut self,
        now: Instant,
        timer: Timer,
        cfg: &TimerConfig,
        sink: &mut Sink,
    ) -> Next {
        match cfg.initial(timer, self.reliability) {
            Some(after) if !after.is_zero() => {
                self.arm(now, timer, after, sink);
                Next::Stay
            }
            _ => Next::Terminate,
        }
    }
}
