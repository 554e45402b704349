//! End-to-end: `quote` (no database), `check-config`, `hours` and `serve` start/stop.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn smartdesk(args: &[&str]) -> common_run::Out {
    let o = Command::new(common::bin())
        .args(args)
        .current_dir(common::repo())
        .output()
        .expect("run");
    common_run::Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

mod common_run {
    pub struct Out {
        pub code: i32,
        pub stdout: String,
        pub stderr: String,
    }
    impl Out {
        pub fn json(&self) -> serde_json::Value {
            assert_eq!(
                self.code, 0,
                "stdout {} stderr {}",
                self.stdout, self.stderr
            );
            serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
        }
    }
}

#[test]
fn quote_example_1_and_4() {
    let j = smartdesk(&[
        "quote",
        "--plan",
        "SD100",
        "--start",
        "2026-11-16",
        "--month",
        "2026-11",
        "--calls",
        "130",
        "--paid-on",
        "2027-01-30",
        "--json",
    ])
    .json();
    assert_eq!(j["lines"][0]["amount"], 5500);
    assert_eq!(j["lines"][1]["amount"], 6600);
    assert_eq!(j["taxable_total"], 12100);
    assert_eq!(j["tax"], 1100);
    assert_eq!(j["non_taxable_total"], 0);
    assert_eq!(j["total"], 12100);
    assert_eq!(j["due"], "2026-12-31");
    assert_eq!(j["days_late"], 30);
    assert_eq!(j["late_interest"], 145);
    // On time: no interest.
    let on_time = smartdesk(&[
        "quote",
        "--plan",
        "SD100",
        "--start",
        "2026-11-16",
        "--month",
        "2026-11",
        "--calls",
        "130",
        "--paid-on",
        "2026-12-31",
        "--json",
    ])
    .json();
    assert_eq!(on_time["days_late"], 0);
    assert_eq!(on_time["late_interest"], 0);
}

#[test]
fn quote_example_2() {
    let j = smartdesk(&[
        "quote",
        "--plan",
        "sd200",
        "--hearing",
        "--start",
        "2026-12-01",
        "--month",
        "2026-12",
        "--calls",
        "250",
        "--json",
    ])
    .json();
    assert_eq!(j["total"], 49500);
    assert_eq!(j["tax"], 4500);
    assert_eq!(j["hearing"], true);
}

