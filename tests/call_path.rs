//! The SIP call path end to end with real peers: `smartdesk serve` on loopback, SIPp as the
//! carrier and as the operator's phone, RTP sent through the relay by the test itself, and
//! the ledger read back through `calls --json`.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::calls::*;
use common::peers::{scenario, sipp, sipp_trace, Daemon, Proc, OPEN};
use common::Env;

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
        both_succeed(&env, &d, &mut call, &mut phone, "seat");
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
    // The carrier would hold for a minute; the seat's BYE must end it early.
    let calls = one_call(&env, &d, "seat_hangup.xml", "carrier_wait_bye.xml");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["outcome"], "answered");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_cancels_while_the_seat_rings() {
    let env = Env::new(common::Db::Sqlite).await;
    let d = setup(&env, OPEN);
    let calls = one_call(&env, &d, "seat_ring_cancel.xml", "carrier_cancel.xml");
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
    both_succeed(&env, &d, &mut call, &mut phone, "seat");
    // g711a.pcap holds about 8 s of 20 ms packets; the call lasts 4 s of it.
    assert!(got >= 100, "only {got} RTP packets reached the seat");
    env.cleanup().await;
}

/// An INVITE written by the test itself, from `sock`, for refusals and retransmissions.
fn raw_invite(sock: &UdpSocket, number: &str, call_id: &str, branch: &str) -> String {
    let me = sock.local_addr().expect("addr");
    let sdp = format!(
        "v=0\r\no=c 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
        ip = me.ip()
    );
    format!(
        "INVITE sip:{number}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:0901111222@{ip}>;tag=f-{call_id}\r\nTo: <sip:{number}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@{me}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len(),
        ip = me.ip()
    )
}

/// The same INVITE as a late offer (no body).
fn without_sdp(invite: &str) -> String {
    let head = invite.split("\r\n\r\n").next().unwrap_or_default();
    let head: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.starts_with("Content-Type") && !l.starts_with("Content-Length"))
        .collect();
    format!("{}\r\nContent-Length: 0\r\n\r\n", head.join("\r\n"))
}

/// Sends `msg` and collects the status codes received until a final one (or `within`).
fn statuses(sock: &UdpSocket, to: u16, msg: &str, within: Duration) -> Vec<u16> {
    sock.send_to(msg.as_bytes(), ("127.0.0.1", to))
        .expect("send");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let code = std::str::from_utf8(&buf[..n])
                .ok()
                .and_then(|t| t.strip_prefix("SIP/2.0 "))
                .and_then(|t| t.get(..3))
                .and_then(|c| c.parse().ok());
            if let Some(c) = code {
                out.push(c);
                if c >= 200 {
                    break;
                }
            }
        }
    }
    out
}

e2e_both!(refusals_are_not_counted_and_a_call_is_counted_once, |env| {
    let mut d = setup(&env, OPEN);
    let carrier = UdpSocket::bind("127.0.0.1:0").expect("carrier");
    // An unassigned number: 404, nothing in the ledger.
    let st = statuses(
        &carrier,
        d.sip_port,
        &raw_invite(&carrier, "0399999999", "unassigned-1", "u1"),
        Duration::from_secs(5),
    );
    assert_eq!(st.last(), Some(&404), "{st:?}");
    // A source that is no configured trunk: 403 at once, nothing counted.
    let stranger = UdpSocket::bind("127.0.0.2:0").expect("127.0.0.2");
    let st = statuses(
        &stranger,
        d.sip_port,
        &raw_invite(&stranger, NUMBER, "stranger-1", "s1"),
        Duration::from_secs(5),
    );
    assert_eq!(st, [403]);
    // No seat is registered: the call is counted as overflow. Without SDP (a late offer)
    // no message can be taken, so it is refused (480); with SDP it would be answered for a
    // voice message (tests/acd.rs). Retransmissions and a re-sent copy on a new branch do
    // not count again.
    let invite = without_sdp(&raw_invite(&carrier, NUMBER, "once-1", "o1"));
    let st = statuses(&carrier, d.sip_port, &invite, Duration::from_secs(5));
    assert_eq!(st.first(), Some(&100), "only 100 before the row: {st:?}");
    assert_eq!(st.last(), Some(&480), "{st:?}");
    for _ in 0..3 {
        carrier
            .send_to(invite.as_bytes(), ("127.0.0.1", d.sip_port))
            .expect("retransmit");
    }
    let resent = without_sdp(&raw_invite(&carrier, NUMBER, "once-1", "o2"));
    statuses(&carrier, d.sip_port, &resent, Duration::from_secs(2));
    let calls = settled_calls(&env, &d);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["call_id"], "once-1");
    assert_eq!(calls[0]["outcome"], "overflow");
    assert_eq!(calls[0]["billable"], true);
    assert!(d.log_text().contains("unassigned"), "the 404 is logged");
    assert_eq!(d.stop(), Some(0));
});

