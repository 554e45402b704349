//! SDP (RFC 8866, formerly RFC 4566) parsing and printing, and the offer/answer rewrite
//! (RFC 3264) that makes the B2BUA the media anchor of every call.
//!
//! The parser keeps every line it does not interpret, in order, so a parse/print round trip
//! is faithful; the rewrite then works on the typed form. Input is bounded
//! ([`MAX_SDP_BYTES`], [`MAX_LINES`], [`MAX_MEDIA`], [`MAX_FORMATS`]) because it comes straight
//! off the network, and nothing here panics on any input.
//!
//! [`rewrite_for_anchor`] produces the SDP we send to the other leg:
//!
//! * every `c=` (session and media level) and the `o=` address become ours, so both parties
//!   send to the relay (`crate::media::relay`) and the far side's topology is not leaked;
//! * the first usable stream (audio with a common G.711 codec, or T.38 fax over UDPTL) gets our
//!   port; every other stream is rejected with port 0, kept in place with its formats
//!   (RFC 3264 §6: the answer must have as many m-lines as the offer, in the same order);
//! * audio keeps only the allowed codecs, in *our* preference order, plus `telephone-event`
//!   (RFC 4733) at 8 kHz if offered;
//! * attributes are whitelisted, not blacklisted: ICE, DTLS, SDES crypto, `rtcp`, `rtcp-mux`,
//!   `ssrc`, `mid`/BUNDLE and everything else that would describe transport we do not provide
//!   is dropped; codec parameters, `ptime`/`maxptime`, direction and T.38 parameters stay;
//! * `b=` lines are dropped: they budgeted for the far side's codec choice, not ours;
//! * `o=` keeps username and session id, and its version is incremented whenever the output
//!   differs from the input (RFC 3264 §8: a changed SDP needs a higher version). Because the
//!   increment is a pure function of the input, re-sending an unchanged SDP yields an unchanged
//!   output with the same version, as §8 requires.
//!
//! Old-style hold (RFC 2543 `c=0.0.0.0`, RFC 3264 §8.4) is translated rather than copied: our
//! address is advertised (the relay must keep receiving), the direction becomes sendonly (or
//! inactive if it was recvonly), and [`MediaInfo::remote`] is `None` so nothing is sent there.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Largest SDP body accepted (an audio/fax offer is well under 2 KiB; WebRTC offers with
/// many candidates stay under 16 KiB).
pub const MAX_SDP_BYTES: usize = 32 * 1024;
/// Most lines accepted.
pub const MAX_LINES: usize = 1024;
/// Most m-lines accepted.
pub const MAX_MEDIA: usize = 16;
/// Most formats on one m-line.
pub const MAX_FORMATS: usize = 64;

/// Errors from SDP parsing and rewriting.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("SDP is {0} bytes, over the limit")]
    TooLarge(usize),
    #[error("SDP has too many {0}")]
    TooMany(&'static str),
    #[error("SDP is not valid UTF-8")]
    NotUtf8,
    #[error("malformed SDP line {line}: {reason}")]
    Malformed { line: usize, reason: &'static str },
    #[error("SDP lacks a {0} line")]
    Missing(&'static str),
    #[error("no common codec or usable stream")]
    NoCommonCodec,
    #[error("o= session version cannot be incremented")]
    VersionOverflow,
}

/// Codecs the anchor can relay without transcoding (both 8 kHz G.711).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// Static payload type (RFC 3551 Table 4).
    pub fn static_pt(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// Encoding name as in `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// Media direction attribute (RFC 3264 §5.1, §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Default when none is given.
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// Attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// True when media flows in at most one direction (RFC 3264 §8.4 hold), so silence on
    /// some leg is expected; the relay's media timeout is suspended for such a leg.
    pub fn is_hold(self) -> bool {
        matches!(
            self,
            Direction::SendOnly | Direction::Inactive | Direction::RecvOnly
        )
    }
}

/// An `a=` line: `name` or `name:value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Attribute {
    fn new(name: &str, value: Option<String>) -> Self {
        Self {
            name: name.to_owned(),
            value,
        }
    }
}

/// `c=` (RFC 8866 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub net_type: String,
    pub addr_type: String,
    /// Address as written (may carry `/ttl` for multicast).
    pub address: String,
}

