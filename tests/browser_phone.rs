//! Browser seats (issue #11) end to end: a real headless Chromium with fake media devices (a
//! 1 kHz sox tone as its microphone) logs in to the console, starts the browser phone
//! (WebRTC to the daemon: ICE on loopback, DTLS-SRTP, PCMU) and takes, declines or misses
//! calls from a SIPp carrier whose media is a UDP socket of the test.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::calls::{
    carrier_as, contractor_greeting, login_as, queue_log, relay_port, settled_calls, NUMBER,
    SEAT_PASSWORD,
};
use common::peers::{free_udp_port, scenario, sipp, sipp_trace, Daemon, Proc, OPEN};
use common::Env;
use smartdesk::media::tone::goertzel_power;

const WEB_PASSWORD: &str = "op1-console-pw";
const GREETING: &str = "はい、株式会社ABCでございます";
/// Short rings so that the no-answer path ends quickly; a decline retries after 1 s.
const ACD: &str = "\n[acd]\nring_timeout_s = 5\nretry_no_answer_s = 1\nretry_busy_s = 1\n\
                   retry_decline_s = 1\nmax_no_answer = 5\nmax_wait_s = 60\nwrap_up_max_s = 0\n";

/// A contractor with the number, seat op1 with a console password, the daemon running on a
/// known web port; returns the daemon and the console's base URL.
fn setup(env: &Env) -> (Daemon, String) {
    let mut d = Daemon::configure(env);
    let web = d.web_on_free_port("phone_ice_addresses = [\"127.0.0.1\"]\n");
    let cfg = std::fs::read_to_string(&d.config).expect("config");
    std::fs::write(&d.config, format!("{cfg}{ACD}")).expect("config");
    contractor_greeting(env, &d, "株式会社ABC", GREETING, "2026-11-01", Some(NUMBER));
    d.cli(
        env,
        &[
            "seat",
            "add",
            "op1",
            "--password",
            SEAT_PASSWORD,
            "--web-password",
            WEB_PASSWORD,
        ],
    )
    .ok();
    d.start(env, OPEN);
    (d, format!("http://127.0.0.1:{web}"))
}

/// A 1 kHz tone WAV (sox) as Chromium's fake microphone.
fn tone_wav(dir: &Path) -> String {
    let path = dir.join("mic-1khz.wav");
    let ok = Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "1", "-b", "16"])
        .arg(&path)
        .args(["synth", "60", "sine", "1000", "vol", "0.5"])
        .status()
        .expect("run sox (Debian package sox)")
        .success();
    assert!(ok, "sox could not make the tone");
    path.display().to_string()
}

/// Chromium with a fake microphone playing the tone, logged in as op1 with the browser phone
/// started and ready.
fn operator(env: &Env, d: &Daemon, web: &str) -> Browser {
    let wav = tone_wav(env.dir.path());
    let b = Browser::start_with(
        env.dir.path(),
        &[
            "--use-fake-device-for-media-stream".into(),
            "--use-fake-ui-for-media-stream".into(),
            format!("--use-file-for-fake-audio-capture={wav}"),
            // Host candidates on loopback only: Chromium must be allowed to use them.
            "--allow-loopback-in-peer-connection".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
        ],
    );
    b.goto(&format!("{web}/console"));
    b.wait_text("h1", Duration::from_secs(10), |t| t.contains("コンソール"));
    b.type_text("op1");
    b.keys(&[], &["\u{E004}"]); // Tab
    b.type_text(WEB_PASSWORD);
    b.keys(&[], &["\u{E007}"]); // Enter
    b.wait_text("#seat-name", Duration::from_secs(10), |t| t.contains("op1"));
    b.click("#phone-start");
    let ready = wait_state(&b, d, "受付可能", Duration::from_secs(20));
    assert!(ready.contains("ブラウザ電話"), "{ready}");
    b
}

