//! The SIP edge: sockets in, [`Endpoint`] in one owner task, sockets out.
//!
//! ```text
//!  UDP socket task ──┐                          ┌──► UDP socket (try_send_to)
//!  TCP accept ─► per-connection task ─┬─► mpsc ─► core task (Endpoint) ─┤
//!                (StreamFramer, idle) │  bounded                        └──► per-connection
//!                ◄────────────────────┴──── bounded mpsc of writes ◄─────────  writer
//! ```
//!
//! Everything that arrives is bounded: the core queue, each connection's read buffer (the
//! framer), its write queue, the number of connections, and how long a connection may go
//! without completing a message.
//!
//! Seat registrations ([`crate::sip::seats`]):
//!
//! ```text
//!  start: ledger seats ──► set_credentials     every 2 s: ledger seats ──► core (Credentials)
//!         purge expired, live rows ──► restore (UDP seats reachable at once)
//!  core ── poll_registry_effect ──► bounded mpsc ──► ledger writer task (in order, retries)
//! ```
//!
//! The core never waits for the ledger, but a REGISTER that changed bindings is answered only
//! when the writer reports its rows done (`Inbound::EffectsDone`): a phone that saw 200 OK is
//! in the ledger, `kill -9` or not. Should a write fail for good (after retries) the answer is
//! still sent: the binding works from memory, and the error is logged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::Instant;

use std::net::IpAddr;

use super::admission::{self, Admitter};
use super::media::{MediaEdge, MediaEvent};
use super::metrics::Metrics;
use super::notify;
use super::prompts::Prompts;
use super::requests::{CoreRequest, CoreSnapshot, SeatView, TrunkView};
use super::seat_feed::{self, SeatCalls};
use super::{Clock, Daemon};
use crate::config::{Profiles, SipConfig};
use crate::ledger::{CallUpdate, NewQueueEvent, NewVoiceMessage};
use crate::ledger::{Ledger, Seat};
use crate::media::relay::RelayConfig;
use crate::sip::auth::ServerSecret;
use crate::sip::b2bua::{Admission, AdmitRequest, B2bua, B2buaConfig, CallEffect, MediaNotice};
use crate::sip::endpoint::{ConnId, Destination, Endpoint};
use crate::sip::message::{Frame, MessageError, StreamFramer};
use crate::sip::registrar::ExpiryBounds;
use crate::sip::sdp::Codec;
use crate::sip::seats::{
    RegistryConfig, RegistryEffect, SeatCredential, SeatRegistry, SeatTransport,
};
use crate::sip::transaction::{LayerConfig, TimerConfig};

/// Inputs waiting for the core. At ~1 ms per message worst case this is about a second of
/// backlog; beyond it UDP is shed and TCP readers wait (back-pressure to the peer).
const CORE_QUEUE: usize = 4096;

/// Concurrent TCP connections. A trunk uses a handful and each seat one; the cap keeps a
/// connection flood from exhausting file descriptors and memory (64 KiB framer each).
pub const MAX_TCP_CONNECTIONS: usize = 1024;

/// A TCP connection that completes no message for this long is closed: it holds a framer
/// buffer and a descriptor, and a slow-loris peer would hold them forever. RFC 5626 §4.4.1
/// keep-alives (CRLFCRLF every ≤ 120 s by default, usually far less) count as messages;
/// 30 s is what SIP stacks commonly allow an idle unregistered connection.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes queued per connection; a peer that does not read loses its connection instead of
/// growing our memory.
const CONN_WRITE_QUEUE: usize = 64;

/// A write that cannot complete in this time means the peer stopped reading.
const TCP_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// After a fatal framing error, how long answers to earlier messages may still be written.
const CLOSE_LINGER: Duration = Duration::from_millis(500);

/// Stale ICMP errors to skip per send (see `udp_send`).
const UDP_SEND_ATTEMPTS: usize = 4;

const UDP_MAX_DATAGRAM: usize = 65_535;
const TCP_READ_CHUNK: usize = 8192;

/// How often seat credentials are reloaded from the ledger: a `seat add` or `seat passwd`
/// takes effect within this time without a restart or a signal.
pub const CREDENTIAL_REFRESH: Duration = Duration::from_secs(2);

/// Registration writes waiting for the ledger. A write takes milliseconds; this is minutes of
/// REGISTER traffic of a few hundred seats, so it fills only during a long ledger outage, and
/// then the newest writes are dropped (logged) rather than memory growing without bound.
const EFFECT_QUEUE: usize = 8192;

/// Attempts per registration write, with doubling pauses from [`WRITE_RETRY_FIRST`]
/// (about 3 s in all): rides out a busy SQLite lock or a PostgreSQL failover, and then gives
/// up on that write so later ones are not held back forever.
const WRITE_ATTEMPTS: u32 = 5;
const WRITE_RETRY_FIRST: Duration = Duration::from_millis(200);

enum Inbound {
    Datagram {
        src: SocketAddr,
        bytes: Bytes,
    },
    Opened {
        conn: ConnId,
        writer: mpsc::Sender<Bytes>,
    },
    Frame {
        conn: ConnId,
        src: SocketAddr,
        frame: Result<Frame, MessageError>,
    },
    Closed {
        conn: ConnId,
    },
    /// Fresh seat credentials from the ledger.
    Credentials(Vec<SeatCredential>),
    /// Seats with their skills, from the ledger.
    Seats(Vec<(i64, String, Vec<String>)>),
    /// The ledger writer finished registry effects up to this number.
    EffectsDone(u64),
}

