//! Network faults on the call path (issue #10 "Faults"), with real peers on loopback: a lost
//! ACK, a lost BYE on either leg, CANCEL before, around and crossing the seat's answer, 5 %
//! packet loss on both legs, and an operator's softphone killed mid-call. Each test checks
//! the counting invariant (SPEC §3) through `calls --json` — no loss, no duplicate, nothing
//! billable that should not be — and that no call, relay port or seat is left behind.
//!
//! SIP timers are shortened (`sip.t1_ms = 100`, `t2_ms = 400`: 64·T1 = 6.4 s) so that the
//! give-up timers run in seconds; the spacing checks have generous tolerances (correctness,
//! not performance).

mod common;

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::calls::*;
use common::peers::{call_ids, sipp_trace, trace_msgs, Daemon, TraceMsg, OPEN};
use common::Env;

/// T1 100 ms, T2 400 ms: 64·T1 = 6.4 s.
const FAST_TIMERS: [(&str, &str); 2] = [
    ("SMARTDESK__SIP__T1_MS", "100"),
    ("SMARTDESK__SIP__T2_MS", "400"),
];
const T1: f64 = 0.1;
const T2: f64 = 0.4;

/// Seconds between consecutive messages.
fn gaps(msgs: &[&TraceMsg]) -> Vec<f64> {
    msgs.windows(2).map(|w| w[1].at - w[0].at).collect()
}

/// Checks retransmission spacing against RFC 3261's doubling from T1 capped at T2 (§17.1.2.2
/// Timer E, §13.3.1.4 for 2xx): each gap within [0.5×, 2.5× + 150 ms] of the expected one.
fn assert_t1_t2_schedule(what: &str, copies: &[&TraceMsg]) {
    let g = gaps(copies);
    let mut expected = T1;
    for (i, gap) in g.iter().enumerate() {
        assert!(
            *gap >= expected * 0.5 && *gap <= expected * 2.5 + 0.15,
            "{what}: gap {i} is {gap:.3} s, expected about {expected:.3} s (all gaps: {g:.3?})"
        );
        expected = (expected * 2.0).min(T2);
    }
}

/// The call rows, the carrier's trace, and the invariant for one carrier SIPp: every call
/// that got a 18x or 2xx to its INVITE has one billable row; no row for a call never placed.
fn counted(env: &Env, d: &Daemon, label: &str) -> Vec<serde_json::Value> {
    let msgs = trace_msgs(env.dir.path(), label);
    let reached = call_ids(&msgs, |m| {
        !m.sent && m.cseq.ends_with("INVITE") && m.status().is_some_and(|s| (101..300).contains(&s))
    });
    let placed = call_ids(&msgs, |m| m.sent && m.method() == Some("INVITE"));
    let calls = settled_calls(env, d);
    assert_counted_once(&calls, &reached, &placed);
    calls
}

/// After the call: nothing in progress, every relay port back, op1 not stuck on a call.
fn assert_released(env: &Env, d: &Daemon) {
    let status = idle_status(env, d, Duration::from_secs(20));
    assert_eq!(
        status["calls"].as_array().map(Vec::len),
        Some(0),
        "calls left in progress: {status:#}\n{}",
        d.log_text()
    );
    assert_eq!(status["media"]["rtp_ports_in_use"], 0, "{status:#}");
    let state = seat_state(&status, "op1");
    assert!(
        ["available", "wrap_up", "offline"].contains(&state.as_str()),
        "seat op1 left {state}"
    );
    // The relay ports are reusable: every one of them binds again.
    let (lo, hi) = (d.rtp_base, d.rtp_base + 39);
    let busy: Vec<u16> = (lo..=hi)
        .filter(|p| UdpSocket::bind(("127.0.0.1", *p)).is_err())
        .collect();
    assert!(busy.is_empty(), "relay ports still bound: {busy:?}");
}

