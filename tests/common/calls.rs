//! A contractor, its number and a seat, the daemon, the operator's phone and the carrier as
//! SIPp processes: the pieces every call-placing end-to-end test is built from.

use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use super::peers::{scenario, sipp, sipp_trace, Daemon, Proc};
use super::Env;

pub const NUMBER: &str = "0312345678";
pub const SEAT_PASSWORD: &str = "op1-secret-pw";

/// A contractor on plan SD100 from `start`, with `number` assigned if given; its id.
pub fn contractor(env: &Env, d: &Daemon, name: &str, start: &str, number: Option<&str>) -> i64 {
    contractor_greeting(env, d, name, "お電話ありがとうございます。", start, number)
}

/// [`contractor`] answered with `greeting`.
pub fn contractor_greeting(
    env: &Env,
    d: &Daemon,
    name: &str,
    greeting: &str,
    start: &str,
    number: Option<&str>,
) -> i64 {
    let c = d
        .cli(
            env,
            &[
                "contractor",
                "add",
                "--name",
                name,
                "--greeting",
                greeting,
                "--plan",
                "SD100",
                "--start",
                start,
                "--json",
            ],
        )
        .ok()
        .json();
    let id = c["id"].as_i64().expect("contractor id");
    if let Some(n) = number {
        d.cli(env, &["number", "assign", &id.to_string(), n]).ok();
    }
    id
}

/// A contractor with a number and a seat, and the daemon running with the clock at `clock`.
pub fn setup(env: &Env, clock: &str) -> Daemon {
    setup_with(env, clock, &[])
}

/// [`setup`] with extra environment variables for the daemon (e.g. short SIP timers:
/// `SMARTDESK__SIP__T1_MS`).
pub fn setup_with(env: &Env, clock: &str, vars: &[(&str, &str)]) -> Daemon {
    let mut d = Daemon::configure(env);
    contractor(env, &d, "株式会社ABC", "2026-11-01", Some(NUMBER));
    d.cli(env, &["seat", "add", "op1", "--password", SEAT_PASSWORD])
        .ok();
    d.start_with(env, clock, vars);
    d
}

/// The seat's phone: a SIPp UAS on `port` running `scenario_file`, registered via a second
/// SIPp that logs in with digest auth (Contact = that port).
pub fn seat(env: &Env, d: &Daemon, label: &str, scenario_file: &str, bport: u16) -> (Proc, u16) {
    seat_opts(
        env,
        d,
        label,
        scenario_file,
        bport,
        &["-d", "1500", "-m", "1"],
    )
}

