//! Load program for the media edge (`smartdesk::daemon::media`): N relayed G.711 calls on
//! loopback, 50 packets/s in each direction, for T seconds; reports packets lost, one-way delay
//! through the relay, and the CPU time the relay used (getrusage).
//!
//! ```text
//! cargo run --release --example relay_load -- --calls 500 --seconds 20
//! ```
//!
//! Two processes, so that CPU time is accounted separately:
//!
//! * this process runs a [`MediaEdge`] on a multi-thread tokio runtime (one worker per core by
//!   default, as `smartdesk serve` does) and starts N calls on ports from `--relay-port` up
//!   (ports already taken on the host are skipped);
//! * it re-executes itself with `--generator` as the two endpoints of every call (carrier and
//!   seat, four sockets each on ephemeral ports). The child latches each leg with one hello
//!   packet per socket (the calls' SDP addresses are left unknown, so every call exercises
//!   symmetric-RTP latching), then sends 20 ms PCMU packets both ways and an RTCP receiver
//!   report per leg every 5 s, and counts what comes back.
//!
//! Loss = data packets sent − data packets received (after a one-second drain). The child is
//! killed by pid if it overruns. Every call runs the leg-A fax detector on its audio, as in
//! production.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use smartdesk::daemon::media::{MediaEdge, MediaError, MediaEvent, RelayConfig, Remote};
use smartdesk::media::g711::Law;
use tokio::sync::mpsc;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const HELLO_SSRC: u32 = 0x4E11_0000;
const DATA_SSRC: u32 = 0xDA7A_0000;
/// RTCP RR every 250 packets (5 s at 50 pps) per leg.
const RTCP_EVERY: u64 = 250;
/// Delay histogram: 100 µs buckets up to 200 ms.
const BUCKET_US: u64 = 100;
const BUCKETS: usize = 2000;

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Concurrent calls.
    #[arg(long, default_value_t = 200)]
    calls: usize,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// First relay port to try (RTP even, RTCP +1; each call takes four).
    #[arg(long, default_value_t = 10_000)]
    relay_port: u16,
    /// Worker threads of the relay's runtime (default: one per core).
    #[arg(long)]
    relay_threads: Option<usize>,
    /// Generator shards (each: one sender thread, four sockets with a receiver thread each).
    #[arg(long, default_value_t = 1)]
    generator_shards: usize,
    /// Internal: run as the traffic generator (reads relay ports on stdin).
    #[arg(long, hide = true)]
    generator: bool,
}

fn main() {
    let args = Args::parse();
    raise_fd_limit();
    let result = if args.generator {
        generator::run(&args)
    } else {
        relay(&args)
    };
    if let Err(e) = result {
        eprintln!("relay_load: {e}");
        std::process::exit(1);
    }
}

fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n);
    }
    b.enable_all().build()
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes a plain C struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Four sockets per call and side: lift the soft descriptor limit to the hard one.
fn raise_fd_limit() {
    // SAFETY: get/setrlimit on a struct we own.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

fn relay(args: &Args) -> Result<(), String> {
    let rt = runtime(args.relay_threads).map_err(|e| e.to_string())?;
    rt.block_on(relay_main(args.clone()))
}

async fn relay_main(args: Args) -> Result<(), String> {
    let (tx, mut events) = mpsc::channel(args.calls * 2 + 16);
    let mut edge = MediaEdge::new(LOCAL, tx);
    let mut ports = Vec::with_capacity(args.calls);
    let mut port = u32::from(args.relay_port & !1);
    for call in 0..args.calls as u64 {
        loop {
            if port + 3 > 65_535 {
                return Err(format!("ran out of ports after {} calls", ports.len()));
            }
            let (a, b) = (port as u16, (port + 2) as u16);
            port += 4;
            let mut cfg = RelayConfig::new(Remote::default(), Remote::default());
            cfg.media_timeout = Duration::from_secs(args.seconds + 60);
            match edge.start(call, a, b, cfg) {
                Ok(()) => {
                    ports.push(a);
                    break;
                }
                Err(MediaError::Bind { .. }) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(["--generator", "--calls"])
        .arg(args.calls.to_string())
        .arg("--seconds")
        .arg(args.seconds.to_string());
    cmd.arg("--generator-shards")
        .arg(args.generator_shards.to_string());
    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start generator: {e}"))?;
    {
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        writeln!(stdin, "{}", list.join(" ")).map_err(|e| e.to_string())?;
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds + 60);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err("generator overran; killed".to_string());
            }
            Err(e) => break Err(e.to_string()),
        }
    }?;
    let cpu = cpu_seconds() - cpu0;
    let wall = wall0.elapsed().as_secs_f64();
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if !status.success() {
        return Err(format!("generator failed: {status}"));
    }
    let gen = out
        .lines()
        .find_map(|l| l.strip_prefix("GEN "))
        .ok_or("generator printed no result")?;
    let field = |k: &str| -> f64 {
        gen.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };

    let relay_ports: HashSet<u16> = ports
        .iter()
        .flat_map(|&p| [p, p + 1, p + 2, p + 3])
        .collect();
    let relay_socket_drops = udp_drops(&relay_ports);
    for call in 0..args.calls as u64 {
        edge.stop(call);
    }
    let (mut relayed, mut dropped, mut stopped) = (0u64, 0u64, 0usize);
    while stopped < args.calls {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(MediaEvent::Stopped { a, b, .. })) => {
                stopped += 1;
                relayed += a.packets_out + b.packets_out;
                dropped += a.dropped + b.dropped;
            }
            Ok(Some(_)) => {}
            _ => return Err(format!("only {stopped} calls reported Stopped")),
        }
    }

    let (sent, received) = (field("sent"), field("received"));
    let lost = sent - received;
    println!(
        "calls={} seconds={} sent={sent} received={received} lost={lost} ({:.4}%) misrouted={} \
         rtcp_sent={} rtcp_received={} relayed={relayed} relay_dropped={dropped} \
         relay_socket_drops={relay_socket_drops} gen_socket_drops={} \
         delay_p50_us={} delay_p99_us={} delay_max_us={} \
         relay_cpu_s={cpu:.2} relay_cpu_pct={:.1} relay_us_per_packet={:.2} gen_cpu_s={} wall_s={wall:.1}",
        args.calls,
        args.seconds,
        100.0 * lost / sent.max(1.0),
        field("misrouted"),
        field("rtcp_sent"),
        field("rtcp_received"),
        field("socket_drops"),
        field("p50_us"),
        field("p99_us"),
        field("max_us"),
        100.0 * cpu / args.seconds.max(1) as f64,
        1e6 * cpu / relayed.max(1) as f64,
        field("cpu_s"),
    );
    Ok(())
}

/// Kernel receive-queue overflows (`drops` column of /proc/net/udp) of the loopback sockets
/// bound to `ports`: loss that happened in a socket buffer because its reader was late.
fn udp_drops(ports: &HashSet<u16>) -> u64 {
    let Ok(table) = std::fs::read_to_string("/proc/net/udp") else {
        return 0;
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let port = u16::from_str_radix(cols.get(1)?.split(':').nth(1)?, 16).ok()?;
            let drops: u64 = cols.last()?.parse().ok()?;
            ports.contains(&port).then_some(drops)
        })
        .sum()
}

mod generator {
    //! Plain threads on blocking sockets, shared by many calls: per shard, one sender thread
    //! on a 1 ms slot schedule and one receiver thread per socket. The relay latches each
    //! call's legs to the shard's sockets and tells calls apart by its own per-call ports; the
    //! generator maps the source port back to the call and checks the call number and
    //! direction carried in the payload, so a packet relayed into the wrong call counts as
    //! misrouted.

    use super::*;
    use std::net::UdpSocket as StdSocket;
    use std::sync::atomic::{AtomicBool, Ordering};

    const DIR_A_TO_B: u8 = 0;
    const DIR_B_TO_A: u8 = 1;
    const SOCKET_BUFFER: libc::c_int = 4 << 20;

    #[derive(Default)]
    struct Counts {
        received: u64,
        misrouted: u64,
        rtcp_received: u64,
        hist: Vec<u64>,
        max_us: u64,
    }

    impl Counts {
        fn new() -> Self {
            Self {
                hist: vec![0; BUCKETS],
                ..Self::default()
            }
        }
        fn add(&mut self, o: &Counts) {
            self.received += o.received;
            self.misrouted += o.misrouted;
            self.rtcp_received += o.rtcp_received;
            self.max_us = self.max_us.max(o.max_us);
            for (h, x) in self.hist.iter_mut().zip(&o.hist) {
                *h += x;
            }
        }
        fn percentile(&self, p: f64) -> u64 {
            let total: u64 = self.hist.iter().sum();
            let want = (total as f64 * p).ceil() as u64;
            let mut acc = 0;
            for (i, h) in self.hist.iter().enumerate() {
                acc += h;
                if acc >= want {
                    return (i as u64 + 1) * BUCKET_US;
                }
            }
            self.max_us
        }
    }