e2e_both!(lost_ack_retransmits_the_200_then_byes_both_legs, |env| {
    let d = setup_with(&env, OPEN, &FAST_TIMERS);
    let (a, b) = media_sockets();
    let (mut phone, _) = seat(&env, &d, "seat", "seat_answer.xml", port(&b));
    let mut call = carrier(&env, &d, "carrier_no_ack.xml", port(&a), 0);
    both_succeed(&env, &d, &mut call, &mut phone, "seat");
    let msgs = trace_msgs(env.dir.path(), "carrier");
    let oks: Vec<&TraceMsg> = msgs
        .iter()
        .filter(|m| !m.sent && m.status() == Some(200) && m.cseq.ends_with("INVITE"))
        .collect();
    let bye = msgs
        .iter()
        .find(|m| !m.sent && m.method() == Some("BYE"))
        .expect("BYE to the carrier");
    // 64·T1 = 6.4 s: retransmissions at 0.1, 0.3, 0.7, then every 0.4 s — 17 copies.
    assert!(
        (12..=20).contains(&(oks.len() - 1)),
        "{} retransmissions of the 200",
        oks.len() - 1
    );
    assert_t1_t2_schedule("200 retransmissions", &oks);
    let after = bye.at - oks[0].at;
    assert!(
        (64.0 * T1 - 0.3..64.0 * T1 + 3.0).contains(&after),
        "BYE {after:.3} s after the first 200, expected 64·T1 = {:.1} s",
        64.0 * T1
    );
    // The seat got its ACK (the dialog is confirmed, §13.3.1.4) and the BYE.
    let seat = trace_msgs(env.dir.path(), "seat");
    let got = |m: &str| seat.iter().any(|x| !x.sent && x.method() == Some(m));
    assert!(got("ACK") && got("BYE"), "seat: {seat:?}");
    let calls = counted(&env, &d, "carrier");
    assert_eq!(calls.len(), 1, "{calls:?}");
    // The seat answered but the caller never confirmed the session: `failed` (the seat's
    // answer time is kept), and billable like every call that reached the number.
    assert_eq!(calls[0]["outcome"], "failed", "{calls:?}");
    assert!(!calls[0]["answered_at"].is_null(), "{calls:?}");
    assert_released(&env, &d);
});

/// One answered call in which `deaf` ("seat" or "carrier") never answers the BYE: Timer E
/// retransmits it (T1 doubling to T2), Timer F (64·T1) gives up, and the dialog and its ports
/// are freed. The seat runs `seat_scenario` holding `seat_hold_ms`, the carrier
/// `carrier_scenario` holding `carrier_hold_ms`; a deaf peer stays 9 s, longer than Timer F.
fn lost_bye(
    env: &Env,
    (seat_scenario, seat_hold_ms): (&str, &str),
    (carrier_scenario, carrier_hold_ms): (&str, u32),
    deaf: &str,
) {
    let d = setup_with(env, OPEN, &FAST_TIMERS);
    let (a, b) = media_sockets();
    let (mut phone, _) = seat_opts(
        env,
        &d,
        "seat",
        seat_scenario,
        port(&b),
        &["-d", seat_hold_ms, "-m", "1"],
    );
    let mut call = carrier(env, &d, carrier_scenario, port(&a), carrier_hold_ms);
    both_succeed(env, &d, &mut call, &mut phone, "seat");
    let msgs = trace_msgs(env.dir.path(), deaf);
    let byes: Vec<&TraceMsg> = msgs
        .iter()
        .filter(|m| !m.sent && m.method() == Some("BYE"))
        .collect();
    assert!(
        (12..=20).contains(&(byes.len().saturating_sub(1))),
        "{} BYE retransmissions to {deaf}:\n{}",
        byes.len().saturating_sub(1),
        sipp_trace(env.dir.path(), deaf)
    );
    assert_t1_t2_schedule("BYE retransmissions", &byes);
    let calls = counted(env, &d, "carrier");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "answered", "{calls:?}");
    assert!(!calls[0]["ended_at"].is_null());
    assert_released(env, &d);
}

e2e_both!(seat_ignoring_bye_is_released_after_timer_f, |env| {
    // The carrier hangs up after 1 s; the seat is deaf.
    lost_bye(
        &env,
        ("seat_ignore_bye.xml", "9000"),
        ("carrier_call.xml", 1000),
        "seat",
    );
});

e2e_both!(carrier_ignoring_bye_is_released_after_timer_f, |env| {
    // The seat hangs up after 1 s; the carrier is deaf.
    lost_bye(
        &env,
        ("seat_hangup.xml", "1000"),
        ("carrier_ignore_bye.xml", 9000),
        "carrier",
    );
});

/// One call with `carrier_scenario` against a seat running `seat_scenario`; the carrier must
/// succeed; the seat may never see the call (the CANCEL won the race) and is then stopped.
fn cancel_race(
    env: &Env,
    d: &Daemon,
    carrier_scenario: &str,
    cancel_after_ms: u32,
    seat_scenario: &str,
) -> (Vec<serde_json::Value>, Vec<TraceMsg>) {
    let (a, b) = media_sockets();
    let (mut phone, _) = seat(env, d, "seat", seat_scenario, port(&b));
    let mut call = carrier(env, d, carrier_scenario, port(&a), cancel_after_ms);
    assert_eq!(
        call.wait(Duration::from_secs(30)),
        Some(0),
        "{}\n{}\n{}",
        sipp_trace(env.dir.path(), "carrier"),
        sipp_trace(env.dir.path(), "seat"),
        d.log_text()
    );
    let calls = counted(env, d, "carrier");
    assert_released(env, d);
    phone.wait(Duration::from_secs(3));
    (calls, trace_msgs(env.dir.path(), "seat"))
}

