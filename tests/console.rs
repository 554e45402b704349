//! The operator console and reports to contractors end to end (issue #7), with real peers:
//! `smartdesk serve`, SIPp as the carrier and the operator's phone, a real headless
//! Chromium driven over WebDriver (chromedriver) with the keyboard, and an SMTP server and
//! an HTTP server written here that receive the reports.

mod common;

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use common::browser::Browser;
use common::calls::login;
use common::peers::{scenario, sipp, sipp_trace, Daemon, OPEN};
use common::receivers::{http_server, smtp_server};
use common::Env;

const NUMBER: &str = "0312345678";
const SEAT_PASSWORD: &str = "op1-secret-pw";
const WEB_PASSWORD: &str = "op1-console-pw";
const WEBHOOK_SECRET: &str = "whsec-0123456789abcdef";
const GREETING: &str = "はい、株式会社ABCでございます";

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

// ------------------------------------------------------------------ set-up

struct Ports {
    web: u16,
}

/// A configured daemon (not started) whose reports go to the given SMTP port, with short
/// retry pauses for the tests.
fn configure(env: &Env, smtp_port: u16, max_attempts: u32) -> (Daemon, Ports) {
    let d = Daemon::configure(env);
    let web = d.web_on_free_port("");
    let cfg = std::fs::read_to_string(&d.config).expect("config");
    let cfg = format!(
        "{cfg}\n[reports]\nsmtp = \"smtp://127.0.0.1:{smtp_port}\"\nfrom = \"desk@smartdesk.example\"\n\
         max_attempts = {max_attempts}\nretry_initial_ms = 300\nretry_max_ms = 1000\n"
    );
    std::fs::write(&d.config, cfg).expect("config");
    (d, Ports { web })
}

fn add_contractor(env: &Env, d: &Daemon) -> String {
    let c = d
        .cli(
            env,
            &[
                "contractor",
                "add",
                "--name",
                "株式会社ABC",
                "--greeting",
                GREETING,
                "--plan",
                "SD100",
                "--hearing",
                "--hearing-item",
                "ご検討中の製品",
                "--start",
                "2026-11-01",
                "--json",
            ],
        )
        .ok()
        .json();
    let id = c["id"].as_i64().expect("contractor id").to_string();
    d.cli(env, &["number", "assign", &id, NUMBER]).ok();
    id
}

