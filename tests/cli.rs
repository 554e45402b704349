//! End-to-end: the admin CLI against SQLite and PostgreSQL (issue #2 §5–§6, issue #3 §3–§5).
//! Every test runs twice, `<name>::sqlite` and `<name>::postgres`.

mod common;

use chrono::{DateTime, Utc};
use smartdesk::ledger::{NewCall, NewFirstResponse};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

fn add_abc(env: &common::Env, plan: &str, start: &str, hearing: bool) -> i64 {
    let mut args = vec![
        "contractor",
        "add",
        "--name",
        "株式会社ABC",
        "--greeting",
        "はい、株式会社ABCでございます",
        "--plan",
        plan,
        "--start",
        start,
    ];
    if hearing {
        args.push("--hearing");
    }
    let out = env.run(&args).ok();
    out.stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("id alone on stdout, got {:?}", out.stdout))
}

/// A billable call to contractor's number from a known caller; tests override fields.
fn new_call(contractor: i64, call_id: &str, started: DateTime<Utc>) -> NewCall {
    NewCall {
        trunk: "example-carrier".into(),
        sip_call_id: call_id.into(),
        from_tag: String::new(),
        contractor_id: Some(contractor),
        number: "+81312345678".into(),
        caller: Some("+819012345678".into()),
        caller_withheld: false,
        billable: true,
        outcome: None,
        started_at: started,
    }
}

/// A complaint record (category `complaint`) for a call.
fn complaint(call_row: i64, contractor: i64, written: DateTime<Utc>) -> NewFirstResponse {
    NewFirstResponse {
        call_row,
        contractor_id: contractor,
        seat_id: None,
        supersedes: None,
        caller_name: "匿名".into(),
        callback_number: None,
        callback_wanted: false,
        purpose: "苦情".into(),
        category: "complaint".into(),
        hearing_answers: serde_json::json!({}),
        written_by: "op1".into(),
        created_at: written,
    }
}

/// A withheld caller's call whose outcome is already known.
fn withheld_call(contractor: i64, call_id: &str, started: &str, outcome: &str) -> NewCall {
    NewCall {
        caller: None,
        caller_withheld: true,
        outcome: Some(outcome.into()),
        ..new_call(contractor, call_id, at(started))
    }
}

async fn insert_calls(env: &common::Env, contractor: i64, n: usize, first: &str, outcome: &str) {
    let l = env.ledger().await;
    let start = at(first);
    for i in 0..n {
        let (id, new) = l
            .insert_call(&NewCall {
                from_tag: format!("tag{i}"),
                ..new_call(
                    contractor,
                    &format!("{outcome}-{first}-{i}@carrier"),
                    start + chrono::Duration::minutes(i as i64),
                )
            })
            .await
            .expect("insert");
        assert!(new);
        l.finish_call(
            id,
            outcome,
            None,
            None,
            start + chrono::Duration::minutes(i as i64 + 1),
        )
        .await
        .expect("finish");
    }
    l.close().await;
}

fn count_contractors(env: &common::Env) -> usize {
    env.run(&["contractor", "list", "--json"])
        .ok()
        .json()
        .as_array()
        .expect("array")
        .len()
}

