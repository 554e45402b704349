//! Real peers for end-to-end tests: the `smartdesk serve` daemon and SIPp, each started as a
//! process on loopback and stopped by its pid when the guard drops (also when a test fails).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{repo, Env};

/// A process killed (SIGKILL, by pid) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL now and reap. Through `Child::kill`, which never signals a child already
    /// reaped (its pid may belong to another process by then).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait up to `within`; SIGKILL if it is still there. Returns the exit code.
    pub fn stop(&mut self, within: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        None
    }

    /// Waits for the process to exit by itself within `within`; kills it if it does not.
    pub fn wait(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        None
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.running() {
            self.kill9();
        }
    }
}

/// A port free on loopback for both UDP and TCP (the daemon binds both), chosen below the
/// kernel's ephemeral range (32768–60999) so that client sockets of other tests (PostgreSQL
/// connections, SIPp) cannot take it between our check and the daemon's bind.
pub fn free_sip_port() -> u16 {
    for _ in 0..500 {
        let p = 10_000 + rand_u16() % 10_000;
        if UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
        {
            return p;
        }
    }
    panic!("no free SIP port");
}

/// An even UDP port free on loopback with its neighbour (an RTP/RTCP pair), below the
/// ephemeral range.
pub fn free_udp_port() -> u16 {
    for _ in 0..500 {
        let p = (20_000 + rand_u16() % 12_000) & !1;
        if UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
    panic!("no free UDP port pair");
}

/// A base for `n` consecutive free UDP ports (an RTP range), below the ephemeral range.
pub fn free_port_range(n: u16) -> u16 {
    for _ in 0..200 {
        let base = (20_000 + rand_u16() % (12_000 - n)) & !1;
        let ok = (0..n).all(|i| UdpSocket::bind(("127.0.0.1", base + i)).is_ok());
        if ok {
            return base;
        }
    }
    panic!("no free port range");
}

fn rand_u16() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let x = t.subsec_nanos()
        ^ std::process::id().wrapping_mul(2_654_435_761)
        ^ n.wrapping_mul(0x9E37_79B9);
    (x.wrapping_mul(0x85EB_CA6B) >> 16) as u16
}

/// A daemon instance: config file, profiles dir and logs in the env's data dir.
pub struct Daemon {
    pub proc: Option<Proc>,
    pub sip_port: u16,
    pub rtp_base: u16,
    pub config: PathBuf,
    pub log: PathBuf,
    clock: Option<String>,
}

/// Weekday 10:00 JST (Wednesday 2026-11-25): the service is open.
pub const OPEN: &str = "2026-11-25T01:00:00Z";
/// Weekday 20:00 JST: closed (after hours).
pub const CLOSED: &str = "2026-11-25T11:00:00Z";

impl Daemon {
    /// Writes the config (SIP on a free loopback port, a private RTP range, a trunk for
    /// 127.0.0.1, seats with MD5 first for SIPp) without starting anything.
    pub fn configure(env: &Env) -> Daemon {
        let sip_port = free_sip_port();
        let rtp_base = free_port_range(40);
        let profiles = env.dir.path().join("profiles");
        std::fs::create_dir_all(&profiles).expect("profiles dir");
        std::fs::write(
            profiles.join("trunk.toml"),
            "[[trunk]]\nname = \"test-carrier\"\nsources = [\"127.0.0.1/32\"]\n\
             number_format = \"national\"\ntransports = [\"udp\", \"tcp\"]\n\
             codecs = [\"PCMU\", \"PCMA\"]\n",
        )
        .expect("trunk");
        std::fs::write(
            profiles.join("seats.toml"),
            "[seats]\nrealm = \"smartdesk\"\nmin_expires = 60\nmax_expires = 3600\n\
             default_expires = 600\ncodecs = [\"PCMU\", \"PCMA\"]\n\
             digest_algorithms = [\"MD5\"]\n",
        )
        .expect("seats");
        let config = env.dir.path().join("smartdesk.toml");
        std::fs::write(
            &config,
            format!(
                "[sip]\nlisten = \"127.0.0.1:{sip_port}\"\nprofiles_dir = \"{}\"\n\n\
                 [media]\nrtp_port_min = {rtp_base}\nrtp_port_max = {}\nmedia_timeout_s = 30\n\n\
                 [web]\nlisten = \"127.0.0.1:0\"\n",
                profiles.display(),
                rtp_base + 39
            ),
        )
        .expect("config");
        Daemon {
            proc: None,
            sip_port,
            rtp_base,
            config,
            log: env.dir.path().join("daemon.log"),
            clock: None,
        }
    }

