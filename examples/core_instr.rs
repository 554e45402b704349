//! Call-setup workload for the sans-IO SIP core alone (`smartdesk::sip::endpoint::Endpoint`:
//! message, transaction layer, registrar, B2BUA and ACD), for deterministic instruction counts
//! under callgrind (`bench/core_instr.sh`). No sockets, no clock, no ledger: the program plays
//! the carrier, the seats and the daemon edge in-process, like `fuzz/fuzz_targets/endpoint.rs`.
//!
//! ```text
//! cargo run --release --example core_instr -- --calls 2000 --seats 200
//! ```
//!
//! Every call is the bench's (`bench/scenarios/carrier.xml` + `seat.xml`): INVITE with a G.711
//! offer → 100 → admitted (Route) → 183 + INVITE to a seat → 180, 200 with SDP → 200 to the
//! carrier → ACK → … → BYE from the carrier → 200, BYE to the seat → 200 → media stopped.
//! Calls overlap as at `--cps` calls per second with `--hold-ms` of talk: time is advanced by
//! 1/cps between calls, and transaction timers (Timer J, K, …) fire as in the daemon, so the
//! transaction table holds what it holds at that rate. `--seats` seats are registered (all at
//! one address, as the bench's SIPp seat), and the ACD picks among them for every call.
//!
//! The program checks every call completes (each step must produce what the bench's SIPp
//! would wait for) and exits non-zero otherwise. Only the `Endpoint` methods the edge calls
//! are meant to be counted: callgrind's `--toggle-collect` on them (see the script) leaves out
//! this program's own message building and parsing.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use smartdesk::acd::AcdConfig;
use smartdesk::config::profiles::{NumberFormat, Transport, Trunk};
use smartdesk::sip::auth::ServerSecret;
use smartdesk::sip::b2bua::{Admission, B2bua, B2buaConfig, CallEffect, MediaNotice};
use smartdesk::sip::endpoint::{Destination, Endpoint};
use smartdesk::sip::guard::GuardConfig;
use smartdesk::sip::message::{parse_datagram, Message};
use smartdesk::sip::sdp::Codec;
use smartdesk::sip::seats::{
    RegistryConfig, SeatCredential, SeatRegistry, SeatTransport, StoredBinding,
};
use smartdesk::sip::transaction::{LayerConfig, TimerConfig};

const T_UNIX: u64 = 1_800_000_000;
const CARRIER: &str = "127.0.0.1:5070";
const SEAT: &str = "127.0.0.1:5062";
const LOCAL: &str = "127.0.0.1:5060";

const OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
    c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n\
    a=rtpmap:8 PCMA/8000\r\n";
const SEAT_ANSWER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
    c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

