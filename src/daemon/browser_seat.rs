//! Browser seats (issue #11): an operator with nothing but a browser and a headset.
//!
//! ```text
//!  page ── POST /console/phone (SDP offer) ──► start(): RTCPeerConnection (webrtc crate),
//!                                              host candidates on web.phone_ice_addresses,
//!                                              DTLS-SRTP; answer SDP back to the page
//!  page ◄══ data channel "control" (JSON) ══► session task ◄── loopback UDP ──► call core
//!        ringing/connected/ended  ▲  answer/decline/hangup/hold            (INVITE, CANCEL,
//!                                 │                                           BYE, ACK)
//!  page ◄══ SRTP PCMU ══► track ◄─┴─► RTP socket ◄── plain RTP (PCMU/PCMA) ──► call relay
//! ```
//!
//! Design: the daemon acts as the browser seat's SIP phone ([`crate::sip::browser_ua`]). The
//! session registers a binding for the seat straight into the registrar (no ledger row: it
//! dies with the process) pointing at its own loopback SIP socket, so the B2BUA and the ACD
//! ring, cancel and count a browser seat with exactly the code they use for softphones, and
//! a softphone seat keeps working beside it. Media is bridged packet by packet between the
//! relay's seat leg and the browser track: PCMU both ways, no transcoding; a PCMA call is
//! converted per sample (G.711 to G.711) because the browser leg is always PCMU.
//!
//! The page going away (tab closed, network lost: the data channel closes or ICE fails) takes
//! the seat offline at once (a ringing offer moves on to the next seat), ends a connected
//! call with a BYE (the call path records it as usual), and the session ends within
//! [`LINGER`] whatever the peers do.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_PCMU};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::data_channel::data_channel_message::DataChannelMessage;
use webrtc::data_channel::RTCDataChannel;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};
use webrtc::util::{Marshal, Unmarshal};

use super::requests::CoreHandle;
use super::Daemon;
use crate::media::g711::Law;
use crate::sip::browser_ua::{BrowserUa, UaEvent};
use crate::sip::message::parse_datagram;

/// Lifetime of a browser seat's binding; the session refreshes it every
/// [`BINDING_REFRESH`], so a session that died without saying so is offline within this.
pub const BINDING_TTL: Duration = Duration::from_secs(90);
const BINDING_REFRESH: Duration = Duration::from_secs(30);
/// After the page is gone: the longest the session waits for the call path to cancel an
/// offer or answer our BYE before it ends anyway.
pub const LINGER: Duration = Duration::from_secs(5);
/// ICE consent (RFC 7675): a page silent this long is disconnected, this long again failed.
const ICE_DISCONNECTED: Duration = Duration::from_secs(4);
const ICE_FAILED: Duration = Duration::from_secs(8);
const ICE_KEEPALIVE: Duration = Duration::from_secs(1);
/// Longest wait for our ICE candidates before the answer goes out (host candidates only:
/// gathering is local and fast).
const GATHER_MAX: Duration = Duration::from_secs(5);
/// Longest wait for the page's data channel after the answer went out: ICE and DTLS on a
/// LAN take well under a second; a page that cannot reach our addresses never will.
const CONNECT_MAX: Duration = Duration::from_secs(15);
/// Largest UDP datagram read (SIP over UDP stays well below, RTP far below).
const DATAGRAM_MAX: usize = 65_535;
/// Commands and notices queued for one session.
const INPUT_QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    #[error("the browser's offer was refused: {0}")]
    Offer(String),
    #[error("the browser phone could not be set up: {0}")]
    Setup(String),
    #[error("the seat is not known to the call path")]
    UnknownSeat,
}

fn setup(e: impl std::fmt::Display) -> PhoneError {
    PhoneError::Setup(e.to_string())
}

/// Live browser sessions, one per seat: a new page for the same seat replaces the old one.
#[derive(Default)]
pub struct Phones {
    sessions: Mutex<HashMap<i64, mpsc::Sender<Input>>>,
}

