//! Prometheus metrics (issue #9 §2): counters the edge tasks bump lock-free, rendered in the
//! text exposition format (0.0.4) together with a snapshot of the call core, and served on
//! their own listener (`[metrics] listen`, off by default, loopback unless
//! `allow_non_loopback`).
//!
//! Who counts what:
//!
//! ```text
//!  core task      calls by outcome, queue wait (INVITE → seat answer) at each call's end,
//!                 RTP relayed/lost when a call's relay stops (per call, at its end)
//!  admission /    ledger write latency (call-row inserts and outcome updates)
//!  update writer
//!  scrape time    calls in progress, seats by state, SIP messages by method / response
//!                 class, transaction timeouts, auth failures (a core snapshot)
//! ```
//!
//! The report outbox (issue #7) is not part of this daemon yet, so there is no backlog metric.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::requests::{CoreHandle, CoreSnapshot};
use crate::sip::counters::{Traffic, METHODS};

/// Outcomes counted by name (SPEC §3 and the call path); anything else is `other`.
/// `not_recorded`: refused before a row was written (unassigned number, ledger down).
pub const OUTCOMES: [&str; 10] = [
    "answered",
    "abandoned",
    "overflow",
    "out_of_hours",
    "suspended",
    "not_in_contract",
    "fax",
    "failed",
    "not_recorded",
    "other",
];

/// Queue wait buckets (seconds): a seat rings for up to 20 s per attempt.
const WAIT_BUCKETS: [f64; 9] = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0];
/// Ledger write buckets (seconds): an fsync is milliseconds, a stall is seconds.
const WRITE_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// A fixed-bucket histogram of atomics (cumulative buckets are computed when rendering).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_us: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Relaxed);
        }
        self.sum_us
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

/// Counters shared by the daemon's tasks.
#[derive(Debug)]
pub struct Metrics {
    calls: [AtomicU64; OUTCOMES.len()],
    pub queue_wait: Histogram,
    pub ledger_write: Histogram,
    rtp_relayed: AtomicU64,
    rtp_lost: AtomicU64,
    ledger_write_errors: AtomicU64,
    /// Report outbox by state, refreshed by the daemon every [`OUTBOX_REFRESH`]; -1 = never read.
    outbox_pending: std::sync::atomic::AtomicI64,
    outbox_failed: std::sync::atomic::AtomicI64,
    /// The PostgreSQL spool, when there is one.
    spool: std::sync::OnceLock<std::sync::Arc<crate::ledger::Spool>>,
}

/// How often the outbox gauges are read from the ledger.
pub const OUTBOX_REFRESH: Duration = Duration::from_secs(5);

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            calls: Default::default(),
            queue_wait: Histogram::new(&WAIT_BUCKETS),
            ledger_write: Histogram::new(&WRITE_BUCKETS),
            rtp_relayed: AtomicU64::new(0),
            rtp_lost: AtomicU64::new(0),
            ledger_write_errors: AtomicU64::new(0),
            outbox_pending: std::sync::atomic::AtomicI64::new(-1),
            outbox_failed: std::sync::atomic::AtomicI64::new(-1),
            spool: std::sync::OnceLock::new(),
        }
    }
}

impl Metrics {
    pub fn call_ended(&self, outcome: &str) {
        let i = OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(OUTCOMES.len() - 1);
        if let Some(c) = self.calls.get(i) {
            c.fetch_add(1, Relaxed);
        }
    }

    pub fn rtp(&self, relayed: u64, lost: u64) {
        self.rtp_relayed.fetch_add(relayed, Relaxed);
        self.rtp_lost.fetch_add(lost, Relaxed);
    }

    /// The report outbox as last read from the ledger.
    pub fn set_outbox(&self, pending: i64, failed: i64) {
        self.outbox_pending.store(pending, Relaxed);
        self.outbox_failed.store(failed, Relaxed);
    }

    /// The spool whose backlog the gauges show.
    pub fn set_spool(&self, spool: std::sync::Arc<crate::ledger::Spool>) {
        let _ = self.spool.set(spool);
    }

    pub fn ledger_write_failed(&self) {
        self.ledger_write_errors.fetch_add(1, Relaxed);
    }

    /// Calls ended since start, by outcome.
    pub fn calls_by_outcome(&self) -> Vec<(&'static str, u64)> {
        OUTCOMES
            .iter()
            .zip(self.calls.iter())
            .map(|(o, c)| (*o, c.load(Relaxed)))
            .collect()
    }