e2e_both!(contractor_lifecycle, |env| {
    let id = add_abc(&env, "sd100", "2026-11-16", false);
    let j = env
        .run(&[
            "contractor",
            "add",
            "--name",
            "B社",
            "--greeting",
            "はい、B社でございます",
            "--plan",
            "Premium",
            "--start",
            "2022-06-30",
            "--hearing",
            "--json",
        ])
        .ok()
        .json();
    assert!(j["id"].as_i64().expect("id") > id);
    assert_eq!(j["plan"], "Premium");
    assert_eq!(j["hearing"], true);
    assert_eq!(j["start_date"], "2022-06-30");
    assert_eq!(j["greeting"], "はい、B社でございます");

    let show = env
        .run(&["contractor", "show", &id.to_string(), "--json"])
        .ok()
        .json();
    assert_eq!(show["name"], "株式会社ABC");
    assert_eq!(show["plan"], "SD100");
    assert_eq!(show["term"]["first_day"], "2026-11-01");
    assert_eq!(show["term"]["last_day"], "2027-04-30");

    // SPEC §8 example 5: received on the 26th → the month after next.
    let pc = env
        .run(&[
            "contractor",
            "plan",
            &id.to_string(),
            "--plan",
            "SD200",
            "--hearing",
            "--received",
            "2026-12-26",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(pc["effective_on"], "2027-02-01");
    assert_eq!(pc["hearing"], true);

    // SPEC §8 example 3: notice 2027-01-20 → ends 2027-01-31 with the fee.
    let c = env
        .run(&[
            "contractor",
            "cancel",
            &id.to_string(),
            "--received",
            "2027-01-20",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(c["ends"], "2027-01-31");
    assert_eq!(c["cancellation_fee"], 10000);
    // A second notice is refused.
    assert_eq!(
        env.run(&[
            "contractor",
            "cancel",
            &id.to_string(),
            "--received",
            "2027-01-21"
        ])
        .code,
        2
    );

    env.run(&[
        "contractor",
        "suspend",
        &id.to_string(),
        "--reason",
        "complaint rule",
    ])
    .ok();
    let s = env
        .run(&["contractor", "show", &id.to_string(), "--json"])
        .ok()
        .json();
    assert_eq!(s["state"], "suspended");
    assert_eq!(s["suspensions"].as_array().expect("list").len(), 1);
    assert_eq!(
        env.run(&[
            "contractor",
            "suspend",
            &id.to_string(),
            "--reason",
            "again"
        ])
        .code,
        2
    );
    env.run(&["contractor", "resume", &id.to_string()]).ok();
    assert_eq!(
        env.run(&["contractor", "show", &id.to_string(), "--json"])
            .ok()
            .json()["state"],
        "active"
    );
    assert_eq!(env.run(&["contractor", "resume", &id.to_string()]).code, 2);

    let list = env.run(&["contractor", "list"]).ok();
    assert!(list.stdout.contains("株式会社ABC"));
});

e2e_both!(bad_input_exits_2_and_writes_nothing, |env| {
    add_abc(&env, "SD100", "2026-11-16", false);
    let before = count_contractors(&env);
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "contractor",
                "add",
                "--name",
                "X",
                "--greeting",
                "G",
                "--plan",
                "SD999",
                "--start",
                "2026-11-16",
            ],
            "--plan",
        ),
        (
            &[
                "contractor",
                "add",
                "--name",
                "X",
                "--greeting",
                "G",
                "--plan",
                "SD100",
                "--start",
                "2026-13-01",
            ],
            "--start",
        ),
        (
            &[
                "contractor",
                "add",
                "--name",
                "X",
                "--greeting",
                "G",
                "--plan",
                "SD100",
                "--start",
                "16/11/2026",
            ],
            "--start",
        ),
        (
            &[
                "contractor",
                "add",
                "--name",
                "X",
                "--greeting",
                "G",
                "--plan",
                "Standard",
                "--start",
                "2022-07-01",
            ],
            "--plan",
        ),
        (
            &[
                "contractor",
                "add",
                "--name",
                " ",
                "--greeting",
                "G",
                "--plan",
                "SD100",
                "--start",
                "2026-11-16",
            ],
            "--name",
        ),
        (&["contractor", "show", "999"], "999"),
        (&["contractor", "show", "abc"], "ID"),
        (&["contractor", "plan", "999", "--plan", "SD200"], "999"),
        (
            &[
                "contractor",
                "plan",
                "1",
                "--plan",
                "Business",
                "--received",
                "2026-11-20",
            ],
            "--plan",
        ),
        (
            &["contractor", "cancel", "1", "--end-month", "2026-13"],
            "--end-month",
        ),
        (
            &[
                "contractor",
                "cancel",
                "1",
                "--received",
                "2027-01-20",
                "--end-month",
                "2026-12",
            ],
            "--end-month",
        ),
        (&["number", "assign", "1", "03-1234-567x"], "NUMBER"),
        (&["number", "assign", "999", "0312345678"], "999"),
        (&["number", "release", "0399999999"], "+81399999999"),
        (&["seat", "add", "op 1", "--password", "longenough"], "NAME"),
        (&["seat", "add", "op1", "--password", "short"], "--password"),
        (&["calls", "--month", "2026/11"], "--month"),
        (
            &["bill", "--month", "2026-11", "--contractor", "999"],
            "999",
        ),
    ];
    for (args, field) in cases {
        let r = env.run(args);
        assert_eq!(
            r.code, 2,
            "{args:?} should exit 2; stdout {} stderr {}",
            r.stdout, r.stderr
        );
        assert!(
            r.stderr.contains(field),
            "{args:?}: error should name {field}: {}",
            r.stderr
        );
        assert!(
            r.stdout.trim().is_empty(),
            "{args:?}: nothing on stdout, got {}",
            r.stdout
        );
    }
    assert_eq!(count_contractors(&env), before, "nothing was written");
    assert_eq!(
        env.run(&["contractor", "show", "1", "--json"]).ok().json()["plan_changes"]
            .as_array()
            .map(|a| a.len()),
        Some(0)
    );
    assert!(env.run(&["contractor", "show", "1", "--json"]).ok().json()["cancellation"].is_null());
    // clap's own usage errors are status 2 too.
    assert_eq!(env.run(&["contractor", "add", "--name", "X"]).code, 2);
});

e2e_both!(numbers_assign_release_and_refuse_duplicates, |env| {
    let a = add_abc(&env, "SD100", "2026-11-16", false);
    let b = add_abc(&env, "SD200", "2026-11-01", false);
    env.run(&["number", "assign", &a.to_string(), "03-1234-5678"])
        .ok();
    let dup = env.run(&["number", "assign", &b.to_string(), "+81312345678"]);
    assert_eq!(dup.code, 2);
    assert!(
        dup.stderr.contains("+81312345678") && dup.stderr.contains("already assigned"),
        "{}",
        dup.stderr
    );
    env.run(&["number", "assign", &b.to_string(), "0120-123-456"])
        .ok();
    let list = env.run(&["number", "list", "--json"]).ok().json();
    let rows = list.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .any(|r| r["number"] == "+81312345678" && r["contractor_id"] == a));
    env.run(&["number", "release", "0312345678"]).ok();
    assert_eq!(
        env.run(&["number", "list", "--json"])
            .ok()
            .json()
            .as_array()
            .map(|a| a.len()),
        Some(1)
    );
    env.run(&["number", "assign", &b.to_string(), "0312345678"])
        .ok();
});

