//! The SIP call path end to end with real peers: `smartdesk serve` on loopback, SIPp as the
//! carrier and as the operator's phone, RTP sent through the relay by the test itself, and
//! the ledger read back through `calls --json`.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::peers::{scenario, sipp, sipp_trace, Daemon, Proc, OPEN};
use common::Env;

const NUMBER: &str = "0312345678";
const SEAT_PASSWORD: &str = "op1-secret-pw";

/// A contractor with a number and a seat, and the daemon running with the clock at `clock`.
fn setup(env: &Env, clock: &str) -> Daemon {
    let mut d = Daemon::configure(env);
    let c = d
        .cli(
            env,
            &[
                "contractor",
                "add",
                "--name",
                "株式会社ABC",
                "--greeting",
                "お電話ありがとうございます。株式会社ABCでございます。",
                "--plan",
                "SD100",
                "--start",
                "2026-11-01",
                "--json",
            ],
        )
        .ok()
        .json();
    let id = c["id"].as_i64().expect("contractor id").to_string();
    d.cli(env, &["number", "assign", &id, NUMBER]).ok();
    d.cli(env, &["seat", "add", "op1", "--password", SEAT_PASSWORD])
        .ok();
    d.start(env, clock);
    d
}

/// The seat's phone: a SIPp UAS on `port` running `scenario_file`, registered via a second
/// SIPp that logs in with digest auth (Contact = that port).
fn seat(env: &Env, d: &Daemon, label: &str, scenario_file: &str, bport: u16) -> (Proc, u16) {
    let port = common::peers::free_udp_port();
    let uas = sipp(
        env.dir.path(),
        label,
        &d.target(),
        &[
            "-sf",
            scenario(scenario_file).to_str().expect("path"),
            "-p",
            &port.to_string(),
            "-key",
            "bport",
            &bport.to_string(),
            "-key",
            "codec",
            "0",
            "-d",
            "1500",
            "-m",
            "1",
        ],
    );
    login(env, d, port);
    (uas, port)
}

fn login(env: &Env, d: &Daemon, seat_port: u16) {
    let mut reg = sipp(
        env.dir.path(),
        "login",
        &d.target(),
        &[
            "-sf",
            scenario("seat_login.xml").to_str().expect("path"),
            "-s",
            "op1",
            "-au",
            "op1",
            "-ap",
            SEAT_PASSWORD,
            "-key",
            "seat_port",
            &seat_port.to_string(),
            "-m",
            "1",
        ],
    );
    let code = reg.wait(Duration::from_secs(20));
    assert_eq!(
        code,
        Some(0),
        "seat login failed\n{}\n{}",
        sipp_trace(env.dir.path(), "login"),
        d.log_text()
    );
}

fn carrier(env: &Env, d: &Daemon, scenario_file: &str, aport: u16, hold_ms: u32) -> Proc {
    sipp(
        env.dir.path(),
        "carrier",
        &d.target(),
        &[
            "-sf",
            scenario(scenario_file).to_str().expect("path"),
            "-s",
            NUMBER,
            "-key",
            "aport",
            &aport.to_string(),
            "-key",
            "caller",
            "09012345678",
            "-key",
            "privacy",
            "X-Test: 1",
            "-d",
            &hold_ms.to_string(),
            "-m",
            "1",
        ],
    )
}