impl Phones {
    fn replace(&self, seat_id: i64, tx: mpsc::Sender<Input>) {
        let old = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(seat_id, tx);
        if let Some(old) = old {
            let _ = old.try_send(Input::Gone("replaced by a new page"));
        }
    }

    /// The operator logged out: the seat's browser session ends.
    pub fn stop(&self, seat_id: i64) {
        let tx = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&seat_id);
        if let Some(tx) = tx {
            let _ = tx.try_send(Input::Gone("logged out"));
        }
    }

    fn forget(&self, seat_id: i64, tx: &mpsc::Sender<Input>) {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if s.get(&seat_id).is_some_and(|t| t.same_channel(tx)) {
            s.remove(&seat_id);
        }
    }
}

/// What the page sends on the data channel.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Command {
    Answer,
    Decline,
    Hangup,
    Hold { on: bool },
}

enum Input {
    Channel(Arc<RTCDataChannel>),
    Command(Command),
    /// The page is gone (data channel closed, ICE failed, replaced, logged out).
    Gone(&'static str),
}

/// Where the two media directions go, shared by the session and its two media tasks.
#[derive(Debug, Default)]
struct Bridge {
    /// The relay's seat-leg address and law once connected.
    remote: Option<(SocketAddr, Law)>,
    held: bool,
}

/// Media counters of a session (logged at its end).
#[derive(Debug, Default)]
struct Counts {
    to_browser: std::sync::atomic::AtomicU64,
    from_browser: std::sync::atomic::AtomicU64,
}

/// Sets up the browser seat of `seat` from the page's SDP `offer` and returns the SDP answer;
/// the session runs on its own task until the page goes away.
pub async fn start(
    daemon: Arc<Daemon>,
    core: CoreHandle,
    phones: Arc<Phones>,
    seat_id: i64,
    seat: String,
    offer: String,
) -> Result<String, PhoneError> {
    let cfg = &daemon.config;
    let sip_ip = match cfg.sip.listen.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    let ice_ips: Vec<IpAddr> = if cfg.web.phone_ice_addresses.is_empty() {
        vec![super::sip::advertised(cfg).map_err(setup)?.ip()]
    } else {
        cfg.web.phone_ice_addresses.clone()
    };
    let sip_socket = Arc::new(UdpSocket::bind((sip_ip, 0)).await.map_err(setup)?);
    let rtp_socket = Arc::new(UdpSocket::bind((sip_ip, 0)).await.map_err(setup)?);
    let sip_local = sip_socket.local_addr().map_err(setup)?;
    let rtp_local = rtp_socket.local_addr().map_err(setup)?;

    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                capability: pcmu(),
                payload_type: 0,
                ..Default::default()
            },
            RTPCodecType::Audio,
        )
        .map_err(setup)?;
    let registry = register_default_interceptors(Registry::new(), &mut media).map_err(setup)?;
    let mut settings = SettingEngine::default();
    let allowed = ice_ips.clone();
    settings.set_ip_filter(Box::new(move |ip: IpAddr| allowed.contains(&ip)));
    settings.set_include_loopback_candidate(ice_ips.iter().any(IpAddr::is_loopback));
    settings.set_network_types(vec![NetworkType::Udp4, NetworkType::Udp6]);
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    settings.set_ice_timeouts(
        Some(ICE_DISCONNECTED),
        Some(ICE_FAILED),
        Some(ICE_KEEPALIVE),
    );
    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build();
    let pc = Arc::new(
        api.new_peer_connection(RTCConfiguration::default())
            .await
            .map_err(setup)?,
    );
    let track = Arc::new(TrackLocalStaticRTP::new(
        pcmu(),
        "audio".to_owned(),
        "smartdesk".to_owned(),
    ));
    let sender = pc
        .add_track(Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>)
        .await
        .map_err(setup)?;
    // RTCP from the browser must be read for the interceptors to work.
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while sender.read(&mut buf).await.is_ok() {}
    });

    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let bridge = Arc::new(Mutex::new(Bridge::default()));
    let counts = Arc::new(Counts::default());
    {
        let (bridge, socket, counts) = (bridge.clone(), rtp_socket.clone(), counts.clone());
        pc.on_track(Box::new(move |remote, _, _| {
            let (bridge, socket, counts) = (bridge.clone(), socket.clone(), counts.clone());
            Box::pin(async move {
                while let Ok((mut pkt, _)) = remote.read_rtp().await {
                    let (target, held) = {
                        let b = bridge.lock().unwrap_or_else(|e| e.into_inner());
                        (b.remote, b.held)
                    };
                    let Some((to, law)) = target else { continue };
                    // On hold the caller hears silence, and RTP keeps flowing so that the
                    // relay's media timeout does not take a held call for a dead one.
                    if held {
                        pkt.payload = vec![Law::Pcmu.encode(0); pkt.payload.len()].into();
                    }
                    pkt.header.payload_type = match law {
                        Law::Pcmu => 0,
                        Law::Pcma => {
                            pkt.payload = transcode(&pkt.payload, Law::Pcmu, Law::Pcma).into();
                            8
                        }
                    };
                    pkt.header.extensions.clear();
                    pkt.header.extension = false;
                    if let Ok(bytes) = pkt.marshal() {
                        if socket.send_to(&bytes, to).await.is_ok() {
                            counts
                                .from_browser
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
            })
        }));
    }
    {
        let tx = tx.clone();
        pc.on_data_channel(Box::new(move |dc: Arc<RTCDataChannel>| {
            let tx = tx.clone();
            Box::pin(async move {
                let on_msg = tx.clone();
                dc.on_message(Box::new(move |m: DataChannelMessage| {
                    let on_msg = on_msg.clone();
                    Box::pin(async move {
                        // Bad input from the page is ignored, never fatal.
                        if let Ok(c) = serde_json::from_slice::<Command>(&m.data) {
                            let _ = on_msg.send(Input::Command(c)).await;
                        }
                    })
                }));
                let on_close = tx.clone();
                dc.on_close(Box::new(move || {
                    let on_close = on_close.clone();
                    Box::pin(async move {
                        let _ = on_close.send(Input::Gone("data channel closed")).await;
                    })
                }));
                let _ = tx.send(Input::Channel(dc)).await;
            })
        }));
    }
    {
        let tx = tx.clone();
        pc.on_peer_connection_state_change(Box::new(move |s: RTCPeerConnectionState| {
            let tx = tx.clone();
            Box::pin(async move {
                if matches!(
                    s,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
                ) {
                    let _ = tx.send(Input::Gone("connection lost")).await;
                }
            })
        }));
    }

    let offer = RTCSessionDescription::offer(offer).map_err(|e| PhoneError::Offer(e.to_string()));
    let answer = async {
        pc.set_remote_description(offer?)
            .await
            .map_err(|e| PhoneError::Offer(e.to_string()))?;
        let answer = pc.create_answer(None).await.map_err(setup)?;
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(answer).await.map_err(setup)?;
        let _ = tokio::time::timeout(GATHER_MAX, gathered.recv()).await;
        pc.local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| setup("no local description"))
    }
    .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            let _ = pc.close().await;
            return Err(e);
        }
    };
    phones.replace(seat_id, tx.clone());
    let ua = BrowserUa::new(&seat, sip_local, rtp_local, rand::random());
    let session = Session {
        seat,
        seat_id,
        sip_peer: (sip_ip, cfg.sip.listen.port()),
        core,
        phones,
        tx,
        pc,
        track,
        sip: sip_socket,
        rtp: rtp_socket,
        ua,
        bridge,
        counts,
        channel: None,
    };
    tokio::spawn(session.run(rx));
    Ok(answer)
}