/// The transaction timers from `[sip]` (T1, T2, T4; the rest stay at RFC 3261 values).
pub(super) fn layer_config(sip: &SipConfig) -> LayerConfig {
    let ms = Duration::from_millis;
    LayerConfig {
        timers: TimerConfig {
            t1: ms(sip.t1_ms),
            t2: ms(sip.t2_ms),
            t4: ms(sip.t4_ms),
            ..TimerConfig::default()
        },
        ..LayerConfig::default()
    }
}

/// The registrar policy from the seat profile and `[sip]`.
pub(super) fn registry_config(
    profiles: &Profiles,
    sip: &SipConfig,
) -> Result<RegistryConfig, String> {
    let seats = &profiles.seats;
    let mut cfg = RegistryConfig::new(&seats.realm);
    cfg.bounds = ExpiryBounds::new(seats.min_expires, seats.max_expires, seats.default_expires)
        .map_err(|e| format!("seat profile: {e}"))?;
    cfg.algorithms = seats.algorithms();
    if !seats.domains.is_empty() {
        let mut hosts = vec![seats.realm.clone()];
        hosts.extend(seats.domains.iter().cloned());
        if !sip.advertised_address.is_empty() {
            hosts.push(sip.advertised_address.clone());
        }
        if !sip.listen.ip().is_unspecified() {
            hosts.push(match sip.listen.ip() {
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            });
        }
        cfg.aor_hosts = hosts;
    }
    Ok(cfg)
}

/// Unix time of the daemon's clock, as the endpoint's base.
fn unix_of(at: DateTime<Utc>) -> Duration {
    let secs = u64::try_from(at.timestamp()).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_nanos(u64::from(at.timestamp_subsec_nanos()))
}

/// Credentials of the seats whose HA1s belong to `realm`; the names of the others.
fn credentials(seats: Vec<Seat>, realm: &str) -> (Vec<SeatCredential>, Vec<String>) {
    let mut other_realm = Vec::new();
    let mut out = Vec::new();
    for s in seats {
        if s.realm != realm {
            other_realm.push(s.name);
            continue;
        }
        out.push(SeatCredential {
            seat_id: s.id,
            name: s.name,
            ha1_md5: Some(s.ha1_md5),
            ha1_sha256: Some(s.ha1_sha256),
        });
    }
    (out, other_realm)
}

/// Seat ids, names and skills for the ACD.
fn seat_skills(seats: &[Seat]) -> Vec<(i64, String, Vec<String>)> {
    seats
        .iter()
        .map(|s| (s.id, s.name.clone(), s.skills.clone()))
        .collect()
}

