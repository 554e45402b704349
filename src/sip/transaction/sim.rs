//! A two-endpoint simulated network (quinn's `Pair`, str0m's netem) with seeded loss,
//! duplication and reordering, carrying INVITE/100/180/200/ACK/BYE/200, INVITE/486/ACK and
//! OPTIONS/200 between a client layer and a server layer with toy TUs on top.
//!
//! Checked per run: every transaction terminates exactly once and within its RFC bound; each
//! client transaction gets exactly one outcome (a final response or a timeout, never both);
//! timeouts fire exactly at 64·T1 (B, F, H) or at Timer C; retransmissions never reach the TU
//! twice; both tables are empty at the end.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::testkit::{decode, in_dialog, layer, request, response_to, Clock};
use super::*;

const CLIENT: PeerId = PeerId(1);
const SERVER: PeerId = PeerId(2);
const UDP: Reliability = Reliability::Unreliable;
/// 64·T1 + T4 with the default timers: the longest any transaction may outlive its last
/// message or TU action (Timer H then Timer I; Timer F; final response then Timer K).
const LIFETIME_BOUND_MS: u64 = 37_000;
/// The simulation gives up (and fails) past this: twice the longest legitimate run.
const SIM_LIMIT_MS: u64 = 600_000;

#[derive(Clone, Copy, Debug)]
struct NetParams {
    loss: f64,
    duplicate: f64,
    min_delay_ms: u64,
    max_delay_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlowKind {
    Call { accept: bool },
    Options,
}

#[derive(Debug)]
struct Flow {
    kind: FlowKind,
    start_ms: u64,
    request: TsxMessage,
    key: Option<TsxKey>,
    ack: Option<TsxMessage>,
    bye: Option<TsxKey>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Side {
    Client,
    Server,
}

/// What the harness saw of one transaction.
#[derive(Debug)]
struct Record {
    side: Side,
    key: TsxKey,
    created_ms: u64,
    last_activity_ms: u64,
    /// An INVITE client whose latest response was a 1xx is bounded by Timer C instead.
    in_proceeding: bool,
    finals: Vec<u16>,
    timeouts: Vec<(u64, Timer)>,
    terminated_ms: Option<u64>,
}

#[derive(Debug)]
struct ServerCall {
    ok: Option<TsxMessage>,
    uas: Option<Uas2xxRetransmitter>,
    acked: bool,
    gave_up_ms: Option<u64>,
}

#[derive(Debug)]
enum Action {
    Start(usize),
    Respond { key: TsxKey, status: u16 },
}

/// A datagram in flight: (deliver at ms, sequence for stable order, to, from, bytes).
type Packet = (u64, u64, PeerId, PeerId, Arc<[u8]>);

struct Sim {
    clock: Clock,
    now: u64,
    rng: StdRng,
    net: NetParams,
    in_flight: BinaryHeap<Reverse<Packet>>,
    seq: u64,
    client: TransactionLayer,
    server: TransactionLayer,
    timers: TimerConfig,
    flows: Vec<Flow>,
    records: Vec<Record>,
    live: HashMap<(Side, TsxKey), usize>,
    calls: HashMap<String, ServerCall>,
    actions: Vec<(u64, Action)>,
    unexpected: Vec<String>,
}

impl Sim {
    fn new(seed: u64, net: NetParams, flows: usize) -> Sim {
        let config = LayerConfig::default();
        let mut sim = Sim {
            clock: Clock::new(),
            now: 0,
            rng: StdRng::seed_from_u64(seed),
            net,
            in_flight: BinaryHeap::new(),
            seq: 0,
            client: layer(config),
            server: layer(config),
            timers: config.timers,
            flows: Vec::new(),
            records: Vec::new(),
            live: HashMap::new(),
            calls: HashMap::new(),
            actions: Vec::new(),
            unexpected: Vec::new(),
        };
        for f in 0..flows {
            let (kind, method) = match f % 3 {
                0 => (FlowKind::Call { accept: true }, Method::Invite),
                1 => (FlowKind::Options, Method::Options),
                _ => (FlowKind::Call { accept: false }, Method::Invite),
            };
            let start_ms = 150 * f as u64;
            sim.flows.push(Flow {
                kind,
                start_ms,
                request: request(method, &format!("z9hG4bKflow{f}"), 1),
                key: None,
                ack: None,
                bye: None,
            });
            sim.actions.push((start_ms, Action::Start(f)));
        }
        sim
    }

