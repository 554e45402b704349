//! The front door's guard (sans-IO, fake-time tested): scanner drops, per-source rate limits
//! and bans, before a message costs the transaction layer anything.
//!
//! What it stops, and why the numbers are what they are:
//!
//! - **Scanners**: requests whose `User-Agent` names a known SIP scanner (SIPVicious'
//!   `friendly-scanner`, `sipcli`, `VaxSIPUserAgent`, …) get no answer at all, so svmap does
//!   not even learn that a SIP server is here. Logged once per source per window.
//! - **Floods**: each source IP has a token bucket for *new* INVITEs and OPTIONS, and one for
//!   REGISTER. Over the limit, requests are dropped unanswered (a flooder learns nothing and we
//!   spend nothing). Configured trunk addresses get their own, larger INVITE/OPTIONS bucket, so a
//!   carrier at its real rate is never throttled by someone else's flood — buckets are per source.
//!   The REGISTER bucket is sized for a call centre behind one NAT address: 500 seats
//!   re-registering within 5 s (two requests each with the digest challenge) fit the default.
//! - **Brute force**: failed digest credentials (not the first, credential-less challenge every
//!   client gets) count against the source; after `ban_after_auth_failures` within
//!   `failure_window` the source is banned for `ban_duration`. A source that keeps flooding
//!   (`ban_after_drops` dropped requests within the window) is banned too. Trunk addresses are
//!   never banned (a misbehaving carrier is an operations problem, not an attack to block).
//!   Every ban is one line in the shape of [`crate::sip::security`] (fail2ban-friendly):
//!   `smartdesk::security: ban from 203.0.113.9 reason=auth_failures count=10 for_s=900`;
//!   scanner and rate-limit drops are logged once per source and window the same way
//!   (`scanner from …`, `rate_limited from …`).
//!
//! Memory is bounded: at most `max_sources` per-source entries; when full, idle entries are
//! swept, and a source that still finds no room shares one overflow entry (so a spoofed-source
//! flood degrades to one shared limit instead of growing the table).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// User-Agent substrings of known scanners (compared case-insensitively).
pub const SCANNER_AGENTS: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipscan",
    "iwar",
    "sundayddr",
    "vaxsipuseragent",
    "pplsip",
    "smap",
];

#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// New INVITEs + OPTIONS per second from one non-trunk source, and the burst allowed.
    pub request_rate: f64,
    pub request_burst: f64,
    /// The same for a configured trunk address.
    pub trunk_rate: f64,
    pub trunk_burst: f64,
    /// REGISTERs per second from one source, and the burst allowed.
    pub register_rate: f64,
    pub register_burst: f64,
    pub ban_after_auth_failures: u32,
    pub ban_after_drops: u32,
    pub failure_window: Duration,
    pub ban_duration: Duration,
    pub max_sources: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            request_rate: 50.0,
            request_burst: 100.0,
            trunk_rate: 1000.0,
            trunk_burst: 2000.0,
            register_rate: 300.0,
            register_burst: 1000.0,
            ban_after_auth_failures: 10,
            ban_after_drops: 500,
            failure_window: Duration::from_secs(60),
            ban_duration: Duration::from_secs(900),
            max_sources: 65_536,
        }
    }
}

/// What kind of request is arriving, for the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestClass {
    /// A new INVITE (no To tag) or an OPTIONS.
    Initial,
    Register,
    /// Anything else (in-dialog requests, ACK, CANCEL, responses): never limited here, the
    /// transaction layer and the dialogs bound them.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Dropped unanswered; `newly_banned` is set on the request that tipped the source over.
    Drop {
        reason: DropReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Banned,
    Scanner,
    RateLimited,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
        }
    }
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone)]
struct Source {
    initial: Bucket,
    register: Bucket,
    /// Failures and drops inside the current window, which started at `window_start`.
    window_start: Instant,
    auth_failures: u32,
    drops: u32,
    banned_until: Option<Instant>,
    last_seen: Instant,
    /// Scanner logging: once per window.
    scanner_logged: bool,
}

