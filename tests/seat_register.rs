//! End-to-end seat registration against the real binary, with SIPp as the softphone:
//! digest REGISTER gets 200, wrong password and unknown seat get 401 and no binding, and the
//! binding survives a `kill -9` sent the moment SIPp has its 200: the ledger row is there and
//! the restarted daemon lists the binding in the 200 of a binding query (RFC 3261 §10.2.3)
//! without the phone registering again.
//!
//! The seat profile is the default one apart from its path: `digest_algorithms` defaults to
//! `["MD5"]`, which SIPp 3.6 (Debian sip-tester, MD5 only, reads the first challenge)
//! handles; a SHA-256 challenge first makes it fail with "authentication must use MD5 or
//! AKAv1-MD5".

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::peers::{free_sip_port, Proc};
use common::Env;

const SIPP: &str = "/usr/bin/sipp";
const PW_OP1: &str = "correct-horse-1";
const PW_OP2: &str = "battery-staple-2";

fn profiles_dir(env: &Env) -> PathBuf {
    let dir = env.dir.path().join("profiles");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("seats.toml"),
        "[seats]\nrealm = \"smartdesk\"\nmin_expires = 60\nmax_expires = 3600\n\
         default_expires = 600\n",
    )
    .expect("write profile");
    dir
}

/// The CLI with this test's seat profile.
fn cli(env: &Env, profiles: &Path, args: &[&str]) -> Command {
    let mut c = env.command(args);
    c.env("SMARTDESK__SIP__PROFILES_DIR", profiles);
    c
}