/// The relay port smartdesk put into SDP it sent to a SIPp (the `m=audio` port that is not
/// `own`), once it shows in that SIPp's message trace.
fn relay_port(env: &Env, label: &str, own: u16, within: Duration) -> u16 {
    let deadline = Instant::now() + within;
    loop {
        let trace = sipp_trace(env.dir.path(), label);
        let port = trace
            .lines()
            .filter_map(|l| l.trim().strip_prefix("m=audio "))
            .filter_map(|r| r.split_whitespace().next()?.parse::<u16>().ok())
            .find(|p| *p != own);
        if let Some(p) = port {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "no SDP from smartdesk in {label}'s trace:\n{trace}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rtp(seq: u16, ssrc: u32) -> [u8; 172] {
    let mut p = [0xffu8; 172];
    p[0] = 0x80;
    p[1] = 0;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p
}

/// Sends `n` packets from `from` to `to` at 20 ms and counts what `at` receives.
fn relay_count(from: &UdpSocket, to: u16, at: &UdpSocket, n: u16, ssrc: u32) -> usize {
    at.set_read_timeout(Some(Duration::from_millis(5)))
        .expect("timeout");
    let mut got = 0;
    let mut buf = [0u8; 2048];
    for seq in 0..n {
        from.send_to(&rtp(seq, ssrc), ("127.0.0.1", to))
            .expect("send rtp");
        std::thread::sleep(Duration::from_millis(15));
        while let Ok((len, _)) = at.recv_from(&mut buf) {
            if len == 172 && buf[8..12] == ssrc.to_be_bytes() {
                got += 1;
            }
        }
    }
    at.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    while let Ok((len, _)) = at.recv_from(&mut buf) {
        if len == 172 && buf[8..12] == ssrc.to_be_bytes() {
            got += 1;
        }
    }
    got
}

/// `calls --json` until every call has an outcome (the row updates are written behind the
/// call), at most 10 s.
fn settled_calls(env: &Env, d: &Daemon) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let calls = d
            .cli(env, &["calls", "--month", "2026-11", "--json"])
            .ok()
            .json();
        let list = calls.as_array().cloned().unwrap_or_default();
        if list.iter().all(|c| !c["outcome"].is_null()) || Instant::now() > deadline {
            return list;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn media_sockets() -> (UdpSocket, UdpSocket) {
    let a = UdpSocket::bind("127.0.0.1:0").expect("a");
    let b = UdpSocket::bind("127.0.0.1:0").expect("b");
    (a, b)
}

fn port(s: &UdpSocket) -> u16 {
    s.local_addr().expect("addr").port()
}

e2e_both!(
    answered_call_relays_media_both_ways_and_is_counted_once,
    |env| {
        let mut d = setup(&env, OPEN);
        let (a, b) = media_sockets();
        let (mut phone, _) = seat(&env, &d, "seat", "seat_answer.xml", port(&b));
        let mut call = carrier(&env, &d, "carrier_call.xml", port(&a), 4000);
        let relay_a = relay_port(&env, "carrier", port(&a), Duration::from_secs(10));
        let relay_b = relay_port(&env, "seat", port(&b), Duration::from_secs(10));
        assert_ne!(relay_a, relay_b);
        let to_seat = relay_count(&a, relay_a, &b, 50, 0x1111);
        let to_caller = relay_count(&b, relay_b, &a, 50, 0x2222);
        let status = (
            call.wait(Duration::from_secs(30)),
            phone.wait(Duration::from_secs(10)),
        );
        let report = || {
            format!(
                "{}\n{}\n{}",
                sipp_trace(env.dir.path(), "carrier"),
                sipp_trace(env.dir.path(), "seat"),
                d.log_text()
            )
        };
        assert_eq!(status, (Some(0), Some(0)), "{}", report());
        assert!(to_seat >= 48, "caller → seat: {to_seat}/50 relayed");
        assert!(to_caller >= 48, "seat → caller: {to_caller}/50 relayed");
        // What the operator's phone was shown.
        let seat_trace = sipp_trace(env.dir.path(), "seat");
        assert!(
            seat_trace.contains("【株式会社ABC】09012345678"),
            "{seat_trace}"
        );
        assert!(seat_trace.contains("X-Smartdesk-Greeting: お電話ありがとうございます"));
        let calls = settled_calls(&env, &d);
        assert_eq!(calls.len(), 1, "{calls:?}");
        let c = &calls[0];
        assert_eq!(c["outcome"], "answered");
        assert_eq!(c["billable"], true);
        assert_eq!(c["seat"], "op1");
        assert_eq!(c["number"], "+81312345678");
        assert_eq!(c["caller"], "+819012345678");
        assert!(!c["answered_at"].is_null() && !c["ended_at"].is_null());
        assert_eq!(d.stop(), Some(0), "{}", d.log_text());
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seat_hangs_up_and_the_caller_is_released() {
    let env = Env::new(common::Db::Sqlite).await;
    let d = setup(&env, OPEN);
    let (a, b) = media_sockets();
    let (mut phone, _) = seat(&env, &d, "seat", "seat_hangup.xml", port(&b));
    // The carrier would hold for a minute; the seat's BYE must end it early.
    let mut call = sipp(
        env.dir.path(),
        "carrier",
        &d.target(),
        &[
            "-sf",
            scenario("carrier_wait_bye.xml").to_str().expect("path"),
            "-s",
            NUMBER,
            "-key",
            "aport",
            &port(&a).to_string(),
            "-m",
            "1",
        ],
    );
    let status = (
        call.wait(Duration::from_secs(30)),
        phone.wait(Duration::from_secs(10)),
    );
    assert_eq!(
        status,
        (Some(0), Some(0)),
        "{}\n{}\n{}",
        sipp_trace(env.dir.path(), "carrier"),
        sipp_trace(env.dir.path(), "seat"),
        d.log_text()
    );
    let calls = settled_calls(&env, &d);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["outcome"], "answered");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_cancels_while_the_seat_rings() {
    let env = Env::new(common::Db::Sqlite).await;
    let d = setup(&env, OPEN);
    let (a, b) = media_sockets();
    let (mut phone, _) = seat(&env, &d, "seat", "seat_ring_cancel.xml", port(&b));
    let mut call = sipp(
        env.dir.path(),
        "carrier",
        &d.target(),
        &[
            "-sf",
            scenario("carrier_cancel.xml").to_str().expect("path"),
            "-s",
            NUMBER,
            "-key",
            "aport",
            &port(&a).to_string(),
            "-m",
            "1",
        ],
    );
    let status = (
        call.wait(Duration::from_secs(30)),
        phone.wait(Duration::from_secs(10)),
    );
    assert_eq!(
        status,
        (Some(0), Some(0)),
        "{}\n{}\n{}",
        sipp_trace(env.dir.path(), "carrier"),
        sipp_trace(env.dir.path(), "seat"),
        d.log_text()
    );
    let calls = settled_calls(&env, &d);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["outcome"], "abandoned");
    assert_eq!(calls[0]["billable"], true, "SPEC §3: abandoned calls count");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_plays_a_g711_recording_through_the_relay() {
    let env = Env::new(common::Db::Sqlite).await;
    let d = setup(&env, OPEN);
    let a = UdpSocket::bind("127.0.0.1:0").expect("a");
    let b = UdpSocket::bind("127.0.0.1:0").expect("b");
    let (mut phone, _) = seat(&env, &d, "seat", "seat_answer.xml", port(&b));
    // SIPp sends the pcap's RTP from its own media port; the carrier's SDP names port(a),
    // the relay latches onto where the RTP really comes from.
    let mut call = carrier(&env, &d, "carrier_play.xml", port(&a), 4000);
    b.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut got = 0;
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        if let Ok((n, _)) = b.recv_from(&mut buf) {
            if n > 12 && buf[0] >> 6 == 2 {
                got += 1;
            }
        }
    }
    let status = (
        call.wait(Duration::from_secs(30)),
        phone.wait(Duration::from_secs(10)),
    );
    assert_eq!(status, (Some(0), Some(0)), "{}", d.log_text());
    // g711a.pcap holds about 8 s of 20 ms packets; the call lasts 4 s of it.
    assert!(got >= 100, "only {got} RTP packets reached the seat");
    env.cleanup().await;
}