e2e_both!(seats_store_hashes_only, |env| {
    env.run(&[
        "seat",
        "add",
        "op1",
        "--password",
        "s3cret-pass",
        "--web-password",
        "web-password-1",
    ])
    .ok();
    env.run(&["seat", "add", "op2", "--password", "another-pass"])
        .ok();
    assert_eq!(
        env.run(&["seat", "add", "op1", "--password", "s3cret-pass"])
            .code,
        2
    );
    let list = env.run(&["seat", "list", "--json"]).ok();
    assert!(!list.stdout.contains("s3cret"), "no secret in output");
    let j = list.json();
    assert_eq!(j.as_array().map(|a| a.len()), Some(2));
    assert_eq!(j[0]["name"], "op1");
    assert_eq!(j[0]["web_login"], true);
    assert_eq!(j[1]["web_login"], false);
    let l = env.ledger().await;
    let s = l.seat_by_name("op1").await.expect("get").expect("seat");
    // RFC 2617 HA1 = MD5("op1:smartdesk:s3cret-pass")
    assert_eq!(
        s.ha1_md5,
        smartdesk::sip::auth::ha1_md5("op1", "smartdesk", "s3cret-pass").as_str()
    );
    assert!(smartdesk::password::verify(
        "web-password-1",
        s.web_password.as_deref().expect("hash")
    ));
    l.close().await;
    env.run(&[
        "seat",
        "passwd",
        "op2",
        "--web-password",
        "a-new-web-password",
    ])
    .ok();
    assert_eq!(
        env.run(&["seat", "list", "--json"]).ok().json()[1]["web_login"],
        true
    );
});

