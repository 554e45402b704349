//! Call-time rules end to end (SPEC §2–§3): whatever time, day and kind of call arrives, the
//! daemon does what the terms say and records it truthfully. A real `smartdesk serve` with its
//! clock set by `--clock`, SIPp as carrier and seat, audio made by sox; every call's outcome
//! and billable flag read back through `calls --json`.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::audio::{sox_ulaw, write_rtp_pcap};
use common::calls::*;
use common::peers::{scenario, sipp, sipp_trace, Daemon, Proc, CLOSED, OPEN};
use common::Env;

/// Monday 2026-11-23 10:00 JST: 勤労感謝の日, a national holiday inside weekday hours.
const HOLIDAY: &str = "2026-11-23T01:00:00Z";

/// The carrier's SIPp running `scenario_file` with `audio` (µ-law) as the caller's voice,
/// written as `audio.pcap` into its working directory.
fn carrier_with_audio(
    env: &Env,
    d: &Daemon,
    scenario_file: &str,
    audio: &[u8],
    hold_ms: u32,
) -> Proc {
    let dir = env.dir.path().join("sipp-carrier");
    std::fs::create_dir_all(&dir).expect("trace dir");
    write_rtp_pcap(&dir.join("audio.pcap"), audio);
    carrier(env, d, scenario_file, free_media_port(), hold_ms)
}

fn free_media_port() -> u16 {
    port(&UdpSocket::bind("127.0.0.1:0").expect("bind"))
}

/// Requires the carrier's SIPp to finish successfully.
fn carrier_succeeds(env: &Env, d: &Daemon, call: &mut Proc) {
    assert_eq!(
        call.wait(Duration::from_secs(40)),
        Some(0),
        "{}\n{}",
        sipp_trace(env.dir.path(), "carrier"),
        d.log_text()
    );
}

/// The only call in the ledger, once settled.
fn the_call(env: &Env, d: &Daemon) -> serde_json::Value {
    let calls = settled_calls(env, d);
    assert_eq!(calls.len(), 1, "{calls:?}\n{}", d.log_text());
    calls[0].clone()
}

/// RTP the daemon sends to `sock` until `within` passes or it stays quiet for 1.5 s after
/// the first packet: (sequence number, timestamp, arrival) of each packet.
fn receive_rtp(sock: &UdpSocket, within: Duration) -> Vec<(u16, u32, Instant)> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut last = Instant::now();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) if n >= 12 && buf[0] >> 6 == 2 => {
                last = Instant::now();
                got.push((
                    u16::from_be_bytes([buf[2], buf[3]]),
                    u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                    last,
                ));
            }
            _ if !got.is_empty() && last.elapsed() > Duration::from_millis(1500) => break,
            _ => {}
        }
    }
    got
}

/// Out of hours (a weekday evening): the daemon answers, plays the Japanese out-of-hours
/// prompt with proper RTP timing, hangs up; the call counts (SPEC §3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_hours_call_hears_the_prompt_in_real_time_and_counts() {
    let env = Env::new(common::Db::Sqlite).await;
    let d = setup(&env, CLOSED);
    let a = UdpSocket::bind("127.0.0.1:0").expect("a");
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
    let rtp = receive_rtp(&a, Duration::from_secs(30));
    carrier_succeeds(&env, &d, &mut call);
    // The default prompt is several seconds of speech in 20 ms packets.
    assert!(rtp.len() >= 100, "only {} RTP packets", rtp.len());
    for w in rtp.windows(2) {
        assert_eq!(
            w[1].0,
            w[0].0.wrapping_add(1),
            "sequence numbers step by one"
        );
        assert_eq!(w[1].1, w[0].1.wrapping_add(160), "timestamps step 20 ms");
    }
    // Paced, not dumped: the packets arrive over (about) the time they last.
    let nominal = Duration::from_millis(20 * rtp.len() as u64);
    let span = rtp[rtp.len() - 1].2 - rtp[0].2;
    assert!(
        span * 2 >= nominal,
        "{} packets arrived within {span:?}",
        rtp.len()
    );
    let c = the_call(&env, &d);
    assert_eq!(c["outcome"], "out_of_hours");
    assert_eq!(c["billable"], true);
    assert!(c["seat"].is_null());
    env.cleanup().await;
}

e2e_both!(holiday_call_is_out_of_hours_and_hours_says_why, |env| {
    let mut d = setup(&env, HOLIDAY);
    let why = d
        .cli(&env, &["hours", "--at", HOLIDAY, "--json"])
        .ok()
        .json();
    assert_eq!(why["open"], false, "{why}");
    assert_eq!(why["reason"], "holiday", "{why}");
    assert!(why.to_string().contains("勤労感謝の日"), "{why}");
    let mut call = carrier(&env, &d, "carrier_wait_bye.xml", free_media_port(), 0);
    carrier_succeeds(&env, &d, &mut call);
    let c = the_call(&env, &d);
    assert_eq!(c["outcome"], "out_of_hours");
    assert_eq!(c["billable"], true);
    assert_eq!(d.stop(), Some(0));
});