fn run_ok(env: &Env, profiles: &Path, args: &[&str]) -> String {
    let o = cli(env, profiles, args).output().expect("run smartdesk");
    assert!(
        o.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn seat_list(env: &Env, profiles: &Path) -> serde_json::Value {
    let out = run_ok(env, profiles, &["seat", "list", "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn seat<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list.as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no seat {name} in {list}"))
}

/// Starts `serve` and waits until the registrar has restored the ledger's bindings.
fn start(env: &Env, profiles: &Path, port: u16, log: &Path) -> Proc {
    let log_file = std::fs::File::create(log).expect("log file");
    let child = cli(
        env,
        profiles,
        &[
            "serve",
            "--sip-listen",
            &format!("127.0.0.1:{port}"),
            "--http-listen",
            "127.0.0.1:0",
        ],
    )
    .stdout(Stdio::null())
    .stderr(log_file)
    .spawn()
    .expect("spawn serve");
    let mut guard = Proc {
        child,
        name: "smartdesk",
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("restored from the ledger") {
            return guard;
        }
        assert!(
            guard.child.try_wait().expect("wait").is_none(),
            "daemon exited early: {text}"
        );
        assert!(Instant::now() < deadline, "daemon did not come up: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs one SIPp scenario (one call) and returns whether it succeeded, with its output.
fn sipp(
    dir: &Path,
    port: u16,
    scenario: &str,
    seat: &str,
    password: &str,
    local_port: u16,
    trace: Option<&Path>,
) -> (bool, String) {
    assert!(
        Path::new(SIPP).exists(),
        "{SIPP} missing: install Debian's sip-tester (tests/run.sh does)"
    );
    let sf = common::repo().join("tests/sipp").join(scenario);
    let mut c = Command::new(SIPP);
    c.arg(format!("127.0.0.1:{port}"))
        .arg("-sf")
        .arg(&sf)
        .args(["-s", seat, "-ap", password, "-m", "1", "-i", "127.0.0.1"])
        .args(["-p", &local_port.to_string()])
        .args([
            "-nostdin",
            "-timeout",
            "15s",
            "-timeout_error",
            "-trace_err",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = trace {
        c.arg("-trace_msg").arg("-message_file").arg(t);
    }
    let child = c.spawn().expect("spawn sipp");
    let mut guard = Proc {
        child,
        name: "sipp",
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = guard.child.try_wait().expect("wait sipp") {
            break s;
        }
        assert!(Instant::now() < deadline, "sipp did not finish");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    use std::io::Read;
    if let Some(mut o) = guard.child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = guard.child.stderr.take() {
        let _ = e.read_to_string(&mut out);
    }
    // SIPp's own account of what went wrong, if anything.
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with("_errors.log") {
            out.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            let _ = std::fs::remove_file(entry.path());
        }
    }
    (status.success(), out)
}

/// The human log format colours field names; drop the escape sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

e2e_both!(sipp_registers_and_binding_survives_kill_9, |env| {
    let profiles = profiles_dir(&env);
    let dir = env.dir.path().to_path_buf();
    run_ok(
        &env,
        &profiles,
        &["seat", "add", "op1", "--password", PW_OP1],
    );
    run_ok(
        &env,
        &profiles,
        &["seat", "add", "op2", "--password", PW_OP2],
    );
    let port = free_sip_port();
    let log1 = dir.join("serve-1.log");
    let mut daemon = start(&env, &profiles, port, &log1);

    // Wrong password and unknown seat: 401 after the credentials, no binding.
    for (seat_name, pw) in [("op2", "not-the-password"), ("nobody", PW_OP2)] {
        let (ok, out) = sipp(
            &dir,
            port,
            "seat_register_refused.xml",
            seat_name,
            pw,
            free_sip_port(),
            None,
        );
        assert!(ok, "{seat_name}: refused scenario failed:\n{out}");
    }

    // The right password: 200, and the binding reaches the ledger.
    let phone_port = free_sip_port();
    let (ok, out) = sipp(
        &dir,
        port,
        "seat_register.xml",
        "op1",
        PW_OP1,
        phone_port,
        None,
    );
    assert!(ok, "register scenario failed:\n{out}");

    // kill -9 right after the 200 OK: no shutdown path runs, no grace period. The daemon
    // answers a REGISTER only after its ledger row is written, so the binding is there.
    daemon.kill9();
    drop(daemon);
    let list = seat_list(&env, &profiles);
    let op1 = seat(&list, "op1");
    assert_eq!(op1["registered"], true, "{list}");
    let contact = format!("sip:op1@127.0.0.1:{phone_port}");
    assert_eq!(op1["contacts"].as_array().map(Vec::len), Some(1), "{op1}");
    assert_eq!(op1["contacts"][0]["contact"], contact.as_str());
    assert_eq!(op1["contacts"][0]["transport"], "udp");
    assert_eq!(
        op1["contacts"][0]["source"],
        format!("127.0.0.1:{phone_port}").as_str()
    );
    assert_eq!(seat(&list, "op2")["registered"], false, "{list}");
    assert_eq!(seat(&list, "op2")["contacts"], serde_json::json!([]));

    // ...and the restarted daemon holds the binding without the phone registering again:
    // a binding query (REGISTER without Contact) lists it.
    let log2 = dir.join("serve-2.log");
    let mut daemon = start(&env, &profiles, port, &log2);
    let restart_log = strip_ansi(&std::fs::read_to_string(&log2).unwrap_or_default());
    assert!(restart_log.contains("restored=1"), "{restart_log}");
    let trace = dir.join("query-messages.log");
    let (ok, out) = sipp(
        &dir,
        port,
        "seat_query.xml",
        "op1",
        PW_OP1,
        free_sip_port(),
        Some(&trace),
    );
    assert!(ok, "query scenario failed:\n{out}");
    let messages = std::fs::read_to_string(&trace).expect("sipp message trace");
    let ok_response = messages
        .split("SIP/2.0 200 OK")
        .nth(1)
        .unwrap_or_else(|| panic!("no 200 in trace:\n{messages}"));
    let listed = ok_response
        .lines()
        .find(|l| l.starts_with("Contact:"))
        .unwrap_or_else(|| panic!("200 lists no binding:\n{messages}"));
    assert!(
        listed.starts_with(&format!("Contact: <{contact}>;expires=")),
        "{listed}"
    );
    let left: u64 = listed
        .rsplit("expires=")
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(left > 200 && left <= 300, "{listed}");

    let st = Command::new("kill")
        .args(["-TERM", &daemon.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let _ = daemon.child.wait();
});