/// A ban as it is logged and counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub ip: IpAddr,
    pub reason: &'static str,
    pub count: u32,
    pub duration: Duration,
}

#[derive(Debug)]
pub struct Guard {
    cfg: GuardConfig,
    sources: HashMap<IpAddr, Source>,
    /// Shared by sources that found the table full.
    overflow: Option<Source>,
    pub stats: GuardStats,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    pub dropped_banned: u64,
    pub dropped_scanner: u64,
    pub dropped_rate: u64,
    pub bans: u64,
    pub auth_failures: u64,
}

impl Guard {
    pub fn new(cfg: GuardConfig) -> Guard {
        Guard {
            cfg,
            sources: HashMap::new(),
            overflow: None,
            stats: GuardStats::default(),
        }
    }

    /// Is `ip` banned now? Cheap: called for every datagram before it is parsed.
    pub fn is_banned(&mut self, ip: IpAddr, now: Instant) -> bool {
        let banned = self
            .sources
            .get(&ip)
            .and_then(|s| s.banned_until)
            .is_some_and(|until| now < until);
        if banned {
            self.stats.dropped_banned += 1;
        }
        banned
    }

    fn source(&mut self, ip: IpAddr, now: Instant) -> &mut Source {
        let cfg = &self.cfg;
        let fresh = || Source {
            initial: Bucket::full(cfg.request_burst.max(cfg.trunk_burst), now),
            register: Bucket::full(cfg.register_burst, now),
            window_start: now,
            auth_failures: 0,
            drops: 0,
            banned_until: None,
            last_seen: now,
            scanner_logged: false,
        };
        if !self.sources.contains_key(&ip) && self.sources.len() >= cfg.max_sources {
            let idle = cfg.failure_window.max(cfg.ban_duration);
            self.sources.retain(|_, s| {
                now.saturating_duration_since(s.last_seen) < idle
                    || s.banned_until.is_some_and(|u| now < u)
            });
        }
        if !self.sources.contains_key(&ip) && self.sources.len() >= self.cfg.max_sources {
            return self.overflow.get_or_insert_with(fresh);
        }
        let s = self.sources.entry(ip).or_insert_with(fresh);
        if now.saturating_duration_since(s.window_start) >= self.cfg.failure_window {
            s.window_start = now;
            s.auth_failures = 0;
            s.drops = 0;
            s.scanner_logged = false;
        }
        s.last_seen = now;
        s
    }

    /// Judges one request from `ip` (`trunk`: a configured carrier address). `user_agent` is
    /// its User-Agent header, if any.
    pub fn check(
        &mut self,
        ip: IpAddr,
        trunk: bool,
        now: Instant,
        class: RequestClass,
        user_agent: Option<&str>,
    ) -> (Verdict, Option<Ban>) {
        if self.is_banned(ip, now) {
            return (
                Verdict::Drop {
                    reason: DropReason::Banned,
                },
                None,
            );
        }
        if user_agent.is_some_and(is_scanner) {
            self.stats.dropped_scanner += 1;
            let s = self.source(ip, now);
            if !s.scanner_logged {
                s.scanner_logged = true;
                crate::sip::security::event(crate::sip::security::SCANNER, ip);
            }
            return (
                Verdict::Drop {
                    reason: DropReason::Scanner,
                },
                None,
            );
        }
        let (rate, burst) = match class {
            RequestClass::Other => return (Verdict::Pass, None),
            RequestClass::Initial if trunk => (self.cfg.trunk_rate, self.cfg.trunk_burst),
            RequestClass::Initial => (self.cfg.request_rate, self.cfg.request_burst),
            RequestClass::Register => (self.cfg.register_rate, self.cfg.register_burst),
        };
        let ban_after = self.cfg.ban_after_drops;
        let s = self.source(ip, now);
        let bucket = match class {
            RequestClass::Register => &mut s.register,
            _ => &mut s.initial,
        };
        if bucket.take(now, rate, burst) {
            return (Verdict::Pass, None);
        }
        s.drops += 1;
        let drops = s.drops;
        self.stats.dropped_rate += 1;
        if drops == 1 {
            crate::sip::security::event(crate::sip::security::RATE_LIMITED, ip);
        }
        let ban = (!trunk && drops >= ban_after)
            .then(|| self.ban(ip, now, "flood", drops))
            .flatten();
        (
            Verdict::Drop {
                reason: DropReason::RateLimited,
            },
            ban,
        )
    }