/// Loads credentials and the bindings of the previous run into the registry.
async fn prime_registry(endpoint: &mut Endpoint, ledger: &Ledger, clock: Clock) {
    let realm = endpoint.registry().realm().to_owned();
    match ledger.seats().await {
        Ok(seats) => {
            let skills = seat_skills(&seats);
            let (creds, other_realm) = credentials(seats, &realm);
            if !other_realm.is_empty() {
                tracing::warn!(
                    seats = ?other_realm,
                    realm = %realm,
                    "seats whose SIP password was set for another realm cannot register; \
                     reset it with `smartdesk seat passwd NAME --password …`"
                );
            }
            endpoint.registry_mut().set_credentials(creds);
            endpoint.set_seats(Instant::now().into_std(), &skills);
        }
        Err(e) => tracing::error!(error = %e, "cannot load seat credentials; retrying every 2 s"),
    }
    let now = u64::try_from(clock.now().timestamp()).unwrap_or(0);
    match ledger.purge_expired_registrations(now).await {
        Ok(n) if n > 0 => tracing::info!(purged = n, "expired seat registrations removed"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot purge expired seat registrations"),
    }
    match ledger.live_registrations(now).await {
        Ok(rows) => {
            let tcp = rows
                .iter()
                .filter(|b| b.transport == SeatTransport::Tcp)
                .count();
            let restored = endpoint.registry_mut().restore(rows, now);
            tracing::info!(
                restored,
                tcp_awaiting_reregistration = tcp,
                seats = endpoint.registry().registered_seats().count(),
                "seat registrations restored from the ledger"
            );
        }
        Err(e) => tracing::error!(
            error = %e,
            "cannot load seat registrations; seats are unreachable until they re-register"
        ),
    }
}

/// Queue of calls waiting for admission (their row write); beyond it new calls get 503.
const ADMIT_QUEUE: usize = 8192;
/// Row updates queued for the writer.
const UPDATE_QUEUE: usize = 65_536;
/// Media events queued for the core.
const MEDIA_EVENTS: usize = 4096;
/// Concurrent calls; each holds two RTP port pairs, so the port range bounds it too.
pub const MAX_CALLS: usize = 20_000;

/// The address peers must use for us (Via, Contact, SDP): `sip.advertised_address`, else
/// the listen address, else — when listening on a wildcard — the address this host would
/// use to reach the outside (a UDP `connect` sets the route and sends nothing), else
/// loopback with a warning.
pub fn advertised(cfg: &crate::config::Config) -> Result<SocketAddr, String> {
    if !cfg.sip.advertised_address.is_empty() {
        let ip: IpAddr = cfg
            .sip
            .advertised_address
            .parse()
            .map_err(|_| "sip.advertised_address: not an IP address".to_owned())?;
        return Ok(SocketAddr::new(ip, cfg.sip.listen.port()));
    }
    if !cfg.sip.listen.ip().is_unspecified() {
        return Ok(cfg.sip.listen);
    }
    let probe = if cfg.sip.listen.is_ipv4() {
        ("0.0.0.0:0", "192.0.2.1:9")
    } else {
        ("[::]:0", "[2001:db8::1]:9")
    };
    let routed = std::net::UdpSocket::bind(probe.0)
        .and_then(|s| s.connect(probe.1).map(|()| s))
        .and_then(|s| s.local_addr());
    match routed {
        Ok(a) if !a.ip().is_unspecified() => {
            tracing::info!(address = %a.ip(), "sip.advertised_address not set; using the host's routed address");
            Ok(SocketAddr::new(a.ip(), cfg.sip.listen.port()))
        }
        _ => {
            tracing::warn!(
                "sip.advertised_address not set and no route found; advertising loopback"
            );
            Ok(SocketAddr::new(
                if cfg.sip.listen.is_ipv4() {
                    IpAddr::from([127, 0, 0, 1])
                } else {
                    IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
                },
                cfg.sip.listen.port(),
            ))
        }
    }
}

/// How long a shutdown waits for the ledger writers to write what is queued.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the SIP edge until `stop` fires (or the sockets fail), then stops the core and lets
/// the ledger writers finish what is queued (bounded by [`FLUSH_TIMEOUT`]).
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    d: Arc<Daemon>,
    local: SocketAddr,
    prompts: Prompts,
    udp: Option<UdpSocket>,
    tcp: Option<TcpListener>,
    requests: mpsc::Receiver<CoreRequest>,
    stop: oneshot::Receiver<()>,
    seat_feed: watch::Sender<SeatCalls>,
) {
    let cfg = &d.config;
    let profiles = d.profiles.load();
    let layer = layer_config(&cfg.sip);
    let b2bua = B2bua::new(B2buaConfig {
        local,
        media_ip: local.ip(),
        rtp_port_min: cfg.media.rtp_port_min,
        rtp_port_max: cfg.media.rtp_port_max,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        acd: cfg.acd.rules(),
        recording_max: Duration::from_secs(cfg.acd.recording_max_s),
        trunks: profiles.trunks.clone(),
        seat_domain: profiles.seats.realm.clone(),
        max_calls: MAX_CALLS,
        timers: layer.timers,
    })
    .map_err(|e| e.to_string());
    let registry = registry_config(&profiles, &cfg.sip).and_then(|cfg| {
        SeatRegistry::new(cfg, ServerSecret::generate()).map_err(|e| e.to_string())
    });
    let endpoint = registry.and_then(|registry| {
        let b2bua = b2bua?;
        Endpoint::new(layer, rand::random(), registry)
            .map(|e| e.with_b2bua(b2bua).with_guard(cfg.security.guard()))
            .map_err(|e| e.to_string())
    });
    let mut endpoint = match endpoint {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "SIP endpoint could not start");
            return;
        }
    };
    endpoint.set_unix_base(Instant::now().into_std(), unix_of(d.clock.now()));
    if !d.spool.as_ref().is_some_and(|s| s.ledger_unreachable()) {
        prime_registry(&mut endpoint, &d.ledger, d.clock).await;
    }
    endpoint.seats_changed(Instant::now().into_std());
    let (admit_tx, admit_rx) = mpsc::channel(ADMIT_QUEUE);
    let (admitted_tx, admitted_rx) = mpsc::channel(ADMIT_QUEUE);
    let (update_tx, update_rx) = mpsc::channel(UPDATE_QUEUE);
    let (media_tx, media_rx) = mpsc::channel(MEDIA_EVENTS);
    let admitter = Admitter::new(d.ledger.clone(), d.calendar.clone(), d.clock)
        .with_metrics(d.metrics.clone())
        .with_spool(d.spool.clone());
    let admission = tokio::spawn(admission::run(admitter, admit_rx, admitted_tx));
    let updates = tokio::spawn(admission::run_updates(
        d.ledger.clone(),
        update_rx,
        Some(d.metrics.clone()),
        d.spool.clone(),
    ));
    let udp = udp.map(Arc::new);
    let (tx, rx) = mpsc::channel(CORE_QUEUE);
    let (effects_tx, effects_rx) = mpsc::channel(EFFECT_QUEUE);
    let writer = tokio::spawn(ledger_writer(
        d.ledger.clone(),
        d.clock,
        effects_rx,
        tx.clone(),
    ));
    let (core_stop_tx, core_stop) = oneshot::channel();
    let media = MediaEdge::new(local.ip(), media_tx);
    if let Some(b) = endpoint.b2bua_mut() {
        b.set_port_gate(media.port_gate());
    }
    let core = tokio::spawn(core_task(
        Core {
            endpoint,
            media,
            prompts,
            admit: admit_tx,
            updates: update_tx,
            registrations: effects_tx,
            registrations_dropped: 0,
            registrations_seq: 0,
            clock: d.clock,
            media_timeout: Duration::from_secs(cfg.media.media_timeout_s),
            recordings_dir: cfg.daemon.data_dir.join("recordings"),
            recordings: HashMap::new(),
            day: tokyo_day(d.clock),
            metrics: d.metrics.clone(),
            seat_feed,
        },
        rx,
        admitted_rx,
        media_rx,
        requests,
        udp.clone(),
        core_stop,
    ));
    let refresh = tokio::spawn(refresh_credentials(
        d.ledger.clone(),
        profiles.seats.realm.clone(),
        tx.clone(),
    ));
    let udp_task = {
        let tx = tx.clone();
        async move {
            match udp {
                Some(sock) => udp_reader(sock, tx).await,
                None => std::future::pending().await,
            }
        }
    };
    let tcp_task = async move {
        match tcp {
            Some(l) => tcp_acceptor(l, tx).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = async { tokio::join!(udp_task, tcp_task) } => {
            tracing::error!("SIP sockets failed");
        }
        _ = stop => {}
    }
    // The sockets are closed (their tasks dropped with the select). Stop the core: dropping
    // it closes the writers' queues, and each writer ends once it has written what was
    // queued. Nothing is aborted while it may still hold a call row or an outcome.
    refresh.abort();
    let _ = core_stop_tx.send(());
    if core.await.is_err() {
        tracing::error!("the call core panicked");
    }
    let flush = async {
        let _ = admission.await;
        let _ = updates.await;
        let _ = writer.await;
    };
    if tokio::time::timeout(FLUSH_TIMEOUT, flush).await.is_err() {
        tracing::error!(
            timeout_s = FLUSH_TIMEOUT.as_secs(),
            "ledger writes still pending at shutdown; the next start closes the calls they concern"
        );
    }
}

