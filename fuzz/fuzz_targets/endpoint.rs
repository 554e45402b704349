//! The whole sans-IO endpoint (`smartdesk::sip::endpoint::Endpoint`): message layer,
//! transaction layer, seat registrar and B2BUA call path, driven by a script of network input,
//! time, and edge answers (admission, media notices), with every output drained after each
//! step as the daemon's core task does.
//!
//! The endpoint is built like `src/sip/b2bua/tests.rs` builds it: B2BUA enabled with one
//! carrier trunk (192.0.2.0/24), and a registry with one restored seat (`op1` at
//! 198.51.100.5:5062). See `fuzz/README.md` for the input format.
//!
//! Oracles beyond "no panic":
//! * everything the endpoint sends parses as SIP (or is the single-CRLF keep-alive pong);
//! * a due timer goes away once fired (a deadline that stays due would spin the core task);
//! * bounded state: calls never exceed `max_calls`, transactions and output per step stay
//!   within fixed limits, stream framers never hold more than a message plus one read;
//! * nothing leaks: once the edge has answered every admission and the media edge reported
//!   silence and closed sockets for every call, three hours later no call, no transaction
//!   and no registration is left.
#![no_main]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use smartdesk::config::profiles::{NumberFormat, Transport, Trunk};
use smartdesk::sip::auth::{ha1_md5, ha1_sha256, response_hex, Algorithm, ServerSecret};
use smartdesk::sip::b2bua::{Admission, B2bua, B2buaConfig, CallEffect, MediaNotice, Prompt};
use smartdesk::sip::endpoint::{ConnId, Destination, Endpoint};
use smartdesk::sip::message::{parse_datagram, Frame, Message, StreamFramer, MAX_MESSAGE_SIZE};
use smartdesk::sip::registrar::DEFAULT_MAX_BINDINGS_PER_AOR;
use smartdesk::sip::sdp::Codec;
use smartdesk::sip::seats::{
    RegistryConfig, SeatCredential, SeatRegistry, SeatTransport, StoredBinding,
};
use smartdesk::sip::transaction::{LayerConfig, TimerConfig};
use smartdesk_fuzz::{assert_sendable, assert_stateless_answer};

const T_UNIX: u64 = 1_800_000_000;
const CARRIER: &str = "192.0.2.10:5060";
const SEAT: &str = "198.51.100.5:5062";
const LOCAL: &str = "192.0.2.1:5060";
const MAX_CALLS: usize = 8;
/// Steps per input: beyond this the script is ignored (keeps every run short).
const MAX_STEPS: usize = 256;
/// The edge's TCP read size.
const READ_CHUNK: usize = 8192;
/// Generous bound on what one step may make the endpoint send (amplification check).
const MAX_OUT_PER_STEP: usize = 2000;

/// Other sources for op 2: outside the trunk, IPv6 (its own peer table), v4-mapped carrier.
const OTHERS: [&str; 5] = [
    "203.0.113.9:5060",
    "[2001:db8::7]:5060",
    "[::ffff:192.0.2.10]:5060",
    "192.0.2.11:1",
    "198.51.100.6:5062",
];

const OFFER: &str = "v=0\r\no=carrier 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n\
    t=0 0\r\nm=audio 20000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
    a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";
const SEAT_ANSWER: &str = "v=0\r\no=seat 7 7 IN IP4 198.51.100.5\r\ns=-\r\n\
    c=IN IP4 198.51.100.5\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
    a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

const SEAT_CODES: [u16; 12] = [100, 180, 183, 200, 202, 302, 408, 480, 486, 487, 503, 603];
const DIALOG_METHODS: [&str; 8] = [
    "ACK", "BYE", "CANCEL", "INFO", "INVITE", "OPTIONS", "UPDATE", "PRACK",
];