    /// A request from `ip` carried digest credentials that did not verify.
    pub fn auth_failed(&mut self, ip: IpAddr, trunk: bool, now: Instant) -> Option<Ban> {
        self.stats.auth_failures += 1;
        if trunk {
            return None;
        }
        let limit = self.cfg.ban_after_auth_failures;
        let s = self.source(ip, now);
        s.auth_failures += 1;
        let n = s.auth_failures;
        if n >= limit {
            self.ban(ip, now, "auth_failures", n)
        } else {
            None
        }
    }

    fn ban(&mut self, ip: IpAddr, now: Instant, reason: &'static str, count: u32) -> Option<Ban> {
        let duration = self.cfg.ban_duration;
        let s = self.sources.get_mut(&ip)?;
        if s.banned_until.is_some_and(|u| now < u) {
            return None;
        }
        s.banned_until = Some(now + duration);
        s.auth_failures = 0;
        s.drops = 0;
        self.stats.bans += 1;
        tracing::warn!(
            target: "smartdesk::security",
            kind = crate::sip::security::BAN,
            peer = %ip,
            reason,
            count,
            for_s = duration.as_secs(),
            "ban from {ip} reason={reason} count={count} for_s={}",
            duration.as_secs()
        );
        Some(Ban {
            ip,
            reason,
            count,
            duration,
        })
    }

    /// Entries held (bounded by `max_sources`).
    pub fn sources(&self) -> usize {
        self.sources.len()
    }
}