/// `records --json` until every report of every record written here is delivered (bounded;
/// the imported earlier record, by op9, has none).
fn delivered_records(env: &Env, d: &Daemon, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let v = d.cli(env, &["records", "--json"]).ok().json();
        let all = v.as_array().is_some_and(|a| {
            a.iter().filter(|r| r["written_by"] != "op9").all(|r| {
                r["reports"]
                    .as_array()
                    .is_some_and(|x| !x.is_empty() && x.iter().all(|o| o["state"] == "delivered"))
            })
        });
        if all {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "reports not delivered: {v:#}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ------------------------------------------------------------------ tests

/// An operator logs in, takes a live SIPp call, sees whom to answer as and who calls,
/// writes the record with the keyboard alone; the contractor receives it once by signed
/// webhook, Slack-style webhook and e-mail (Japanese subject and body, MIME-encoded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_takes_a_call_and_the_contractor_gets_the_report() {
    let env = Env::new(common::Db::Sqlite).await;
    let (http_port, hooks) = http_server(0).await;
    let (smtp_port, mails, _) = smtp_server(0).await;
    let (mut d, ports) = configure(&env, smtp_port, 20);
    let cid = add_contractor(&env, &d);
    d.cli(
        &env,
        &[
            "seat",
            "add",
            "op1",
            "--password",
            SEAT_PASSWORD,
            "--web-password",
            WEB_PASSWORD,
            // The contractor has the hearing option: the ACD prefers seats with this skill
            // (a seat without it gets the call only after acd.skill_fallback_s).
            "--skill",
            "hearing",
        ],
    )
    .ok();
    d.cli(
        &env,
        &[
            "contractor",
            "channels",
            &cid,
            "--email",
            "abc-office@example.jp",
            "--webhook",
            &format!("http://127.0.0.1:{http_port}/hook"),
            "--webhook-secret",
            WEBHOOK_SECRET,
            "--slack",
            &format!("http://127.0.0.1:{http_port}/slack"),
        ],
    )
    .ok();
    // An earlier call from the same number, with its record (written as an admin would import it).
    {
        let l = env.ledger().await;
        let (call, _) = l
            .insert_call(&smartdesk::ledger::NewCall {
                trunk: "test-carrier".into(),
                sip_call_id: "earlier@x".into(),
                from_tag: "e1".into(),
                contractor_id: Some(cid.parse().expect("id")),
                number: "+81312345678".into(),
                caller: Some("+819012345678".into()),
                caller_withheld: false,
                billable: true,
                outcome: Some("answered".into()),
                started_at: "2026-11-20T02:00:00Z".parse().expect("t"),
            })
            .await
            .expect("earlier call");
        l.add_first_response(&smartdesk::ledger::NewFirstResponse {
            call_row: call,
            contractor_id: cid.parse().expect("id"),
            seat_id: None,
            supersedes: None,
            caller_name: "山田商事 山田様".into(),
            callback_number: None,
            callback_wanted: false,
            purpose: "カタログ請求".into(),
            category: "normal".into(),
            hearing_answers: serde_json::json!([]),
            written_by: "op9".into(),
            created_at: "2026-11-20T02:05:00Z".parse().expect("t"),
        })
        .await
        .expect("earlier record");
        l.close().await;
    }
    d.start(&env, OPEN);

    // The operator's phone (answers and waits for the caller's BYE), logged in as op1.
    let seat_port = common::peers::free_udp_port();
    let mut phone = sipp(
        env.dir.path(),
        "seat",
        &d.target(),
        &[
            "-sf",
            scenario("seat_answer.xml").to_str().expect("path"),
            "-p",
            &seat_port.to_string(),
            "-key",
            "bport",
            &common::peers::free_udp_port().to_string(),
            "-key",
            "codec",
            "0",
            "-m",
            "1",
        ],
    );
    login(&env, &d, seat_port);

    // The browser: log in with the keyboard.
    let web = format!("http://127.0.0.1:{}", ports.web);
    let b = Browser::start(env.dir.path());
    b.goto(&format!("{web}/console"));
    b.wait_text("h1", Duration::from_secs(10), |t| t.contains("コンソール"));
    assert_eq!(
        b.active_id(),
        "seat",
        "the login form starts in the seat field"
    );
    b.type_text("op1");
    b.keys(&[], &["\u{E004}"]); // Tab
    b.type_text(WEB_PASSWORD);
    b.keys(&[], &["\u{E007}"]); // Enter
    b.wait_text("#seat-name", Duration::from_secs(10), |t| t.contains("op1"));
    b.wait_text("#call-state", Duration::from_secs(10), |t| t == "待機中");

    // A caller rings the contractor's number and stays on the line.
    let aport = common::peers::free_udp_port();
    let mut carrier = sipp(
        env.dir.path(),
        "carrier",
        &d.target(),
        &[
            "-sf",
            scenario("carrier_call.xml").to_str().expect("path"),
            "-s",
            NUMBER,
            "-key",
            "aport",
            &aport.to_string(),
            "-key",
            "caller",
            "09012345678",
            "-key",
            "privacy",
            "X-Test: console",
            "-d",
            "25000",
            "-m",
            "1",
        ],
    );
    let greeting = b.wait_text("#greeting", Duration::from_secs(15), |t| {
        t.contains(GREETING)
    });
    assert_eq!(greeting, format!("「{GREETING}」"));
    assert_eq!(b.text("#contractor"), "株式会社ABC");
    assert_eq!(b.text("#caller"), "09012345678");
    b.wait_text("#call-state", Duration::from_secs(15), |t| t == "通話中");
    assert!(b.text("#waited").ends_with('秒'), "{}", b.text("#waited"));
    let earlier = b.text("#earlier");
    assert!(
        earlier.contains("カタログ請求") && earlier.contains("2026/11/20"),
        "{earlier}"
    );
    assert_eq!(
        b.value("#callback_number"),
        "09012345678",
        "prefilled from caller ID"
    );
    b.screenshot(&env.dir.path().join("console-call.png"));
    if let Ok(p) = std::env::var("SMARTDESK_SCREENSHOT") {
        let _ = std::fs::copy(env.dir.path().join("console-call.png"), p);
    }

    // The form by keyboard alone: the cursor is already in the name field.
    assert_eq!(b.active_id(), "caller_name");
    b.type_text("山田商事 山田様");
    b.keys(&[], &["\u{E004}"]); // Tab → callback number (kept)
    assert_eq!(b.active_id(), "callback_number");
    b.keys(&[], &["\u{E004}"]); // Tab → 要/不要
    assert_eq!(b.active_id(), "cb_yes");
    b.keys(&[], &["\u{E00D}"]); // Space: 要
    b.keys(&[], &["\u{E004}"]); // Tab → purpose
    assert_eq!(b.active_id(), "purpose");
    b.type_text("見積もりの件。本日中に折り返しをお願いします。");
    b.keys(&[], &["\u{E004}"]); // Tab → category (通常)
    assert_eq!(b.active_id(), "category");
    b.keys(&[], &["\u{E004}"]); // Tab → the hearing item
    assert_eq!(b.active_id(), "hearing_0");
    b.type_text("ABC-100");
    b.keys(&["\u{E009}"], &["\u{E007}"]); // Ctrl+Enter submits
    let status = b.wait_text("#form-status", Duration::from_secs(10), |t| {
        t.contains("記録しました") || t.contains("できません") || t.contains("失敗")
    });
    assert!(status.contains("記録しました"), "{status}");
    assert!(status.contains("報告 3 件"), "{status}");
    b.wait_text("#records-body", Duration::from_secs(20), |t| {
        t.contains("山田商事 山田様")
    });

    // The ledger: the record, linked to call, operator and contractor, reports delivered.
    let records = delivered_records(&env, &d, Duration::from_secs(30));
    let list = records.as_array().expect("array");
    let rec = list
        .iter()
        .find(|r| r["written_by"] == "op1")
        .unwrap_or_else(|| panic!("no op1 record: {records:#}"));
    assert_eq!(rec["caller_name"], "山田商事 山田様");
    assert_eq!(rec["callback_wanted"], true);
    assert_eq!(rec["callback_number"], "09012345678");
    assert_eq!(rec["category"], "normal");
    assert_eq!(rec["seat"], "op1");
    assert_eq!(rec["caller"], "+819012345678");
    assert_eq!(rec["contractor_id"].to_string(), cid);
    assert_eq!(rec["hearing_answers"][0]["item"], "ご検討中の製品");
    assert_eq!(rec["hearing_answers"][0]["answer"], "ABC-100");
    assert_eq!(rec["reports"].as_array().map(Vec::len), Some(3));
    let calls = d
        .cli(&env, &["calls", "--month", "2026-11", "--json"])
        .ok()
        .json();
    let live_call = calls
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == rec["call_id"]))
        .cloned()
        .expect("the record's call");
    assert_eq!(live_call["seat"], "op1");

    // The webhook: signed, with the idempotency key, once.
    let hooks = hooks.lock().expect("lock").clone();
    let hook: Vec<_> = hooks.iter().filter(|h| h.path == "/hook").collect();
    assert_eq!(hook.len(), 1, "exactly one webhook delivery: {hooks:?}");
    let h = hook[0];
    assert_eq!(
        h.headers
            .get("x-smartdesk-signature")
            .cloned()
            .unwrap_or_default(),
        hmac_hex(WEBHOOK_SECRET, &h.body),
        "HMAC-SHA256 of the body"
    );
    let body: serde_json::Value = serde_json::from_slice(&h.body).expect("json body");
    assert_eq!(
        h.headers.get("idempotency-key").map(String::as_str),
        body["idempotency_key"].as_str()
    );
    assert_eq!(body["caller_name"], "山田商事 山田様");
    assert_eq!(
        body["purpose"],
        "見積もりの件。本日中に折り返しをお願いします。"
    );
    assert_eq!(body["contractor_name"], "株式会社ABC");
    assert_eq!(body["record_id"], rec["id"]);
    let slack: Vec<_> = hooks.iter().filter(|h| h.path == "/slack").collect();
    assert_eq!(slack.len(), 1);
    let sb: serde_json::Value = serde_json::from_slice(&slack[0].body).expect("slack json");
    assert!(sb["text"]
        .as_str()
        .unwrap_or("")
        .contains("山田商事 山田様"));

    // The e-mail: Japanese subject (RFC 2047 encoded on the wire) and body, decoded.
    let mails = mails.lock().expect("lock").clone();
    assert_eq!(mails.len(), 1, "one e-mail");
    let raw = &mails[0];
    let subject_line = raw
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("subject:"))
        .unwrap_or_default();
    assert!(
        subject_line.contains("=?utf-8?"),
        "encoded-word subject: {subject_line}"
    );
    let msg = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .expect("parse mail");
    let subject = msg.subject().unwrap_or_default();
    assert!(
        subject.contains("お電話のご報告") && subject.contains("山田商事 山田様"),
        "{subject}"
    );
    let text = msg.body_text(0).unwrap_or_default();
    assert!(text.contains("株式会社ABC 御中"), "{text}");
    assert!(
        text.contains("見積もりの件。本日中に折り返しをお願いします。"),
        "{text}"
    );
    assert!(text.contains("折り返し：要"), "{text}");
    assert!(text.contains("ご検討中の製品：ABC-100"), "{text}");
    let mid = msg.message_id().unwrap_or_default();
    assert!(
        mid.starts_with(&format!("smartdesk-record-{}-ch", rec["id"]))
            && mid.ends_with("@smartdesk"),
        "Message-ID carries the e-mail channel's idempotency key: {mid}"
    );
    assert_ne!(
        Some(mid.trim_end_matches("@smartdesk")),
        body["idempotency_key"].as_str()
    );

    // Callers' personal data stays out of the info-level log.
    let log = d.log_text();
    let info: String = log
        .lines()
        .filter(|l| !l.contains("DEBUG") && !l.contains("TRACE"))
        .collect::<Vec<_>>()
        .join("\n");
    for secret in [
        "09012345678",
        "819012345678",
        "山田",
        WEB_PASSWORD,
        WEBHOOK_SECRET,
    ] {
        assert!(!info.contains(secret), "{secret:?} in the log:\n{info}");
    }

    drop(b);
    assert_eq!(
        carrier.wait(Duration::from_secs(40)),
        Some(0),
        "carrier\n{}",
        sipp_trace(env.dir.path(), "carrier")
    );
    assert_eq!(
        phone.wait(Duration::from_secs(10)),
        Some(0),
        "seat\n{}",
        sipp_trace(env.dir.path(), "seat")
    );
    d.stop();
    env.cleanup().await;
}