/// `FUZZ_TRACE=1` prints every step and everything sent, for replaying one input by hand.
fn trace() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Harness {
    ep: Endpoint,
    now: Instant,
    counter: u32,
    /// Admit effects not answered yet (call ids).
    admits: VecDeque<u64>,
    /// Call ids seen in effects, for media notices.
    calls: Vec<u64>,
    next_row: i64,
    /// Stream connections: (id, source, framer). A closed one is replaced by a fresh id.
    conns: Vec<(ConnId, SocketAddr, StreamFramer)>,
    next_conn: u64,
    /// Latest requests we sent to the seat, and latest responses (with a To tag) we sent to
    /// the carrier, newest first, [`RECENT`] of each.
    seat_requests: VecDeque<(Destination, Message)>,
    carrier_responses: VecDeque<Message>,
    /// Nonce of the latest MD5 challenge we sent, and the nonce-count used with it.
    nonce: Option<String>,
    nc: u32,
    /// The input being handled did not parse, so a stateless error answer may go out: it
    /// copies the request's headers as they were (see `assert_stateless_answer`).
    bad_input: bool,
    /// Registry effects drained so far; the edge's ledger writer reports them done later
    /// (here: whenever time advances), which releases REGISTER answers held for them.
    effects_polled: u64,
}

impl Harness {
    fn new() -> Harness {
        let cfg = B2buaConfig {
            local: addr(LOCAL),
            media_ip: "192.0.2.1".parse().unwrap(),
            rtp_port_min: 40000,
            rtp_port_max: 40099,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            acd: smartdesk::acd::AcdConfig::default(),
            recording_max: Duration::from_secs(120),
            trunks: vec![Trunk {
                name: "carrier-a".into(),
                sources: vec!["192.0.2.0/24".parse().unwrap()],
                number_format: NumberFormat::National,
                transports: vec![Transport::Udp, Transport::Tcp],
                codecs: vec!["PCMU".into(), "PCMA".into()],
            }],
            seat_domain: "smartdesk".into(),
            max_calls: MAX_CALLS,
            timers: TimerConfig::default(),
        };
        let mut registry = SeatRegistry::with_rng_seed(
            RegistryConfig::new("smartdesk"),
            ServerSecret::from_bytes([1; 32]),
            [2; 32],
        )
        .unwrap();
        registry.set_credentials(vec![SeatCredential {
            seat_id: 1,
            name: "op1".into(),
            ha1_md5: Some(ha1_md5("op1", "smartdesk", "pw").as_str().into()),
            ha1_sha256: Some(ha1_sha256("op1", "smartdesk", "pw").as_str().into()),
        }]);
        let restored = registry.restore(
            vec![StoredBinding {
                seat_id: 1,
                aor: "sip:op1@smartdesk".into(),
                contact: format!("sip:op1@{SEAT}"),
                source: addr(SEAT),
                transport: SeatTransport::Udp,
                call_id: "reg".into(),
                cseq: 1,
                expires_at: T_UNIX + 3600,
                q: None,
                params: String::new(),
            }],
            T_UNIX,
        );
        assert_eq!(restored, 1);
        let now = Instant::now();
        let mut ep = Endpoint::new(LayerConfig::default(), 7, registry)
            .unwrap()
            .with_b2bua(B2bua::new(cfg).unwrap());
        ep.set_unix_base(now, Duration::from_secs(T_UNIX));
        Harness {
            ep,
            now,
            counter: 0,
            admits: VecDeque::new(),
            calls: Vec::new(),
            next_row: 1,
            conns: Vec::new(),
            next_conn: 1,
            seat_requests: VecDeque::new(),
            nonce: None,
            nc: 0,
            effects_polled: 0,
            carrier_responses: VecDeque::new(),
            bad_input: false,
        }
    }

