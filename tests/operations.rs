//! Operations end to end (issue #9): the control socket (`status`, `calls --live`,
//! `call hangup`, `reload`) during real SIPp calls, SIGTERM with calls up, SIGHUP / reload
//! with a changed and with a broken profile, Prometheus metrics scraped and parsed, systemd
//! readiness / watchdog / stopping notifications, and the unit file verified.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::calls::{carrier_as, login};
use common::peers::{scenario, sipp, sipp_trace, Daemon, Proc, OPEN};
use common::Env;
use serde_json::Value;

const NUMBER: &str = "0312345678";
const SEAT_PASSWORD: &str = "op1-secret-pw";
const CALLER: &str = "09012345678";

/// A contractor with a number and a seat; the daemon configured (plus `extra` TOML) but not
/// started.
fn configure(env: &Env, extra: &str) -> Daemon {
    let d = Daemon::configure(env);
    let mut cfg = std::fs::read_to_string(&d.config).expect("config");
    // Nobody writes first-response records here: no wrap-up holds the seat between calls.
    cfg.push_str("\n[acd]\nwrap_up_max_s = 0\n");
    cfg.push_str(extra);
    std::fs::write(&d.config, cfg).expect("config");
    let c = d
        .cli(
            env,
            &[
                "contractor",
                "add",
                "--name",
                "株式会社ABC",
                "--greeting",
                "お電話ありがとうございます。",
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
    d
}

fn setup(env: &Env, extra: &str) -> Daemon {
    let mut d = configure(env, extra);
    d.start(env, OPEN);
    d
}

/// The operator's phone (SIPp UAS running `scenario_file`), logged in as op1.
fn seat(env: &Env, d: &Daemon, scenario_file: &str) -> Proc {
    seat_for(env, d, scenario_file, 1)
}

/// [`seat`] taking `calls` calls before it exits.
fn seat_for(env: &Env, d: &Daemon, scenario_file: &str, calls: u32) -> Proc {
    let port = common::peers::free_udp_port();
    let bport = common::peers::free_udp_port();
    let uas = sipp(
        env.dir.path(),
        "seat",
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
            "-m",
            &calls.to_string(),
        ],
    );
    login(env, d, port);
    uas
}

/// The carrier: `scenario_file` with the caller's number, holding `hold_ms` where it pauses.
fn carrier(env: &Env, d: &Daemon, scenario_file: &str, hold_ms: u32) -> Proc {
    let aport = common::peers::free_udp_port();
    carrier_as(env, d, "carrier", scenario_file, NUMBER, aport, hold_ms)
}

fn both_succeed(env: &Env, d: &Daemon, call: &mut Proc, phone: &mut Proc) {
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
}

/// `calls --live --json` until `pred` holds for the list, at most 15 s.
fn live_until(env: &Env, d: &Daemon, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = d.cli(env, &["calls", "--live", "--json"]);
        if r.code == 0 {
            let list = r.json().as_array().cloned().unwrap_or_default();
            if pred(&list) {
                return list;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} never seen; last: {} {}\n{}",
            r.stdout,
            r.stderr,
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn answered(list: &[Value]) -> bool {
    list.len() == 1 && list[0]["state"] == "answered"
}

/// `calls --json` from the ledger until every call has an outcome (at most 10 s).
fn settled_calls(env: &Env, d: &Daemon) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = d
            .cli(env, &["calls", "--month", "2026-11", "--json"])
            .ok()
            .json()
            .as_array()
            .cloned()
            .unwrap_or_default();
        if list.iter().all(|c| !c["outcome"].is_null()) || Instant::now() > deadline {
            return list;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status(env: &Env, d: &Daemon) -> Value {
    d.cli(env, &["status", "--json"]).ok().json()
}

fn sigterm(d: &Daemon) {
    let pid = d.proc.as_ref().expect("running").pid();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
}

fn sighup(d: &Daemon) {
    let pid = d.proc.as_ref().expect("running").pid();
    Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill");
}

/// An INVITE written by the test, and the final response's text (or "" after `within`).
fn invite_final(sock: &UdpSocket, port: u16, call_id: &str, within: Duration) -> String {
    let me = sock.local_addr().expect("addr");
    let sdp = format!(
        "v=0\r\no=c 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
        ip = me.ip()
    );
    let msg = format!(
        "INVITE sip:{NUMBER}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:0901111222@{ip}>;tag=f-{call_id}\r\nTo: <sip:{NUMBER}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@{me}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len(),
        ip = me.ip()
    );
    sock.send_to(msg.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("SIP/2.0 ") && !text.starts_with("SIP/2.0 1") {
                return text;
            }
        }
    }
    String::new()
}

e2e_both!(status_and_live_calls_during_a_real_call, |env| {
    let mut d = configure(&env, "");
    // Info level, as in production: the caller's number must not appear in the log.
    d.start_with(&env, OPEN, &[("SMARTDESK_LOG", "info")]);
    let st = status(&env, &d);
    assert_eq!(st["state"], "running");
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));
    assert!(st["uptime_s"].is_u64());
    assert_eq!(st["hours"]["open"], true, "{st}");
    assert_eq!(st["hours"]["reason"], "weekday_hours");
    assert!(st["hours"]["next_change"].is_string());
    let listeners = st["sip"]["listeners"].as_array().expect("listeners");
    assert!(listeners
        .iter()
        .any(|l| l["transport"] == "udp" && l["address"] == d.target()));
    assert_eq!(st["trunks"][0]["name"], "test-carrier");
    assert!(
        st["trunks"][0]["last_options_s"].is_u64(),
        "the harness sent OPTIONS: {st}"
    );
    assert_eq!(st["ledger"]["healthy"], true);
    assert!(st["ledger"]["backend"].is_string());
    assert_eq!(st["outbox_backlog"], 0, "no report waiting");
    assert_eq!(st["reports"]["failed"], 0);
    assert_eq!(st["alerts"], serde_json::json!([]));
    assert_eq!(st["queue_depth"], 0);
    assert_eq!(st["calls"].as_array().map(Vec::len), Some(0));
    assert_eq!(st["today"]["calls"], 0);

    let mut phone = seat(&env, &d, "seat_answer.xml");
    let st = status(&env, &d);
    assert_eq!(st["seats"][0]["name"], "op1", "{st}");
    assert_eq!(st["seats"][0]["state"], "available");

    let mut call = carrier(&env, &d, "carrier_call.xml", 3000);
    let live = live_until(&env, &d, "an answered call", answered);
    let c = &live[0];
    assert_eq!(c["contractor"], "株式会社ABC", "{c}");
    assert_eq!(c["caller"], CALLER);
    assert_eq!(c["seat"], "op1");
    assert_eq!(c["trunk"], "test-carrier");
    assert!(c["id"].as_i64().is_some_and(|i| i > 0), "{c}");
    assert!(c["duration_s"].is_u64());
    let st = status(&env, &d);
    assert_eq!(st["calls"].as_array().map(Vec::len), Some(1), "{st}");
    assert_eq!(st["calls"][0]["state"], "answered");
    assert_eq!(st["seats"][0]["state"], "on_call");
    assert_eq!(st["today"]["calls"], 1);
    assert_eq!(st["today"]["billable"], 1);
    let human = d.cli(&env, &["calls", "--live"]).ok().stdout;
    assert!(
        human.contains("株式会社ABC") && human.contains("op1"),
        "{human}"
    );
    let human = d.cli(&env, &["status"]).ok().stdout;
    assert!(human.contains("1 in progress"), "{human}");

    both_succeed(&env, &d, &mut call, &mut phone);
    live_until(&env, &d, "no call", |l| l.is_empty());
    let calls = settled_calls(&env, &d);
    assert_eq!(calls[0]["outcome"], "answered");
    let log = d.log_text();
    let ended = log
        .lines()
        .find(|l| l.contains("call ended"))
        .unwrap_or_else(|| panic!("no per-call line:\n{log}"));
    assert!(
        ended.contains("outcome=\"answered\"") || ended.contains("outcome=answered"),
        "{ended}"
    );
    assert!(
        !log.contains("9012345678"),
        "caller number in the info log:\n{log}"
    );
    assert_eq!(d.stop(), Some(0), "{}", d.log_text());
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hangup_ends_an_answered_call_on_both_legs() {
    let env = Env::new(common::Db::Sqlite).await;
    let d = setup(&env, "");
    let mut phone = seat(&env, &d, "seat_answer.xml");
    // The carrier would hold forever: only our BYE ends its scenario.
    let mut call = carrier(&env, &d, "carrier_wait_bye.xml", 0);
    let live = live_until(&env, &d, "an answered call", answered);
    let id = live[0]["id"].as_i64().expect("id").to_string();
    let r = d.cli(&env, &["call", "hangup", "999999"]);
    assert_eq!(r.code, 2, "unknown call: {} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no such call"), "{}", r.stderr);
    let r = d.cli(&env, &["call", "hangup", "x"]);
    assert_eq!(r.code, 2);
    d.cli(&env, &["call", "hangup", &id]).ok();
    both_succeed(&env, &d, &mut call, &mut phone);
    let calls = settled_calls(&env, &d);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["outcome"], "answered");
    assert!(d.log_text().contains("hung up by an admin"));
    env.cleanup().await;
}

e2e_both!(sigterm_lets_calls_finish_and_refuses_new_ones, |env| {
    let mut d = configure(&env, "");
    d.start_with(&env, OPEN, &[("SMARTDESK__DAEMON__SHUTDOWN_GRACE_S", "30")]);
    let mut phone = seat(&env, &d, "seat_answer.xml");
    let mut call = carrier(&env, &d, "carrier_call.xml", 3000);
    live_until(&env, &d, "an answered call", answered);
    sigterm(&d);
    // Draining: status still answers and says so; a new call is refused with 503.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let st = d.cli(&env, &["status", "--json"]);
        if st.code == 0 && st.json()["state"] == "draining" {
            let st = st.json();
            assert_eq!(st["calls"].as_array().map(Vec::len), Some(1), "{st}");
            break;
        }
        assert!(Instant::now() < deadline, "never draining: {}", st.stdout);
        std::thread::sleep(Duration::from_millis(50));
    }
    let carrier2 = UdpSocket::bind("127.0.0.1:0").expect("carrier2");
    let refused = invite_final(
        &carrier2,
        d.sip_port,
        "during-drain-1",
        Duration::from_secs(3),
    );
    assert!(refused.starts_with("SIP/2.0 503"), "{refused}");
    assert!(refused.contains("Retry-After: 10"), "{refused}");
    // The call in progress ends by itself, then the daemon exits 0.
    both_succeed(&env, &d, &mut call, &mut phone);
    let code = d
        .proc
        .as_mut()
        .expect("daemon")
        .wait(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{}", d.log_text());
    let calls = settled_calls(&env, &d);
    assert_eq!(calls.len(), 1, "the refused call is not counted: {calls:?}");
    assert_eq!(calls[0]["outcome"], "answered");
    assert_eq!(calls[0]["billable"], true);
    // Not running any more: live commands say so (exit 3).
    let r = d.cli(&env, &["status"]);
    assert_eq!(r.code, 3, "{} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not running"), "{}", r.stderr);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hangs_up_calls_left_after_the_grace_period() {
    let env = Env::new(common::Db::Sqlite).await;
    let mut d = configure(&env, "");
    d.start_with(&env, OPEN, &[("SMARTDESK__DAEMON__SHUTDOWN_GRACE_S", "1")]);
    let mut phone = seat(&env, &d, "seat_answer.xml");
    let mut call = carrier(&env, &d, "carrier_wait_bye.xml", 0);
    live_until(&env, &d, "an answered call", answered);
    sigterm(&d);
    // Both sides get our BYE once the grace period is over.
    both_succeed(&env, &d, &mut call, &mut phone);
    let code = d
        .proc
        .as_mut()
        .expect("daemon")
        .wait(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{}", d.log_text());
    let calls = settled_calls(&env, &d);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["outcome"], "answered");
    assert!(!calls[0]["ended_at"].is_null());
    assert!(d.log_text().contains("grace period over"));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_changed_profile_and_refuses_a_broken_one() {
    let env = Env::new(common::Db::Sqlite).await;
    let d = setup(&env, "");
    let trunk = env.dir.path().join("profiles/trunk.toml");
    let mut phone = seat_for(&env, &d, "seat_answer.xml", 2);
    let mut call = carrier(&env, &d, "carrier_call.xml", 2500);
    live_until(&env, &d, "an answered call", answered);

    // A changed profile, reloaded while a call is up: the call goes on.
    std::fs::write(
        &trunk,
        "[[trunk]]\nname = \"carrier-b\"\nsources = [\"127.0.0.1/32\"]\nnumber_format = \"national\"\n",
    )
    .expect("trunk");
    let r = d.cli(&env, &["reload", "--json"]).ok().json();
    assert_eq!(r["trunks"][0], "carrier-b", "{r}");
    let st = status(&env, &d);
    assert_eq!(st["trunks"][0]["name"], "carrier-b", "{st}");
    assert_eq!(st["calls"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        call.wait(Duration::from_secs(30)),
        Some(0),
        "{}",
        sipp_trace(env.dir.path(), "carrier")
    );
    assert_eq!(settled_calls(&env, &d)[0]["outcome"], "answered");

    // A broken profile: refused with its errors, the running one kept.
    std::fs::write(
        &trunk,
        "[[trunk]]\nname = \"carrier-c\"\nsources = [\"not-an-address\"]\nnumber_format = \"national\"\n",
    )
    .expect("trunk");
    let r = d.cli(&env, &["reload"]);
    assert_eq!(r.code, 2, "{} {}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("trunk.toml"),
        "names the file: {}",
        r.stderr
    );
    assert!(r.stderr.contains("kept"), "{}", r.stderr);
    sighup(&d);
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.log_text().matches("reload refused").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP not handled:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = status(&env, &d);
    assert_eq!(
        st["trunks"][0]["name"], "carrier-b",
        "old profile kept: {st}"
    );
    // Calls still routed under the kept profile (the same phone takes its second call).
    let mut call = carrier(&env, &d, "carrier_call.xml", 500);
    both_succeed(&env, &d, &mut call, &mut phone);

    // Service hours: a holiday added for the clock's date closes the service on reload.
    let mut cfg = std::fs::read_to_string(&d.config).expect("config");
    cfg.push_str("\n[hours]\nextra_holidays = [{ date = \"2026-11-25\", name = \"臨時休業\" }]\n");
    std::fs::write(&d.config, cfg).expect("config");
    std::fs::write(
        &trunk,
        "[[trunk]]\nname = \"carrier-b\"\nsources = [\"127.0.0.1/32\"]\nnumber_format = \"national\"\n",
    )
    .expect("trunk");
    d.cli(&env, &["reload"]).ok();
    let st = status(&env, &d);
    assert_eq!(st["hours"]["open"], false, "{st}");
    assert_eq!(st["hours"]["holiday"], "臨時休業");
    env.cleanup().await;
}

/// One scrape of `GET /metrics`: (status line, body).
fn scrape(port: u16) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").expect("head");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// Samples of a text exposition: name{labels} → value; panics on a malformed line.
fn parse_exposition(body: &str) -> Vec<(String, f64)> {
    body.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("line {l:?}"));
            let v: f64 = value.parse().unwrap_or_else(|_| panic!("value in {l:?}"));
            (series.to_owned(), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_and_parsed() {
    let env = Env::new(common::Db::Sqlite).await;
    let port = common::peers::free_sip_port();
    let d = setup(
        &env,
        &format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut phone = seat(&env, &d, "seat_answer.xml");
    let mut call = carrier(&env, &d, "carrier_call.xml", 500);
    both_succeed(&env, &d, &mut call, &mut phone);
    settled_calls(&env, &d);
    let (status_line, body) = scrape(port);
    assert!(status_line.contains("200"), "{status_line}");
    let samples = parse_exposition(&body);
    let get = |series: &str| {
        samples
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{series} missing:\n{body}"))
    };
    assert_eq!(get("smartdesk_calls_total{outcome=\"answered\"}"), 1.0);
    assert_eq!(get("smartdesk_calls_in_progress{state=\"answered\"}"), 0.0);
    assert_eq!(get("smartdesk_seats{state=\"available\"}"), 1.0);
    assert!(get("smartdesk_sip_requests_total{direction=\"in\",method=\"INVITE\"}") >= 1.0);
    assert!(get("smartdesk_sip_requests_total{direction=\"out\",method=\"INVITE\"}") >= 1.0);
    assert!(get("smartdesk_sip_responses_total{direction=\"out\",class=\"2xx\"}") >= 1.0);
    assert_eq!(get("smartdesk_queue_wait_seconds_count"), 1.0);
    assert_eq!(
        get("smartdesk_outbox_backlog"),
        0.0,
        "read from the ledger at start"
    );
    assert_eq!(get("smartdesk_outbox_failed"), 0.0);
    assert!(
        get("smartdesk_ledger_write_seconds_count") >= 2.0,
        "insert and outcome"
    );
    assert!(samples
        .iter()
        .any(|(s, _)| s == "smartdesk_sip_transaction_timeouts_total"));
    assert!(samples
        .iter()
        .any(|(s, _)| s == "smartdesk_rtp_packets_relayed_total"));
    // Anything else is not found; a non-loopback listener is refused by check-config.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("write");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    let bad = env.dir.path().join("bad.toml");
    std::fs::write(&bad, "[metrics]\nlisten = \"0.0.0.0:9100\"\n").expect("bad");
    let r = env.run(&["--config", bad.to_str().expect("path"), "check-config"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("metrics.listen"), "{}", r.stderr);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_socket_is_private_and_speaks_json_lines() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new(common::Db::Sqlite).await;
    let r = env.run(&["calls", "--live"]);
    assert_eq!(r.code, 3, "no daemon yet: {} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not running"), "{}", r.stderr);
    let d = setup(&env, "");
    let path = env.dir.path().join("control.sock");
    let mode = std::fs::metadata(&path)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let mut s = UnixStream::connect(&path).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut ask = |line: &str| -> Value {
        s.write_all(line.as_bytes()).expect("write");
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while s.read(&mut byte).expect("read") == 1 && byte[0] != b'\n' {
            buf.push(byte[0]);
        }
        serde_json::from_slice(&buf).expect("json answer")
    };
    let pong = ask("{\"cmd\":\"ping\"}\n");
    assert_eq!(pong["ok"], true);
    assert_eq!(pong["result"]["version"], env!("CARGO_PKG_VERSION"));
    let unknown = ask("{\"cmd\":\"frobnicate\"}\n");
    assert_eq!(unknown["ok"], false);
    assert_eq!(unknown["kind"], "input");
    assert!(unknown["error"]
        .as_str()
        .unwrap_or_default()
        .contains("status"));
    let garbage = ask("not json\n");
    assert_eq!(garbage["ok"], false);
    let bad_arg = ask("{\"cmd\":\"hangup\",\"args\":{\"id\":\"x\"}}\n");
    assert_eq!(bad_arg["kind"], "input");
    // An over-long line is refused and the connection closed; the daemon carries on.
    let mut s2 = UnixStream::connect(&path).expect("connect");
    s2.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s2.write_all(&vec![b'x'; 70 * 1024]);
    let mut text = String::new();
    let _ = s2.read_to_string(&mut text);
    assert!(text.contains("longer than"), "{text}");
    assert!(d.answers_options());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_events_are_logged_for_fail2ban() {
    let env = Env::new(common::Db::Sqlite).await;
    let d = setup(&env, "");
    // A wrong password: the registrar refuses it.
    let mut reg = sipp(
        env.dir.path(),
        "badlogin",
        &d.target(),
        &[
            "-sf",
            scenario("seat_register_refused.xml")
                .to_str()
                .expect("path"),
            "-s",
            "op1",
            "-au",
            "op1",
            "-ap",
            "wrong-password",
            "-m",
            "1",
        ],
    );
    reg.wait(Duration::from_secs(20));
    // An INVITE from an address of no trunk.
    let stranger = UdpSocket::bind("127.0.0.2:0").expect("127.0.0.2");
    let r = invite_final(&stranger, d.sip_port, "stranger-1", Duration::from_secs(3));
    assert!(r.starts_with("SIP/2.0 403"), "{r}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = d.log_text();
        let ok = log
            .lines()
            .any(|l| l.contains("smartdesk::security: acl_reject from 127.0.0.2"))
            && log
                .lines()
                .any(|l| l.contains("smartdesk::security: auth_failure from 127.0.0.1"));
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "security lines missing:\n{log}\n{}",
            sipp_trace(env.dir.path(), "badlogin")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = status(&env, &d);
    assert!(st["sip"]["auth_failures"].as_u64() >= Some(1), "{st}");
    assert_eq!(st["sip"]["refused_acl"], 1);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_ready_watchdog_and_stopping() {
    let env = Env::new(common::Db::Sqlite).await;
    let mut d = configure(&env, "");
    let sock_path = env.dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&sock_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    d.start_with(
        &env,
        OPEN,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().expect("path")),
            // Pings every 100 ms (half the interval).
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let mut got: Vec<String> = Vec::new();
    let mut buf = [0u8; 512];
    let mut collect = |got: &mut Vec<String>, until: &dyn Fn(&[String]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !until(got) && Instant::now() < deadline {
            if let Ok(n) = notify.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    };
    collect(&mut got, &|g| {
        g.iter().filter(|m| m.as_str() == "WATCHDOG=1").count() >= 3
    });
    assert!(
        got.first().is_some_and(|m| m.starts_with("READY=1")),
        "{got:?}"
    );
    assert!(
        got.iter().filter(|m| m.as_str() == "WATCHDOG=1").count() >= 3,
        "the idle core pings: {got:?}"
    );
    sigterm(&d);
    collect(&mut got, &|g| g.iter().any(|m| m.starts_with("STOPPING=1")));
    assert!(got.iter().any(|m| m.starts_with("STOPPING=1")), "{got:?}");
    let code = d
        .proc
        .as_mut()
        .expect("daemon")
        .wait(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{}", d.log_text());
    env.cleanup().await;
}

/// The shipped unit passes `systemd-analyze verify` (with the binary path pointed at the
/// test build, since verify checks that ExecStart exists).
#[test]
fn systemd_unit_verifies() {
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("systemd-analyze (package systemd; tests/run.sh installs it)");
    let unit =
        std::fs::read_to_string(common::repo().join("systemd/smartdesk.service")).expect("unit");
    let unit = unit.replace(
        "/usr/local/bin/smartdesk",
        common::bin().to_str().expect("path"),
    );
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("smartdesk.service");
    std::fs::write(&path, unit).expect("write");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("smartdesk.service:"),
        "systemd-analyze verify: {stderr}"
    );
}