impl Connection {
    fn for_ip(ip: IpAddr) -> Self {
        Self {
            net_type: "IN".into(),
            addr_type: if ip.is_ipv4() { "IP4" } else { "IP6" }.into(),
            address: ip.to_string(),
        }
    }

    /// The unicast IP, if the address is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }
}

/// `o=` (RFC 8866 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: String,
    pub session_version: u64,
    pub net_type: String,
    pub addr_type: String,
    pub address: String,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub media: String,
    pub port: u16,
    pub port_count: Option<u16>,
    pub proto: String,
    pub formats: Vec<String>,
    pub connection: Option<Connection>,
    /// `i=`, `b=`, `k=` lines as (type, value), in order.
    pub other: Vec<(char, String)>,
    pub attributes: Vec<Attribute>,
}

impl Media {
    fn attr<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Option<&'a str>> + 'a {
        self.attributes
            .iter()
            .filter(move |a| a.name.eq_ignore_ascii_case(name))
            .map(|a| a.value.as_deref())
    }

    fn direction(&self) -> Option<Direction> {
        self.attributes.iter().find_map(|a| {
            if a.value.is_none() {
                Direction::parse(&a.name)
            } else {
                None
            }
        })
    }

    /// `a=rtpmap` for payload type `pt`: (encoding name, clock rate).
    fn rtpmap(&self, pt: &str) -> Option<(&str, u32)> {
        self.attr("rtpmap").flatten().find_map(|v| {
            let (p, rest) = v.split_once(' ')?;
            if p != pt {
                return None;
            }
            let mut parts = rest.trim().split('/');
            let name = parts.next()?;
            let rate = parts.next()?.parse().ok()?;
            Some((name, rate))
        })
    }

    fn fmtp(&self, pt: &str) -> Option<&str> {
        self.attr("fmtp").flatten().find_map(|v| {
            let (p, rest) = v.split_once(' ')?;
            (p == pt).then_some(rest)
        })
    }

    /// True for `m=image <port> udptl t38` (ITU-T T.38 Annex D / RFC 3362).
    pub fn is_t38(&self) -> bool {
        self.media.eq_ignore_ascii_case("image")
            && self.proto.eq_ignore_ascii_case("udptl")
            && self.formats.iter().any(|f| f.eq_ignore_ascii_case("t38"))
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub origin: Origin,
    pub session_name: String,
    pub connection: Option<Connection>,
    /// Other session-level lines (i, u, e, p, b, t, r, z, k) as (type, value), in order.
    pub other: Vec<(char, String)>,
    pub attributes: Vec<Attribute>,
    pub media: Vec<Media>,
}

/// What the rewrite learned about the anchored stream, for configuring the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    /// Index of the anchored m-line.
    pub stream_index: usize,
    /// The far side's RTP address; `None` if held with `c=0.0.0.0` or port 0.
    pub remote: Option<SocketAddr>,
    /// The far side's RTCP address from `a=rtcp` (RFC 3605), if given.
    pub remote_rtcp: Option<SocketAddr>,
    /// Audio codecs kept, in output order, with their payload types (empty for T.38).
    pub codecs: Vec<(Codec, u8)>,
    /// Payload type of `telephone-event`, if kept.
    pub telephone_event: Option<u8>,
    /// Effective direction of the anchored stream as written in the output.
    pub direction: Direction,
    /// `a=ptime` in ms, if given.
    pub ptime: Option<u32>,
    t38: bool,
    /// Whether any m-line offered T.38, anchored or not.
    pub t38_offered: bool,
}

impl MediaInfo {
    /// True when the anchored stream is T.38 fax (`m=image … udptl t38`).
    pub fn is_t38(&self) -> bool {
        self.t38
    }
}

fn malformed(line: usize, reason: &'static str) -> SdpError {
    SdpError::Malformed { line, reason }
}

fn parse_connection(v: &str, line: usize) -> Result<Connection, SdpError> {
    let mut it = v.split_ascii_whitespace();
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(n), Some(a), Some(addr), None) => Ok(Connection {
            net_type: n.into(),
            addr_type: a.into(),
            address: addr.into(),
        }),
        _ => Err(malformed(line, "c= needs 3 fields")),
    }
}

fn parse_attribute(v: &str) -> Attribute {
    match v.split_once(':') {
        Some((n, val)) => Attribute::new(n, Some(val.to_owned())),
        None => Attribute::new(v, None),
    }
}