#[test]
fn quote_example_3() {
    let j = smartdesk(&[
        "quote",
        "--plan",
        "SD100",
        "--start",
        "2026-11-16",
        "--month",
        "2027-01",
        "--calls",
        "0",
        "--cancel-received",
        "2027-01-20",
        "--json",
    ])
    .json();
    let kinds: Vec<&str> = j["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["kind"].as_str().expect("k"))
        .collect();
    assert_eq!(kinds, vec!["base", "cancellation_fee"]);
    assert_eq!(j["lines"][1]["amount"], 10000);
    assert_eq!(j["lines"][1]["taxable"], false);
    assert_eq!(j["total"], 21000);
    assert_eq!(j["tax"], 1000);
    // The month after the end has no bill.
    let after = smartdesk(&[
        "quote",
        "--plan",
        "SD100",
        "--start",
        "2026-11-16",
        "--month",
        "2027-02",
        "--calls",
        "0",
        "--cancel-received",
        "2027-01-20",
    ]);
    assert_eq!(after.code, 2);
    assert!(after.stderr.contains("--month"), "{}", after.stderr);
}

#[test]
fn quote_term_end_with_notice_waives_the_fee() {
    // Term 2026-11-01..2027-04-30; notice on 2027-03-30 naming April: no fee.
    let j = smartdesk(&[
        "quote",
        "--plan",
        "Standard",
        "--start",
        "2021-11-10",
        "--month",
        "2027-04",
        "--calls",
        "0",
        "--cancel-received",
        "2027-03-30",
        "--end-month",
        "2027-04",
        "--json",
    ])
    .json();
    assert!(
        j["lines"]
            .as_array()
            .expect("l")
            .iter()
            .all(|l| l["kind"] != "cancellation_fee"),
        "{j}"
    );
    // One day late: the legacy fee of 20,000.
    let late = smartdesk(&[
        "quote",
        "--plan",
        "Standard",
        "--start",
        "2021-11-10",
        "--month",
        "2027-04",
        "--calls",
        "0",
        "--cancel-received",
        "2027-03-31",
        "--end-month",
        "2027-04",
        "--json",
    ])
    .json();
    let fee = late["lines"]
        .as_array()
        .expect("l")
        .iter()
        .find(|l| l["kind"] == "cancellation_fee")
        .expect("fee")
        .clone();
    assert_eq!(fee["amount"], 20000);
}

#[test]
fn quote_human_output_is_a_japanese_statement() {
    let o = smartdesk(&[
        "quote",
        "--plan",
        "SD100",
        "--start",
        "2026-11-16",
        "--month",
        "2026-11",
        "--calls",
        "130",
    ]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("12,100"), "{}", o.stdout);
    assert!(o.stdout.contains("消費税"), "{}", o.stdout);
}

#[test]
fn quote_bad_input_names_the_field() {
    for (args, field) in [
        (
            vec![
                "quote",
                "--plan",
                "SD150",
                "--start",
                "2026-11-16",
                "--month",
                "2026-11",
                "--calls",
                "1",
            ],
            "--plan",
        ),
        (
            vec![
                "quote",
                "--plan",
                "SD100",
                "--start",
                "2026-02-30",
                "--month",
                "2026-11",
                "--calls",
                "1",
            ],
            "--start",
        ),
        (
            vec![
                "quote",
                "--plan",
                "SD100",
                "--start",
                "2026-11-16",
                "--month",
                "2026-1",
                "--calls",
                "1",
            ],
            "--month",
        ),
        (
            vec![
                "quote",
                "--plan",
                "SD100",
                "--start",
                "2026-11-16",
                "--month",
                "2026-11",
                "--calls",
                "-3",
            ],
            "--calls",
        ),
        (
            vec![
                "quote",
                "--plan",
                "SD100",
                "--start",
                "2026-11-16",
                "--month",
                "2026-10",
                "--calls",
                "1",
            ],
            "--month",
        ),
        (
            vec![
                "quote",
                "--plan",
                "Premium",
                "--start",
                "2023-01-01",
                "--month",
                "2023-01",
                "--calls",
                "1",
            ],
            "--plan",
        ),
    ] {
        let o = smartdesk(&args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains(field), "{args:?}: {}", o.stderr);
    }
}

#[test]
fn check_config_reports_all_errors_with_file_and_key() {
    let ok = smartdesk(&[
        "check-config",
        "--config",
        "smartdesk.example.toml",
        "--json",
    ])
    .json();
    assert_eq!(ok["ok"], true);
    assert!(ok["trunks"]
        .as_array()
        .map(|a| !a.is_empty())
        .unwrap_or(false));
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[sip]\nlisten = \"nowhere\"\nfoo = 1\n[media]\nrtp_port_min = 40000\nrtp_port_max = 30000\n[bogus]\nx = 1\n").expect("write");
    let o = smartdesk(&["check-config", "--config", bad.to_str().expect("utf8")]);
    assert_eq!(o.code, 2);
    for key in ["sip.listen", "sip.foo", "bogus"] {
        assert!(o.stderr.contains(key), "missing {key}: {}", o.stderr);
    }
    assert!(
        o.stderr.contains("bad.toml"),
        "names the file: {}",
        o.stderr
    );
    let missing = smartdesk(&["check-config", "--config", "/nonexistent.toml"]);
    assert_eq!(missing.code, 2);
}

#[test]
fn hours_json_explains_open_and_closed() {
    // Friday 2026-11-20 18:59:59 JST: open; next change at 19:00.
    let j = smartdesk(&["hours", "--at", "2026-11-20T18:59:59+09:00", "--json"]).json();
    assert_eq!(j["open"], true);
    assert_eq!(j["reason"], "weekday_hours");
    assert_eq!(j["next_change"], "2026-11-20T19:00:00+09:00");
    assert_eq!(j["changes"].as_array().map(|a| a.len()), Some(10));
    // 2026-11-23 勤労感謝の日 (Monday holiday).
    let h = smartdesk(&["hours", "--at", "2026-11-23T10:00:00+09:00", "--json"]).json();
    assert_eq!(h["open"], false);
    assert_eq!(h["reason"], "holiday");
    assert_eq!(h["holiday_name"], "勤労感謝の日");
    assert_eq!(h["next_change"], "2026-11-24T09:00:00+09:00");
    let bad = smartdesk(&["hours", "--at", "yesterday"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--at"));
}

/// `serve` starts on the embedded default ledger, binds its sockets, says it is ready,
/// and exits 0 on SIGTERM.
#[test]
fn serve_starts_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr").port()
    };
    let mut child = Command::new(common::bin())
        .args([
            "serve",
            "--sip-listen",
            &format!("127.0.0.1:{port}"),
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .current_dir(common::repo())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    struct Guard(u32);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .arg("-9")
                .arg(self.0.to_string())
                .status();
        }
    }
    let guard = Guard(child.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    let db = dir.path().join("smartdesk.db");
    while !(db.exists() && std::net::UdpSocket::bind(("127.0.0.1", port)).is_err()) {
        assert!(Instant::now() < deadline, "daemon did not come up");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "daemon exited early"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(guard);
    let mut err = String::new();
    use std::io::Read;
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "exit status {status:?}; stderr: {err}");
    assert!(err.contains("smartdesk ready"), "{err}");
}