    fn run(&mut self) {
        loop {
            self.pump();
            let Some(next) = self.next_deadline() else {
                break;
            };
            assert!(next >= self.now, "time went backwards");
            assert!(next <= SIM_LIMIT_MS, "simulation did not settle");
            self.now = next;
            let at = self.clock.at(next);
            while let Some(Reverse((t, _, to, from, bytes))) = self.in_flight.peek().cloned() {
                if t > next {
                    break;
                }
                self.in_flight.pop();
                let Some(msg) = decode(&bytes) else {
                    self.unexpected.push("undecodable packet".into());
                    continue;
                };
                match to {
                    CLIENT => self.client.handle_incoming(at, msg, UDP, from),
                    _ => self.server.handle_incoming(at, msg, UDP, from),
                }
                self.pump();
            }
            self.client.handle_timeout(at);
            self.server.handle_timeout(at);
            self.pump();
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.actions)
                .into_iter()
                .partition(|(t, _)| *t <= next);
            self.actions = later;
            for (_, action) in due {
                self.act(action);
                self.pump();
            }
            for call in self.calls.values_mut() {
                if let Some(uas) = call.uas.as_mut() {
                    uas.handle_timeout(at);
                }
            }
        }
    }

    fn next_deadline(&mut self) -> Option<u64> {
        let clock = self.clock;
        let net = self.in_flight.peek().map(|Reverse((t, ..))| *t);
        let client = self.client.poll_timeout().map(|t| clock.ms_of(t));
        let server = self.server.poll_timeout().map(|t| clock.ms_of(t));
        let actions = self.actions.iter().map(|(t, _)| *t).min();
        let uas = self
            .calls
            .values()
            .filter_map(|c| c.uas.as_ref().and_then(Uas2xxRetransmitter::poll_timeout))
            .map(|t| clock.ms_of(t))
            .min();
        [net, client, server, actions, uas]
            .into_iter()
            .flatten()
            .min()
    }

    fn put_on_wire(&mut self, from: PeerId, tx: Transmit) {
        if self.rng.gen_bool(self.net.loss) {
            return;
        }
        let copies = if self.rng.gen_bool(self.net.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self
                .rng
                .gen_range(self.net.min_delay_ms..=self.net.max_delay_ms);
            self.seq += 1;
            self.in_flight.push(Reverse((
                self.now + delay,
                self.seq,
                tx.to,
                from,
                tx.bytes.clone(),
            )));
        }
    }