fn parse_media(v: &str, line: usize) -> Result<Media, SdpError> {
    let mut it = v.split_ascii_whitespace();
    let media = it.next().ok_or(malformed(line, "empty m="))?;
    let port_field = it.next().ok_or(malformed(line, "m= without port"))?;
    let proto = it.next().ok_or(malformed(line, "m= without proto"))?;
    let (port, port_count) = match port_field.split_once('/') {
        Some((p, n)) => (
            p,
            Some(n.parse().map_err(|_| malformed(line, "bad port count"))?),
        ),
        None => (port_field, None),
    };
    let port = port.parse().map_err(|_| malformed(line, "bad port"))?;
    let mut formats = Vec::new();
    for f in it {
        if formats.len() >= MAX_FORMATS {
            return Err(SdpError::TooMany("formats"));
        }
        formats.push(f.to_owned());
    }
    if formats.is_empty() {
        return Err(malformed(line, "m= without formats"));
    }
    Ok(Media {
        media: media.into(),
        port,
        port_count,
        proto: proto.into(),
        formats,
        connection: None,
        other: Vec::new(),
        attributes: Vec::new(),
    })
}

impl Sdp {
    /// Parse an SDP body (CRLF or bare LF line ends).
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        if text.len() > MAX_SDP_BYTES {
            return Err(SdpError::TooLarge(text.len()));
        }
        let mut origin = None;
        let mut session_name = None;
        let mut connection = None;
        let mut other = Vec::new();
        let mut attributes = Vec::new();
        let mut media: Vec<Media> = Vec::new();
        let mut seen_version = false;
        for (idx, raw) in text.lines().enumerate() {
            let n = idx + 1;
            if n > MAX_LINES {
                return Err(SdpError::TooMany("lines"));
            }
            let raw = raw.trim_end_matches('\r');
            if raw.trim().is_empty() {
                continue;
            }
            let mut chars = raw.chars();
            let (Some(kind), Some('=')) = (chars.next(), chars.next()) else {
                return Err(malformed(n, "expected <type>=<value>"));
            };
            let value = chars.as_str();
            if !seen_version {
                if kind != 'v' || value.trim() != "0" {
                    return Err(malformed(n, "first line must be v=0"));
                }
                seen_version = true;
                continue;
            }
            match (kind, media.last_mut()) {
                ('v', _) => return Err(malformed(n, "duplicate v=")),
                ('m', _) => {
                    if media.len() >= MAX_MEDIA {
                        return Err(SdpError::TooMany("m-lines"));
                    }
                    media.push(parse_media(value, n)?);
                }
                ('a', Some(m)) => m.attributes.push(parse_attribute(value)),
                ('c', Some(m)) => m.connection = Some(parse_connection(value, n)?),
                ('i' | 'b' | 'k', Some(m)) => m.other.push((kind, value.to_owned())),
                (_, Some(_)) => return Err(malformed(n, "line type not allowed in media")),
                ('o', None) => {
                    if origin.is_some() {
                        return Err(malformed(n, "duplicate o="));
                    }
                    origin = Some(parse_origin(value, n)?);
                }
                ('s', None) => session_name = Some(value.to_owned()),
                ('c', None) => connection = Some(parse_connection(value, n)?),
                ('a', None) => attributes.push(parse_attribute(value)),
                ('i' | 'u' | 'e' | 'p' | 'b' | 't' | 'r' | 'z' | 'k', None) => {
                    other.push((kind, value.to_owned()));
                }
                _ => return Err(malformed(n, "unknown line type")),
            }
        }
        if !seen_version {
            return Err(SdpError::Missing("v="));
        }
        Ok(Sdp {
            origin: origin.ok_or(SdpError::Missing("o="))?,
            session_name: session_name.ok_or(SdpError::Missing("s="))?,
            connection,
            other,
            attributes,
            media,
        })
    }

    /// Parse from raw body bytes.
    pub fn parse_bytes(body: &[u8]) -> Result<Self, SdpError> {
        if body.len() > MAX_SDP_BYTES {
            return Err(SdpError::TooLarge(body.len()));
        }
        Sdp::parse(std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?)
    }

    fn session_direction(&self) -> Option<Direction> {
        self.attributes.iter().find_map(|a| {
            a.value
                .is_none()
                .then(|| Direction::parse(&a.name))
                .flatten()
        })
    }
}

