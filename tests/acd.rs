//! Call distribution end to end (issue #6 §9): `smartdesk serve` on loopback, several SIPp
//! seats (one that never answers, one busy, one that declines, one that answers), SIPp callers for two
//! contractors arriving together, a caller who gives up in the queue, and message taking with
//! real RTP recorded to a WAV. The queue log and `smartdesk stats` are read back.

mod common;

use std::time::{Duration, Instant};

use common::calls::{carrier_as, contractor, login_as, queue_log};
use common::peers::{free_udp_port, scenario, sipp, sipp_trace, Daemon, Proc, OPEN};
use common::Env;

const NUMBER_A: &str = "0312345678";
const NUMBER_B: &str = "0312345679";
const PASSWORD: &str = "seat-secret-pw";
const DAY: &str = "2026-11-25";

/// Short ACD timers so that a test runs in seconds (the validated minimums).
const ACD: &str = "\n[acd]\nring_timeout_s = 5\nretry_no_answer_s = 1\nretry_busy_s = 1\n\
                   retry_decline_s = 1\nmax_no_answer = 2\nmax_wait_s = 60\nwrap_up_max_s = 0\n";

fn configure(env: &Env, extra: &str) -> Daemon {
    let d = Daemon::configure(env);
    let mut cfg = std::fs::read_to_string(&d.config).expect("config");
    cfg.push_str(ACD);
    cfg.push_str(extra);
    std::fs::write(&d.config, cfg).expect("config");
    d
}