    /// One shard's four endpoint sockets: the carrier side (A) and the seat side (B) of all
    /// of its calls.
    struct Shard {
        a_rtp: StdSocket,
        a_rtcp: StdSocket,
        b_rtp: StdSocket,
        b_rtcp: StdSocket,
    }

    fn socket() -> Result<StdSocket, String> {
        let s = StdSocket::bind(SocketAddr::new(LOCAL, 0)).map_err(|e| format!("bind: {e}"))?;
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
            // SAFETY: setsockopt on a socket we own, with an int option value.
            unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&s),
                    libc::SOL_SOCKET,
                    opt,
                    (&SOCKET_BUFFER as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        Ok(s)
    }

    fn port_of(s: &StdSocket) -> u16 {
        s.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn run(args: &Args) -> Result<(), String> {
        let mut line = String::new();
        BufReader::new(std::io::stdin())
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let ports: Vec<u16> = line
            .split_whitespace()
            .map(|p| p.parse().map_err(|_| format!("bad port {p}")))
            .collect::<Result<_, _>>()?;
        let shards_n = args.generator_shards.max(1);
        let shards: Vec<Arc<Shard>> = (0..shards_n)
            .map(|_| {
                Ok(Arc::new(Shard {
                    a_rtp: socket()?,
                    a_rtcp: socket()?,
                    b_rtp: socket()?,
                    b_rtcp: socket()?,
                }))
            })
            .collect::<Result<_, String>>()?;
        let relay_ports = Arc::new(ports.clone());
        let tone = tone();
        let epoch = Instant::now();

        // Latch every leg of every call to its shard's sockets, and let that settle.
        for (i, &p) in ports.iter().enumerate() {
            let sh = &shards[i % shards_n];
            let (ra, rb) = (SocketAddr::new(LOCAL, p), SocketAddr::new(LOCAL, p + 2));
            let hello = rtp(HELLO_SSRC, 0, 0, i as u32, DIR_A_TO_B, &tone[0]);
            let _ = sh.a_rtp.send_to(&hello, ra);
            let _ = sh.b_rtp.send_to(&hello, rb);
            let _ = sh.a_rtcp.send_to(&rr(HELLO_SSRC), rtcp_of(ra));
            let _ = sh.b_rtcp.send_to(&rr(HELLO_SSRC), rtcp_of(rb));
        }
        std::thread::sleep(Duration::from_millis(500));

        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Vec::new();
        for sh in &shards {
            for which in 0..4 {
                let (sh, stop, relay_ports) = (sh.clone(), stop.clone(), relay_ports.clone());
                receivers.push(std::thread::spawn(move || {
                    let sock = match which {
                        0 => &sh.a_rtp,
                        1 => &sh.b_rtp,
                        2 => &sh.a_rtcp,
                        _ => &sh.b_rtcp,
                    };
                    let expect = if which == 0 { DIR_B_TO_A } else { DIR_A_TO_B };
                    receive(sock, which >= 2, expect, &relay_ports, epoch, &stop)
                }));
            }
        }
        let start = Instant::now() + Duration::from_millis(50);
        let packets = args.seconds * 50;
        let senders: Vec<_> = shards
            .iter()
            .enumerate()
            .map(|(s, sh)| {
                let sh = sh.clone();
                let calls: Vec<(u32, u16)> = ports
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % shards_n == s)
                    .map(|(i, &p)| (i as u32, p))
                    .collect();
                let tone = tone.clone();
                std::thread::spawn(move || send(&sh, &calls, start, packets, epoch, &tone))
            })
            .collect();
        let (mut sent, mut rtcp_sent) = (0u64, 0u64);
        for t in senders {
            let (s, r) = t.join().map_err(|_| "sender panicked")?;
            sent += s;
            rtcp_sent += r;
        }
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        let mut total = Counts::new();
        for t in receivers {
            total.add(&t.join().map_err(|_| "receiver panicked")?);
        }
        let own: HashSet<u16> = shards
            .iter()
            .flat_map(|s| [&s.a_rtp, &s.a_rtcp, &s.b_rtp, &s.b_rtcp].map(port_of))
            .collect();
        println!(
            "GEN sent={sent} received={} misrouted={} rtcp_sent={rtcp_sent} rtcp_received={} \
             p50_us={} p99_us={} max_us={} socket_drops={} cpu_s={:.2}",
            total.received,
            total.misrouted,
            total.rtcp_received,
            total.percentile(0.5),
            total.percentile(0.99),
            total.max_us,
            udp_drops(&own),
            cpu_seconds()
        );
        Ok(())
    }