#[derive(Parser, Debug)]
struct Args {
    /// Calls to place (all are measured).
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    /// Seats registered and available.
    #[arg(long, default_value_t = 200)]
    seats: usize,
    /// Offered rate (calls per second of fake time).
    #[arg(long, default_value_t = 1000)]
    cps: u32,
    /// Talk time of every call, in ms of fake time.
    #[arg(long, default_value_t = 20)]
    hold_ms: u64,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// A call in progress: what the carrier needs to hang it up.
struct Live {
    call: u64,
    call_id: String,
    to: String,
    from: String,
    /// The seat's side, to answer our BYE.
    ends_at: Instant,
}

struct Harness {
    ep: Endpoint,
    now: Instant,
    counter: u64,
    admits: VecDeque<u64>,
    to_carrier: Vec<Message>,
    to_seat: Vec<Message>,
    finished: usize,
}

impl Harness {
    fn new(seats: usize, max_calls: usize) -> Harness {
        let cfg = B2buaConfig {
            local: addr(LOCAL),
            media_ip: "127.0.0.1".parse().expect("ip"),
            rtp_port_min: 16000,
            rtp_port_max: 32765,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            acd: AcdConfig {
                // As bench/lib/smartdesk.sh: seats answer back to back.
                wrap_up_max: Duration::ZERO,
                ..AcdConfig::default()
            },
            recording_max: Duration::from_secs(120),
            trunks: vec![Trunk {
                name: "bench-carrier".into(),
                sources: vec!["127.0.0.1/32".parse().expect("net")],
                number_format: NumberFormat::National,
                transports: vec![Transport::Udp],
                codecs: vec!["PCMU".into(), "PCMA".into()],
            }],
            seat_domain: "smartdesk".into(),
            max_calls,
            timers: TimerConfig::default(),
        };
        let mut registry = SeatRegistry::with_rng_seed(
            RegistryConfig::new("smartdesk"),
            ServerSecret::from_bytes([1; 32]),
            [2; 32],
        )
        .expect("registry");
        let names: Vec<String> = (1..=seats).map(|i| format!("op{i}")).collect();
        registry.set_credentials(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| SeatCredential {
                    seat_id: i as i64 + 1,
                    name: n.clone(),
                    ha1_md5: None,
                    ha1_sha256: None,
                })
                .collect(),
        );
        let restored = registry.restore(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| StoredBinding {
                    seat_id: i as i64 + 1,
                    aor: format!("sip:{n}@smartdesk"),
                    contact: format!("sip:{n}@{SEAT}"),
                    source: addr(SEAT),
                    transport: SeatTransport::Udp,
                    call_id: format!("reg-{n}"),
                    cseq: 1,
                    expires_at: T_UNIX + 3600,
                    q: None,
                    params: String::new(),
                })
                .collect(),
            T_UNIX,
        );
        assert_eq!(restored, seats, "seats restored");
        let now = Instant::now();
        // As bench/lib/smartdesk.sh: no flood limits (one loopback source sends everything).
        let guard = GuardConfig {
            request_rate: 0.0,
            trunk_rate: 0.0,
            register_rate: 0.0,
            ..GuardConfig::default()
        };
        let mut ep = Endpoint::new(LayerConfig::default(), 7, registry)
            .expect("endpoint")
            .with_guard(guard)
            .with_b2bua(B2bua::new(cfg).expect("b2bua"));
        ep.set_unix_base(now, Duration::from_secs(T_UNIX));
        ep.seats_changed(now);
        Harness {
            ep,
            now,
            counter: 0,
            admits: VecDeque::new(),
            to_carrier: Vec::new(),
            to_seat: Vec::new(),
            finished: 0,
        }
    }

    /// Drains every output, as the daemon's core task does after each input.
    fn drain(&mut self) {
        while let Some(e) = self.ep.poll_call_effect() {
            match e {
                CallEffect::Admit { call, .. } => self.admits.push_back(call),
                CallEffect::Finished { .. } => self.finished += 1,
                _ => {}
            }
        }
        while self.ep.poll_registry_effect().is_some() {}
        while self.ep.poll_ended_call().is_some() {}
        let carrier = Destination::Udp(addr(CARRIER));
        while let Some(out) = self.ep.poll_transmit() {
            let m = parse_datagram(&out.bytes).expect("the core sends valid SIP");
            if out.to == carrier {
                self.to_carrier.push(m);
            } else {
                self.to_seat.push(m);
            }
        }
    }

    fn feed(&mut self, from: &str, bytes: &[u8]) {
        self.ep.handle_datagram(self.now, addr(from), bytes);
        self.drain();
    }

    /// Fires the timers due up to `until`, then moves time there.
    fn advance_to(&mut self, until: Instant) {
        for _ in 0..100_000 {
            match self.ep.poll_timeout() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.ep.handle_timeout(self.now);
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
        // What the peers got from timers (retransmissions would be a failure of the run).
        self.to_carrier.clear();
        self.to_seat.clear();
    }

    /// The seat answers `req` with `code` (and SDP for the 200 to an INVITE).
    fn seat_reply(&mut self, req: &Message, code: u16, reason: &str, sdp: bool) {
        let mut r = Message::response_to(req, code, reason).with_to_tag("seat-tag");
        if code != 100 && req.method().is_some_and(|m| m.as_str() == "INVITE") {
            r = r
                .with_header("Contact", &format!("<sip:seat@{SEAT}>"))
                .expect("contact");
        }
        if sdp {
            r = r
                .with_body(
                    "application/sdp",
                    bytes::Bytes::from_static(SEAT_ANSWER.as_bytes()),
                )
                .expect("sdp");
        }
        let bytes = r.to_bytes();
        self.feed(SEAT, &bytes);
    }

    /// One call up to the carrier's ACK; returns what hangs it up later.
    fn start_call(&mut self, hold: Duration) -> Live {
        self.counter += 1;
        let n = self.counter;
        let call_id = format!("{n}-bench@127.0.0.1");
        let invite = format!(
            "INVITE sip:0312345678@{LOCAL} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {CARRIER};branch=z9hG4bK-{n}-1-0\r\n\
             From: sipp <sip:0901234567@127.0.0.1:5070>;tag={n}SIPpTag001\r\n\
             To: <sip:0312345678@{LOCAL}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:sipp@{CARRIER}>\r\nMax-Forwards: 70\r\nSubject: bench\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
            OFFER.len()
        );
        self.feed(CARRIER, invite.as_bytes());
        let call = self.admits.pop_front().expect("an Admit for the INVITE");
        self.to_carrier.clear();
        self.ep.handle_admission(
            self.now,
            call,
            Admission::Route {
                row: n as i64,
                contractor_id: 1,
                name: "株式会社ベンチ".into(),
                greeting: "お電話ありがとうございます".into(),
                skill: None,
            },
        );
        self.drain();
        let seat_invite = self
            .to_seat
            .drain(..)
            .find(|m| m.method().is_some_and(|m| m.as_str() == "INVITE"))
            .expect("an INVITE to a seat");
        self.to_carrier.clear();
        self.seat_reply(&seat_invite, 180, "Ringing", false);
        self.seat_reply(&seat_invite, 200, "OK", true);
        let ok = self
            .to_carrier
            .drain(..)
            .find(|m| m.status() == Some(200))
            .expect("a 200 to the carrier");
        let to = ok.header("To").expect("To").to_owned();
        let from = ok.header("From").expect("From").to_owned();
        let ack = format!(
            "ACK sip:0312345678@{LOCAL} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {CARRIER};branch=z9hG4bK-{n}-5-0\r\n\
             From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\n\
             Contact: <sip:sipp@{CARRIER}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        self.feed(CARRIER, ack.as_bytes());
        let acked = self
            .to_seat
            .drain(..)
            .any(|m| m.method().is_some_and(|m| m.as_str() == "ACK"));
        assert!(acked, "the seat got its ACK");
        Live {
            call,
            call_id,
            to,
            from,
            ends_at: self.now + hold,
        }
    }

    fn end_call(&mut self, live: Live) {
        self.counter += 1;
        let n = self.counter;
        let Live {
            call,
            call_id,
            to,
            from,
            ..
        } = live;
        let bye = format!(
            "BYE sip:0312345678@{LOCAL} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {CARRIER};branch=z9hG4bK-{n}-7-0\r\n\
             From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\n\
             Contact: <sip:sipp@{CARRIER}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        self.feed(CARRIER, bye.as_bytes());
        let ok = self.to_carrier.drain(..).any(|m| m.status() == Some(200));
        assert!(ok, "200 for the carrier's BYE");
        let seat_bye = self
            .to_seat
            .drain(..)
            .find(|m| m.method().is_some_and(|m| m.as_str() == "BYE"))
            .expect("a BYE to the seat");
        self.seat_reply(&seat_bye, 200, "OK", false);
        // The media edge closed the call's relay sockets.
        self.ep.handle_media(self.now, call, MediaNotice::Stopped);
        self.drain();
    }
}

fn main() {
    let args = Args::parse();
    let hold = Duration::from_millis(args.hold_ms);
    let gap = Duration::from_secs(1) / args.cps.max(1);
    let mut h = Harness::new(args.seats.max(1), args.calls.max(1) + 16);
    let mut live: VecDeque<Live> = VecDeque::new();
    for _ in 0..args.calls {
        while live.front().is_some_and(|l| l.ends_at <= h.now) {
            let l = live.pop_front().expect("front");
            h.end_call(l);
        }
        let l = h.start_call(hold);
        live.push_back(l);
        let next = h.now + gap;
        h.advance_to(next);
    }
    while let Some(l) = live.pop_front() {
        let at = l.ends_at;
        h.advance_to(at);
        h.end_call(l);
    }
    assert_eq!(h.finished, args.calls, "every call finished");
    // Let every transaction end (Timer J/K, 32 s at most), as a real run's tail.
    let until = h.now + Duration::from_secs(40);
    h.advance_to(until);
    assert_eq!(h.ep.transactions(), 0, "transactions left over");
    println!(
        "core_instr: {} calls, {} seats, {} cps, hold {} ms: all completed",
        args.calls, args.seats, args.cps, args.hold_ms
    );
}