/// Logins are throttled, forms need the CSRF token, and a session shows only its seat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_refuses_what_it_must() {
    let env = Env::new(common::Db::Sqlite).await;
    let (mut d, ports) = configure(&env, 9, 3);
    add_contractor(&env, &d);
    d.cli(
        &env,
        &[
            "seat",
            "add",
            "op1",
            "--password",
            SEAT_PASSWORD,
            "--web-password",
            WEB_PASSWORD,
            // The contractor has the hearing option: the ACD prefers seats with this skill
            // (a seat without it gets the call only after acd.skill_fallback_s).
            "--skill",
            "hearing",
        ],
    )
    .ok();
    d.start(&env, OPEN);
    let base = format!("http://127.0.0.1:{}", ports.web);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // The login form's CSRF pair.
    let (cookie, csrf) = common::web::login_form(&http, &format!("{base}/console/login")).await;
    let login = |pw: &str, token: &str| {
        http.post(format!("{base}/console/login"))
            .header("cookie", &cookie)
            .form(&[("seat", "op1"), ("password", pw), ("csrf", token)])
            .send()
    };
    // Without the matching token: refused.
    assert_eq!(
        login(WEB_PASSWORD, "forged").await.expect("post").status(),
        403
    );
    // Five wrong passwords, then even the right one is throttled.
    for _ in 0..5 {
        assert_eq!(
            login("wrong-password", &csrf).await.expect("post").status(),
            401
        );
    }
    assert_eq!(
        login(WEB_PASSWORD, &csrf).await.expect("post").status(),
        429
    );
    // Pages and feeds need a session.
    let r = http
        .get(format!("{base}/console"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 303);
    assert_eq!(
        http.get(format!("{base}/console/events"))
            .send()
            .await
            .expect("get")
            .status(),
        401
    );
    assert_eq!(
        http.post(format!("{base}/console/records"))
            .json(&serde_json::json!({"call_row": 1}))
            .send()
            .await
            .expect("post")
            .status(),
        401
    );
    let log = d.log_text();
    assert!(log.contains("console login throttled"), "{log}");
    assert!(!log.contains("wrong-password"));
    d.stop();
    env.cleanup().await;
}