    /// Drains every output of the endpoint, as the core task does after each input.
    fn drain(&mut self) {
        while let Some(e) = self.ep.poll_call_effect() {
            if trace() {
                eprintln!("  effect {e:?}");
            }
            match e {
                CallEffect::Admit { call, request } => {
                    let _ = (request.number, request.caller, request.sip_call_id);
                    self.admits.push_back(call);
                    self.note_call(call);
                }
                CallEffect::Answered { call, .. }
                | CallEffect::Finished { call, .. }
                | CallEffect::MediaStart { call, .. }
                | CallEffect::MediaRemote { call, .. }
                | CallEffect::MediaPlay { call, .. }
                | CallEffect::MediaStopPlay { call, .. }
                | CallEffect::MediaRecord { call, .. }
                | CallEffect::Queue { call, .. }
                | CallEffect::MediaStop { call }
                | CallEffect::SeatOffered { call, .. }
                | CallEffect::SeatReleased { call, .. } => self.note_call(call),
            }
        }
        while self.ep.poll_registry_effect().is_some() {
            self.effects_polled += 1;
        }
        assert_eq!(self.effects_polled, self.ep.registry().effects_emitted());
        let carrier = Destination::Udp(addr(CARRIER));
        let mut sent = 0;
        while let Some(out) = self.ep.poll_transmit() {
            sent += 1;
            assert!(sent <= MAX_OUT_PER_STEP, "output amplification");
            if out.bytes.as_ref() == b"\r\n" {
                continue; // keep-alive pong (RFC 5626 §3.5.1)
            }
            if trace() {
                eprintln!("  -> {:?}\n{}", out.to, String::from_utf8_lossy(&out.bytes));
            }
            let m = if self.bad_input && parse_datagram(&out.bytes).is_err() {
                assert_stateless_answer(&out.bytes);
                continue;
            } else {
                assert_sendable(&out.bytes)
            };
            if m.status() == Some(401) {
                let nonce = m
                    .headers("WWW-Authenticate")
                    .find(|c| c.contains("algorithm=MD5"))
                    .and_then(|c| c.split("nonce=\"").nth(1))
                    .and_then(|v| v.split('"').next());
                if let Some(n) = nonce {
                    self.nonce = Some(n.to_owned());
                    self.nc = 0;
                }
            }
            if out.to != carrier && m.is_request() {
                // To the seat: its UDP address or a connection it registered over.
                remember(&mut self.seat_requests, (out.to, m));
            } else if out.to == carrier && m.is_response() && m.to_tag().is_some() {
                remember(&mut self.carrier_responses, m);
            }
        }
        if let Some(b) = self.ep.b2bua() {
            assert!(b.stats().calls <= MAX_CALLS, "call table over max_calls");
        }
        assert!(self.ep.transactions() <= 50_000, "transaction table growth");
        // One seat credential: its AOR holds at most the registrar's per-AOR maximum.
        assert!(
            self.ep.registry().binding_count() <= DEFAULT_MAX_BINDINGS_PER_AOR,
            "binding table growth"
        );
    }

    fn note_call(&mut self, call: u64) {
        if !self.calls.contains(&call) {
            self.calls.push(call);
        }
    }

    /// What the daemon's edge eventually does for every call: answer its admission (the
    /// admission worker always answers, `Unavailable` when the ledger fails), report silence
    /// (the media edge's RTP timeout) and report closed sockets after `MediaStop`. After
    /// that and enough time, nothing may be left: a call or transaction that outlives it is
    /// state hostile input can pile up.
    fn wind_down(&mut self) {
        for _ in 0..3 {
            while !self.admits.is_empty() {
                self.admit(&[3]);
            }
            for call in self.calls.clone() {
                self.ep.handle_media(self.now, call, MediaNotice::Timeout);
                self.drain();
            }
            self.advance(Duration::from_secs(3600));
            for call in self.calls.clone() {
                self.ep.handle_media(self.now, call, MediaNotice::Stopped);
                self.drain();
            }
        }
        let calls = self.ep.b2bua().map_or(0, |b| b.stats().calls);
        assert_eq!(
            calls, 0,
            "calls left after the edge ended them and 3 hours passed"
        );
        assert_eq!(
            self.ep.transactions(),
            0,
            "transactions left after 3 hours: {:?}",
            self.ep
        );
        // Registrations last at most an hour (the default maximum Expires).
        assert_eq!(
            self.ep.registry().binding_count(),
            0,
            "bindings left after 3 hours"
        );
    }