    /// Puts the web console on a free loopback port (returned) with `extra` lines in its
    /// `[web]` section; the tests that drive a browser need to know where it is.
    pub fn web_on_free_port(&self, extra: &str) -> u16 {
        let web = free_sip_port();
        let cfg = std::fs::read_to_string(&self.config).expect("config");
        let cfg = cfg.replace(
            "[web]\nlisten = \"127.0.0.1:0\"\n",
            &format!("[web]\nlisten = \"127.0.0.1:{web}\"\n{extra}"),
        );
        std::fs::write(&self.config, cfg).expect("config");
        web
    }

    /// CLI with this daemon's config and the env's ledger.
    pub fn cli(&self, env: &Env, args: &[&str]) -> super::Run {
        let mut full = vec!["--config", self.config.to_str().expect("utf-8 path")];
        full.extend_from_slice(args);
        env.run(&full)
    }

    /// Starts `serve` with the clock at `clock` and waits until it answers OPTIONS.
    pub fn start(&mut self, env: &Env, clock: &str) {
        self.start_with(env, clock, &[]);
    }

    /// [`Self::start`] with extra environment variables for the daemon (they win over the
    /// defaults, e.g. `SMARTDESK_LOG`).
    pub fn start_with(&mut self, env: &Env, clock: &str, vars: &[(&str, &str)]) {
        self.clock = Some(clock.to_owned());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let child = env
            .command(&["--config", self.config.to_str().expect("path"), "serve"])
            .args(["--clock", clock])
            .env("SMARTDESK_LOG", "info,smartdesk=debug")
            // SIGTERM lets calls finish for this long (production: 30 s); `stop` waits 10 s.
            .env("SMARTDESK__DAEMON__SHUTDOWN_GRACE_S", "3")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn smartdesk serve");
        self.proc = Some(Proc {
            child,
            name: "smartdesk",
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.answers_options() {
            assert!(
                Instant::now() < deadline,
                "daemon did not come up; log:\n{}",
                self.log_text()
            );
            assert!(
                self.proc.as_mut().is_some_and(Proc::running),
                "daemon exited; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn restart(&mut self, env: &Env) {
        let clock = self.clock.clone().unwrap_or_else(|| OPEN.to_owned());
        self.start(env, &clock);
    }

    pub fn kill9(&mut self) {
        if let Some(p) = self.proc.as_mut() {
            p.kill9();
        }
        self.proc = None;
    }

    /// SIGTERM and the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let code = self
            .proc
            .as_mut()
            .and_then(|p| p.stop(Duration::from_secs(10)));
        self.proc = None;
        code
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One OPTIONS round trip (the carrier keep-alive) within 300 ms.
    pub fn answers_options(&self) -> bool {
        let Ok(s) = UdpSocket::bind("127.0.0.1:0") else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
        let port = s.local_addr().map(|a| a.port()).unwrap_or(0);
        let msg = format!(
            "OPTIONS sip:ping@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKping{}\r\n\
             Max-Forwards: 70\r\nTo: <sip:ping@127.0.0.1>\r\nFrom: <sip:t@127.0.0.1>;tag=p\r\n\
             Call-ID: ping-{}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            self.sip_port,
            rand_u16(),
            rand_u16()
        );
        if s.send_to(msg.as_bytes(), ("127.0.0.1", self.sip_port))
            .is_err()
        {
            return false;
        }
        let mut buf = [0u8; 2048];
        matches!(s.recv_from(&mut buf), Ok((n, _)) if buf[..n].starts_with(b"SIP/2.0 200"))
    }

    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.sip_port)
    }
}

/// The repo's SIPp scenario `name` (tests/sipp/).
pub fn scenario(name: &str) -> PathBuf {
    repo().join("tests/sipp").join(name)
}

/// Starts SIPp against `target` with `args` (scenario, keys…), logging into `dir`.
/// Bounded: `-timeout` ends it, and the guard kills it by pid.
pub fn sipp(dir: &Path, label: &str, target: &str, args: &[&str]) -> Proc {
    let trace = dir.join(format!("sipp-{label}"));
    std::fs::create_dir_all(&trace).expect("trace dir");
    let child = Command::new("sipp")
        .arg(target)
        .args(["-i", "127.0.0.1"])
        .args(args)
        .args(["-timeout", "60s", "-timeout_error", "-nostdin"])
        .args(["-trace_err", "-trace_msg"])
        .current_dir(&trace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sipp (Debian package sip-tester)");
    Proc {
        child,
        name: "sipp",
    }
}

/// Everything SIPp wrote into its trace dir (messages and errors), for assertions and
/// failure reports.
pub fn sipp_trace(dir: &Path, label: &str) -> String {
    let mut out = String::new();
    if let Ok(rd) = std::fs::read_dir(dir.join(format!("sipp-{label}"))) {
        let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            out.push_str(&format!("== {}\n", f.display()));
            out.push_str(&std::fs::read_to_string(&f).unwrap_or_default());
        }
    }
    out
}

/// One message in a SIPp message trace (`-trace_msg`).
#[derive(Debug, Clone)]
pub struct TraceMsg {
    /// When SIPp logged it, seconds since the Unix epoch (its local clock, to the µs).
    pub at: f64,
    pub sent: bool,
    /// The start line: `INVITE sip:…` or `SIP/2.0 200 OK`.
    pub start: String,
    pub call_id: String,
    pub cseq: String,
}

impl TraceMsg {
    /// The status code of a response, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        self.start.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }
    pub fn method(&self) -> Option<&str> {
        (self.status().is_none()).then(|| self.start.split(' ').next().unwrap_or_default())
    }
}

/// The messages of SIPp trace `label`'s `*_messages.log`, in order.
pub fn trace_msgs(dir: &Path, label: &str) -> Vec<TraceMsg> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir.join(format!("sipp-{label}"))) else {
        return out;
    };
    for f in rd.flatten().map(|e| e.path()) {
        if !f.to_string_lossy().ends_with("_messages.log") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for block in text
            .split("----------------------------------------------- ")
            .skip(1)
        {
            let mut lines = block.lines();
            let stamp = lines.next().unwrap_or_default().trim();
            let Ok(at) = chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.f")
            else {
                continue;
            };
            let at = at.and_utc().timestamp_micros() as f64 / 1e6;
            let kind = lines.next().unwrap_or_default();
            let mut rest = lines.skip_while(|l| l.trim().is_empty());
            let start = rest.next().unwrap_or_default().trim().to_owned();
            let mut call_id = String::new();
            let mut cseq = String::new();
            for l in rest.take_while(|l| !l.trim().is_empty()) {
                if let Some(v) = l.strip_prefix("Call-ID:") {
                    call_id = v.trim().to_owned();
                } else if let Some(v) = l.strip_prefix("CSeq:") {
                    cseq = v.trim().to_owned();
                }
            }
            out.push(TraceMsg {
                at,
                sent: kind.contains("message sent"),
                start,
                call_id,
                cseq,
            });
        }
    }
    out.sort_by(|a, b| a.at.total_cmp(&b.at));
    out
}

/// The Call-IDs of the traced messages that `pick` selects.
pub fn call_ids(msgs: &[TraceMsg], pick: impl Fn(&TraceMsg) -> bool) -> BTreeSet<String> {
    msgs.iter()
        .filter(|m| pick(m))
        .map(|m| m.call_id.clone())
        .collect()
}