fn parse_origin(v: &str, line: usize) -> Result<Origin, SdpError> {
    let f: Vec<&str> = v.split_ascii_whitespace().take(7).collect();
    let [user, id, version, net, addr_type, addr] = f.as_slice() else {
        return Err(malformed(line, "o= needs 6 fields"));
    };
    Ok(Origin {
        username: (*user).into(),
        session_id: (*id).into(),
        session_version: version
            .parse()
            .map_err(|_| malformed(line, "o= version is not a number"))?,
        net_type: (*net).into(),
        addr_type: (*addr_type).into(),
        address: (*addr).into(),
    })
}

/// Canonical order of session-level lines (RFC 8866 §5).
fn session_rank(kind: char) -> u8 {
    match kind {
        'i' => 0,
        'u' => 1,
        'e' => 2,
        'p' => 3,
        // c= goes here (rank 4)
        'b' => 5,
        't' => 6,
        'r' => 7,
        'z' => 8,
        _ => 9, // k
    }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(f, "v=0\r\n")?;
        write!(
            f,
            "o={} {} {} {} {} {}\r\n",
            o.username, o.session_id, o.session_version, o.net_type, o.addr_type, o.address
        )?;
        write!(f, "s={}\r\n", self.session_name)?;
        let mut other: Vec<&(char, String)> = self.other.iter().collect();
        other.sort_by_key(|(k, _)| session_rank(*k));
        for (k, v) in other.iter().filter(|(k, _)| session_rank(*k) < 4) {
            write!(f, "{k}={v}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for (k, v) in other.iter().filter(|(k, _)| session_rank(*k) > 4) {
            write!(f, "{k}={v}\r\n")?;
        }
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        for m in &self.media {
            write!(f, "m={} {}", m.media, m.port)?;
            if let Some(n) = m.port_count {
                write!(f, "/{n}")?;
            }
            write!(f, " {}", m.proto)?;
            for fmt_ in &m.formats {
                write!(f, " {fmt_}")?;
            }
            write!(f, "\r\n")?;
            for (k, v) in m.other.iter().filter(|(k, _)| *k == 'i') {
                write!(f, "{k}={v}\r\n")?;
            }
            if let Some(c) = &m.connection {
                write!(f, "c={c}\r\n")?;
            }
            for (k, v) in m.other.iter().filter(|(k, _)| *k != 'i') {
                write!(f, "{k}={v}\r\n")?;
            }
            for a in &m.attributes {
                write!(f, "a={a}\r\n")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.net_type, self.addr_type, self.address)
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}:{}", self.name, v),
            None => write!(f, "{}", self.name),
        }
    }
}

/// Attributes of an anchored audio stream that are safe to pass through (besides the
/// rtpmap/fmtp of kept formats, which are regenerated).
const AUDIO_KEEP: [&str; 2] = ["ptime", "maxptime"];

/// Pick the formats of `m` we keep: (codec or telephone-event, payload type).
fn choose_audio(m: &Media, allowed: &[Codec]) -> (Vec<(Codec, String)>, Option<String>) {
    let mut codecs = Vec::new();
    for &codec in allowed {
        let found = m.formats.iter().find(|pt| match m.rtpmap(pt) {
            Some((name, rate)) => name.eq_ignore_ascii_case(codec.name()) && rate == 8000,
            None => pt.parse::<u8>().ok() == Some(codec.static_pt()),
        });
        if let Some(pt) = found {
            if !codecs.iter().any(|(c, _)| *c == codec) {
                codecs.push((codec, pt.clone()));
            }
        }
    }
    let dtmf = m
        .formats
        .iter()
        .find(|pt| {
            m.rtpmap(pt)
                .is_some_and(|(n, r)| n.eq_ignore_ascii_case("telephone-event") && r == 8000)
        })
        .cloned();
    (codecs, dtmf)
}

fn is_usable_audio(m: &Media) -> bool {
    m.port != 0 && m.media.eq_ignore_ascii_case("audio") && m.proto.eq_ignore_ascii_case("RTP/AVP")
}

fn reject(m: &Media) -> Media {
    Media {
        media: m.media.clone(),
        port: 0,
        port_count: None,
        proto: m.proto.clone(),
        formats: m.formats.clone(),
        connection: None,
        other: Vec::new(),
        attributes: Vec::new(),
    }
}