e2e_both!(kill_9_loses_no_call_and_no_seat, |env| {
    let mut d = setup(&env, OPEN);
    let (_a, b) = media_sockets();
    // The operator's phone rings and nobody answers; the daemon dies mid-call.
    let (mut ringing, seat_port) = seat(&env, &d, "seat", "seat_ring_cancel.xml", port(&b));
    let carrier = UdpSocket::bind("127.0.0.1:0").expect("carrier");
    let invite = raw_invite(&carrier, NUMBER, "crash-1", "c1");
    let st = statuses(&carrier, d.sip_port, &invite, Duration::from_secs(5));
    // The caller hears the queue (183, early media) while the phone rings.
    assert!(st.contains(&183), "queued: {st:?}\n{}", d.log_text());
    std::thread::sleep(Duration::from_millis(500));
    d.kill9();
    ringing.kill9();
    d.restart(&env);
    // The call survived, closed by the orphan sweep, still counted.
    let calls = settled_calls(&env, &d);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["call_id"], "crash-1");
    assert_eq!(calls[0]["outcome"], "failed");
    assert_eq!(calls[0]["billable"], true);
    // The seat registered before the crash is reached without logging in again.
    let mut phone = sipp(
        env.dir.path(),
        "seat2",
        &d.target(),
        &[
            "-sf",
            scenario("seat_answer.xml").to_str().expect("path"),
            "-p",
            &seat_port.to_string(),
            "-key",
            "bport",
            &port(&b).to_string(),
            "-key",
            "codec",
            "0",
            "-m",
            "1",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let (a2, _) = media_sockets();
    let mut call = carrier_call(&env, &d, port(&a2));
    both_succeed(&env, &d, &mut call, &mut phone, "seat2");
    // The carrier re-sends the crashed call (new branch): still one row for it.
    statuses(
        &carrier,
        d.sip_port,
        &raw_invite(&carrier, NUMBER, "crash-1", "c2"),
        Duration::from_secs(3),
    );
    let calls = settled_calls(&env, &d);
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls.iter().any(|c| c["outcome"] == "answered"));
    assert_eq!(d.stop(), Some(0));
});

fn carrier_call(env: &Env, d: &Daemon, aport: u16) -> Proc {
    carrier(env, d, "carrier_call.xml", aport, 500)
}

/// baresip, a real softphone, as the operator's seat: it registers with digest auth,
/// auto-answers, and its audio (a sine tone) reaches the caller through the relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_seat_answers_and_its_audio_reaches_the_caller() {
    let env = Env::new(common::Db::Sqlite).await;
    let d = setup(&env, OPEN);
    let cfg = env.dir.path().join("baresip");
    std::fs::create_dir_all(&cfg).expect("baresip dir");
    let sip_port = common::peers::free_sip_port();
    let rtp = common::peers::free_port_range(20);
    // What the operator says: 10 s of a 440 Hz tone, 8 kHz 16-bit (baresip's aufile source).
    let tone: Vec<i16> = (0..80_000)
        .map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 8000.0) as i16)
        .collect();
    std::fs::write(
        cfg.join("tone.wav"),
        smartdesk::media::wav::write_wav_pcm16_8k(&tone).expect("wav"),
    )
    .expect("tone");
    std::fs::write(
        cfg.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nsip_trans_def udp\n\
             audio_player alsa,null\naudio_source aufile,{tone}\naudio_alert alsa,null\n\
             rtp_ports {rtp}-{}\nmodule_path /usr/lib/baresip/modules\n\
             module g711.so\nmodule alsa.so\nmodule aufile.so\nmodule_app account.so\n",
            rtp + 19,
            tone = cfg.join("tone.wav").display()
        ),
    )
    .expect("config");
    std::fs::write(
        cfg.join("accounts"),
        format!(
            "<sip:op1@127.0.0.1:{};transport=udp>;auth_pass={SEAT_PASSWORD};\
             answermode=auto;regint=600;audio_codecs=PCMU\n",
            d.sip_port
        ),
    )
    .expect("accounts");
    let log = std::fs::File::create(env.dir.path().join("baresip.log")).expect("log");
    let mut phone = Proc {
        child: std::process::Command::new("baresip")
            .args(["-f", cfg.to_str().expect("path"), "-t", "60"])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn baresip (Debian package baresip)"),
        name: "baresip",
    };
    // Logged in: baresip reports the binding the registrar granted. (`seat list` judges
    // liveness by real time, and this daemon runs at a `--clock` instant.)
    let blog = env.dir.path().join("baresip.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&blog)
        .unwrap_or_default()
        .contains("200 OK () [1 binding]")
    {
        assert!(
            Instant::now() < deadline && phone.running(),
            "baresip did not register:\n{}\n{}",
            std::fs::read_to_string(&blog).unwrap_or_default(),
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ledger = env.ledger().await;
    assert_eq!(
        ledger
            .live_registrations(0)
            .await
            .expect("registrations")
            .len(),
        1,
        "the binding is in the ledger"
    );
    let a = UdpSocket::bind("127.0.0.1:0").expect("a");
    let mut call = carrier(&env, &d, "carrier_call.xml", port(&a), 4000);
    // The tone from baresip arrives at the caller's media address.
    a.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut got = 0;
    let mut buf = [0u8; 2048];
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        if let Ok((n, _)) = a.recv_from(&mut buf) {
            if n > 12 && buf[0] >> 6 == 2 {
                got += 1;
            }
        }
    }
    let code = call.wait(Duration::from_secs(30));
    phone.stop(Duration::from_secs(5));
    assert_eq!(
        code,
        Some(0),
        "{}\n{}\n{}",
        sipp_trace(env.dir.path(), "carrier"),
        std::fs::read_to_string(env.dir.path().join("baresip.log")).unwrap_or_default(),
        d.log_text()
    );
    assert!(
        got >= 100,
        "only {got} RTP packets from baresip reached the caller"
    );
    let calls = settled_calls(&env, &d);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["outcome"], "answered");
    assert_eq!(calls[0]["seat"], "op1");
    env.cleanup().await;
}