/// Reloads seat credentials every [`CREDENTIAL_REFRESH`] and hands them to the core.
async fn refresh_credentials(ledger: Ledger, realm: String, tx: mpsc::Sender<Inbound>) {
    let mut tick = tokio::time::interval(CREDENTIAL_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; start has just loaded them
    let mut failing = false;
    loop {
        tick.tick().await;
        match ledger.seats().await {
            Ok(seats) => {
                if failing {
                    tracing::info!("seat credentials load again");
                    failing = false;
                }
                let skills = seat_skills(&seats);
                let (creds, _) = credentials(seats, &realm);
                if tx.send(Inbound::Credentials(creds)).await.is_err()
                    || tx.send(Inbound::Seats(skills)).await.is_err()
                {
                    return;
                }
            }
            Err(e) => {
                // Keep the credentials the core has; say so once per outage.
                if !failing {
                    tracing::warn!(error = %e, "cannot reload seat credentials; keeping the last ones");
                    failing = true;
                }
            }
        }
    }
}

/// Performs registration writes in the order the core emitted them and reports each one done
/// to the core. A failing write is retried [`WRITE_ATTEMPTS`] times, then logged and dropped;
/// nothing here can panic or stall the core (which never waits on this task).
async fn ledger_writer(
    ledger: Ledger,
    clock: Clock,
    mut rx: mpsc::Receiver<(u64, RegistryEffect)>,
    core: mpsc::Sender<Inbound>,
) {
    while let Some((seq, effect)) = rx.recv().await {
        let mut pause = WRITE_RETRY_FIRST;
        for attempt in 1..=WRITE_ATTEMPTS {
            let result = match &effect {
                RegistryEffect::Upsert(b) => ledger.upsert_registration(b, clock.now()).await,
                RegistryEffect::Remove { aor, contact } => {
                    ledger.remove_registration(aor, contact).await.map(|_| ())
                }
            };
            match result {
                Ok(()) => break,
                Err(e) if attempt < WRITE_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "seat registration write failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => {
                    let (kind, aor) = match &effect {
                        RegistryEffect::Upsert(b) => ("upsert", b.aor.as_str()),
                        RegistryEffect::Remove { aor, .. } => ("remove", aor.as_str()),
                    };
                    tracing::error!(
                        error = %e, kind, aor,
                        "seat registration write failed for good; the ledger is behind until the next REGISTER"
                    );
                }
            }
        }
        // After a shutdown stopped the core nobody waits for this, but the writes still count.
        let _ = core.send(Inbound::EffectsDone(seq)).await;
    }
}

/// The core task's state: the sans-IO endpoint and what carries its effects out.
struct Core {
    endpoint: Endpoint,
    media: MediaEdge,
    prompts: Prompts,
    admit: mpsc::Sender<(u64, AdmitRequest)>,
    updates: mpsc::Sender<CallUpdate>,
    registrations: mpsc::Sender<(u64, RegistryEffect)>,
    registrations_dropped: u64,
    /// Registry effects are numbered in order; the writer reports the last one done.
    registrations_seq: u64,
    clock: Clock,
    media_timeout: Duration,
    /// Voice messages: `<data_dir>/recordings/<call row>.wav`.
    recordings_dir: std::path::PathBuf,
    /// Calls being recorded: call → row.
    recordings: HashMap<u64, i64>,
    /// The Tokyo date "calls handled today" counts for.
    day: chrono::NaiveDate,
    metrics: Arc<Metrics>,
    /// What each seat has on its line, for the operator console.
    seat_feed: watch::Sender<SeatCalls>,
}