fn pcmu() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_PCMU.to_owned(),
        clock_rate: 8000,
        channels: 1,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: Vec::new(),
    }
}

/// G.711 to G.711 through linear PCM, sample by sample.
fn transcode(payload: &[u8], from: Law, to: Law) -> Vec<u8> {
    payload.iter().map(|&c| to.encode(from.decode(c))).collect()
}

struct Session {
    seat: String,
    seat_id: i64,
    /// The call core's SIP address as seen here (IP, port): the only sender listened to.
    sip_peer: (IpAddr, u16),
    core: CoreHandle,
    phones: Arc<Phones>,
    tx: mpsc::Sender<Input>,
    pc: Arc<RTCPeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    sip: Arc<UdpSocket>,
    rtp: Arc<UdpSocket>,
    ua: BrowserUa,
    bridge: Arc<Mutex<Bridge>>,
    counts: Arc<Counts>,
    channel: Option<Arc<RTCDataChannel>>,
}

impl Session {
    async fn run(mut self, mut rx: mpsc::Receiver<Input>) {
        let sip_local = self.sip.local_addr().ok();
        let to_browser = tokio::spawn(carrier_to_browser(
            self.rtp.clone(),
            self.track.clone(),
            self.bridge.clone(),
            self.counts.clone(),
        ));
        let mut buf = vec![0u8; DATAGRAM_MAX];
        let mut refresh =
            tokio::time::interval_at(Instant::now() + BINDING_REFRESH, BINDING_REFRESH);
        // A page that never opens its data channel is given up on (the seat never went
        // online); one that did is online until it goes away.
        let mut connect_by = Some(Instant::now() + CONNECT_MAX);
        let mut online = false;
        // Set when the page is gone: the session ends by then at the latest.
        let mut ending: Option<Instant> = None;
        loop {
            self.flush().await;
            if ending.is_some() && self.ua.is_idle() {
                break;
            }
            let timer = [
                self.ua.poll_timeout().map(Instant::from_std),
                ending,
                connect_by,
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async {
                match timer {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let mut gone: Option<&'static str> = None;
            tokio::select! {
                r = self.sip.recv_from(&mut buf) => {
                    let Ok((n, from)) = r else { continue };
                    if !self.is_core(from) {
                        continue;
                    }
                    // Unparsable input is dropped; the call core retransmits.
                    if let Ok(m) = parse_datagram(buf.get(..n).unwrap_or_default()) {
                        self.ua.handle_message(from, m);
                    }
                }
                input = rx.recv() => match input {
                    Some(Input::Channel(dc)) if ending.is_none() => {
                        self.channel = Some(dc);
                        connect_by = None;
                        online = self.attach(sip_local).await;
                        let event = if online { "ready" } else { "refused" };
                        self.tell(serde_json::json!({"event": event})).await;
                        if online {
                            tracing::info!(seat = %self.seat, "browser seat online");
                        } else {
                            gone = Some("the call path refused the seat");
                        }
                    }
                    Some(Input::Command(c)) if ending.is_none() && online => self.command(c),
                    Some(Input::Gone(why)) if ending.is_none() => gone = Some(why),
                    // The session holds a sender itself, so `None` cannot happen.
                    _ => {}
                },
                _ = refresh.tick(), if ending.is_none() && online => {
                    self.attach(sip_local).await;
                }
                _ = sleep => {
                    let now = Instant::now();
                    if ending.is_some_and(|e| now >= e) {
                        break;
                    }
                    if connect_by.is_some_and(|c| now >= c) {
                        connect_by = None;
                        gone = Some("the page never connected");
                    }
                    self.ua.handle_timeout(now.into_std());
                }
            }
            if let Some(why) = gone {
                tracing::info!(seat = %self.seat, why, "browser seat offline");
                ending = Some(Instant::now() + LINGER);
                // Offline first: a ringing offer is withdrawn (CANCEL) and moves on.
                self.offline(sip_local).await;
                if self.ua.is_answered() {
                    let _ = self.ua.hang_up(std::time::Instant::now());
                }
            }
        }
        self.offline(sip_local).await;
        to_browser.abort();
        let _ = self.pc.close().await;
        self.phones.forget(self.seat_id, &self.tx);
        tracing::info!(
            seat = %self.seat,
            to_browser = self.counts.to_browser.load(std::sync::atomic::Ordering::Relaxed),
            from_browser = self.counts.from_browser.load(std::sync::atomic::Ordering::Relaxed),
            "browser seat session ended"
        );
    }

    /// Whether a datagram on the agent's socket comes from the call core.
    fn is_core(&self, from: SocketAddr) -> bool {
        let (ip, port) = self.sip_peer;
        (from.ip() == ip || from.ip().is_loopback()) && (port == 0 || from.port() == port)
    }

    /// Puts (or keeps) the seat's binding in the registrar; whether the seat is known.
    async fn attach(&self, sip_local: Option<SocketAddr>) -> bool {
        match sip_local {
            Some(a) => self
                .core
                .browser_seat(self.seat.clone(), a, true)
                .await
                .unwrap_or(false),
            None => false,
        }
    }

    async fn tell(&self, json: serde_json::Value) {
        if let Some(dc) = &self.channel {
            let _ = dc.send_text(json.to_string()).await;
        }
    }

    async fn offline(&self, sip_local: Option<SocketAddr>) {
        if let Some(a) = sip_local {
            let _ = self.core.browser_seat(self.seat.clone(), a, false).await;
        }
    }

    fn command(&mut self, c: Command) {
        let now = std::time::Instant::now();
        let r = match c {
            Command::Answer => self.ua.answer(now),
            Command::Decline => self.ua.decline(),
            Command::Hangup => self.ua.hang_up(now),
            Command::Hold { on } => {
                self.bridge.lock().unwrap_or_else(|e| e.into_inner()).held = on;
                Ok(())
            }
        };
        if let Err(e) = r {
            tracing::debug!(seat = %self.seat, error = %e, "browser phone command ignored");
        }
    }

    /// Sends what the agent queued and tells the page what happened.
    async fn flush(&mut self) {
        while let Some((to, m)) = self.ua.poll_transmit() {
            let _ = self.sip.send_to(&m.to_bytes(), to).await;
        }
        while let Some(ev) = self.ua.poll_event() {
            let json = match &ev {
                UaEvent::Offered {
                    contractor,
                    greeting,
                    caller,
                } => serde_json::json!({
                    "event": "ringing", "contractor": contractor, "greeting": greeting,
                    "caller": caller,
                }),
                UaEvent::Connected { remote, law } => {
                    let mut b = self.bridge.lock().unwrap_or_else(|e| e.into_inner());
                    b.remote = Some((*remote, *law));
                    b.held = false;
                    serde_json::json!({"event": "connected"})
                }
                UaEvent::Ended { reason } => {
                    self.bridge.lock().unwrap_or_else(|e| e.into_inner()).remote = None;
                    serde_json::json!({"event": "ended", "reason": reason.as_str()})
                }
            };
            tracing::debug!(seat = %self.seat, event = %json["event"], "browser phone event");
            self.tell(json).await;
        }
    }
}

/// Relay → browser: RTP from the call's seat leg, written to the browser track (which sets
/// its own payload type, SSRC and SRTP protection).
async fn carrier_to_browser(
    socket: Arc<UdpSocket>,
    track: Arc<TrackLocalStaticRTP>,
    bridge: Arc<Mutex<Bridge>>,
    counts: Arc<Counts>,
) {
    let mut buf = vec![0u8; DATAGRAM_MAX];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let law = {
            let b = bridge.lock().unwrap_or_else(|e| e.into_inner());
            match b.remote {
                // Only the relay's address is listened to (latching is the relay's job).
                Some((remote, law)) if remote.ip() == from.ip() && !b.held => Some(law),
                _ => None,
            }
        };
        let Some(law) = law else { continue };
        let Ok(mut pkt) =
            webrtc::rtp::packet::Packet::unmarshal(&mut buf.get(..n).unwrap_or_default())
        else {
            continue;
        };
        if law == Law::Pcma {
            pkt.payload = transcode(&pkt.payload, Law::Pcma, Law::Pcmu).into();
        }
        if track.write_rtp(&pkt).await.is_ok() {
            counts
                .to_browser
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