fn wait_state(b: &Browser, d: &Daemon, want: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let t = b.text("#phone-state");
        if t.contains(want) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "phone never showed {want:?}; last {t:?}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Posts `body` to /console/phone from the logged-in page (with or without its CSRF token);
/// returns the HTTP status and the JSON answer.
fn post_phone(b: &Browser, body: &str, csrf: bool) -> (u64, serde_json::Value) {
    let script = format!(
        "const done = arguments[arguments.length - 1];
         const h = {{ 'Content-Type': 'application/json' }};
         if ({csrf}) h['X-CSRF-Token'] = document.getElementById('main').dataset.csrf;
         fetch('/console/phone', {{ method: 'POST', headers: h, body: {body:?} }})
           .then(async (r) => done([r.status, await r.json().catch(() => null)]));"
    );
    let v = b.execute_async(&script);
    (v[0].as_u64().unwrap_or(0), v[1].clone())
}

/// The carrier's SIPp (`-d hold_ms` on the line) with its media on `media`.
fn carrier(env: &Env, d: &Daemon, media: &UdpSocket, hold_ms: u32) -> Proc {
    let aport = media.local_addr().expect("addr").port();
    carrier_as(
        env,
        d,
        "carrier",
        "carrier_call.xml",
        NUMBER,
        aport,
        hold_ms,
    )
}

/// Inbound/outbound audio RTP packets the page's RTCPeerConnection counted.
fn browser_rtp(b: &Browser) -> (u64, u64) {
    let v = b.execute_async(
        "const done = arguments[arguments.length - 1];
         const pc = window.smartdeskPhone && window.smartdeskPhone.pc;
         if (!pc) { done([0, 0]); return; }
         pc.getStats().then((s) => {
           let i = 0, o = 0;
           s.forEach((r) => {
             if (r.type === 'inbound-rtp' && r.kind === 'audio') i += r.packetsReceived;
             if (r.type === 'outbound-rtp' && r.kind === 'audio') o += r.packetsSent;
           });
           done([i, o]);
         });",
    );
    (v[0].as_u64().unwrap_or(0), v[1].as_u64().unwrap_or(0))
}

/// μ-law silence with a 440 Hz tone, one 20 ms RTP packet's payload.
fn carrier_payload(seq: u16) -> Vec<u8> {
    (0..160)
        .map(|i| {
            let t = f64::from(u32::from(seq) * 160 + i) / 8000.0;
            let s = (t * 440.0 * std::f64::consts::TAU).sin() * 8000.0;
            smartdesk::media::g711::Law::Pcmu.encode(s as i16)
        })
        .collect()
}

/// Plays the carrier's side for `packets` × 20 ms: sends RTP to the relay and collects the
/// μ-law it receives. Returns (packets received, decoded samples).
fn carrier_media(media: &UdpSocket, relay: u16, packets: u16) -> (usize, Vec<i16>) {
    media
        .set_read_timeout(Some(Duration::from_millis(5)))
        .expect("timeout");
    let to = ("127.0.0.1", relay);
    let mut got = 0;
    let mut samples = Vec::new();
    let mut buf = [0u8; 2048];
    // What arrived before this window (say, before a hold) is not counted.
    let drained = Instant::now() + Duration::from_secs(2);
    while media.recv_from(&mut buf).is_ok() && Instant::now() < drained {}
    let start = Instant::now();
    for seq in 0..packets {
        let mut pkt = vec![0x80, 0x00];
        pkt.extend_from_slice(&seq.to_be_bytes());
        pkt.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        pkt.extend_from_slice(&0x5eed_0001u32.to_be_bytes());
        pkt.extend_from_slice(&carrier_payload(seq));
        let _ = media.send_to(&pkt, to);
        let next = start + Duration::from_millis(20) * u32::from(seq + 1);
        while Instant::now() < next {
            if let Ok((n, _)) = media.recv_from(&mut buf) {
                // RTP header without CSRCs or extensions: 12 bytes.
                if n > 12 && buf[1] & 0x7f == 0 {
                    got += 1;
                    samples.extend(
                        buf[12..n]
                            .iter()
                            .map(|&c| smartdesk::media::g711::Law::Pcmu.decode(c)),
                    );
                }
            }
        }
    }
    (got, samples)
}

/// A carrier call that stays on the line (60 s, until smartdesk sends BYE), answered in the
/// browser; returns the carrier's SIPp and its media socket.
fn answered_call(env: &Env, d: &Daemon, b: &Browser) -> (Proc, UdpSocket) {
    let media = UdpSocket::bind("127.0.0.1:0").expect("media");
    let aport = media.local_addr().expect("addr").port();
    let call = carrier_as(
        env,
        d,
        "carrier",
        "carrier_wait_bye.xml",
        NUMBER,
        aport,
        60_000,
    );
    wait_state(b, d, "着信中", Duration::from_secs(15));
    b.click("#phone-answer");
    wait_state(b, d, "通話中", Duration::from_secs(10));
    (call, media)
}

fn carrier_done(env: &Env, d: &Daemon, p: &mut Proc) {
    assert_eq!(
        p.wait(Duration::from_secs(30)),
        Some(0),
        "carrier\n{}\n{}",
        sipp_trace(env.dir.path(), "carrier"),
        d.log_text()
    );
}

e2e_both!(browser_answers_a_carrier_call_with_two_way_audio, |env| {
    let (d, web) = setup(&env);
    let b = operator(&env, &d, &web);
    // Bad signalling is refused with the field named, and changes nothing.
    let (status, v) = post_phone(&b, r#"{"sdp":"hello"}"#, true);
    assert_eq!(
        (status, v["errors"][0]["field"].as_str()),
        (422, Some("sdp")),
        "{v}"
    );
    let (status, _) = post_phone(&b, r#"{"sdp":"v=0\r\n"}"#, false);
    assert_eq!(status, 403, "no CSRF token");
    let media = UdpSocket::bind("127.0.0.1:0").expect("media");
    let aport = media.local_addr().expect("addr").port();
    let mut call = carrier(&env, &d, &media, 9000);
    let ringing = wait_state(&b, &d, "着信中", Duration::from_secs(15));
    assert!(
        ringing.contains("株式会社ABC") && ringing.contains(GREETING),
        "{ringing}"
    );
    // The console's own call panel shows the same call.
    b.wait_text("#contractor", Duration::from_secs(5), |t| {
        t == "株式会社ABC"
    });
    b.keys(&[], &["\u{E032}"]); // F2: answer
    wait_state(&b, &d, "通話中", Duration::from_secs(10));
    let relay = relay_port(&env, "carrier", aport, Duration::from_secs(5));
    let (received, samples) = carrier_media(&media, relay, 150);
    let (browser_in, browser_out) = browser_rtp(&b);
    assert!(
        browser_in >= 50,
        "the browser received {browser_in} RTP packets of the carrier's 150\n{}",
        d.log_text()
    );
    assert!(browser_out >= 50, "the browser sent {browser_out}");
    assert!(
        received >= 50,
        "the carrier received {received} packets from the browser\n{}",
        d.log_text()
    );
    // The fake microphone's 1 kHz tone is what the carrier hears.
    let tail = &samples[samples.len() / 2..];
    let tone = goertzel_power(tail, 1000.0);
    eprintln!(
        "carrier sent 150, browser received {browser_in}, browser sent {browser_out}, \
         carrier received {received}; 1 kHz / 440 Hz power {:.0}",
        tone / goertzel_power(tail, 440.0).max(1.0)
    );
    for other in [440.0, 700.0, 1400.0, 2000.0] {
        let p = goertzel_power(tail, other);
        assert!(tone > 20.0 * p, "1 kHz {tone} vs {other} Hz {p}");
    }
    // Hold: the caller hears silence, but RTP keeps flowing.
    b.click("#phone-hold");
    wait_state(&b, &d, "保留中", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let (held, samples) = carrier_media(&media, relay, 50);
    assert!(held >= 20, "RTP on hold: {held}");
    let on_hold = goertzel_power(&samples, 1000.0);
    assert!(
        on_hold * 100.0 < tone,
        "on hold {on_hold} vs talking {tone}"
    );
    b.click("#phone-hold");
    wait_state(&b, &d, "通話中", Duration::from_secs(5));
    // The carrier hangs up: both legs end and the page is ready for the next call, with
    // the call still on the console for its record, written on the same page.
    carrier_done(&env, &d, &mut call);
    wait_state(&b, &d, "受付可能", Duration::from_secs(10));
    b.wait_text("#call-state", Duration::from_secs(10), |t| {
        t.starts_with("通話終了")
    });
    b.click("#caller_name");
    b.type_text("山田商事 山田様");
    b.click("#cb_no");
    b.click("#purpose");
    b.type_text("資料請求");
    b.click("#submit");
    b.wait_text("#form-status", Duration::from_secs(10), |t| {
        t.contains("記録しました")
    });
    let calls = settled_calls(&env, &d);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "answered", "{calls:?}");
    assert_eq!(calls[0]["seat"], "op1", "{calls:?}");
});

e2e_both!(browser_declines_and_lets_a_call_ring_out, |env| {
    let (d, web) = setup(&env);
    let b = operator(&env, &d, &web);
    let media = UdpSocket::bind("127.0.0.1:0").expect("media");
    let mut call = carrier(&env, &d, &media, 1000);
    wait_state(&b, &d, "着信中", Duration::from_secs(15));
    b.keys(&[], &["\u{E034}"]); // F4: decline
    wait_state(&b, &d, "受付可能", Duration::from_secs(5));
    // Offered again after retry_decline_s; this time nobody answers (ring timeout 5 s).
    wait_state(&b, &d, "着信中", Duration::from_secs(10));
    wait_state(&b, &d, "受付可能", Duration::from_secs(10));
    // Then answered with a click; the caller hangs up after 1 s.
    wait_state(&b, &d, "着信中", Duration::from_secs(10));
    b.click("#phone-answer");
    carrier_done(&env, &d, &mut call);
    let log = queue_log(&env).await;
    let kinds = |k: &str| log.iter().filter(|e| e.kind == k).count();
    assert!(kinds("declined") >= 1, "{log:?}");
    assert!(kinds("no_answer") >= 1, "{log:?}");
    assert_eq!(kinds("connected"), 1, "{log:?}");
    let calls = settled_calls(&env, &d);
    assert_eq!(calls[0]["outcome"], "answered", "{calls:?}");
});

e2e_both!(
    closing_the_tab_mid_call_ends_it_and_takes_the_seat_offline,
    |env| {
        let (d, web) = setup(&env);
        let b = operator(&env, &d, &web);
        let (mut call, _media) = answered_call(&env, &d, &b);
        b.close_tab();
        carrier_done(&env, &d, &mut call);
        let calls = settled_calls(&env, &d);
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0]["outcome"], "answered", "{calls:?}");
        // The seat is offline: `smartdesk queue` shows it so.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let q = d.cli(&env, &["queue", "--json"]).ok().json();
            let state = q["seats"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["name"] == "op1"))
                .map(|s| s["state"].clone());
            if state.as_ref().and_then(|s| s.as_str()) == Some("offline") {
                break;
            }
            assert!(Instant::now() < deadline, "seat still {state:?}: {q}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
);

e2e_both!(
    a_ringing_call_moves_on_to_a_softphone_when_the_tab_closes,
    |env| {
        let (d, web) = setup(&env);
        d.cli(&env, &["seat", "add", "op2", "--password", SEAT_PASSWORD])
            .ok();
        let b = operator(&env, &d, &web);
        // op2 is a SIPp softphone beside the browser seat, paused so that the browser rings first.
        let port = free_udp_port();
        let mut phone = sipp(
            env.dir.path(),
            "op2",
            &d.target(),
            &[
                "-sf",
                scenario("seat_answer.xml").to_str().expect("path"),
                "-p",
                &port.to_string(),
                "-key",
                "bport",
                &free_udp_port().to_string(),
                "-key",
                "codec",
                "0",
                "-m",
                "1",
            ],
        );
        login_as(&env, &d, "login-op2", "op2", SEAT_PASSWORD, port);
        d.cli(&env, &["seat", "pause", "op2", "--reason", "休憩"])
            .ok();
        let media = UdpSocket::bind("127.0.0.1:0").expect("media");
        let mut call = carrier(&env, &d, &media, 1000);
        wait_state(&b, &d, "着信中", Duration::from_secs(15));
        d.cli(&env, &["seat", "resume", "op2"]).ok();
        // The tab goes away while the call rings there: the offer is withdrawn at once (not
        // after the ring timeout) and op2 takes the call.
        b.close_tab();
        carrier_done(&env, &d, &mut call);
        assert_eq!(
            phone.wait(Duration::from_secs(10)),
            Some(0),
            "{}\n{}",
            sipp_trace(env.dir.path(), "op2"),
            d.log_text()
        );
        let calls = settled_calls(&env, &d);
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0]["outcome"], "answered", "{calls:?}");
        assert_eq!(calls[0]["seat"], "op2", "{calls:?}");
        let text = d.log_text();
        assert!(text.contains("browser seat offline"), "{text}");
        let log = queue_log(&env).await;
        assert!(
            !log.iter().any(|e| e.kind == "no_answer"),
            "withdrawn, not rung out: {log:?}"
        );
    }
);

e2e_both!(
    a_browser_that_falls_silent_mid_call_is_taken_offline,
    |env| {
        let (d, web) = setup(&env);
        let b = operator(&env, &d, &web);
        let (mut call, _media) = answered_call(&env, &d, &b);
        // A Wi-Fi drop: the browser stops sending anything at all (no DTLS close, no SCTP
        // abort). ICE consent runs out and the daemon ends the call by itself.
        b.signal("-STOP");
        let silent = Instant::now();
        carrier_done(&env, &d, &mut call);
        eprintln!(
            "call ended {:?} after the browser fell silent",
            silent.elapsed()
        );
        b.signal("-CONT");
        let text = d.log_text();
        assert!(text.contains("browser seat offline"), "{text}");
        let calls = settled_calls(&env, &d);
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0]["outcome"], "answered", "{calls:?}");
    }
);