fn tokyo_day(clock: Clock) -> chrono::NaiveDate {
    clock
        .now()
        .with_timezone(&chrono_tz::Asia::Tokyo)
        .date_naive()
}

impl Core {
    /// Carries out what the TUs asked for. Never blocks: a full queue is a refusal
    /// (admission: 503) or a logged loss (row updates, which the orphan sweep at the next
    /// start closes; registration writes, which the next REGISTER repeats).
    fn perform_effects(&mut self, now: std::time::Instant) {
        while let Some(effect) = self.endpoint.poll_registry_effect() {
            self.registrations_seq += 1;
            let seq = self.registrations_seq;
            if self.registrations.try_send((seq, effect)).is_err() {
                // Not written: do not keep its REGISTER waiting (memory still has the binding).
                self.endpoint.registry_effects_done(now, seq);
                self.registrations_dropped += 1;
                if self.registrations_dropped.is_power_of_two() {
                    tracing::error!(
                        dropped = self.registrations_dropped,
                        "seat registration writes dropped: the ledger is not keeping up"
                    );
                }
            }
        }
        while let Some(effect) = self.endpoint.poll_call_effect() {
            match effect {
                CallEffect::Admit { call, request } => {
                    if self.admit.try_send((call, request)).is_err() {
                        self.endpoint
                            .handle_admission(now, call, Admission::Unavailable);
                    }
                }
                CallEffect::Answered { row, seat_id, .. } => {
                    let at = self.clock.now();
                    seat_feed::answered(&self.seat_feed, seat_id, row, at);
                    self.update(CallUpdate::Answered {
                        id: row,
                        seat_id,
                        at,
                    })
                }
                CallEffect::SeatOffered { row, seat_id, .. } => {
                    seat_feed::offered(&self.seat_feed, seat_id, row, self.clock.now())
                }
                CallEffect::SeatReleased { row, seat_id, .. } => {
                    seat_feed::released(&self.seat_feed, seat_id, row, self.clock.now())
                }
                CallEffect::Finished {
                    row,
                    outcome,
                    seat_id,
                    ..
                } => self.update(CallUpdate::Finished {
                    id: row,
                    outcome: outcome.to_owned(),
                    seat_id,
                    at: self.clock.now(),
                }),
                CallEffect::MediaStart {
                    call,
                    a_port,
                    b_port,
                    a,
                    b,
                } => {
                    let mut config = RelayConfig::new(a, b);
                    config.media_timeout = self.media_timeout;
                    if let Err(e) = self.media.start(call, a_port, b_port, config) {
                        tracing::error!(error = %e, "media relay could not start");
                        self.endpoint.handle_media(now, call, MediaNotice::Failed);
                        self.endpoint.handle_media(now, call, MediaNotice::Stopped);
                    }
                }
                CallEffect::MediaRemote {
                    call,
                    leg,
                    remote,
                    hold,
                } => {
                    self.media.set_remote(call, leg, remote);
                    self.media.set_hold(call, leg, hold);
                }
                CallEffect::MediaPlay {
                    call,
                    leg,
                    prompt,
                    repeat,
                    law,
                } => match self.prompts.get(prompt, law) {
                    Some(frames) => self.media.play(call, leg, frames, law, repeat),
                    None => self
                        .endpoint
                        .handle_media(now, call, MediaNotice::PlayFinished),
                },
                CallEffect::MediaStopPlay { call, leg } => self.media.stop_play(call, leg),
                CallEffect::MediaRecord {
                    call,
                    row,
                    law,
                    max,
                } => {
                    let samples = usize::try_from(max.as_millis() * 8).unwrap_or(usize::MAX);
                    self.media.record(call, law, samples);
                    self.recordings.insert(call, row);
                }
                CallEffect::MediaStop { call } => self.media.stop(call),
                CallEffect::Queue {
                    row,
                    contractor,
                    kind,
                    ..
                } => self.update(CallUpdate::QueueEvent(NewQueueEvent {
                    call_id: row,
                    contractor_id: contractor,
                    kind: kind.name().to_owned(),
                    seat_id: kind.seat(),
                    wait_ms: kind.wait_ms().map(|w| i64::try_from(w).unwrap_or(i64::MAX)),
                    position: kind.position().map(i64::from),
                    at: self.clock.now(),
                })),
            }
        }
        while let Some(ended) = self.endpoint.poll_ended_call() {
            self.call_ended(now, &ended);
        }
    }