/// [`seat`] with SIPp options `opts` instead of one call holding 1.5 s (e.g. `-d`, `-m`,
/// `-lost`).
pub fn seat_opts(
    env: &Env,
    d: &Daemon,
    label: &str,
    scenario_file: &str,
    bport: u16,
    opts: &[&str],
) -> (Proc, u16) {
    let port = super::peers::free_udp_port();
    let mut args = vec![
        "-sf".to_owned(),
        scenario(scenario_file).to_str().expect("path").to_owned(),
        "-p".to_owned(),
        port.to_string(),
        "-key".to_owned(),
        "bport".to_owned(),
        bport.to_string(),
        "-key".to_owned(),
        "codec".to_owned(),
        "0".to_owned(),
    ];
    args.extend(opts.iter().map(|o| (*o).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let uas = sipp(env.dir.path(), label, &d.target(), &args);
    login(env, d, port);
    (uas, port)
}

pub fn login(env: &Env, d: &Daemon, seat_port: u16) {
    login_as(env, d, "login", "op1", SEAT_PASSWORD, seat_port);
}

/// Seat `name` logs in (REGISTER, 401, digest credentials, 200) with its Contact on
/// `seat_port`, through a SIPp traced under `label`; fails the test otherwise.
pub fn login_as(env: &Env, d: &Daemon, label: &str, name: &str, password: &str, seat_port: u16) {
    let mut reg = sipp(
        env.dir.path(),
        label,
        &d.target(),
        &[
            "-sf",
            scenario("seat_login.xml").to_str().expect("path"),
            "-s",
            name,
            "-au",
            name,
            "-ap",
            password,
            "-key",
            "seat_port",
            &seat_port.to_string(),
            "-m",
            "1",
        ],
    );
    assert_eq!(
        reg.wait(Duration::from_secs(20)),
        Some(0),
        "login of {name} failed\n{}\n{}",
        sipp_trace(env.dir.path(), label),
        d.log_text()
    );
}

pub fn carrier(env: &Env, d: &Daemon, scenario_file: &str, aport: u16, hold_ms: u32) -> Proc {
    carrier_as(env, d, "carrier", scenario_file, NUMBER, aport, hold_ms)
}

/// One call from the carrier's SIPp (traced under `label`) running `scenario_file` to
/// `number`, its media port `aport`, from caller 09012345678, holding `hold_ms` where the
/// scenario pauses.
pub fn carrier_as(
    env: &Env,
    d: &Daemon,
    label: &str,
    scenario_file: &str,
    number: &str,
    aport: u16,
    hold_ms: u32,
) -> Proc {
    let hold = hold_ms.to_string();
    carrier_opts(
        env,
        d,
        label,
        scenario_file,
        number,
        aport,
        &["-d", &hold, "-m", "1"],
    )
}

/// [`carrier_as`] with SIPp options `opts` instead of one call (e.g. `-d`, `-r`, `-m`,
/// `-lost`).
pub fn carrier_opts(
    env: &Env,
    d: &Daemon,
    label: &str,
    scenario_file: &str,
    number: &str,
    aport: u16,
    opts: &[&str],
) -> Proc {
    let aport = aport.to_string();
    let path = scenario(scenario_file);
    let mut args = vec![
        "-sf",
        path.to_str().expect("path"),
        "-s",
        number,
        "-key",
        "aport",
        &aport,
        "-key",
        "caller",
        "09012345678",
        "-key",
        "privacy",
        "X-Test: 1",
    ];
    args.extend_from_slice(opts);
    sipp(env.dir.path(), label, &d.target(), &args)
}

/// The relay port smartdesk put into SDP it sent to a SIPp (the `m=audio` port that is not
/// `own`), once it shows in that SIPp's message trace.
pub fn relay_port(env: &Env, label: &str, own: u16, within: Duration) -> u16 {
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

/// `calls --json` until every call has an outcome (the row updates are written behind the
/// call), at most 10 s.
pub fn settled_calls(env: &Env, d: &Daemon) -> Vec<serde_json::Value> {
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

/// Waits for the carrier's and the seat's SIPp to finish and requires both to succeed,
/// showing both traces and the daemon's log otherwise.
pub fn both_succeed(env: &Env, d: &Daemon, call: &mut Proc, phone: &mut Proc, seat_label: &str) {
    let status = (
        call.wait(Duration::from_secs(30)),
        phone.wait(Duration::from_secs(10)),
    );
    assert_eq!(
        status,
        (Some(0), Some(0)),
        "{}\n{}\n{}",
        sipp_trace(env.dir.path(), "carrier"),
        sipp_trace(env.dir.path(), seat_label),
        d.log_text()
    );
}

/// One call between a SIPp seat running `seat_scenario` and a SIPp carrier running
/// `carrier_scenario` (keys: the number and the caller's media port); both must succeed.
/// Returns the settled call rows.
pub fn one_call(
    env: &Env,
    d: &Daemon,
    seat_scenario: &str,
    carrier_scenario: &str,
) -> Vec<serde_json::Value> {
    let (a, b) = media_sockets();
    let (mut phone, _) = seat(env, d, "seat", seat_scenario, port(&b));
    let mut call = sipp(
        env.dir.path(),
        "carrier",
        &d.target(),
        &[
            "-sf",
            scenario(carrier_scenario).to_str().expect("path"),
            "-s",
            NUMBER,
            "-key",
            "aport",
            &port(&a).to_string(),
            "-m",
            "1",
        ],
    );
    both_succeed(env, d, &mut call, &mut phone, "seat");
    settled_calls(env, d)
}

pub fn media_sockets() -> (UdpSocket, UdpSocket) {
    let a = UdpSocket::bind("127.0.0.1:0").expect("a");
    let b = UdpSocket::bind("127.0.0.1:0").expect("b");
    (a, b)
}

pub fn port(s: &UdpSocket) -> u16 {
    s.local_addr().expect("addr").port()
}

/// Call-IDs of the trace's messages that were `direction` ("sent" / "received") and
/// contain `needle`.
fn call_ids_of(trace: &str, direction: &str, needle: &str) -> BTreeSet<String> {
    let direction = format!("message {direction}");
    trace
        .split("----------------------------------------------- ")
        .filter(|block| block.contains(&direction) && block.contains(needle))
        .filter_map(|block| {
            block
                .lines()
                .find_map(|l| l.strip_prefix("Call-ID: "))
                .map(|c| c.trim().to_owned())
        })
        .collect()
}

/// Call-IDs for which the carrier's SIPp received a final response with `code`, from its
/// message trace.
pub fn call_ids_with(trace: &str, code: &str) -> BTreeSet<String> {
    call_ids_of(trace, "received", &format!("SIP/2.0 {code} "))
}

/// Every Call-ID the carrier sent an INVITE for.
pub fn call_ids_sent(trace: &str) -> BTreeSet<String> {
    call_ids_of(trace, "sent", "\nINVITE sip:")
}

/// A steady carrier load: SIPp (traced under `label`) places `count` calls at `rate` per
/// second to [`NUMBER`] running `scenario_file` (late offer, caller 09012345678), giving an
/// INVITE up to 8 retransmissions (it may have to wait for a restarted daemon).
pub fn carrier_load(
    env: &Env,
    d: &Daemon,
    label: &str,
    scenario_file: &str,
    rate: u32,
    count: u32,
) -> Proc {
    sipp(
        env.dir.path(),
        label,
        &d.target(),
        &[
            "-sf",
            scenario(scenario_file).to_str().expect("path"),
            "-s",
            NUMBER,
            "-key",
            "aport",
            "40000",
            "-key",
            "caller",
            "09012345678",
            "-r",
            &rate.to_string(),
            "-m",
            &count.to_string(),
            "-max_retrans",
            "8",
        ],
    )
}

/// The counting invariant (SPEC §3): every call in `reached` (the carrier got an answer
/// that only a counted call gets) has exactly one row, no call has two, every row is a call
/// in `placed` (the carrier sent its INVITE), and every row is billable (an assigned number
/// of a contract in force). Returns the rows by Call-ID.
pub fn assert_counted_once(
    calls: &[serde_json::Value],
    reached: &BTreeSet<String>,
    placed: &BTreeSet<String>,
) -> BTreeMap<String, serde_json::Value> {
    let mut rows: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut doubled = Vec::new();
    for c in calls {
        let id = c["call_id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(c["billable"], true, "{c}");
        if rows.insert(id.clone(), c.clone()).is_some() {
            doubled.push(id);
        }
    }
    assert!(doubled.is_empty(), "counted twice: {doubled:?}");
    let lost: Vec<_> = reached.iter().filter(|c| !rows.contains_key(*c)).collect();
    assert!(lost.is_empty(), "answered but not counted: {lost:?}");
    let invented: Vec<_> = rows.keys().filter(|c| !placed.contains(*c)).collect();
    assert!(
        invented.is_empty(),
        "rows for calls never placed: {invented:?}"
    );
    rows
}

/// `calls --live --json`: the calls in progress.
pub fn live_calls(env: &Env, d: &Daemon) -> Vec<serde_json::Value> {
    let v = d.cli(env, &["calls", "--live", "--json"]).ok().json();
    v.as_array().cloned().unwrap_or_default()
}

/// Polls `status --json` until no call is in progress and no relay port is held (timers
/// such as Timer F may still run), at most `within`; returns the last status.
pub fn idle_status(env: &Env, d: &Daemon, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let s = d.cli(env, &["status", "--json"]).ok().json();
        let idle =
            s["calls"].as_array().is_some_and(Vec::is_empty) && s["media"]["rtp_ports_in_use"] == 0;
        if idle || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The ACD state of seat `name` in `status --json`.
pub fn seat_state(status: &serde_json::Value, name: &str) -> String {
    status["seats"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .and_then(|s| s["state"].as_str())
        .unwrap_or("missing")
        .to_owned()
}

/// The queue log (offers, answers, declines, no-answers) of November 2026.
pub async fn queue_log(env: &Env) -> Vec<smartdesk::ledger::QueueEventRow> {
    let from = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
        .expect("date")
        .to_utc();
    let to = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .expect("date")
        .to_utc();
    env.ledger()
        .await
        .queue_events(from, to)
        .await
        .expect("queue log")
}