e2e_both!(cancel_before_any_180_is_abandoned_once, |env| {
    let d = setup_with(&env, OPEN, &FAST_TIMERS);
    let (calls, _) = cancel_race(
        &env,
        &d,
        "carrier_cancel_early.xml",
        0,
        "seat_ring_cancel.xml",
    );
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "abandoned", "{calls:?}");
});

e2e_both!(cancel_around_the_seats_180_is_abandoned_once, |env| {
    let d = setup_with(&env, OPEN, &FAST_TIMERS);
    // CANCEL at once on the 183: it meets the seat's INVITE and 180 on the way.
    let (calls, seat) = cancel_race(&env, &d, "carrier_cancel_at.xml", 0, "seat_ring_cancel.xml");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "abandoned", "{calls:?}");
    // If the seat's phone rang, it was cancelled (and its 487 acknowledged).
    if seat.iter().any(|m| !m.sent && m.method() == Some("INVITE")) {
        let got = |m: &str| seat.iter().any(|x| !x.sent && x.method() == Some(m));
        assert!(got("CANCEL") && got("ACK"), "seat: {seat:?}");
    }
});

e2e_both!(seat_answer_crossing_the_cancel_gets_ack_and_bye, |env| {
    let d = setup_with(&env, OPEN, &FAST_TIMERS);
    let (calls, seat) = cancel_race(
        &env,
        &d,
        "carrier_cancel_at.xml",
        300,
        "seat_cancel_crossing.xml",
    );
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "abandoned", "{calls:?}");
    assert!(calls[0]["answered_at"].is_null(), "{calls:?}");
    // The seat's 200 after our CANCEL: ACKed, then BYE (RFC 3261 §9.1, §15).
    let mut got: Vec<&str> = seat
        .iter()
        .filter(|m| !m.sent)
        .filter_map(TraceMsg::method)
        .collect();
    got.dedup();
    assert_eq!(
        got,
        ["INVITE", "CANCEL", "ACK", "BYE"],
        "seat: {}\n{}",
        sipp_trace(env.dir.path(), "seat"),
        d.log_text()
    );
});

e2e_both!(caller_cancel_crossing_our_200_is_answered_once, |env| {
    let d = setup_with(&env, OPEN, &FAST_TIMERS);
    let (calls, _) = cancel_race(
        &env,
        &d,
        "carrier_cancel_crossing.xml",
        500,
        "seat_answer.xml",
    );
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "answered", "{calls:?}");
});

e2e_both!(
    five_percent_loss_on_both_legs_counts_each_call_once,
    |env| {
        let vars = [
            FAST_TIMERS[0],
            FAST_TIMERS[1],
            ("SMARTDESK__ACD__WRAP_UP_MAX_S", "0"),
            ("SMARTDESK__MEDIA__MEDIA_TIMEOUT_S", "10"),
        ];
        let mut d = setup_with(&env, OPEN, &vars);
        // Seats are read at start: add five more, then restart.
        let extra = ["op2", "op3", "op4", "op5", "op6"];
        for name in extra {
            d.cli(&env, &["seat", "add", name, "--password", SEAT_PASSWORD])
                .ok();
        }
        assert_eq!(d.stop(), Some(0));
        d.start_with(&env, OPEN, &vars);
        let (a, b) = media_sockets();
        // One SIPp phone that drops 5 % of what it sends and receives, registered as 6 seats.
        let (mut phone, phone_port) = seat_opts(
            &env,
            &d,
            "seat",
            "seat_answer.xml",
            port(&b),
            &["-m", "1000", "-lost", "5"],
        );
        for name in extra {
            login_as(
                &env,
                &d,
                &format!("login-{name}"),
                name,
                SEAT_PASSWORD,
                phone_port,
            );
        }
        let mut carrier = carrier_opts(
            &env,
            &d,
            "carrier",
            "carrier_call.xml",
            NUMBER,
            port(&a),
            &["-d", "500", "-r", "5", "-m", "120", "-lost", "5"],
        );
        carrier.wait(Duration::from_secs(120));
        let msgs = trace_msgs(env.dir.path(), "carrier");
        let placed: BTreeSet<String> = call_ids(&msgs, |m| m.sent && m.method() == Some("INVITE"));
        assert_eq!(placed.len(), 120, "the carrier placed every call");
        let status = idle_status(&env, &d, Duration::from_secs(30));
        assert_eq!(
            status["calls"].as_array().map(Vec::len),
            Some(0),
            "calls stuck after 5 % loss: {status:#}"
        );
        assert_eq!(status["media"]["rtp_ports_in_use"], 0, "{status:#}");
        let calls = counted(&env, &d, "carrier");
        let answered = calls.iter().filter(|c| c["outcome"] == "answered").count();
        assert!(
            answered >= 100,
            "{answered} of {} calls answered",
            calls.len()
        );
        for s in status["seats"].as_array().into_iter().flatten() {
            assert!(
                ["available", "wrap_up"].contains(&s["state"].as_str().unwrap_or_default()),
                "seat stuck: {s}"
            );
        }
        // The loss was real: the carrier saw messages repeated (its own and smartdesk's
        // retransmissions after drops).
        let mut seen = std::collections::BTreeMap::new();
        for m in &msgs {
            *seen
                .entry((
                    m.sent,
                    m.call_id.as_str(),
                    m.start.as_str(),
                    m.cseq.as_str(),
                ))
                .or_insert(0usize) += 1;
        }
        let repeats: usize = seen.values().map(|n| n - 1).sum();
        assert!(repeats > 0, "no retransmission at all: was anything lost?");
        eprintln!(
        "5 % loss: {} placed, {} rows, {answered} answered, {repeats} retransmissions in {} carrier messages",
        placed.len(),
        calls.len(),
        msgs.len()
    );
        phone.stop(Duration::from_secs(1));
    }
);