    /// One line per call at its end with the key facts, and the call's metrics. No caller
    /// number: the row id leads to it in the ledger for those allowed to see it.
    fn call_ended(&self, now: std::time::Instant, c: &crate::sip::b2bua::CallSummary) {
        let duration = now.saturating_duration_since(c.started);
        let wait = c
            .answered_at
            .map(|a| a.saturating_duration_since(c.started));
        let talk = c.answered_at.map(|a| now.saturating_duration_since(a));
        let outcome = if c.row.is_some() {
            c.outcome
        } else {
            "not_recorded"
        };
        self.metrics.call_ended(outcome);
        if let Some(w) = wait {
            self.metrics.queue_wait.observe(w);
        }
        let secs = |d: Duration| d.as_millis() as f64 / 1000.0;
        tracing::info!(
            call = c.row,
            trunk = %c.trunk,
            contractor = c.contractor_id,
            seat = c.seat_id,
            outcome,
            duration_s = secs(duration),
            wait_s = wait.map(secs),
            talk_s = talk.map(secs),
            "call ended"
        );
    }

    fn snapshot(&self, now: std::time::Instant) -> CoreSnapshot {
        let Some(b) = self.endpoint.b2bua() else {
            return CoreSnapshot::default();
        };
        let acd = b.acd().snapshot(now);
        let seats = acd
            .seats
            .into_iter()
            .map(|s| SeatView {
                id: s.seat_id,
                name: s.name,
                state: s.state.name(),
                reason: match s.state {
                    crate::acd::SeatState::Paused { reason } => Some(reason),
                    _ => None,
                },
                in_state_s: s.in_state_ms / 1000,
            })
            .collect();
        let trunks = b
            .trunks_seen(now)
            .into_iter()
            .map(|(t, ago)| TrunkView {
                name: t.name,
                sources: t.sources.iter().map(ToString::to_string).collect(),
                last_options_s: ago.map(|d| d.as_secs()),
            })
            .collect();
        CoreSnapshot {
            calls: b.live_calls(now),
            seats,
            trunks,
            queue_depth: acd.waiting.len(),
            stats: b.stats(),
            sip: self.endpoint.counters(),
            auth_failures: self.endpoint.registry().auth_failures(),
            draining: b.is_draining(),
            calls_unfinished: b.calls_unfinished(),
            requests_outstanding: b.requests_outstanding(),
            transactions: self.endpoint.transactions(),
            registration_writes_dropped: self.registrations_dropped,
        }
    }

    /// Answers a request from another task at once (see [`super::requests`]). A requester
    /// that gave up has dropped its oneshot; the answer is then simply discarded.
    fn handle_request(&mut self, now: std::time::Instant, req: CoreRequest) {
        match req {
            CoreRequest::Stats(reply) => {
                let stats = self.endpoint.b2bua().map(|b| b.stats()).unwrap_or_default();
                let _ = reply.send(stats);
            }
            CoreRequest::Queue(reply) => {
                let _ = reply.send(self.endpoint.acd_snapshot(now));
            }
            CoreRequest::Seat(command, reply) => {
                let _ = reply.send(self.endpoint.seat_command(now, command));
            }
            CoreRequest::RecordSubmitted {
                seat,
                call_row,
                reply,
            } => {
                let _ = reply.send(self.endpoint.record_submitted(now, seat, call_row));
            }
            CoreRequest::Snapshot(reply) => {
                let _ = reply.send(self.snapshot(now));
            }
            CoreRequest::Hangup { id, reply } => {
                let call = self.endpoint.b2bua().and_then(|b| b.call_by_row(id));
                let r = match call {
                    Some(call) => self.endpoint.hang_up(now, call),
                    None => Err(crate::sip::b2bua::HangupError::NotFound),
                };
                if r.is_ok() {
                    tracing::info!(call = id, "call hung up by an admin");
                }
                let _ = reply.send(r);
            }
            CoreRequest::Drain(reply) => {
                if let Some(b) = self.endpoint.b2bua_mut() {
                    b.set_draining(true);
                }
                let _ = reply.send(());
            }
            CoreRequest::HangupAll(reply) => {
                let _ = reply.send(self.endpoint.hang_up_all(now));
            }
            CoreRequest::BrowserSeat {
                seat,
                agent,
                online,
                reply,
            } => {
                let known = match self.endpoint.unix_now(now) {
                    Some(unix) if online => self.endpoint.registry_mut().attach_browser(
                        unix,
                        &seat,
                        agent,
                        unix + super::browser_seat::BINDING_TTL.as_secs(),
                    ),
                    _ => {
                        self.endpoint.registry_mut().detach_browser(&seat, agent);
                        true
                    }
                };
                self.endpoint.seats_changed(now);
                let _ = reply.send(known);
            }
            CoreRequest::Reload(r, reply) => {
                let r = *r;
                let result = self
                    .endpoint
                    .registry_mut()
                    .set_policy(&r.registry)
                    .map(|()| {
                        if let Some(b) = self.endpoint.b2bua_mut() {
                            b.set_trunks(r.trunks);
                        }
                        self.prompts = r.prompts;
                    });
                let _ = reply.send(result);
            }
        }
    }