/// Reports survive a receiver that fails first and a daemon killed with -9 in between:
/// each is delivered exactly once per channel; a channel that never answers ends as
/// failed after the retry budget and raises an alert (log and `status`).
async fn outbox_survives_failures_and_restart(db: common::Db) {
    let env = Env::new(db).await;
    let (http_port, hooks) = http_server(2).await;
    let (smtp_port, mails, refused) = smtp_server(2).await;
    let dead_port = common::peers::free_sip_port();
    let (mut d, _) = configure(&env, smtp_port, 8);
    let cid = add_contractor(&env, &d);
    d.cli(
        &env,
        &[
            "contractor",
            "channels",
            &cid,
            "--email",
            "abc-office@example.jp",
            "--webhook",
            &format!("http://127.0.0.1:{http_port}/hook"),
            "--webhook-secret",
            WEBHOOK_SECRET,
            "--slack",
            &format!("http://127.0.0.1:{dead_port}/never"),
        ],
    )
    .ok();
    d.start(&env, OPEN);
    // A record written as the console writes it (same library function), on a call row.
    let l = env.ledger().await;
    let (call, _) = l
        .insert_call(&smartdesk::ledger::NewCall {
            trunk: "test-carrier".into(),
            sip_call_id: "retry@x".into(),
            from_tag: "r1".into(),
            contractor_id: Some(cid.parse().expect("id")),
            number: "+81312345678".into(),
            caller: None,
            caller_withheld: true,
            billable: true,
            outcome: Some("answered".into()),
            started_at: "2026-11-25T00:57:00Z".parse().expect("t"),
        })
        .await
        .expect("call");
    // Written just before the daemon's clock (OPEN), so its reports are due at once.
    let (record, queued) = smartdesk::reports::submit(
        &l,
        call,
        None,
        &smartdesk::reports::RecordInput {
            caller_name: "佐藤".into(),
            callback_number: "03-5555-6666".into(),
            callback_wanted: "yes".into(),
            purpose: "請求書について".into(),
            category: "normal".into(),
            hearing_answers: vec!["なし".into()],
        },
        &smartdesk::reports::Author {
            seat_id: None,
            name: "op1".into(),
        },
        false,
        "2026-11-25T00:59:00Z".parse().expect("t"),
    )
    .await
    .expect("record");
    assert_eq!(queued, 3);
    l.close().await;
    // The first webhook attempt fails (500): kill -9 right after it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while hooks.lock().expect("lock").is_empty() {
        assert!(
            Instant::now() < deadline,
            "no webhook attempt\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.kill9();
    d.restart(&env);
    // Webhook and e-mail recover and are delivered once each; the dead channel fails.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = d.cli(&env, &["records", "--json"]).ok().json();
        let reports = v[0]["reports"].as_array().cloned().unwrap_or_default();
        let state = |kind: &str| {
            reports
                .iter()
                .find(|r| r["channel_kind"] == kind)
                .map(|r| r["state"].as_str().unwrap_or("").to_owned())
                .unwrap_or_default()
        };
        if state("webhook") == "delivered"
            && state("email") == "delivered"
            && state("slack") == "failed"
        {
            assert_eq!(v[0]["id"], record);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {v:#}\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let hooks = hooks.lock().expect("lock").clone();
    let ok: Vec<_> = hooks.iter().filter(|h| h.status == 200).collect();
    assert_eq!(ok.len(), 1, "delivered once: {hooks:?}");
    assert!(hooks.len() >= 3, "two failures, then success");
    let keys: std::collections::BTreeSet<_> = hooks
        .iter()
        .map(|h| {
            h.headers
                .get("idempotency-key")
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(keys.len(), 1, "every attempt carries the same key");
    assert_eq!(mails.lock().expect("lock").len(), 1, "one e-mail");
    assert_eq!(*refused.lock().expect("lock"), 2);
    let status = d.cli(&env, &["status", "--json"]).ok().json();
    assert_eq!(status["reports"]["failed"], 1);
    assert_eq!(status["reports"]["delivered"], 2);
    assert_eq!(status["alerts"][0]["channel"], "slack");
    assert_eq!(status["alerts"][0]["attempts"], 8);
    assert!(d.log_text().contains("ALERT: report not delivered"));
    // After the admin fixes things, a retry is possible (here it fails again: still dead).
    let failed_id = status["alerts"][0]["outbox_id"].to_string();
    d.cli(&env, &["reports", "retry", &failed_id]).ok();
    d.stop();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_survives_failures_and_restart_sqlite() {
    outbox_survives_failures_and_restart(common::Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_survives_failures_and_restart_postgres() {
    outbox_survives_failures_and_restart(common::Db::Postgres).await;
}

/// Channel settings name the bad field and change nothing; `records` lists, exports and
/// corrects (a new version, the old kept, the correction reported again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_channels_from_the_cli() {
    let env = Env::new(common::Db::Sqlite).await;
    let (d, _) = configure(&env, 9, 3);
    let cid = add_contractor(&env, &d);
    let bad = d.cli(
        &env,
        &["contractor", "channels", &cid, "--email", "not-an-address"],
    );
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--email"), "{}", bad.stderr);
    let bad = d.cli(
        &env,
        &[
            "contractor",
            "channels",
            &cid,
            "--webhook",
            "http://127.0.0.1:9/h",
        ],
    );
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--webhook-secret"), "{}", bad.stderr);
    let none = d
        .cli(&env, &["contractor", "channels", &cid, "--json"])
        .ok()
        .json();
    assert_eq!(none, serde_json::json!([]), "nothing was written");
    d.cli(
        &env,
        &[
            "contractor",
            "channels",
            &cid,
            "--webhook",
            "http://127.0.0.1:9/h",
            "--webhook-secret",
            WEBHOOK_SECRET,
        ],
    )
    .ok();
    let listed = d
        .cli(&env, &["contractor", "channels", &cid, "--json"])
        .ok()
        .json();
    assert_eq!(listed[0]["kind"], "webhook");
    assert!(
        listed[0].get("secret").is_none(),
        "secrets are never printed"
    );
    d.cli(
        &env,
        &[
            "contractor",
            "hearing-items",
            &cid,
            "--item",
            "ご住所",
            "--item",
            "製品",
        ],
    )
    .ok();
    let l = env.ledger().await;
    let (call, _) = l
        .insert_call(&smartdesk::ledger::NewCall {
            trunk: "t".into(),
            sip_call_id: "cli@x".into(),
            from_tag: "c".into(),
            contractor_id: Some(cid.parse().expect("id")),
            number: "+81312345678".into(),
            caller: Some("+819012345678".into()),
            caller_withheld: false,
            billable: true,
            outcome: Some("answered".into()),
            started_at: "2026-11-25T01:00:00Z".parse().expect("t"),
        })
        .await
        .expect("call");
    let (id, queued) = smartdesk::reports::submit(
        &l,
        call,
        None,
        &smartdesk::reports::RecordInput {
            caller_name: "鈴木, 営業部".into(),
            callback_number: String::new(),
            callback_wanted: "no".into(),
            purpose: "資料送付のお願い\n二行目".into(),
            category: "normal".into(),
            hearing_answers: vec!["東京都".into(), "ABC".into()],
        },
        &smartdesk::reports::Author {
            seat_id: None,
            name: "op1".into(),
        },
        false,
        "2026-11-25T01:05:00Z".parse().expect("t"),
    )
    .await
    .expect("record");
    assert_eq!(queued, 1);
    l.close().await;
    // A callback wanted needs a number: refused, naming the flag, nothing written.
    let bad = d.cli(
        &env,
        &[
            "records",
            "correct",
            &id.to_string(),
            "--by",
            "suzuki",
            "--callback-wanted",
            "yes",
        ],
    );
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--callback-number"), "{}", bad.stderr);
    let fixed = d
        .cli(
            &env,
            &[
                "records",
                "correct",
                &id.to_string(),
                "--by",
                "suzuki",
                "--callback-wanted",
                "yes",
                "--callback-number",
                "03-1111-2222",
                "--category",
                "complaint",
                "--json",
            ],
        )
        .ok()
        .json();
    assert_eq!(fixed["supersedes"], id);
    assert_eq!(fixed["reports_queued"], 1);
    let current = d
        .cli(&env, &["records", "--json", "--day", "2026-11-25"])
        .ok()
        .json();
    assert_eq!(current.as_array().map(Vec::len), Some(1));
    assert_eq!(current[0]["version"], 2);
    assert_eq!(current[0]["written_by"], "admin:suzuki");
    assert_eq!(current[0]["category"], "complaint");
    assert_eq!(current[0]["hearing_answers"][1]["answer"], "ABC");
    assert_eq!(current[0]["reports"][0]["state"], "pending");
    let all = d
        .cli(
            &env,
            &["records", "--json", "--all-versions", "--contractor", &cid],
        )
        .ok()
        .json();
    assert_eq!(
        all.as_array().map(Vec::len),
        Some(2),
        "the old version is kept"
    );
    let other_day = d
        .cli(&env, &["records", "--json", "--day", "2026-11-24"])
        .ok()
        .json();
    assert_eq!(other_day, serde_json::json!([]));
    let csv = d.cli(&env, &["records", "--csv"]).ok().stdout;
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap_or("")
        .starts_with("id,version,supersedes,call_id"));
    assert!(csv.contains("\"鈴木, 営業部\""), "{csv}");
    assert!(csv.contains("\"資料送付のお願い\n二行目\""), "{csv}");
    assert!(csv.contains("ご住所: 東京都 / 製品: ABC"), "{csv}");
    assert_eq!(d.cli(&env, &["records", "--day", "2026-13-01"]).code, 2);
    // No daemon runs here: the reports wait in the outbox.
    let all = d
        .cli(&env, &["records", "--json", "--all-versions"])
        .ok()
        .json();
    let pending = all
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["reports"].as_array().cloned().unwrap_or_default())
        .filter(|o| o["state"] == "pending")
        .count();
    assert_eq!(pending, 2, "{all:#}");
    env.cleanup().await;
}