    /// The whole exposition: these counters and `snap`.
    pub fn render(&self, snap: &CoreSnapshot, uptime: Duration) -> String {
        let mut o = String::with_capacity(8192);
        let family = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut o,
            "smartdesk_up",
            "gauge",
            "1 while the daemon runs; 0.5 while draining.",
        );
        let _ = writeln!(o, "smartdesk_up {}", if snap.draining { 0.5 } else { 1.0 });
        family(
            &mut o,
            "smartdesk_uptime_seconds",
            "gauge",
            "Seconds since start.",
        );
        let _ = writeln!(o, "smartdesk_uptime_seconds {}", uptime.as_secs());
        family(
            &mut o,
            "smartdesk_calls_total",
            "counter",
            "Calls ended since start, by recorded outcome.",
        );
        for (outcome, n) in self.calls_by_outcome() {
            let _ = writeln!(o, "smartdesk_calls_total{{outcome=\"{outcome}\"}} {n}");
        }
        family(
            &mut o,
            "smartdesk_calls_in_progress",
            "gauge",
            "Calls in progress, by state.",
        );
        for state in [
            "admitting",
            "queued",
            "ringing",
            "message",
            "announcing",
            "answered",
            "ending",
        ] {
            let n = snap.calls.iter().filter(|c| c.state == state).count();
            let _ = writeln!(o, "smartdesk_calls_in_progress{{state=\"{state}\"}} {n}");
        }
        family(
            &mut o,
            "smartdesk_queue_depth",
            "gauge",
            "Calls waiting for a free seat.",
        );
        let _ = writeln!(o, "smartdesk_queue_depth {}", snap.queue_depth);
        self.queue_wait.render(
            &mut o,
            "smartdesk_queue_wait_seconds",
            "From the carrier's INVITE to a seat's answer, for answered calls.",
        );
        family(&mut o, "smartdesk_seats", "gauge", "Seats, by ACD state.");
        for state in [
            "offline",
            "available",
            "ringing",
            "on_call",
            "wrap_up",
            "paused",
        ] {
            let n = snap.seats.iter().filter(|s| s.state == state).count();
            let _ = writeln!(o, "smartdesk_seats{{state=\"{state}\"}} {n}");
        }
        family(
            &mut o,
            "smartdesk_sip_requests_total",
            "counter",
            "SIP requests by direction and method.",
        );
        let traffic = |o: &mut String, dir: &str, t: &Traffic, responses: bool| {
            if responses {
                for (i, n) in t.responses.iter().enumerate() {
                    let _ = writeln!(
                        o,
                        "smartdesk_sip_responses_total{{direction=\"{dir}\",class=\"{}xx\"}} {n}",
                        i + 1
                    );
                }
            } else {
                for (m, n) in METHODS.iter().zip(t.requests.iter()) {
                    let _ = writeln!(
                        o,
                        "smartdesk_sip_requests_total{{direction=\"{dir}\",method=\"{m}\"}} {n}"
                    );
                }
            }
        };
        traffic(&mut o, "in", &snap.sip.inbound, false);
        traffic(&mut o, "out", &snap.sip.outbound, false);
        family(
            &mut o,
            "smartdesk_sip_responses_total",
            "counter",
            "SIP responses by direction and status class.",
        );
        traffic(&mut o, "in", &snap.sip.inbound, true);
        traffic(&mut o, "out", &snap.sip.outbound, true);
        let counters: [(&str, &str, u64); 7] = [
            (
                "smartdesk_sip_transaction_timeouts_total",
                "Client transactions that timed out or hit a transport error.",
                snap.sip.timeouts,
            ),
            (
                "smartdesk_sip_malformed_total",
                "Datagrams or frames that were not valid SIP.",
                snap.sip.malformed,
            ),
            (
                "smartdesk_sip_auth_failures_total",
                "REGISTERs refused for wrong digest credentials.",
                snap.auth_failures,
            ),
            (
                "smartdesk_sip_acl_rejects_total",
                "INVITEs from addresses of no configured trunk (403).",
                snap.stats.refused_acl,
            ),
            (
                "smartdesk_rtp_packets_relayed_total",
                "RTP/RTCP packets relayed, counted when each call's relay stops.",
                self.rtp_relayed.load(Relaxed),
            ),
            (
                "smartdesk_rtp_packets_lost_total",
                "RTP packets missing by sequence gaps, counted when each call's relay stops.",
                self.rtp_lost.load(Relaxed),
            ),
            (
                "smartdesk_ledger_write_errors_total",
                "Ledger writes (call rows, outcomes) that failed and were retried or refused.",
                self.ledger_write_errors.load(Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            family(&mut o, name, "counter", help);
            let _ = writeln!(o, "{name} {v}");
        }
        family(
            &mut o,
            "smartdesk_sip_transactions",
            "gauge",
            "Live SIP transactions.",
        );
        let _ = writeln!(o, "smartdesk_sip_transactions {}", snap.transactions);
        family(
            &mut o,
            "smartdesk_rtp_ports_in_use",
            "gauge",
            "RTP/RTCP port pairs held by calls and relays still closing.",
        );
        let _ = writeln!(
            o,
            "smartdesk_rtp_ports_in_use {}",
            snap.stats.rtp_ports_in_use
        );
        for (name, help, v) in [
            (
                "smartdesk_outbox_backlog",
                "Reports waiting for delivery (retrying included); -1 until first read.",
                self.outbox_pending.load(Relaxed),
            ),
            (
                "smartdesk_outbox_failed",
                "Reports that failed after their retry budget (alerts); -1 until first read.",
                self.outbox_failed.load(Relaxed),
            ),
        ] {
            family(&mut o, name, "gauge", help);
            let _ = writeln!(o, "{name} {v}");
        }
        if let Some(spool) = self.spool.get() {
            let b = spool.backlog();
            let (spooled, replayed) = spool.totals();
            for (name, kind, help, v) in [
                (
                    "smartdesk_spool_backlog_calls",
                    "gauge",
                    "Call rows in the local spool waiting for PostgreSQL.",
                    b.calls,
                ),
                (
                    "smartdesk_spool_backlog_updates",
                    "gauge",
                    "Call-row updates in the local spool waiting for PostgreSQL.",
                    b.updates,
                ),
                (
                    "smartdesk_spool_calls_total",
                    "counter",
                    "Call rows spooled because PostgreSQL could not take them.",
                    spooled,
                ),
                (
                    "smartdesk_spool_replayed_calls_total",
                    "counter",
                    "Spooled call rows replayed into PostgreSQL.",
                    replayed,
                ),
            ] {
                family(&mut o, name, kind, help);
                let _ = writeln!(o, "{name} {v}");
            }
        }
        self.ledger_write.render(
            &mut o,
            "smartdesk_ledger_write_seconds",
            "Latency of ledger writes of the call path (row inserts, outcome updates).",
        );
        o
    }
}

/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Request head bytes read at most.
const MAX_REQUEST: usize = 8192;
/// Concurrent scrapes.
const MAX_CONNECTIONS: usize = 8;

/// Binds `[metrics] listen` after checking it is loopback (unless allowed).
pub async fn bind(listen: SocketAddr, allow_non_loopback: bool) -> Result<TcpListener, String> {
    if !listen.ip().is_loopback() && !allow_non_loopback {
        return Err(format!(
            "metrics.listen: {listen} is not a loopback address; set \
             metrics.allow_non_loopback = true to expose metrics beyond this host"
        ));
    }
    TcpListener::bind(listen)
        .await
        .map_err(|e| format!("metrics.listen: cannot bind {listen}: {e}"))
}

/// Serves `GET /metrics` (HTTP/1.1, one request per connection) until aborted.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    core: CoreHandle,
    started: std::time::Instant,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // dropped: too many scrapes at once
        };
        let metrics = metrics.clone();
        let core = core.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                REQUEST_TIMEOUT * 2,
                answer(stream, &metrics, &core, started),
            )
            .await;
            drop(slot);
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    metrics: &Metrics,
    core: &CoreHandle,
    started: std::time::Instant,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_done = |b: &[u8]| b.windows(4).any(|w| w == b"\r\n\r\n");
    while !head_done(&buf) {
        let n = tokio::time::timeout(REQUEST_TIMEOUT, stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if buf.len() > MAX_REQUEST {
            return respond(&mut stream, "431 Request Header Fields Too Large", "").await;
        }
    }
    let line = buf.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, path) = (parts.next(), parts.next());
    let path = path.map(|p| p.split(|b| *b == b'?').next().unwrap_or_default());
    match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => match core.snapshot().await {
            Ok(snap) => {
                let body = metrics.render(&snap, started.elapsed());
                respond(&mut stream, "200 OK", &body).await
            }
            Err(e) => respond(&mut stream, "503 Service Unavailable", &format!("{e}\n")).await,
        },
        (Some(b"GET"), _) => respond(&mut stream, "404 Not Found", "try /metrics\n").await,
        _ => respond(&mut stream, "405 Method Not Allowed", "").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_is_well_formed() {
        let m = Metrics::default();
        m.call_ended("answered");
        m.call_ended("something-new");
        m.queue_wait.observe(Duration::from_millis(1500));
        m.ledger_write.observe(Duration::from_micros(700));
        let text = m.render(&CoreSnapshot::default(), Duration::from_secs(3));
        assert!(text.contains("smartdesk_calls_total{outcome=\"answered\"} 1"));
        assert!(text.contains("smartdesk_calls_total{outcome=\"other\"} 1"));
        assert!(text.contains("smartdesk_queue_wait_seconds_bucket{le=\"1\"} 0"));
        assert!(text.contains("smartdesk_queue_wait_seconds_bucket{le=\"2\"} 1"));
        assert!(text.contains("smartdesk_queue_wait_seconds_bucket{le=\"+Inf\"} 1"));
        assert!(text.contains("smartdesk_ledger_write_seconds_count 1"));
        // Every sample line: a name, optional labels, one number.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect(line);
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        // Each family's HELP/TYPE once.
        let types: Vec<_> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        let mut dedup = types.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(types.len(), dedup.len());
    }
}