    /// A caller's voice message: written as `<data_dir>/recordings/<row>.wav` off the core
    /// task, then its ledger row goes through the row-update writer (in order after the
    /// call's outcome). The row is what the report outbox picks up (see `ledger::queue`).
    fn save_recording(&mut self, call: u64, law: crate::media::g711::Law, samples: Vec<u8>) {
        let Some(row) = self.recordings.remove(&call) else {
            return;
        };
        let dir = self.recordings_dir.clone();
        let updates = self.updates.clone();
        let clock = self.clock;
        tokio::spawn(async move {
            let path = dir.join(format!("{row}.wav"));
            // 8000 samples a second, one byte each.
            let duration_ms = i64::try_from(samples.len() / 8).unwrap_or(i64::MAX);
            let written = tokio::task::spawn_blocking({
                let path = path.clone();
                move || -> Result<(), String> {
                    let wav = crate::media::wav::write_wav_g711_8k(law, &samples)
                        .map_err(|e| e.to_string())?;
                    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                    let tmp = path.with_extension("wav.tmp");
                    std::fs::write(&tmp, wav).map_err(|e| e.to_string())?;
                    std::fs::rename(&tmp, &path).map_err(|e| e.to_string())
                }
            })
            .await;
            match written {
                Ok(Ok(())) => {
                    tracing::info!(call = row, duration_ms, "voice message saved");
                    let m = NewVoiceMessage {
                        call_id: row,
                        path: path.display().to_string(),
                        duration_ms,
                        created_at: clock.now(),
                    };
                    if updates.send(CallUpdate::VoiceMessage(m)).await.is_err() {
                        tracing::error!(
                            call = row,
                            "voice message not recorded in the ledger: writer gone"
                        );
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(call = row, error = %e, "voice message could not be written")
                }
                Err(e) => tracing::error!(call = row, error = %e, "voice message writer failed"),
            }
        });
    }

    fn update(&mut self, u: CallUpdate) {
        if self.updates.try_send(u).is_err() {
            tracing::error!("call-row update queue full; update dropped");
        }
    }
}

/// The call core's loop. It also sends systemd's WATCHDOG=1: a wedged core (a loop turn
/// that never ends) stops the pings and systemd restarts the daemon. An idle core wakes for
/// the ping through its timer.
async fn core_task(
    mut core: Core,
    mut rx: mpsc::Receiver<Inbound>,
    mut admitted: mpsc::Receiver<(u64, Admission)>,
    mut media_events: mpsc::Receiver<MediaEvent>,
    mut requests: mpsc::Receiver<CoreRequest>,
    udp: Option<Arc<UdpSocket>>,
    mut stop: oneshot::Receiver<()>,
) {
    let watchdog = notify::watchdog_interval();
    let mut next_ping = watchdog.map(|_| Instant::now());
    enum Input {
        Net(Inbound),
        Admitted(u64, Admission),
        Media(MediaEvent),
        Request(CoreRequest),
        Timer,
    }
    let mut writers: HashMap<ConnId, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        if let (Some(iv), Some(at)) = (watchdog, next_ping) {
            if Instant::now() >= at {
                notify::notify("WATCHDOG=1");
                next_ping = Some(Instant::now() + iv);
            }
        }
        let deadline = core.endpoint.poll_timeout().map(Instant::from_std);
        let deadline = match (deadline, next_ping) {
            (Some(d), Some(p)) => Some(d.min(p)),
            (d, p) => d.or(p),
        };
        let input = tokio::select! {
            _ = &mut stop => return,
            input = rx.recv() => match input {
                Some(i) => Input::Net(i),
                None => return,
            },
            Some((call, a)) = admitted.recv() => Input::Admitted(call, a),
            Some(e) = media_events.recv() => Input::Media(e),
            Some(r) = requests.recv() => Input::Request(r),
            _ = sleep_until(deadline) => Input::Timer,
        };
        let now = Instant::now().into_std();
        let endpoint = &mut core.endpoint;
        match input {
            Input::Timer => endpoint.handle_timeout(now),
            Input::Request(r) => core.handle_request(now, r),
            Input::Admitted(call, a) => endpoint.handle_admission(now, call, a),
            Input::Media(MediaEvent::Recorded { call, law, samples }) => {
                core.save_recording(call, law, samples)
            }
            Input::Media(e) => {
                let (call, notice) = match e {
                    // Taken by the arm above; nothing for the call path.
                    MediaEvent::Recorded { .. } => continue,
                    MediaEvent::Timeout { call } => (call, MediaNotice::Timeout),
                    MediaEvent::PlayFinished { call, .. } => (call, MediaNotice::PlayFinished),
                    MediaEvent::FaxTone { call } => (call, MediaNotice::FaxTone),
                    MediaEvent::Stopped { call, a, b } => {
                        core.metrics
                            .rtp(a.packets_out + b.packets_out, a.lost + b.lost);
                        (call, MediaNotice::Stopped)
                    }
                };
                if notice == MediaNotice::Stopped {
                    // Also a call task that ended by itself (a caught panic): drop its handle.
                    core.media.stop(call);
                }
                core.endpoint.handle_media(now, call, notice);
            }
            Input::Net(Inbound::Datagram { src, bytes }) => {
                endpoint.handle_datagram(now, src, &bytes)
            }
            Input::Net(Inbound::Opened { conn, writer }) => {
                writers.insert(conn, writer);
            }
            Input::Net(Inbound::Frame { conn, src, frame }) => {
                endpoint.handle_stream(now, conn, src, frame)
            }
            Input::Net(Inbound::Closed { conn }) => {
                writers.remove(&conn);
                endpoint.registry_mut().connection_closed(conn);
                endpoint.seats_changed(now);
            }
            Input::Net(Inbound::Seats(seats)) => {
                endpoint.set_seats(now, &seats);
                let day = tokyo_day(core.clock);
                if day != core.day {
                    core.day = day;
                    core.endpoint.reset_daily_counts();
                }
            }
            Input::Net(Inbound::EffectsDone(done)) => endpoint.registry_effects_done(now, done),
            Input::Net(Inbound::Credentials(creds)) => {
                endpoint.registry_mut().set_credentials(creds);
                endpoint.seats_changed(now);
                // Follow wall-clock adjustments (and `--clock`) at the same pace.
                endpoint.set_unix_base(Instant::now().into_std(), unix_of(core.clock.now()));
            }
        }
        core.perform_effects(now);
        while let Some(out) = core.endpoint.poll_transmit() {
            match out.to {
                Destination::Udp(dst) => {
                    if let Some(sock) = &udp {
                        // Never block the core on a full socket buffer: UDP may lose it anyway
                        // and the transaction layer retransmits (§17.2.1).
                        udp_send(sock, &out.bytes, dst);
                    }
                }
                Destination::Stream(conn) => {
                    let full = writers
                        .get(&conn)
                        .is_some_and(|w| w.try_send(Bytes::copy_from_slice(&out.bytes)).is_err());
                    if full {
                        // Dropping the writer closes the connection (see `connection`).
                        tracing::debug!(conn = conn.0, "TCP peer not reading; closing");
                        writers.remove(&conn);
                    }
                }
            }
        }
    }
}