/// A SIPp phone for seat `name` running `scenario_file` for up to `calls` calls, logged in
/// (digest auth) with its Contact on the phone's port.
fn phone(
    env: &Env,
    d: &Daemon,
    name: &str,
    scenario_file: &str,
    calls: u32,
    keys: &[&str],
) -> Proc {
    let port = free_udp_port();
    let media = free_udp_port();
    let mut args = vec![
        "-sf".to_owned(),
        scenario(scenario_file).display().to_string(),
        "-p".into(),
        port.to_string(),
        "-key".into(),
        "bport".into(),
        media.to_string(),
        "-key".into(),
        "codec".into(),
        "0".into(),
        "-m".into(),
        calls.to_string(),
    ];
    args.extend(keys.iter().map(|k| k.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let uas = sipp(env.dir.path(), name, &d.target(), &refs);
    login_as(env, d, &format!("login-{name}"), name, PASSWORD, port);
    uas
}

fn caller(
    env: &Env,
    d: &Daemon,
    label: &str,
    scenario_file: &str,
    number: &str,
    hold_ms: u32,
) -> Proc {
    carrier_as(
        env,
        d,
        label,
        scenario_file,
        number,
        free_udp_port(),
        hold_ms,
    )
}

fn must_succeed(env: &Env, d: &Daemon, p: &mut Proc, label: &str, within: Duration) {
    assert_eq!(
        p.wait(within),
        Some(0),
        "{label} failed\n{}\n{}",
        sipp_trace(env.dir.path(), label),
        d.log_text()
    );
}

/// The call rows once every call has its outcome.
fn settled_calls(env: &Env, d: &Daemon, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let calls = d
            .cli(env, &["calls", "--month", "2026-11", "--json"])
            .ok()
            .json();
        let list = calls.as_array().cloned().unwrap_or_default();
        let done = list.len() >= n && list.iter().all(|c| !c["outcome"].is_null());
        if done || Instant::now() > deadline {
            return list;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

e2e_both!(
    fair_distribution_across_seats_that_ignore_refuse_and_answer,
    |env| {
        let mut d = configure(&env, "");
        let a = contractor(&env, &d, "株式会社ABC", "2026-11-01", Some(NUMBER_A));
        let b = contractor(&env, &d, "有限会社XYZ", "2026-11-01", Some(NUMBER_B));
        // Added in this order, so the never-used tie (lowest id first) rings the difficult seats
        // first.
        for s in ["quiet", "refuser", "decliner", "taker"] {
            d.cli(&env, &["seat", "add", s, "--password", PASSWORD])
                .ok();
        }
        d.start(&env, OPEN);
        let _quiet = phone(&env, &d, "quiet", "seat_ring_cancel.xml", 50, &[]);
        let _refuser = phone(&env, &d, "refuser", "seat_busy.xml", 50, &[]);
        let _decliner = phone(&env, &d, "decliner", "seat_decline.xml", 50, &[]);
        let mut taker = phone(&env, &d, "taker", "seat_answer.xml", 3, &[]);
        // Three callers for two contractors at once.
        let mut c1 = caller(&env, &d, "c1", "carrier_call.xml", NUMBER_A, 1000);
        let mut c2 = caller(&env, &d, "c2", "carrier_call.xml", NUMBER_B, 1000);
        let mut c3 = caller(&env, &d, "c3", "carrier_call.xml", NUMBER_A, 1000);
        for (p, l) in [(&mut c1, "c1"), (&mut c2, "c2"), (&mut c3, "c3")] {
            must_succeed(&env, &d, p, l, Duration::from_secs(60));
        }
        must_succeed(&env, &d, &mut taker, "taker", Duration::from_secs(10));
        let calls = settled_calls(&env, &d, 3);
        assert_eq!(calls.len(), 3, "{calls:?}");
        for c in &calls {
            assert_eq!(c["outcome"], "answered", "{c}");
            assert_eq!(c["seat"], "taker", "{c}");
        }
        let log = queue_log(&env).await;
        let kinds = |k: &str| log.iter().filter(|e| e.kind == k).count();
        assert_eq!(kinds("entered"), 3, "{log:?}");
        assert_eq!(kinds("connected"), 3, "{log:?}");
        assert!(
            kinds("busy") >= 1,
            "the busy seat: {log:?}\n{}",
            sipp_trace(env.dir.path(), "refuser")
        );
        assert!(kinds("declined") >= 1, "the declining seat: {log:?}");
        assert!(kinds("no_answer") >= 1, "the quiet seat: {log:?}");
        assert!(kinds("offered") >= 3, "{log:?}");
        assert_eq!(
            log.iter()
                .filter(|e| e.kind == "entered")
                .map(|e| e.contractor_id)
                .filter(|c| *c == a)
                .count(),
            2
        );
        assert!(log
            .iter()
            .any(|e| e.contractor_id == b && e.kind == "connected"));
        // The service level of the day.
        let stats = d.cli(&env, &["stats", "--day", DAY, "--json"]).ok().json();
        assert_eq!(stats["overall"]["offered"], 3, "{stats}");
        assert_eq!(stats["overall"]["answered"], 3, "{stats}");
        assert_eq!(stats["overall"]["answer_rate"], 1.0, "{stats}");
        assert!(stats["overall"]["asa_p90_ms"].as_u64().is_some(), "{stats}");
        assert_eq!(
            stats["contractors"].as_array().map(Vec::len),
            Some(2),
            "{stats}"
        );
        // A malformed day is refused naming the field.
        let bad = d.cli(&env, &["stats", "--day", "2026-13-01"]);
        assert_eq!(bad.code, 2);
        assert!(bad.stderr.contains("--day"), "{}", bad.stderr);
        assert_eq!(d.stop(), Some(0), "{}", d.log_text());
    }
);

e2e_both!(
    a_seat_that_never_answers_is_skipped_and_then_paused,
    |env| {
        let mut d = configure(&env, "");
        contractor(&env, &d, "株式会社ABC", "2026-11-01", Some(NUMBER_A));
        for s in ["quiet", "taker"] {
            d.cli(&env, &["seat", "add", s, "--password", PASSWORD])
                .ok();
        }
        d.start(&env, OPEN);
        let _quiet = phone(&env, &d, "quiet", "seat_ring_cancel.xml", 50, &[]);
        let mut taker = phone(&env, &d, "taker", "seat_answer.xml", 2, &[]);
        // Two callers in turn: each rings "quiet" first (idle longest) for the ring timeout.
        for l in ["c1", "c2"] {
            let mut c = caller(&env, &d, l, "carrier_call.xml", NUMBER_A, 300);
            must_succeed(&env, &d, &mut c, l, Duration::from_secs(40));
        }
        must_succeed(&env, &d, &mut taker, "taker", Duration::from_secs(10));
        let log = queue_log(&env).await;
        let no_answers = log.iter().filter(|e| e.kind == "no_answer").count();
        assert!(no_answers >= 1, "{log:?}");
        if no_answers >= 2 {
            assert!(
                d.log_text().contains("seat paused"),
                "max_no_answer = 2 pauses the seat\n{}",
                d.log_text()
            );
        }
        let connected: Vec<_> = log.iter().filter(|e| e.kind == "connected").collect();
        assert_eq!(connected.len(), 2, "{log:?}");
        assert!(
            connected.iter().any(|e| e.wait_ms.unwrap_or(0) >= 4000),
            "the first caller waited out the ring timeout: {log:?}"
        );
        assert_eq!(d.stop(), Some(0), "{}", d.log_text());
    }
);

e2e_both!(a_caller_who_gives_up_in_the_queue_is_abandoned, |env| {
    let mut d = configure(&env, "");
    contractor(&env, &d, "株式会社ABC", "2026-11-01", Some(NUMBER_A));
    d.cli(&env, &["seat", "add", "taker", "--password", PASSWORD])
        .ok();
    d.start(&env, OPEN);
    let mut taker = phone(&env, &d, "taker", "seat_answer.xml", 1, &[]);
    // The only seat is busy with a long call; the second caller hears the queue (183) and
    // hangs up.
    let mut long = caller(&env, &d, "long", "carrier_call.xml", NUMBER_A, 4000);
    std::thread::sleep(Duration::from_millis(1000));
    let mut quitter = caller(&env, &d, "quitter", "carrier_cancel.xml", NUMBER_A, 0);
    must_succeed(&env, &d, &mut quitter, "quitter", Duration::from_secs(20));
    must_succeed(&env, &d, &mut long, "long", Duration::from_secs(30));
    must_succeed(&env, &d, &mut taker, "taker", Duration::from_secs(10));
    let calls = settled_calls(&env, &d, 2);
    let outcomes: Vec<_> = calls
        .iter()
        .map(|c| c["outcome"].as_str().unwrap_or(""))
        .collect();
    assert!(
        outcomes.contains(&"abandoned") && outcomes.contains(&"answered"),
        "{calls:?}"
    );
    let log = queue_log(&env).await;
    let abandoned: Vec<_> = log.iter().filter(|e| e.kind == "abandoned").collect();
    assert_eq!(abandoned.len(), 1, "{log:?}");
    assert_eq!(abandoned[0].position, Some(1));
    let stats = d.cli(&env, &["stats", "--day", DAY, "--json"]).ok().json();
    assert_eq!(stats["overall"]["abandon_rate"], 0.5, "{stats}");
    assert_eq!(d.stop(), Some(0), "{}", d.log_text());
});

e2e_both!(overflow_takes_a_message_recorded_from_real_rtp, |env| {
    // A one-second message prompt keeps the test short (`media.prompts_dir` replaces the
    // shipped one; recording starts when it ends).
    let prompts = env.dir.path().join("prompts");
    std::fs::create_dir_all(&prompts).expect("prompts dir");
    let wav =
        smartdesk::media::wav::write_wav_g711_8k(smartdesk::media::g711::Law::Pcmu, &[0xFF; 8000])
            .expect("wav");
    std::fs::write(prompts.join("leave_message.wav"), wav).expect("prompt");
    let mut d = configure(&env, "");
    let mut cfg = std::fs::read_to_string(&d.config).expect("config");
    cfg = cfg.replacen(
        "[media]\n",
        &format!("[media]\nprompts_dir = \"{}\"\n", prompts.display()),
        1,
    );
    std::fs::write(&d.config, cfg).expect("config");
    let id = contractor(&env, &d, "株式会社ABC", "2026-11-01", Some(NUMBER_A));
    // The contractor's webhook: the message is reported like a first-response record.
    let (hook_port, hook) = webhook_receiver();
    d.cli(
        &env,
        &[
            "contractor",
            "channels",
            &id.to_string(),
            "--webhook",
            &format!("http://127.0.0.1:{hook_port}/hook"),
            "--webhook-secret",
            "0123456789abcdef-secret",
        ],
    )
    .ok();
    d.start(&env, OPEN);
    // Nobody is logged in: the caller is answered, hears the prompt and the tone, and SIPp
    // plays its G.711 sample (about 8 s of RTP) until it hangs up after 5 s.
    let mut c = caller(&env, &d, "carrier", "carrier_play.xml", NUMBER_A, 5000);
    must_succeed(&env, &d, &mut c, "carrier", Duration::from_secs(30));
    let calls = settled_calls(&env, &d, 1);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "overflow");
    assert_eq!(calls[0]["billable"], true);
    let row = calls[0]["id"].as_i64().expect("call id");
    // The voice message row and its WAV.
    let ledger = env.ledger().await;
    let since = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("date")
        .to_utc();
    let deadline = Instant::now() + Duration::from_secs(10);
    let msg = loop {
        let list = ledger
            .voice_messages_since(since)
            .await
            .expect("voice messages");
        if let Some(m) = list.into_iter().next() {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "no voice message row\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(msg.call_id, row);
    assert_eq!(msg.contractor_id, Some(id));
    assert!(
        (2500..=6000).contains(&msg.duration_ms),
        "about 4 s recorded: {} ms",
        msg.duration_ms
    );
    assert!(
        msg.path.ends_with(&format!("recordings/{row}.wav")),
        "{}",
        msg.path
    );
    let bytes = std::fs::read(&msg.path).expect("the WAV exists");
    let parsed = smartdesk::media::wav::Prompt::from_wav(&bytes).expect("a valid WAV");
    let frames = parsed.frames(smartdesk::media::g711::Law::Pcmu).len();
    assert!(
        (frames as i64 * 20 - msg.duration_ms).abs() <= 40,
        "{frames} frames vs {} ms",
        msg.duration_ms
    );
    // The caller's audio, not silence: SIPp's sample is speech.
    let loud = bytes
        .iter()
        .skip(64)
        .filter(|b| !matches!(**b, 0xFF | 0x7F | 0xD5 | 0x55))
        .count();
    assert!(
        loud > bytes.len() / 4,
        "mostly silence: {loud} of {}",
        bytes.len()
    );
    let log = queue_log(&env).await;
    let kinds: Vec<_> = log.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["entered", "overflow"]);
    // The report went out through the outbox to the webhook.
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        if let Some(b) = hook.lock().expect("hook").first().cloned() {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "no message report delivered\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let report: serde_json::Value = serde_json::from_str(&body).expect("webhook JSON");
    assert_eq!(report["kind"], "message", "{report}");
    assert_eq!(report["call_id"], row, "{report}");
    assert_eq!(report["voice_message"]["recording"], format!("{row}.wav"));
    assert_eq!(
        report["idempotency_key"],
        format!("smartdesk-message-{row}-ch1"),
        "{report}"
    );
    assert_eq!(d.stop(), Some(0), "{}", d.log_text());
});

/// A webhook endpoint on loopback: answers every POST 200 and keeps the bodies.
fn webhook_receiver() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind webhook");
    let port = l.local_addr().expect("addr").port();
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = bodies.clone();
    std::thread::spawn(move || {
        // Bounded: a test sends a handful of reports.
        for stream in l.incoming().take(20) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut len = 0usize;
            for _ in 0..100 {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0).min(1 << 20);
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_ok() {
                keep.lock()
                    .expect("bodies")
                    .push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, bodies)
}

/// `smartdesk queue --json` from the running daemon.
fn queue_now(env: &Env, d: &Daemon) -> serde_json::Value {
    d.cli(env, &["queue", "--json"]).ok().json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seat_pause_resume_reset_and_queue_from_the_cli() {
    let env = Env::new(common::Db::Sqlite).await;
    let mut d = configure(&env, "");
    contractor(&env, &d, "株式会社ABC", "2026-11-01", Some(NUMBER_A));
    d.cli(&env, &["seat", "add", "taker", "--password", PASSWORD])
        .ok();
    // No daemon: the live commands say so (exit 3).
    for args in [
        &["queue"][..],
        &["seat", "pause", "taker", "--reason", "休憩"][..],
        &["seat", "resume", "taker"][..],
    ] {
        let r = d.cli(&env, args);
        assert_eq!(r.code, 3, "{args:?}: {}", r.stderr);
    }
    d.start(&env, OPEN);
    let mut taker = phone(&env, &d, "taker", "seat_answer.xml", 1, &[]);
    let q = queue_now(&env, &d);
    assert_eq!(q["seats"][0]["name"], "taker", "{q}");
    assert_eq!(q["seats"][0]["state"], "available", "{q}");
    // Bad input names the field and changes nothing.
    let bad = d.cli(&env, &["seat", "pause", "nobody", "--reason", "休憩"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("NAME"), "{}", bad.stderr);
    let bad = d.cli(&env, &["seat", "pause", "taker", "--reason", " "]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--reason"), "{}", bad.stderr);
    assert_eq!(queue_now(&env, &d)["seats"][0]["state"], "available");
    // Paused: a caller waits in the queue, the seat's phone does not ring.
    let out = d
        .cli(&env, &["seat", "pause", "taker", "--reason", "休憩"])
        .ok()
        .stdout;
    assert!(out.contains("paused (休憩)"), "{out}");
    let mut c = caller(&env, &d, "c1", "carrier_call.xml", NUMBER_A, 500);
    let deadline = Instant::now() + Duration::from_secs(15);
    let q = loop {
        let q = queue_now(&env, &d);
        if q["waiting"].as_array().is_some_and(|w| !w.is_empty()) || Instant::now() > deadline {
            break q;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let w = &q["waiting"][0];
    assert_eq!(w["position"], 1, "{q}");
    assert_eq!(w["contractor"], "株式会社ABC", "{q}");
    assert!(
        w["caller"].as_str().is_some_and(|c| c.contains("090")),
        "{q}"
    );
    assert!(w["call"].as_i64().is_some(), "{q}");
    assert!(w["ringing_seat"].is_null(), "{q}");
    assert_eq!(q["seats"][0]["state"], "paused", "{q}");
    assert_eq!(q["seats"][0]["reason"], "休憩", "{q}");
    std::thread::sleep(Duration::from_millis(1500));
    let q = queue_now(&env, &d);
    assert_eq!(
        q["waiting"][0]["ringing_seat"],
        serde_json::Value::Null,
        "{q}"
    );
    assert_eq!(q["seats"][0]["handled_today"], 0, "{q}");
    let human = d.cli(&env, &["queue"]).ok().stdout;
    assert!(
        human.contains("株式会社ABC") && human.contains("paused (休憩)"),
        "{human}"
    );
    // Resumed: the waiting caller is offered at once and answered.
    d.cli(&env, &["seat", "resume", "taker"]).ok();
    must_succeed(&env, &d, &mut c, "c1", Duration::from_secs(30));
    must_succeed(&env, &d, &mut taker, "taker", Duration::from_secs(10));
    let calls = settled_calls(&env, &d, 1);
    assert_eq!(calls[0]["outcome"], "answered", "{calls:?}");
    let q = queue_now(&env, &d);
    assert_eq!(q["waiting"].as_array().map(Vec::len), Some(0), "{q}");
    assert_eq!(q["seats"][0]["handled_today"], 1, "{q}");
    // Status shows the same seat states and queue depth.
    let st = d.cli(&env, &["status", "--json"]).ok().json();
    assert_eq!(st["queue_depth"], 0, "{st}");
    d.cli(&env, &["seat", "pause", "taker", "--reason", "研修"])
        .ok();
    let st = d.cli(&env, &["status", "--json"]).ok().json();
    assert_eq!(st["seats"][0]["state"], "paused", "{st}");
    assert_eq!(st["seats"][0]["reason"], "研修", "{st}");
    // Reset: available again.
    d.cli(&env, &["seat", "reset", "taker"]).ok();
    assert_eq!(queue_now(&env, &d)["seats"][0]["state"], "available");
    assert_eq!(d.stop(), Some(0), "{}", d.log_text());
    env.cleanup().await;
}

e2e_both!(seat_skills_from_the_cli, |env| {
    let d = Daemon::configure(&env);
    let s = d
        .cli(
            &env,
            &[
                "seat",
                "add",
                "op1",
                "--password",
                PASSWORD,
                "--skill",
                "hearing",
                "--json",
            ],
        )
        .ok()
        .json();
    assert_eq!(s["skills"], serde_json::json!(["hearing"]));
    let shown = d
        .cli(&env, &["seat", "skills", "op1", "--json"])
        .ok()
        .json();
    assert_eq!(shown["skills"], serde_json::json!(["hearing"]));
    d.cli(
        &env,
        &[
            "seat", "skills", "op1", "--skill", "english", "--skill", "hearing",
        ],
    )
    .ok();
    let list = d.cli(&env, &["seat", "list", "--json"]).ok().json();
    assert_eq!(list[0]["skills"], serde_json::json!(["english", "hearing"]));
    d.cli(&env, &["seat", "skills", "op1", "--clear"]).ok();
    let shown = d
        .cli(&env, &["seat", "skills", "op1", "--json"])
        .ok()
        .json();
    assert_eq!(shown["skills"], serde_json::json!([]));
    // Bad input names the field and changes nothing.
    let bad = d.cli(
        &env,
        &["seat", "skills", "op1", "--skill", "Hearing Option"],
    );
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--skill"), "{}", bad.stderr);
    let unknown = d.cli(&env, &["seat", "skills", "nobody"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
});