/// Case-insensitive substring match without allocating (runs on every request with a
/// User-Agent).
pub fn is_scanner(user_agent: &str) -> bool {
    let ua = user_agent.as_bytes();
    SCANNER_AGENTS.iter().any(|s| {
        ua.windows(s.len())
            .any(|w| w.eq_ignore_ascii_case(s.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const TRUNK: &str = "192.0.2.10";

    fn passes(g: &mut Guard, who: &str, now: Instant, class: RequestClass) -> bool {
        g.check(ip(who), who == TRUNK, now, class, None).0 == Verdict::Pass
    }

    #[test]
    fn scanners_are_dropped_whatever_the_case() {
        let mut g = Guard::new(GuardConfig::default());
        let t = Instant::now();
        for ua in [
            "friendly-scanner",
            "SIPVicious 0.3",
            "sipcli/v1.8",
            "VaxSIPUserAgent/3.1",
        ] {
            let (v, _) = g.check(
                ip("198.51.100.1"),
                false,
                t,
                RequestClass::Initial,
                Some(ua),
            );
            assert_eq!(
                v,
                Verdict::Drop {
                    reason: DropReason::Scanner
                },
                "{ua}"
            );
        }
        assert!(g
            .check(
                ip("198.51.100.1"),
                false,
                t,
                RequestClass::Initial,
                Some("baresip v1.0.0")
            )
            .0
            .eq(&Verdict::Pass));
    }

    #[test]
    fn flood_is_limited_per_source_and_banned_but_the_trunk_keeps_its_rate() {
        let cfg = GuardConfig::default();
        let mut g = Guard::new(cfg.clone());
        let t0 = Instant::now();
        // The flooder: 5,000 requests/s for 2 s; the carrier: 10 calls/s meanwhile.
        let mut passed = 0;
        let mut carrier_refused = 0;
        let mut bans = Vec::new();
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_micros(i * 200);
            let (v, ban) = g.check(ip("203.0.113.9"), false, now, RequestClass::Initial, None);
            if v == Verdict::Pass {
                passed += 1;
            }
            bans.extend(ban);
            if i % 500 == 0 && !passes(&mut g, "192.0.2.10", now, RequestClass::Initial) {
                carrier_refused += 1;
            }
        }
        assert_eq!(carrier_refused, 0);
        // The burst plus the rate over the time before the ban.
        assert!(passed <= 100 + 50 * 2 + 1, "{passed}");
        assert_eq!(bans.len(), 1, "{bans:?}");
        assert_eq!(bans[0].reason, "flood");
        assert!(g.is_banned(ip("203.0.113.9"), t0 + Duration::from_secs(3)));
        assert!(!g.is_banned(
            ip("203.0.113.9"),
            t0 + Duration::from_secs(3) + cfg.ban_duration
        ));
        // A trunk is never banned, even flooding.
        for i in 0..100_000u64 {
            g.check(
                ip(TRUNK),
                true,
                t0 + Duration::from_micros(i),
                RequestClass::Initial,
                None,
            );
        }
        assert!(!g.is_banned(ip("192.0.2.10"), t0 + Duration::from_millis(200)));
    }

    #[test]
    fn registration_storm_of_500_seats_behind_one_address_passes() {
        let mut g = Guard::new(GuardConfig::default());
        let t0 = Instant::now();
        // 500 seats in 5 s, each REGISTER twice (challenge, then credentials).
        for i in 0..1000u64 {
            let now = t0 + Duration::from_millis(i * 5);
            assert!(
                passes(&mut g, "10.0.0.1", now, RequestClass::Register),
                "REGISTER {i} dropped"
            );
        }
        // Even all at once.
        let mut g = Guard::new(GuardConfig::default());
        for _ in 0..1000 {
            assert!(passes(&mut g, "10.0.0.1", t0, RequestClass::Register));
        }
    }

    #[test]
    fn brute_force_is_banned_after_the_configured_failures_within_the_window() {
        let cfg = GuardConfig::default();
        let mut g = Guard::new(cfg.clone());
        let t0 = Instant::now();
        // Slow failures spread over windows never ban.
        for i in 0..30u64 {
            let now = t0 + cfg.failure_window / 5 * (i as u32);
            assert_eq!(g.auth_failed(ip("198.51.100.7"), false, now), None, "{i}");
        }
        let t1 = t0 + Duration::from_secs(3600);
        let mut ban = None;
        for i in 0..cfg.ban_after_auth_failures {
            ban = g.auth_failed(
                ip("198.51.100.8"),
                false,
                t1 + Duration::from_millis(u64::from(i)),
            );
            if i + 1 < cfg.ban_after_auth_failures {
                assert_eq!(ban, None);
            }
        }
        let ban = ban.expect("banned");
        assert_eq!(ban.reason, "auth_failures");
        assert_eq!(ban.count, cfg.ban_after_auth_failures);
        assert!(!passes(
            &mut g,
            "198.51.100.8",
            t1 + Duration::from_secs(1),
            RequestClass::Register
        ));
        // Other sources are unaffected.
        assert!(passes(&mut g, "198.51.100.9", t1, RequestClass::Register));
    }

    #[test]
    fn the_source_table_is_bounded() {
        let cfg = GuardConfig {
            max_sources: 100,
            ..GuardConfig::default()
        };
        let mut g = Guard::new(cfg);
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            g.check(a, false, t0, RequestClass::Initial, None);
        }
        assert!(g.sources() <= 100);
        // Later, idle entries make room again.
        let later = t0 + Duration::from_secs(3600);
        g.check(ip("10.255.0.1"), false, later, RequestClass::Initial, None);
        assert!(g.sources() <= 100);
        assert!(g.sources.contains_key(&ip("10.255.0.1")));
    }
}