    /// Sends 50 packets/s each way for every call of the shard: call `i` in 1 ms slot `i % 20`
    /// of each 20 ms period, so load is spread like independent phones. Returns (RTP, RTCP)
    /// sent.
    fn send(
        sh: &Shard,
        calls: &[(u32, u16)],
        start: Instant,
        packets: u64,
        epoch: Instant,
        tone: &[[u8; 160]],
    ) -> (u64, u64) {
        let (mut sent, mut rtcp_sent) = (0u64, 0u64);
        for k in 0..packets {
            for slot in 0..20u32 {
                let due = start + Duration::from_millis(20 * k + u64::from(slot));
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let frame = &tone[(k % 50) as usize];
                let ns = epoch.elapsed().as_nanos() as u64;
                for &(call, port) in calls.iter().filter(|(c, _)| c % 20 == slot) {
                    let (ra, rb) = (
                        SocketAddr::new(LOCAL, port),
                        SocketAddr::new(LOCAL, port + 2),
                    );
                    let a = rtp(DATA_SSRC, k as u16, ns, call, DIR_A_TO_B, frame);
                    let b = rtp(DATA_SSRC, k as u16, ns, call, DIR_B_TO_A, frame);
                    sent += u64::from(sh.a_rtp.send_to(&a, ra).is_ok());
                    sent += u64::from(sh.b_rtp.send_to(&b, rb).is_ok());
                    if k % RTCP_EVERY == RTCP_EVERY / 2 {
                        rtcp_sent +=
                            u64::from(sh.a_rtcp.send_to(&rr(DATA_SSRC), rtcp_of(ra)).is_ok());
                        rtcp_sent +=
                            u64::from(sh.b_rtcp.send_to(&rr(DATA_SSRC), rtcp_of(rb)).is_ok());
                    }
                }
            }
        }
        (sent, rtcp_sent)
    }

    fn receive(
        sock: &StdSocket,
        rtcp: bool,
        expect_dir: u8,
        ports: &[u16],
        epoch: Instant,
        stop: &AtomicBool,
    ) -> Counts {
        let mut counts = Counts::new();
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, src)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let p = &buf[..n];
            if rtcp {
                if n == 8 && p[4..8] == DATA_SSRC.to_be_bytes() {
                    counts.rtcp_received += 1;
                }
                continue;
            }
            if n != 172 || p[8..12] != DATA_SSRC.to_be_bytes() {
                continue;
            }
            counts.received += 1;
            // A->B packets leave the relay from the call's B port, B->A from its A port.
            let call = u32::from_be_bytes(p[20..24].try_into().unwrap_or_default());
            let from =
                ports
                    .get(call as usize)
                    .map(|&a| if expect_dir == DIR_A_TO_B { a + 2 } else { a });
            if p[24] != expect_dir || from != Some(src.port()) {
                counts.misrouted += 1;
            }
            let sent_ns = u64::from_be_bytes(p[12..20].try_into().unwrap_or_default());
            let us = (epoch.elapsed().as_nanos() as u64).saturating_sub(sent_ns) / 1000;
            counts.max_us = counts.max_us.max(us);
            counts.hist[((us / BUCKET_US) as usize).min(BUCKETS - 1)] += 1;
        }
        counts
    }

    fn rtcp_of(a: SocketAddr) -> SocketAddr {
        SocketAddr::new(a.ip(), a.port() + 1)
    }

    /// One second of a 440 Hz tone at half scale in PCMU, as 50 frames: loud audio, so the
    /// relay's fax detector does the work it does on speech (silence is cheaper for it).
    fn tone() -> Arc<Vec<[u8; 160]>> {
        let frames = (0..50)
            .map(|f| {
                std::array::from_fn(|i| {
                    let t = (f * 160 + i) as f64 / 8000.0;
                    Law::Pcmu
                        .encode((16_000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16)
                })
            })
            .collect();
        Arc::new(frames)
    }

    /// 12-byte header + 160 bytes PCMU; the payload starts with the send time, the call number
    /// and the direction.
    fn rtp(ssrc: u32, seq: u16, sent_ns: u64, call: u32, dir: u8, frame: &[u8; 160]) -> [u8; 172] {
        let mut p = [0u8; 172];
        p[12..].copy_from_slice(frame);
        p[0] = 0x80;
        p[1] = 0;
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p[12..20].copy_from_slice(&sent_ns.to_be_bytes());
        p[20..24].copy_from_slice(&call.to_be_bytes());
        p[24] = dir;
        p
    }

    fn rr(ssrc: u32) -> [u8; 8] {
        let s = ssrc.to_be_bytes();
        [0x80, 201, 0, 1, s[0], s[1], s[2], s[3]]
    }
}