/// RTP every 20 ms from `from` to `to` until `stop` is set, at most `limit`.
fn talk(from: UdpSocket, to: u16, ssrc: u32, stop: Arc<AtomicBool>, limit: Duration) {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut seq: u16 = 0;
        while !stop.load(Ordering::Relaxed) && started.elapsed() < limit {
            let mut p = [0xffu8; 172];
            p[0] = 0x80;
            p[2..4].copy_from_slice(&seq.to_be_bytes());
            p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
            p[8..12].copy_from_slice(&ssrc.to_be_bytes());
            let _ = from.send_to(&p, ("127.0.0.1", to));
            seq = seq.wrapping_add(1);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}

e2e_both!(softphone_killed_mid_call_ends_the_call_once, |env| {
    let d = setup_with(
        &env,
        OPEN,
        &[
            FAST_TIMERS[0],
            FAST_TIMERS[1],
            ("SMARTDESK__MEDIA__MEDIA_TIMEOUT_S", "5"),
        ],
    );
    let (a, b) = media_sockets();
    let (mut phone, _) = seat(&env, &d, "seat", "seat_answer.xml", port(&b));
    // The caller keeps talking until hung up; the phone talks until it dies.
    let mut call = carrier(&env, &d, "carrier_wait_bye.xml", port(&a), 0);
    let relay_a = relay_port(&env, "carrier", port(&a), Duration::from_secs(10));
    let relay_b = relay_port(&env, "seat", port(&b), Duration::from_secs(10));
    let caller_stop = Arc::new(AtomicBool::new(false));
    let phone_stop = Arc::new(AtomicBool::new(false));
    talk(
        a.try_clone().expect("a"),
        relay_a,
        0x1111,
        caller_stop.clone(),
        Duration::from_secs(40),
    );
    talk(
        b.try_clone().expect("b"),
        relay_b,
        0x2222,
        phone_stop.clone(),
        Duration::from_secs(40),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !trace_msgs(env.dir.path(), "seat")
        .iter()
        .any(|m| !m.sent && m.method() == Some("ACK"))
    {
        assert!(Instant::now() < deadline, "the seat never got its ACK");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    // kill -9 of the operator's softphone: its signalling and its media stop.
    phone.kill9();
    phone_stop.store(true, Ordering::Relaxed);
    let killed = Instant::now();
    // The media timeout (5 s of silence from the phone) ends the call: the caller gets BYE.
    let code = call.wait(Duration::from_secs(20));
    caller_stop.store(true, Ordering::Relaxed);
    assert_eq!(
        code,
        Some(0),
        "the caller was not released\n{}\n{}",
        sipp_trace(env.dir.path(), "carrier"),
        d.log_text()
    );
    eprintln!(
        "softphone killed: caller released after {:.1} s",
        killed.elapsed().as_secs_f64()
    );
    let calls = counted(&env, &d, "carrier");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "answered", "{calls:?}");
    assert_eq!(calls[0]["seat"], "op1");
    // Still registered (its registration has not expired): wrap-up or available.
    assert_released(&env, &d);
});