e2e_both!(calls_json_lists_each_call_once, |env| {
    let a = add_abc(&env, "SD100", "2026-11-16", false);
    insert_calls(&env, a, 3, "2026-11-20T01:00:00Z", "answered").await;
    // 2026-11-30T15:30Z is already December in Tokyo.
    insert_calls(&env, a, 1, "2026-11-30T15:30:00Z", "out_of_hours").await;
    let all = env.run(&["calls", "--json"]).ok().json();
    assert_eq!(all.as_array().map(|a| a.len()), Some(4));
    let nov = env
        .run(&[
            "calls",
            "--month",
            "2026-11",
            "--contractor",
            &a.to_string(),
            "--json",
        ])
        .ok()
        .json();
    let rows = nov.as_array().expect("array");
    assert_eq!(rows.len(), 3);
    for key in [
        "call_id",
        "contractor_id",
        "number",
        "caller",
        "outcome",
        "billable",
        "started_at",
        "answered_at",
        "ended_at",
        "seat",
    ] {
        assert!(
            rows[0].get(key).is_some(),
            "calls --json lacks {key}: {}",
            rows[0]
        );
    }
    assert_eq!(rows[0]["outcome"], "answered");
    assert_eq!(rows[0]["billable"], true);
    assert_eq!(rows[0]["number"], "+81312345678");
    let ids: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r["call_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 3, "each call exactly once");
    let dec = env
        .run(&["calls", "--month", "2026-12", "--json"])
        .ok()
        .json();
    assert_eq!(dec[0]["outcome"], "out_of_hours");
});

e2e_both!(bill_reproduces_spec_examples_from_the_ledger, |env| {
    // SPEC §8 example 1 (and 4 with --paid-on): SD100 from 2026-11-16, 130 calls in November.
    let a = add_abc(&env, "SD100", "2026-11-16", false);
    insert_calls(&env, a, 125, "2026-11-16T00:00:00Z", "answered").await;
    insert_calls(&env, a, 5, "2026-11-20T00:00:00Z", "abandoned").await;
    let j = env
        .run(&[
            "bill",
            "--month",
            "2026-11",
            "--contractor",
            &a.to_string(),
            "--json",
            "--paid-on",
            "2027-01-30",
        ])
        .ok()
        .json();
    assert_eq!(j["contractor_id"], a);
    assert_eq!(j["month"], "2026-11");
    assert_eq!(j["plan"], "SD100");
    assert_eq!(j["calls"], 130);
    assert_eq!(j["included_calls"], 100);
    assert_eq!(j["lines"][0]["kind"], "base");
    assert_eq!(j["lines"][0]["amount"], 5500);
    assert_eq!(j["lines"][1]["kind"], "overage");
    assert_eq!(j["lines"][1]["quantity"], 30);
    assert_eq!(j["lines"][1]["unit_price"], 220);
    assert_eq!(j["lines"][1]["amount"], 6600);
    assert_eq!(j["total"], 12100);
    assert_eq!(j["tax"], 1100);
    assert_eq!(j["due"], "2026-12-31");
    assert_eq!(j["days_late"], 30);
    assert_eq!(j["late_interest"], 145);
    assert_eq!(j["calls_by_outcome"]["answered"], 125);
    assert_eq!(j["calls_by_outcome"]["abandoned"], 5);

    // SPEC §8 example 2: SD200 + hearing, all of December 2026, 250 calls.
    let b = add_abc(&env, "SD200", "2026-12-01", true);
    insert_calls(&env, b, 250, "2026-12-01T00:00:00Z", "answered").await;
    let j2 = env
        .run(&[
            "bill",
            "--month",
            "2026-12",
            "--contractor",
            &b.to_string(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(j2["total"], 49500);
    assert_eq!(j2["tax"], 4500);
    assert_eq!(j2["lines"][1]["kind"], "hearing_base");
    assert_eq!(j2["lines"][1]["amount"], 11000);
    assert_eq!(j2["lines"][2]["unit_price"], 330);

    // SPEC §8 example 3: cancellation 2027-01-20 → the January bill carries the fee.
    env.run(&[
        "contractor",
        "cancel",
        &a.to_string(),
        "--received",
        "2027-01-20",
    ])
    .ok();
    let jan = env
        .run(&[
            "bill",
            "--month",
            "2027-01",
            "--contractor",
            &a.to_string(),
            "--json",
        ])
        .ok()
        .json();
    let fee = jan["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["kind"] == "cancellation_fee")
        .expect("fee line")
        .clone();
    assert_eq!(fee["amount"], 10000);
    assert_eq!(fee["taxable"], false);
    assert_eq!(jan["non_taxable_total"], 10000);
    assert_eq!(jan["total"], 21000);
    // February is after the end: no bill.
    assert_eq!(
        env.run(&[
            "bill",
            "--month",
            "2027-02",
            "--contractor",
            &a.to_string(),
            "--json"
        ])
        .code,
        2
    );

    // All contractors for a month; CSV export for the collection agent.
    let all = env
        .run(&["bill", "--month", "2026-12", "--json"])
        .ok()
        .json();
    assert_eq!(all.as_array().map(|a| a.len()), Some(2));
    let csv = env
        .run(&["bill", "--month", "2026-11", "--csv"])
        .ok()
        .stdout;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "header + one contractor covering November: {csv}"
    );
    assert!(lines[1].contains("12100"), "{csv}");
    let human = env
        .run(&["bill", "--month", "2026-11", "--contractor", &a.to_string()])
        .ok()
        .stdout;
    assert!(human.contains("12,100"), "{human}");
});

e2e_both!(suspended_calls_are_not_billed, |env| {
    let a = add_abc(&env, "SD100", "2026-11-01", false);
    insert_calls(&env, a, 101, "2026-11-02T00:00:00Z", "answered").await;
    let l = env.ledger().await;
    l.insert_call(&NewCall {
        from_tag: "x".into(),
        billable: false,
        ..withheld_call(a, "while-suspended", "2026-11-10T00:00:00Z", "suspended")
    })
    .await
    .expect("insert");
    l.close().await;
    let j = env
        .run(&[
            "bill",
            "--month",
            "2026-11",
            "--contractor",
            &a.to_string(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(j["calls"], 101);
    assert_eq!(j["total"], 11000 + 220);
    let calls = env
        .run(&["calls", "--contractor", &a.to_string(), "--json"])
        .ok()
        .json();
    let s = calls
        .as_array()
        .expect("a")
        .iter()
        .find(|c| c["call_id"] == "while-suspended")
        .expect("row")
        .clone();
    assert_eq!(s["billable"], false);
    assert!(
        s["caller"].is_null(),
        "withheld caller is stored as withheld"
    );
});

e2e_both!(migrate_is_idempotent, |env| {
    env.run(&["migrate"]).ok();
    env.run(&["migrate"]).ok();
});

e2e_both!(complaint_rule_flags_then_suspends_when_configured, |env| {
    let a = add_abc(&env, "SD100", "2026-11-01", false);
    let l = env.ledger().await;
    // Complaints on 11-10, 11-11, 11-12 (JST): 2 + 1 + 1 = 4, not yet flagged.
    let days = [
        "2026-11-10T01:00:00Z",
        "2026-11-10T02:00:00Z",
        "2026-11-11T01:00:00Z",
        "2026-11-12T01:00:00Z",
    ];
    let mut last_record = 0;
    for (i, d) in days.iter().enumerate() {
        let (call, _) = l
            .insert_call(&withheld_call(a, &format!("c{i}"), d, "answered"))
            .await
            .expect("call");
        last_record = l
            .add_first_response(&complaint(call, a, at(d)))
            .await
            .expect("record");
    }
    let v = env
        .run(&["contractor", "complaints", &a.to_string(), "--json"])
        .ok()
        .json();
    assert!(
        v["flagged"].is_null(),
        "4 complaints do not trip the rule: {v}"
    );
    // A fifth on 11-12: flagged (window 11-10..11-12), but only flagged by default.
    let (call, _) = l
        .insert_call(&withheld_call(a, "c5", "2026-11-12T05:00:00Z", "answered"))
        .await
        .expect("call");
    let fifth = complaint(call, a, at("2026-11-12T05:00:00Z"));
    let fifth_id = l.add_first_response(&fifth).await.expect("record");
    let v = env
        .run(&["contractor", "complaints", &a.to_string(), "--json"])
        .ok()
        .json();
    assert_eq!(v["flagged"]["count"], 5);
    assert_eq!(v["flagged"]["first_day"], "2026-11-10");
    assert_eq!(v["flagged"]["last_day"], "2026-11-12");
    assert_eq!(v["suspended_now"], false);
    assert_eq!(
        env.run(&["contractor", "show", &a.to_string(), "--json"])
            .ok()
            .json()["state"],
        "active"
    );
    // A correction re-categorising the fifth record un-trips the rule (only current versions count).
    let corrected = l
        .add_first_response(&NewFirstResponse {
            supersedes: Some(fifth_id),
            category: "normal".into(),
            ..fifth.clone()
        })
        .await
        .expect("correction");
    assert!(corrected > last_record);
    let v = env
        .run(&["contractor", "complaints", &a.to_string(), "--json"])
        .ok()
        .json();
    assert!(v["flagged"].is_null(), "{v}");
    // Correct it back to a complaint; with automatic suspension configured, it suspends.
    l.add_first_response(&NewFirstResponse {
        supersedes: Some(corrected),
        category: "complaint".into(),
        ..fifth.clone()
    })
    .await
    .expect("second correction");
    assert!(
        l.add_first_response(&NewFirstResponse {
            supersedes: Some(fifth_id),
            ..fifth.clone()
        })
        .await
        .is_err(),
        "only the latest version may be corrected"
    );
    l.close().await;
    let out = env
        .command(&["contractor", "complaints", &a.to_string(), "--json"])
        .env("SMARTDESK__BILLING__AUTO_SUSPEND_ON_COMPLAINTS", "true")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["suspended_now"], true);
    let show = env
        .run(&["contractor", "show", &a.to_string(), "--json"])
        .ok()
        .json();
    assert_eq!(show["state"], "suspended");
    assert!(show["suspensions"][0]["reason"]
        .as_str()
        .expect("reason")
        .contains("complaint rule"));
});

/// `smartdesk … | head`: a reader that goes away ends the command quietly (SIGPIPE, as Unix
/// tools do), never with a panic and a backtrace.
#[test]
fn a_closed_stdout_ends_the_command_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let mut fds = [0; 2];
    // SAFETY: a fresh pipe; its read end is closed before the child starts.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe { libc::close(fds[0]) };
    // SAFETY: fds[1] is an open descriptor we own; Stdio takes it over.
    let stdout = unsafe { <std::process::Stdio as std::os::fd::FromRawFd>::from_raw_fd(fds[1]) };
    let out = std::process::Command::new(common::bin())
        .args(["hours", "--json", "--at", "2026-12-31T10:00:00+09:00"])
        .stdout(stdout)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}