/// Sends without blocking. A send can fail with the ICMP error of an *earlier* datagram
/// (ECONNREFUSED from a peer that went away, reported once on the socket); that error says
/// nothing about this datagram, so it is retried a bounded number of times.
fn udp_send(sock: &UdpSocket, bytes: &[u8], dst: SocketAddr) {
    for _ in 0..UDP_SEND_ATTEMPTS {
        match sock.try_send_to(bytes, dst) {
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => {
                tracing::debug!(error = %e, "UDP send failed");
                return;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn udp_reader(sock: Arc<UdpSocket>, tx: mpsc::Sender<Inbound>) {
    let mut buf = vec![0u8; UDP_MAX_DATAGRAM];
    let mut shed: u64 = 0;
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, src)) => {
                let bytes = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                if tx.try_send(Inbound::Datagram { src, bytes }).is_err() {
                    shed += 1;
                    if shed.is_power_of_two() {
                        tracing::warn!(shed, "SIP core overloaded: UDP datagrams dropped");
                    }
                }
            }
            // ICMP errors surface here on Linux; they concern an earlier send, not the socket.
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive error");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

async fn tcp_acceptor(listener: TcpListener, tx: mpsc::Sender<Inbound>) {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let mut next_conn: u64 = 0;
    loop {
        let (stream, src) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(peer = %src, "TCP connection cap reached; refusing");
            drop(stream);
            continue;
        };
        next_conn = next_conn.wrapping_add(1);
        let conn = ConnId(next_conn);
        let (writer, writes) = mpsc::channel(CONN_WRITE_QUEUE);
        if tx.send(Inbound::Opened { conn, writer }).await.is_err() {
            return;
        }
        let tx = tx.clone();
        tokio::spawn(async move {
            connection(stream, src, conn, tx.clone(), writes).await;
            let _ = tx.send(Inbound::Closed { conn }).await;
            drop(slot);
        });
    }
}

/// One TCP connection: framing (RFC 3261 §18.3), the idle timeout, and writes.
async fn connection(
    stream: TcpStream,
    src: SocketAddr,
    conn: ConnId,
    tx: mpsc::Sender<Inbound>,
    mut writes: mpsc::Receiver<Bytes>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; TCP_READ_CHUNK];
    let mut idle_deadline = Instant::now() + TCP_IDLE_TIMEOUT;
    let mut reading = true;
    loop {
        tokio::select! {
            read = rd.read(&mut buf), if reading => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if let Err(e) = framer.push(buf.get(..n).unwrap_or_default()) {
                    let _ = tx.send(Inbound::Frame { conn, src, frame: Err(e) }).await;
                    return;
                }
                while let Some(frame) = framer.next_frame() {
                    if frame.is_ok() {
                        idle_deadline = Instant::now() + TCP_IDLE_TIMEOUT;
                    }
                    if tx.send(Inbound::Frame { conn, src, frame }).await.is_err() {
                        return;
                    }
                }
                // A fatal framing error (ncl.dat, mcl01.dat): the next message start is
                // unknowable, so the connection must go (RFC 3261 §18.3). Answers to the
                // messages framed before it are still on their way from the core: linger.
                if framer.is_closed() {
                    reading = false;
                    idle_deadline = Instant::now() + CLOSE_LINGER;
                }
            }
            write = writes.recv() => {
                let Some(bytes) = write else { return };
                match tokio::time::timeout(TCP_WRITE_TIMEOUT, wr.write_all(&bytes)).await {
                    Ok(Ok(())) => {}
                    _ => return,
                }
            }
            _ = tokio::time::sleep_until(idle_deadline) => {
                if reading {
                    tracing::debug!(peer = %src, "TCP connection idle without a complete message; closing");
                }
                return;
            }
        }
    }
}