    /// Drains both layers and the 2xx retransmitters until nothing is left to do.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(tx) = self.client.poll_transmit() {
                self.put_on_wire(CLIENT, tx);
                progressed = true;
            }
            while let Some(tx) = self.server.poll_transmit() {
                self.put_on_wire(SERVER, tx);
                progressed = true;
            }
            let mut uas_out = Vec::new();
            for call in self.calls.values_mut() {
                if let Some(uas) = call.uas.as_mut() {
                    while let Some(tx) = uas.poll_transmit() {
                        uas_out.push(tx);
                    }
                    if uas.poll_event() == Some(Uas2xxEvent::GaveUp) {
                        call.gave_up_ms = Some(self.now);
                    }
                }
            }
            for tx in uas_out {
                self.put_on_wire(SERVER, tx);
                progressed = true;
            }
            while let Some(ev) = self.client.poll_event() {
                self.client_tu(ev);
                progressed = true;
            }
            while let Some(ev) = self.server.poll_event() {
                self.server_tu(ev);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    fn open_record(&mut self, side: Side, key: TsxKey) {
        if self.live.contains_key(&(side, key.clone())) {
            self.unexpected
                .push(format!("{side:?} {key} reported twice while alive"));
            return;
        }
        self.live.insert((side, key.clone()), self.records.len());
        self.records.push(Record {
            side,
            key,
            created_ms: self.now,
            last_activity_ms: self.now,
            in_proceeding: false,
            finals: Vec::new(),
            timeouts: Vec::new(),
            terminated_ms: None,
        });
    }

    fn record(&mut self, side: Side, key: &TsxKey) -> Option<&mut Record> {
        let idx = *self.live.get(&(side, key.clone()))?;
        self.records.get_mut(idx)
    }

    fn close_record(&mut self, side: Side, key: &TsxKey) {
        let now = self.now;
        match self.live.remove(&(side, key.clone())) {
            Some(idx) => {
                if let Some(rec) = self.records.get_mut(idx) {
                    rec.terminated_ms = Some(now);
                }
            }
            None => self
                .unexpected
                .push(format!("{side:?} {key} terminated but not alive")),
        }
    }

    fn send_request(&mut self, msg: TsxMessage) -> Option<TsxKey> {
        match self
            .client
            .send_request(self.clock.at(self.now), msg, SERVER, UDP)
        {
            Ok(key) => {
                self.open_record(Side::Client, key.clone());
                Some(key)
            }
            Err(e) => {
                self.unexpected.push(format!("send_request: {e}"));
                None
            }
        }
    }

    fn respond(&mut self, key: &TsxKey, msg: TsxMessage) {
        let now = self.now;
        if let Some(rec) = self.record(Side::Server, key) {
            rec.last_activity_ms = now;
        }
        if let Err(e) = self.server.send_response(self.clock.at(now), key, msg) {
            self.unexpected.push(format!("send_response {key}: {e}"));
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Start(f) => {
                let Some(msg) = self.flows.get(f).map(|flow| flow.request.clone()) else {
                    return;
                };
                let key = self.send_request(msg);
                if let Some(flow) = self.flows.get_mut(f) {
                    flow.key = key;
                }
            }
            Action::Respond { key, status } => {
                let Some(request) = self
                    .flows
                    .iter()
                    .find(|f| f.key.as_ref().map(TsxKey::branch) == Some(key.branch()))
                    .map(|f| f.request.clone())
                else {
                    self.unexpected.push(format!("no flow for {key}"));
                    return;
                };
                let msg = response_to(&request, status, Some("uas"));
                self.respond(&key, msg.clone());
                if status == 200 {
                    let uas = Uas2xxRetransmitter::new(
                        self.clock.at(self.now),
                        CLIENT,
                        &msg,
                        &self.timers,
                    );
                    if let Some(call) = self.calls.get_mut(&msg.call_id) {
                        call.ok = Some(msg);
                        call.uas = Some(uas);
                    }
                }
            }
        }
    }

    fn flow_index_by_call(&self, call_id: &str) -> Option<usize> {
        self.flows.iter().position(|f| f.request.call_id == call_id)
    }

    /// §13.2.2.4: the UAC core ACKs a 2xx with a fresh branch; this TU then hangs up.
    fn establish(&mut self, f: usize, to_tag: Option<String>) {
        let Some(invite) = self.flows.get(f).map(|fl| fl.request.clone()) else {
            return;
        };
        let ack = in_dialog(
            &invite,
            Method::Ack,
            &format!("z9hG4bKack{f}"),
            1,
            to_tag.clone(),
        );
        self.client.send_stateless(SERVER, ack.bytes.clone());
        let bye = in_dialog(&invite, Method::Bye, &format!("z9hG4bKbye{f}"), 2, to_tag);
        let bye_key = self.send_request(bye);
        if let Some(flow) = self.flows.get_mut(f) {
            flow.ack = Some(ack);
            flow.bye = bye_key;
        }
    }

    fn client_tu(&mut self, ev: TsxEvent) {
        let now = self.now;
        match ev {
            TsxEvent::Response { key, msg } => {
                let status = msg.status().unwrap_or(0);
                let invite = *key.method() == Method::Invite;
                if let Some(rec) = self.record(Side::Client, &key) {
                    rec.last_activity_ms = now;
                    rec.in_proceeding = invite && status < 200;
                    if status >= 200 {
                        rec.finals.push(status);
                    }
                }
                if invite && (200..300).contains(&status) {
                    if let Some(f) = self.flow_index_by_call(&msg.call_id) {
                        self.establish(f, msg.to_tag.clone());
                    }
                }
            }
            TsxEvent::StrayResponse { msg, .. } => {
                let is_invite_2xx = msg.cseq_method == Method::Invite
                    && msg.status().is_some_and(|s| (200..300).contains(&s));
                if !is_invite_2xx {
                    // Late copies of 1xx or non-2xx finals outliving Timer D/K: the UAC core
                    // discards them.
                    return;
                }
                let Some(f) = self.flow_index_by_call(&msg.call_id) else {
                    self.unexpected.push(format!("client stray {msg:?}"));
                    return;
                };
                match self.flows.get(f).and_then(|flow| flow.ack.clone()) {
                    // A retransmitted 2xx: re-send the same ACK (§13.2.2.4).
                    Some(ack) => self.client.send_stateless(SERVER, ack.bytes),
                    // A 2xx after our INVITE timed out: ACK it and hang up.
                    None => self.establish(f, msg.to_tag.clone()),
                }
            }
            TsxEvent::Timeout { key, timer } => {
                if let Some(rec) = self.record(Side::Client, &key) {
                    rec.timeouts.push((now, timer));
                }
            }
            TsxEvent::Terminated { key } => self.close_record(Side::Client, &key),
            other => self.unexpected.push(format!("client event {other:?}")),
        }
    }

    fn server_tu(&mut self, ev: TsxEvent) {
        let now = self.now;
        match ev {
            TsxEvent::NewRequest { key, msg, .. } => {
                self.open_record(Side::Server, key.clone());
                match msg.method() {
                    Some(Method::Invite) => {
                        if let Some(ok) = self.calls.get(&msg.call_id).and_then(|c| c.ok.clone()) {
                            // RFC 3261 leaves INVITE retransmissions after a 2xx to the
                            // UAS core: answer the new transaction with the same 2xx.
                            self.respond(&key, ok);
                            return;
                        }
                        let accept = self
                            .flow_index_by_call(&msg.call_id)
                            .and_then(|f| self.flows.get(f))
                            .is_some_and(|f| f.kind == FlowKind::Call { accept: true });
                        self.calls.insert(
                            msg.call_id.clone(),
                            ServerCall {
                                ok: None,
                                uas: None,
                                acked: false,
                                gave_up_ms: None,
                            },
                        );
                        // 180 after 300 ms, so the layer's own 100 (at 200 ms) is exercised.
                        self.actions.push((
                            now + 300,
                            Action::Respond {
                                key: key.clone(),
                                status: 180,
                            },
                        ));
                        let status = if accept { 200 } else { 486 };
                        self.actions
                            .push((now + 1_000, Action::Respond { key, status }));
                    }
                    Some(Method::Bye | Method::Options) => {
                        let ok = response_to(&msg, 200, Some("uas"));
                        self.respond(&key, ok);
                    }
                    _ => self.unexpected.push(format!("server request {msg:?}")),
                }
            }
            TsxEvent::AckFor2xx { msg, .. } => {
                if let Some(call) = self.calls.get_mut(&msg.call_id) {
                    if let Some(uas) = call.uas.as_mut() {
                        if uas.matches_ack(&msg) {
                            uas.handle_ack();
                            call.acked = uas.state() == Uas2xxState::Acked;
                        }
                    }
                }
            }
            TsxEvent::Timeout { key, timer } => {
                if let Some(rec) = self.record(Side::Server, &key) {
                    rec.timeouts.push((now, timer));
                }
            }
            TsxEvent::Terminated { key } => self.close_record(Side::Server, &key),
            other => self.unexpected.push(format!("server event {other:?}")),
        }
    }

    /// The invariants every run must satisfy, whatever the network did.
    fn check(&mut self) {
        assert_eq!(self.unexpected, Vec::<String>::new());
        assert!(self.client.is_empty(), "client table not empty");
        assert!(self.server.is_empty(), "server table not empty");
        assert_eq!(self.client.poll_timeout(), None);
        assert_eq!(self.server.poll_timeout(), None);
        assert!(self.live.is_empty());
        let sixty_four_t1 = self.timers.sixty_four_t1().as_millis() as u64;
        let timer_c = self.timers.timer_c.as_millis() as u64;
        for rec in &self.records {
            let Some(end) = rec.terminated_ms else {
                panic!("{rec:?} never terminated");
            };
            let bound = if rec.in_proceeding {
                timer_c
            } else {
                LIFETIME_BOUND_MS
            };
            assert!(
                end - rec.last_activity_ms <= bound,
                "{rec:?} outlived its bound"
            );
            assert!(rec.finals.len() <= 1, "duplicate final reached TU: {rec:?}");
            match rec.side {
                Side::Client => {
                    assert_eq!(
                        rec.finals.len() + rec.timeouts.len(),
                        1,
                        "client outcome must be exactly one of final/timeout: {rec:?}"
                    );
                    for &(t, timer) in &rec.timeouts {
                        match timer {
                            Timer::B | Timer::F => assert_eq!(t, rec.created_ms + sixty_four_t1),
                            Timer::C => assert_eq!(t, rec.last_activity_ms + timer_c),
                            other => panic!("client timeout by {other:?}"),
                        }
                    }
                }
                Side::Server => {
                    for &(t, timer) in &rec.timeouts {
                        assert_eq!(timer, Timer::H);
                        assert_eq!(t, rec.last_activity_ms + sixty_four_t1);
                    }
                }
            }
        }
        for call in self.calls.values() {
            if let Some(uas) = &call.uas {
                assert_ne!(uas.state(), Uas2xxState::Waiting);
                assert!(
                    call.acked != call.gave_up_ms.is_some(),
                    "a 2xx is either ACKed or given up, never both"
                );
            }
        }
    }

    fn client_record(&self, key: &Option<TsxKey>) -> Option<&Record> {
        let key = key.as_ref()?;
        self.records
            .iter()
            .find(|r| r.side == Side::Client && &r.key == key)
    }
}

fn run(seed: u64, net: NetParams, flows: usize) -> Sim {
    let mut sim = Sim::new(seed, net, flows);
    sim.run();
    sim.check();
    sim
}

const PERFECT: NetParams = NetParams {
    loss: 0.0,
    duplicate: 0.0,
    min_delay_ms: 5,
    max_delay_ms: 60,
};

#[test]
fn lossless_network_completes_every_flow_without_retransmissions() {
    let sim = run(1, PERFECT, 9);
    for flow in &sim.flows {
        let Some(rec) = sim.client_record(&flow.key) else {
            panic!("flow never started: {flow:?}");
        };
        match flow.kind {
            FlowKind::Call { accept: true } => {
                assert_eq!(rec.finals, vec![200]);
                let bye = sim.client_record(&flow.bye);
                assert_eq!(bye.map(|r| r.finals.clone()), Some(vec![200]));
                let call = sim.calls.get(&flow.request.call_id);
                assert!(call.is_some_and(|c| c.acked && c.gave_up_ms.is_none()));
            }
            FlowKind::Call { accept: false } => assert_eq!(rec.finals, vec![486]),
            FlowKind::Options => assert_eq!(rec.finals, vec![200]),
        }
    }
    assert!(sim.records.iter().all(|r| r.timeouts.is_empty()));
    // RTT < T1 and the layer's 100 Trying stops Timer A: nothing is ever resent.
    assert_eq!(sim.client.stats().absorbed_retransmissions, 0);
    assert_eq!(sim.server.stats().absorbed_retransmissions, 0);
}

#[test]
fn duplicates_are_absorbed_and_flows_still_complete() {
    let net = NetParams {
        duplicate: 0.5,
        ..PERFECT
    };
    let sim = run(7, net, 9);
    for flow in &sim.flows {
        let rec = sim.client_record(&flow.key);
        let expected = match flow.kind {
            FlowKind::Call { accept: false } => 486,
            _ => 200,
        };
        assert_eq!(rec.map(|r| r.finals.clone()), Some(vec![expected]));
    }
    let absorbed =
        sim.client.stats().absorbed_retransmissions + sim.server.stats().absorbed_retransmissions;
    assert!(absorbed > 0, "duplicates must have hit live transactions");
}

#[test]
fn thirty_percent_loss_with_duplicates_and_reordering_keeps_the_invariants() {
    let net = NetParams {
        loss: 0.3,
        duplicate: 0.1,
        min_delay_ms: 5,
        max_delay_ms: 400,
    };
    let mut retransmitted = 0;
    for seed in 0..20 {
        let sim = run(seed, net, 9);
        retransmitted += sim.client.stats().absorbed_retransmissions
            + sim.server.stats().absorbed_retransmissions;
    }
    assert!(retransmitted > 0);
}

#[test]
fn heavy_loss_exercises_every_timeout_path_without_breaking_invariants() {
    let mut seen = std::collections::HashSet::new();
    let mut gave_up = 0;
    for seed in 0..60 {
        let net = NetParams {
            loss: 0.5 + (seed % 4) as f64 * 0.1,
            duplicate: 0.1,
            min_delay_ms: 5,
            max_delay_ms: 400,
        };
        let sim = run(seed, net, 9);
        seen.extend(
            sim.records
                .iter()
                .flat_map(|r| r.timeouts.iter().map(|(_, t)| *t)),
        );
        gave_up += sim
            .calls
            .values()
            .filter(|c| c.gave_up_ms.is_some())
            .count();
    }
    for timer in [Timer::B, Timer::C, Timer::F, Timer::H] {
        assert!(seen.contains(&timer), "no run timed out by {timer:?}");
    }
    assert!(gave_up > 0, "no 2xx retransmitter gave up");
}

#[test]
fn total_loss_times_out_exactly_at_64_t1() {
    let net = NetParams {
        loss: 1.0,
        ..PERFECT
    };
    let sim = run(3, net, 3);
    for flow in &sim.flows {
        let rec = sim.client_record(&flow.key);
        let expected = match flow.kind {
            FlowKind::Options => Timer::F,
            FlowKind::Call { .. } => Timer::B,
        };
        assert_eq!(
            rec.map(|r| r.timeouts.clone()),
            Some(vec![(flow.start_ms + 32_000, expected)])
        );
    }
    assert!(sim.calls.is_empty(), "the server never saw a request");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_transaction_terminates_within_its_bound(
        seed in any::<u64>(),
        loss in 0.0f64..=0.3,
        duplicate in 0.0f64..=0.2,
        max_delay_ms in 5u64..=600,
    ) {
        let net = NetParams { loss, duplicate, min_delay_ms: 1, max_delay_ms };
        run(seed, net, 6);
    }
}