e2e_both!(
    suspended_and_not_yet_started_contracts_are_recorded_unbilled,
    |env| {
        let mut d = Daemon::configure(&env);
        let add = |name: &str, start: &str| {
            d.cli(
                &env,
                &[
                    "contractor",
                    "add",
                    "--name",
                    name,
                    "--greeting",
                    "はい",
                    "--plan",
                    "SD100",
                    "--start",
                    start,
                    "--json",
                ],
            )
            .ok()
            .json()["id"]
                .as_i64()
                .expect("id")
                .to_string()
        };
        let suspended = add("株式会社休止", "2026-11-01");
        let later = add("株式会社来月", "2026-12-01");
        d.cli(&env, &["number", "assign", &suspended, NUMBER]).ok();
        d.cli(&env, &["number", "assign", &later, "0312340000"])
            .ok();
        d.cli(
            &env,
            &[
                "contractor",
                "suspend",
                &suspended,
                "--reason",
                "unpaid",
                "--from",
                "2026-11-24T00:00:00Z",
            ],
        )
        .ok();
        d.start(&env, OPEN);
        // Suspended: not routed, the suspended announcement, then the daemon hangs up.
        let mut call = carrier(&env, &d, "carrier_wait_bye.xml", free_media_port(), 0);
        carrier_succeeds(&env, &d, &mut call);
        // Not yet in contract: refused like an unassigned number.
        let sock = UdpSocket::bind("127.0.0.1:0").expect("carrier");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let invite = format!(
            "INVITE sip:0312340000@{t} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-nic1\r\n\
         Max-Forwards: 70\r\nTo: <sip:0312340000@{t}>\r\nFrom: <sip:0901111222@{me}>;tag=n1\r\n\
         Call-ID: not-in-contract-1\r\nCSeq: 1 INVITE\r\nContact: <sip:x@{me}>\r\n\
         Content-Length: 0\r\n\r\n",
            t = d.target(),
            me = sock.local_addr().expect("addr"),
        );
        sock.send_to(invite.as_bytes(), d.target()).expect("send");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = 0;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline && last < 200 {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                last = String::from_utf8_lossy(&buf[..n])
                    .get(8..11)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(last);
            }
        }
        assert_eq!(last, 404);
        let calls = settled_calls(&env, &d);
        assert_eq!(calls.len(), 2, "{calls:?}");
        let by_outcome = |o: &str| {
            calls
                .iter()
                .find(|c| c["outcome"] == o)
                .unwrap_or_else(|| panic!("no {o} call in {calls:?}"))
                .clone()
        };
        assert_eq!(by_outcome("suspended")["billable"], false);
        let nic = by_outcome("not_in_contract");
        assert_eq!(nic["billable"], false);
        assert_eq!(nic["call_id"], "not-in-contract-1");
        assert_eq!(d.stop(), Some(0));
    }
);

/// A fax machine's calling tone (1100 Hz, 0.5 s on / 3 s off, made by sox) reaches the
/// operator's call: the daemon releases the seat, ends the call, records `fax`, billable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fax_calling_tone_releases_the_seat_and_counts_as_fax() {
    let env = Env::new(common::Db::Sqlite).await;
    let d = setup(&env, OPEN);
    let (mut phone, _) = seat(&env, &d, "seat", "seat_answer.xml", free_media_port());
    let cng = sox_ulaw(&[
        "-n", "--", "synth", "0.5", "sine", "1100", "vol", "0.5", "pad", "0", "3", "repeat", "2",
    ]);
    let mut call = carrier_with_audio(&env, &d, "carrier_fax.xml", &cng, 0);
    both_succeed(&env, &d, &mut call, &mut phone, "seat");
    let c = the_call(&env, &d);
    assert_eq!(c["outcome"], "fax");
    assert_eq!(c["billable"], true);
    env.cleanup().await;
}

/// A fax gateway switching to T.38 mid-call: refused (488), the operator released, `fax`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t38_reinvite_ends_the_call_as_fax() {
    let env = Env::new(common::Db::Sqlite).await;
    let d = setup(&env, OPEN);
    let (mut phone, _) = seat(&env, &d, "seat", "seat_answer.xml", free_media_port());
    let mut call = carrier(&env, &d, "carrier_t38.xml", free_media_port(), 0);
    both_succeed(&env, &d, &mut call, &mut phone, "seat");
    let c = the_call(&env, &d);
    assert_eq!(c["outcome"], "fax");
    assert_eq!(c["billable"], true);
    env.cleanup().await;
}

/// Speech and DTMF key tones are not a fax: the call stays with the operator until the
/// caller hangs up, `answered`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_and_dtmf_do_not_trigger_fax_detection() {
    let env = Env::new(common::Db::Sqlite).await;
    let d = setup(&env, OPEN);
    let (mut phone, _) = seat(&env, &d, "seat", "seat_answer.xml", free_media_port());
    // Twelve key presses (0.1 s tone, 0.1 s gap), then Japanese speech (the shipped prompt).
    let mut audio = Vec::new();
    for (low, high) in [
        ("697", "1209"),
        ("770", "1336"),
        ("852", "1477"),
        ("941", "1336"),
    ] {
        audio.extend(sox_ulaw(&[
            "-n", "--", "synth", "0.1", "sine", low, "sine", high, "remix", "-", "vol", "0.5",
            "pad", "0", "0.1", "repeat", "2",
        ]));
    }
    let prompt = common::repo().join("prompts/out_of_hours.wav");
    audio.extend(sox_ulaw(&[
        prompt.to_str().expect("path"),
        "--",
        "trim",
        "0",
        "6",
    ]));
    let seconds = audio.len() as u32 / 8000;
    let mut call = carrier_with_audio(
        &env,
        &d,
        "carrier_play_file.xml",
        &audio,
        seconds * 1000 + 500,
    );
    both_succeed(&env, &d, &mut call, &mut phone, "seat");
    let c = the_call(&env, &d);
    assert_eq!(c["outcome"], "answered", "{}", d.log_text());
    assert_eq!(c["billable"], true);
    env.cleanup().await;
}