fn unspecified(c: Option<&Connection>) -> bool {
    c.and_then(Connection::ip)
        .is_some_and(|ip| ip.is_unspecified())
}

/// Rewrite `sdp` so that its media flows through our relay at `new_addr:new_port`, keeping only
/// `allowed_codecs` (in that preference order). See the module doc for every rule applied.
/// Returns [`SdpError::NoCommonCodec`] when no stream is usable (the caller answers 488,
/// RFC 3261 §21.4.26).
pub fn rewrite_for_anchor(
    sdp: &Sdp,
    new_addr: IpAddr,
    new_port: u16,
    allowed_codecs: &[Codec],
) -> Result<(Sdp, MediaInfo), SdpError> {
    let ours = Connection::for_ip(new_addr);
    let session_dir = sdp.session_direction();
    let t38_offered = sdp.media.iter().any(|m| m.is_t38() && m.port != 0);
    let mut info: Option<MediaInfo> = None;
    let mut media = Vec::with_capacity(sdp.media.len());

    for (index, m) in sdp.media.iter().enumerate() {
        if info.is_some() {
            media.push(reject(m));
            continue;
        }
        let conn = m.connection.as_ref().or(sdp.connection.as_ref());
        let held = unspecified(conn);
        let dir = m.direction().or(session_dir).unwrap_or_default();
        // RFC 3264 §8.4: c=0.0.0.0 means "do not send to me".
        let out_dir = match (held, dir) {
            (true, Direction::SendRecv) => Direction::SendOnly,
            (true, Direction::RecvOnly) => Direction::Inactive,
            (_, d) => d,
        };
        let remote = conn
            .and_then(Connection::ip)
            .filter(|ip| !ip.is_unspecified())
            .map(|ip| SocketAddr::new(ip, m.port));
        let remote_rtcp = m.attr("rtcp").flatten().find_map(|v| {
            let mut it = v.split_ascii_whitespace();
            let port: u16 = it.next()?.parse().ok()?;
            let ip = match (it.next(), it.next(), it.next()) {
                (Some(_), Some(_), Some(addr)) => addr.parse().ok()?,
                _ => remote?.ip(),
            };
            Some(SocketAddr::new(ip, port))
        });

        let mut attributes = Vec::new();
        let (formats, codecs, telephone_event, t38) = if m.port != 0 && m.is_t38() {
            for a in &m.attributes {
                if a.name
                    .get(..3)
                    .is_some_and(|p| p.eq_ignore_ascii_case("T38"))
                {
                    attributes.push(a.clone());
                }
            }
            (m.formats.clone(), Vec::new(), None, true)
        } else if is_usable_audio(m) {
            let (codecs, dtmf) = choose_audio(m, allowed_codecs);
            if codecs.is_empty() {
                media.push(reject(m));
                continue;
            }
            let mut formats = Vec::new();
            let mut kept = Vec::new();
            for (codec, pt) in &codecs {
                formats.push(pt.clone());
                attributes.push(Attribute::new(
                    "rtpmap",
                    Some(format!("{pt} {}/8000", codec.name())),
                ));
                if let Some(p) = m.fmtp(pt) {
                    attributes.push(Attribute::new("fmtp", Some(format!("{pt} {p}"))));
                }
                if let Ok(n) = pt.parse::<u8>() {
                    kept.push((*codec, n));
                }
            }
            let mut te = None;
            if let Some(pt) = dtmf {
                formats.push(pt.clone());
                attributes.push(Attribute::new(
                    "rtpmap",
                    Some(format!("{pt} telephone-event/8000")),
                ));
                if let Some(p) = m.fmtp(&pt) {
                    attributes.push(Attribute::new("fmtp", Some(format!("{pt} {p}"))));
                }
                te = pt.parse::<u8>().ok();
            }
            for a in &m.attributes {
                if AUDIO_KEEP.iter().any(|k| a.name.eq_ignore_ascii_case(k)) {
                    attributes.push(a.clone());
                }
            }
            (formats, kept, te, false)
        } else {
            media.push(reject(m));
            continue;
        };

        // Direction: written at media level if it was anywhere or if hold changed it.
        if m.direction().is_some() || out_dir != dir || session_dir.is_some() {
            attributes.push(Attribute::new(out_dir.as_str(), None));
        }
        let ptime = m
            .attr("ptime")
            .flatten()
            .find_map(|v| v.trim().parse().ok());
        media.push(Media {
            media: m.media.clone(),
            port: new_port,
            port_count: None,
            proto: m.proto.clone(),
            formats,
            connection: m.connection.as_ref().map(|_| ours.clone()),
            other: m.other.iter().filter(|(k, _)| *k == 'i').cloned().collect(),
            attributes,
        });
        info = Some(MediaInfo {
            stream_index: index,
            remote: remote.filter(|r| r.port() != 0),
            remote_rtcp,
            codecs,
            telephone_event,
            direction: out_dir,
            ptime,
            t38,
            t38_offered,
        });
    }

    let info = info.ok_or(SdpError::NoCommonCodec)?;
    // Always a session-level c=: it covers the rejected m-lines too, whose own c= lines were
    // dropped (RFC 8866 §5.7 wants every m-line covered by some c=).
    let connection = Some(ours.clone());
    let mut out = Sdp {
        origin: Origin {
            address: ours.address.clone(),
            addr_type: ours.addr_type.clone(),
            net_type: ours.net_type.clone(),
            ..sdp.origin.clone()
        },
        session_name: sdp.session_name.clone(),
        connection,
        other: sdp
            .other
            .iter()
            .filter(|(k, _)| *k != 'b' && *k != 'k')
            .cloned()
            .collect(),
        // Session-level direction has been folded into the media level above.
        attributes: Vec::new(),
        media,
    };
    if out != *sdp {
        out.origin.session_version = sdp
            .origin
            .session_version
            .checked_add(1)
            .ok_or(SdpError::VersionOverflow)?;
    }
    Ok((out, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &[(&str, &str)] = &[
        ("01-sipp-uac", include_str!("sdp_golden/01-sipp-uac.sdp")),
        (
            "02-baresip-offer",
            include_str!("sdp_golden/02-baresip-offer.sdp"),
        ),
        (
            "03-hold-sendonly",
            include_str!("sdp_golden/03-hold-sendonly.sdp"),
        ),
        (
            "04-hold-c0000",
            include_str!("sdp_golden/04-hold-c0000.sdp"),
        ),
        (
            "05-t38-reinvite",
            include_str!("sdp_golden/05-t38-reinvite.sdp"),
        ),
        ("06-ipv6", include_str!("sdp_golden/06-ipv6.sdp")),
        (
            "07-no-common-codec",
            include_str!("sdp_golden/07-no-common-codec.sdp"),
        ),
        (
            "08-audio-video",
            include_str!("sdp_golden/08-audio-video.sdp"),
        ),
        (
            "09-webrtc-ish",
            include_str!("sdp_golden/09-webrtc-ish.sdp"),
        ),
        (
            "10-answer-pcma-only",
            include_str!("sdp_golden/10-answer-pcma-only.sdp"),
        ),
    ];

    /// Golden file format (rtpengine `t/` style):
    ///
    /// ```text
    /// anchor <ip> <port> <codec> [<codec>…]
    /// <input SDP>
    /// ----
    /// <expected SDP with {ADDR} and {PORT} placeholders>, or `error <Debug of SdpError>`
    /// ```
    fn run_golden(name: &str, text: &str) {
        let text = text.replace("\r\n", "\n");
        let (header, rest) = text.split_once('\n').unwrap();
        let (input, expected) = rest.split_once("----\n").unwrap();
        let mut h = header.split_whitespace();
        assert_eq!(h.next(), Some("anchor"), "{name}");
        let addr: IpAddr = h.next().unwrap().parse().unwrap();
        let port: u16 = h.next().unwrap().parse().unwrap();
        let codecs: Vec<Codec> = h
            .map(|c| match c {
                "PCMU" => Codec::Pcmu,
                "PCMA" => Codec::Pcma,
                other => panic!("{name}: codec {other}"),
            })
            .collect();
        let sdp = Sdp::parse(input).unwrap_or_else(|e| panic!("{name}: {e}"));
        match rewrite_for_anchor(&sdp, addr, port, &codecs) {
            Ok((out, _)) => {
                let expected = expected
                    .replace("{ADDR}", &addr.to_string())
                    .replace("{PORT}", &port.to_string())
                    .replace('\n', "\r\n");
                assert_eq!(out.to_string(), expected, "golden {name}");
                // Our own output re-parses to the same thing.
                assert_eq!(Sdp::parse(&out.to_string()).unwrap(), out, "{name} reparse");
            }
            Err(e) => assert_eq!(format!("error {e:?}\n"), expected, "golden {name}"),
        }
    }

    #[test]
    fn golden_files() {
        for (name, text) in GOLDEN {
            run_golden(name, text);
        }
    }

    fn golden_info(name: &str) -> MediaInfo {
        let text = GOLDEN
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
            .replace("\r\n", "\n");
        let (_, rest) = text.split_once('\n').unwrap();
        let (input, _) = rest.split_once("----\n").unwrap();
        let sdp = Sdp::parse(input).unwrap();
        rewrite_for_anchor(
            &sdp,
            "203.0.113.1".parse().unwrap(),
            40_000,
            &[Codec::Pcmu, Codec::Pcma],
        )
        .unwrap()
        .1
    }

    #[test]
    fn media_info_of_golden_inputs() {
        let i = golden_info("02-baresip-offer");
        assert_eq!(i.remote, Some("192.168.1.10:10000".parse().unwrap()));
        assert_eq!(i.remote_rtcp, Some("192.168.1.10:10001".parse().unwrap()));
        assert_eq!(i.codecs, [(Codec::Pcmu, 0), (Codec::Pcma, 8)]);
        assert_eq!(i.telephone_event, Some(101));
        assert!(!i.is_t38());

        let i = golden_info("04-hold-c0000");
        assert_eq!(i.remote, None);
        assert_eq!(i.direction, Direction::SendOnly);
        assert!(i.direction.is_hold());

        let i = golden_info("05-t38-reinvite");
        assert!(i.is_t38() && i.t38_offered);
        assert!(i.codecs.is_empty());
        assert_eq!(i.stream_index, 1);

        let i = golden_info("03-hold-sendonly");
        assert_eq!(i.direction, Direction::SendOnly);
        assert_eq!(i.ptime, Some(20));

        let i = golden_info("06-ipv6");
        assert_eq!(i.remote, Some("[2001:db8::10]:30000".parse().unwrap()));
    }

    const MINIMAL: &str = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

    #[test]
    fn round_trip_preserves_content() {
        let text = "v=0\r\no=alice 2890844526 2890844527 IN IP4 host.example.com\r\ns=Talk\r\ni=info\r\nc=IN IP4 192.0.2.1\r\nb=AS:64\r\nt=0 0\r\na=recvonly\r\nm=audio 49170/2 RTP/AVP 0 97\r\ni=voice\r\nb=AS:80\r\na=rtpmap:97 iLBC/8000\r\na=fmtp:97 mode=30\r\n";
        let sdp = Sdp::parse(text).unwrap();
        assert_eq!(sdp.to_string(), text);
        assert_eq!(sdp.media[0].port_count, Some(2));
        assert_eq!(sdp.session_direction(), Some(Direction::RecvOnly));
    }

    #[test]
    fn version_increments_only_on_change() {
        let sdp = Sdp::parse(MINIMAL).unwrap();
        let (out, _) =
            rewrite_for_anchor(&sdp, "192.0.2.1".parse().unwrap(), 4000, &[Codec::Pcmu]).unwrap();
        // Already anchored here: only the rtpmap line is added, so it still changes.
        assert_eq!(out.origin.session_version, 3);
        let (again, _) =
            rewrite_for_anchor(&out, "192.0.2.1".parse().unwrap(), 4000, &[Codec::Pcmu]).unwrap();
        assert_eq!(again, out, "rewriting our own output is a fixed point");
        let mut max = sdp.clone();
        max.origin.session_version = u64::MAX;
        assert_eq!(
            rewrite_for_anchor(&max, "198.51.100.1".parse().unwrap(), 4000, &[Codec::Pcmu]),
            Err(SdpError::VersionOverflow)
        );
    }

    #[test]
    fn dynamic_pt_for_g711_and_case_insensitive_names() {
        let text = MINIMAL.replace("RTP/AVP 0", "RTP/AVP 96 97")
            + "a=rtpmap:96 pcma/8000\r\na=rtpmap:97 PCMU/16000\r\n";
        let sdp = Sdp::parse(&text).unwrap();
        let (out, info) = rewrite_for_anchor(
            &sdp,
            "198.51.100.1".parse().unwrap(),
            5000,
            &[Codec::Pcmu, Codec::Pcma],
        )
        .unwrap();
        assert_eq!(info.codecs, [(Codec::Pcma, 96)]);
        assert_eq!(out.media[0].formats, ["96"]);
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&str, SdpError)] = &[
            ("", SdpError::Missing("v=")),
            ("v=1\r\n", malformed(1, "first line must be v=0")),
            ("v=0\r\ns=-\r\n", SdpError::Missing("o=")),
            (
                "v=0\r\no=- 1 2 IN IP4\r\n",
                malformed(2, "o= needs 6 fields"),
            ),
            (
                "v=0\r\no=- 1 x IN IP4 a\r\n",
                malformed(2, "o= version is not a number"),
            ),
            ("v=0\r\no=- 1 2 IN IP4 a\r\n", SdpError::Missing("s=")),
            ("v=0\r\nfoo\r\n", malformed(2, "expected <type>=<value>")),
            ("v=0\r\nm=audio x RTP/AVP 0\r\n", malformed(2, "bad port")),
            (
                "v=0\r\nm=audio 70000 RTP/AVP 0\r\n",
                malformed(2, "bad port"),
            ),
            (
                "v=0\r\nm=audio 4000 RTP/AVP\r\n",
                malformed(2, "m= without formats"),
            ),
            (
                "v=0\r\nm=audio 4000 RTP/AVP 0\r\nt=0 0\r\n",
                malformed(3, "line type not allowed in media"),
            ),
            ("v=0\r\nc=IN IP4\r\n", malformed(2, "c= needs 3 fields")),
            ("v=0\r\nx=1\r\n", malformed(2, "unknown line type")),
        ];
        for (text, err) in cases {
            assert_eq!(Sdp::parse(text).as_ref().err(), Some(err), "{text:?}");
        }
        assert_eq!(Sdp::parse_bytes(&[0xFF, 0xFE]), Err(SdpError::NotUtf8));
        let big = "a=x\r\n".repeat(MAX_SDP_BYTES / 5 + 1);
        assert!(matches!(Sdp::parse(&big), Err(SdpError::TooLarge(_))));
        let many_m = String::from("v=0\r\n") + &"m=audio 1 RTP/AVP 0\r\n".repeat(MAX_MEDIA + 1);
        assert_eq!(Sdp::parse(&many_m), Err(SdpError::TooMany("m-lines")));
        let many_lines = String::from("v=0\r\n") + &"a=x\r\n".repeat(MAX_LINES);
        assert_eq!(Sdp::parse(&many_lines), Err(SdpError::TooMany("lines")));
        let many_fmts = format!(
            "v=0\r\nm=audio 1 RTP/AVP{}\r\n",
            " 0".repeat(MAX_FORMATS + 1)
        );
        assert_eq!(Sdp::parse(&many_fmts), Err(SdpError::TooMany("formats")));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(body in "(v=0\r\n)?([a-z]=[ -~]{0,40}\r?\n){0,30}") {
            if let Ok(sdp) = Sdp::parse(&body) {
                let _ = sdp.to_string();
                let _ = rewrite_for_anchor(&sdp, "192.0.2.9".parse().unwrap(), 2, &[Codec::Pcmu]);
            }
        }
    }

    #[test]
    fn never_panics_on_mutations() {
        for (_, text) in GOLDEN {
            let input = text.split("----").next().unwrap_or_default();
            let bytes = input.as_bytes();
            for cut in 0..bytes.len() {
                if let Ok(sdp) = Sdp::parse_bytes(&bytes[..cut]) {
                    let _ =
                        rewrite_for_anchor(&sdp, "192.0.2.9".parse().unwrap(), 1, &[Codec::Pcma]);
                }
            }
            for i in (0..bytes.len()).step_by(3) {
                for b in [b' ', b'0', b'=', b'\n', b':', b'/', 0xC3] {
                    let mut m = bytes.to_vec();
                    m[i] = b;
                    if let Ok(sdp) = Sdp::parse_bytes(&m) {
                        let _ = rewrite_for_anchor(
                            &sdp,
                            "192.0.2.9".parse().unwrap(),
                            1,
                            &[Codec::Pcmu],
                        );
                    }
                }
            }
        }
    }
}