    fn unique(&mut self) -> u32 {
        self.counter += 1;
        self.counter
    }

    fn datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.bad_input = parse_datagram(bytes).is_err();
        self.ep.handle_datagram(self.now, from, bytes);
        self.drain();
        self.bad_input = false;
    }

    /// A read on connection `selector % 4` (opened from the carrier, the seat or elsewhere
    /// by `selector / 4`); no bytes means the peer closed it.
    fn stream(&mut self, selector: u8, bytes: &[u8]) {
        let slot = usize::from(selector % 4);
        let src = [CARRIER, SEAT, OTHERS[0]][usize::from(selector / 4) % 3];
        while self.conns.len() <= slot {
            let id = ConnId(self.next_conn);
            self.next_conn += 1;
            self.conns.push((id, addr(src), StreamFramer::new()));
        }
        if bytes.is_empty() {
            let (conn, src) = (self.conns[slot].0, self.conns[slot].1);
            self.close(slot, conn, src);
            return;
        }
        self.stream_slot(slot, bytes);
    }

    fn close(&mut self, slot: usize, conn: ConnId, src: SocketAddr) {
        // The edge drops the connection and tells the registrar.
        self.ep.registry_mut().connection_closed(conn);
        self.drain();
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns[slot] = (id, src, StreamFramer::new());
    }

    fn stream_slot(&mut self, slot: usize, bytes: &[u8]) {
        for read in bytes.chunks(READ_CHUNK) {
            let (conn, src) = (self.conns[slot].0, self.conns[slot].1);
            let mut frames = Vec::new();
            match self.conns[slot].2.push(read) {
                Err(e) => frames.push(Err(e)),
                Ok(()) => {
                    while let Some(f) = self.conns[slot].2.next_frame() {
                        frames.push(f);
                    }
                }
            }
            let framer = &self.conns[slot].2;
            assert!(framer.buffered_len() <= MAX_MESSAGE_SIZE + read.len());
            let closed = framer.is_closed();
            for f in frames {
                self.bad_input = !matches!(f, Ok(Frame::Message(_) | Frame::Ping));
                self.ep.handle_stream(self.now, conn, src, f);
                self.drain();
                self.bad_input = false;
            }
            if closed {
                self.close(slot, conn, src);
                return;
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        // The ledger writes drained so far have committed by now.
        self.ep.registry_effects_done(self.now, self.effects_polled);
        self.drain();
        let until = self.now + by;
        // Firing may arm a timer for the same instant (a zero delay), but a deadline that
        // stays due however often it fires would spin the core task.
        let mut same_instant = 0;
        for _ in 0..10_000 {
            match self.ep.poll_timeout() {
                Some(t) if t <= until => {
                    if t <= self.now {
                        same_instant += 1;
                        assert!(same_instant < 100, "timer stays due: the core would spin");
                    } else {
                        same_instant = 0;
                    }
                    self.now = self.now.max(t);
                    self.ep.handle_timeout(self.now);
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn admit(&mut self, p: &[u8]) {
        let Some(call) = self.admits.pop_front() else {
            return;
        };
        let row = self.next_row;
        self.next_row += 1;
        let prompts = [
            Prompt::OutOfHours,
            Prompt::Suspended,
            Prompt::AllBusy,
            Prompt::PleaseWait,
        ];
        let a = match byte(p, 0) % 4 {
            0 => Admission::Route {
                row,
                contractor_id: 1,
                name: text(p.get(1..).unwrap_or_default()),
                greeting: "お電話ありがとうございます".into(),
                skill: (byte(p, 1) & 1 == 1).then(|| "hearing".to_owned()),
            },
            1 => Admission::Announce {
                row,
                prompt: prompts[usize::from(byte(p, 1)) % prompts.len()],
                outcome: "out_of_hours",
            },
            2 => Admission::Reject {
                row: (byte(p, 1) & 1 == 0).then_some(row),
                status: u16::from_be_bytes([byte(p, 2), byte(p, 3)]),
                outcome: Some("not_in_contract"),
            },
            _ => Admission::Unavailable,
        };
        self.ep.handle_admission(self.now, call, a);
        self.drain();
    }

    fn media(&mut self, p: &[u8]) {
        let call = match self.calls.get(usize::from(byte(p, 0))) {
            Some(c) => *c,
            None => u64::from(byte(p, 0)),
        };
        let notice = [
            MediaNotice::Timeout,
            MediaNotice::PlayFinished,
            MediaNotice::FaxTone,
            MediaNotice::Failed,
            MediaNotice::Stopped,
        ][usize::from(byte(p, 1)) % 5];
        self.ep.handle_media(self.now, call, notice);
        self.drain();
    }

    /// The seat answers one of the latest requests we sent it: first byte, high nibble picks
    /// the request (0 = newest), low nibble the status (index into [`SEAT_CODES`], else the
    /// next two bytes are the code).
    fn seat_answers(&mut self, p: &[u8]) {
        let Some((dest, req)) = pick(&self.seat_requests, byte(p, 0) >> 4).cloned() else {
            return;
        };
        let sel = usize::from(byte(p, 0) & 0x0f);
        let code = match SEAT_CODES.get(sel) {
            Some(c) => *c,
            None => u16::from_be_bytes([byte(p, 1), byte(p, 2)]),
        };
        let mut r = Message::response_to(&req, code, "Fuzz").with_to_tag("seat1");
        if let Ok(with) = r
            .clone()
            .with_header("Contact", &format!("<sip:op1@{SEAT}>"))
        {
            r = with;
        }
        let body = p.get(3..).unwrap_or_default();
        let is_invite = req.method().is_some_and(|m| m.as_str() == "INVITE");
        if is_invite && (code == 183 || (200..300).contains(&code)) {
            let body = if body.is_empty() {
                bytes::Bytes::from_static(SEAT_ANSWER.as_bytes())
            } else {
                bytes::Bytes::copy_from_slice(body)
            };
            if let Ok(with) = r.clone().with_body("application/sdp", body) {
                r = with;
            }
        }
        let bytes = r.to_bytes();
        self.send_as_seat(dest, &bytes);
    }

    /// Sends `bytes` back the way `dest` reaches the seat: from that UDP address, or over that
    /// connection while it is open (else from the seat's UDP address).
    fn send_as_seat(&mut self, dest: Destination, bytes: &[u8]) {
        match dest {
            Destination::Stream(conn) => match self.conns.iter().position(|c| c.0 == conn) {
                Some(slot) => self.stream_slot(slot, bytes),
                None => self.datagram(addr(SEAT), bytes),
            },
            Destination::Udp(a) => self.datagram(a, bytes),
        }
    }

    /// A REGISTER from the seat with valid digest credentials for the latest challenge
    /// (getting one first if needed): payload byte 0 even sends it over UDP, odd over TCP
    /// connection `(b >> 1) % 4`; the rest is `Contact values (one per line)`, and a last line
    /// `=N` sets Expires. The fuzzer cannot forge digests, so this is how its inputs reach
    /// bindings: creation, refresh, removal, `*`, TCP bindings and the call path to them.
    fn register(&mut self, p: &[u8]) {
        let sel = byte(p, 0);
        let over_tcp = sel & 1 == 1;
        let slot = usize::from(sel >> 1) % 4;
        let text = text(p.get(1..).unwrap_or_default());
        let mut contacts: Vec<&str> = text.split('\n').filter(|l| !l.is_empty()).collect();
        let expires = match contacts.last().and_then(|l| l.strip_prefix('=')) {
            Some(e) => {
                let e = e.to_owned();
                contacts.pop();
                Some(e)
            }
            None => None,
        };
        let default_contact = format!("<sip:op1@{SEAT}>");
        if contacts.is_empty() {
            contacts.push(&default_contact);
        }
        for attempt in 0..2 {
            let n = self.unique();
            let mut msg = format!(
                "REGISTER sip:smartdesk SIP/2.0\r\n\
                 Via: SIP/2.0/{} {SEAT};branch=z9hG4bKreg{n};rport\r\n\
                 Max-Forwards: 70\r\nTo: <sip:op1@smartdesk>\r\n\
                 From: <sip:op1@smartdesk>;tag=r{n}\r\nCall-ID: reg-fuzz@seat\r\n\
                 CSeq: {n} REGISTER\r\n",
                if over_tcp { "TCP" } else { "UDP" }
            );
            for c in &contacts {
                msg.push_str(&format!("Contact: {}\r\n", c.trim_end_matches('\r')));
            }
            if let Some(e) = &expires {
                msg.push_str(&format!("Expires: {}\r\n", e.trim_end_matches('\r')));
            }
            let nonce = self.nonce.clone();
            if let Some(nonce) = &nonce {
                self.nc += 1;
                let nc = format!("{:08x}", self.nc);
                let ha1 = ha1_md5("op1", "smartdesk", "pw");
                let response = response_hex(
                    Algorithm::Md5,
                    &ha1,
                    nonce,
                    &nc,
                    "cn",
                    "REGISTER",
                    "sip:smartdesk",
                );
                msg.push_str(&format!(
                    "Authorization: Digest username=\"op1\", realm=\"smartdesk\", \
                     nonce=\"{nonce}\", uri=\"sip:smartdesk\", response=\"{response}\", \
                     algorithm=MD5, qop=auth, nc={nc}, cnonce=\"cn\"\r\n"
                ));
            }
            msg.push_str("Content-Length: 0\r\n\r\n");
            if over_tcp {
                while self.conns.len() <= slot {
                    let id = ConnId(self.next_conn);
                    self.next_conn += 1;
                    self.conns.push((id, addr(SEAT), StreamFramer::new()));
                }
                self.stream_slot(slot, msg.as_bytes());
            } else {
                self.datagram(addr(SEAT), msg.as_bytes());
            }
            if nonce.is_some() || attempt == 1 {
                break;
            }
        }
    }

    /// The carrier sends a request inside the dialog of one of the latest responses it got
    /// from us: first byte, high nibble picks the response (0 = newest), low nibble the method.
    fn carrier_in_dialog(&mut self, p: &[u8]) {
        let Some(resp) = pick(&self.carrier_responses, byte(p, 0) >> 4).cloned() else {
            return;
        };
        let method = DIALOG_METHODS[usize::from(byte(p, 0) & 0x0f) % DIALOG_METHODS.len()];
        let n = self.unique();
        let invite_cseq = resp.cseq();
        let (branch, cseq, to) = match method {
            // CANCEL matches the INVITE's transaction: same branch, same CSeq, To as sent.
            "CANCEL" => (
                resp.top_via().branch().unwrap_or("z9hG4bKx").to_owned(),
                invite_cseq,
                resp.header("To")
                    .unwrap_or_default()
                    .split(";tag=")
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            // ACK for a failure belongs to the INVITE transaction; for a 2xx it is new.
            "ACK" if resp.status().is_some_and(|s| s >= 300) => (
                resp.top_via().branch().unwrap_or("z9hG4bKx").to_owned(),
                invite_cseq,
                resp.header("To").unwrap_or_default().to_owned(),
            ),
            "ACK" => (
                format!("z9hG4bKack{n}"),
                invite_cseq,
                resp.header("To").unwrap_or_default().to_owned(),
            ),
            _ => (
                format!("z9hG4bK{method}{n}"),
                invite_cseq.saturating_add(n),
                resp.header("To").unwrap_or_default().to_owned(),
            ),
        };
        let target = resp
            .header("Contact")
            .map(|c| {
                c.trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_else(|| format!("sip:smartdesk@{LOCAL}"));
        let body = p.get(1..).unwrap_or_default();
        let ct = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        let head = format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {CARRIER};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nTo: {to}\r\nFrom: {from}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:0901234567@{CARRIER}>\r\n{ct}\
             Content-Length: {len}\r\n\r\n",
            from = resp.header("From").unwrap_or_default(),
            call_id = resp.call_id(),
            len = body.len(),
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.datagram(addr(CARRIER), &bytes);
    }

    /// A well-formed INVITE from the carrier: `number\nSDP`, defaults for empty parts.
    fn carrier_invite(&mut self, p: &[u8]) {
        let (number, body) = match p.iter().position(|b| *b == b'\n') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, &[][..]),
        };
        let number = if number.is_empty() {
            "0312345678".to_owned()
        } else {
            text(number)
        };
        let body = if body.is_empty() {
            OFFER.as_bytes()
        } else {
            body
        };
        let n = self.unique();
        let head = format!(
            "INVITE sip:{number}@192.0.2.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {CARRIER};branch=z9hG4bKinv{n};rport\r\n\
             Max-Forwards: 70\r\nTo: <sip:{number}@192.0.2.1>\r\n\
             From: \"Caller\" <sip:0901234567@192.0.2.10>;tag=c{n}\r\nCall-ID: call{n}@carrier\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:0901234567@{CARRIER}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.datagram(addr(CARRIER), &bytes);
    }
}

/// How many recent seat requests / carrier responses the scripted peers can answer.
const RECENT: usize = 4;

fn remember<T>(list: &mut VecDeque<T>, m: T) {
    list.push_front(m);
    list.truncate(RECENT);
}

fn pick<T>(list: &VecDeque<T>, index: u8) -> Option<&T> {
    list.get(usize::from(index) % RECENT.max(1))
        .or_else(|| list.front())
}

fn byte(p: &[u8], i: usize) -> u8 {
    p.get(i).copied().unwrap_or(0)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let mut h = Harness::new();
    let mut rest = data;
    for _ in 0..MAX_STEPS {
        // Record: op, 16-bit big-endian length, payload (truncated at the end of input).
        let [op, hi, lo, tail @ ..] = rest else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (p, next) = tail.split_at(len);
        rest = next;
        if trace() {
            eprintln!(
                "step op={} len={len}: {:?}",
                op % 11,
                String::from_utf8_lossy(p)
            );
        }
        match op % 11 {
            0 => h.datagram(addr(CARRIER), p),
            1 => h.datagram(addr(SEAT), p),
            2 => {
                let src = addr(OTHERS[usize::from(byte(p, 0)) % OTHERS.len()]);
                h.datagram(src, p.get(1..).unwrap_or_default());
            }
            3 => h.stream(byte(p, 0), p.get(1..).unwrap_or_default()),
            4 => {
                // Up to about 18 hours in 1 s steps, or up to 65 s in 1 ms steps.
                let n = u64::from(u16::from_be_bytes([byte(p, 0), byte(p, 1)]));
                let by = if byte(p, 2) & 1 == 0 {
                    Duration::from_millis(n)
                } else {
                    Duration::from_secs(n)
                };
                h.advance(by);
            }
            5 => h.admit(p),
            6 => h.media(p),
            7 => h.seat_answers(p),
            8 => h.carrier_in_dialog(p),
            9 => h.carrier_invite(p),
            _ => h.register(p),
        }
    }
    h.wind_down();
});
