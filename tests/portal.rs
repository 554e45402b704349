//! The contractor portal and the admin view end to end (issue #8), in a real headless
//! Chromium over WebDriver against `smartdesk serve`: two contractors with calls, records
//! and voice messages written through the ledger API; contractor A logs in with its
//! one-time password, changes it, sees its calls and its bill exactly as `smartdesk bill
//! --json` computes them, downloads the CSVs, plays its message, sends a test report to a
//! webhook receiver here; every attempt at B's data is refused and logged; an admin sees
//! today's calls and the complaint flag with its records; wrong passwords lock the login.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use common::browser::Browser;
use common::calls::contractor;
use common::peers::{Daemon, OPEN};
use common::receivers::http_server;
use common::web::{csrf_of, login_form};
use common::Env;
use smartdesk::billing::format_yen;
use smartdesk::ledger::{Ledger, NewCall, NewFirstResponse, NewVoiceMessage};

const WEBHOOK_SECRET: &str = "portal-whsec-0123456789";
const A_PASSWORD: &str = "a-new-portal-pw";
const ADMIN_PASSWORD: &str = "boss-new-portal-pw";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("instant")
}

/// Inserts a finished call; `answered` in seconds after the start, `len` its length.
#[allow(clippy::too_many_arguments)]
async fn call(
    l: &Ledger,
    contractor: i64,
    tag: &str,
    started: &str,
    caller: Option<&str>,
    outcome: &str,
    billable: bool,
    answered: Option<i64>,
) -> i64 {
    let start = at(started);
    let (id, new) = l
        .insert_call(&NewCall {
            trunk: "test-carrier".into(),
            sip_call_id: format!("{tag}@carrier"),
            from_tag: tag.into(),
            contractor_id: Some(contractor),
            number: "+81312345678".into(),
            caller: caller.map(str::to_owned),
            caller_withheld: caller.is_none(),
            billable,
            outcome: None,
            started_at: start,
        })
        .await
        .expect("insert call");
    assert!(new);
    let answered_at = answered.map(|s| start + chrono::Duration::seconds(s));
    l.finish_call(
        id,
        outcome,
        None,
        answered_at,
        start + chrono::Duration::seconds(95),
    )
    .await
    .expect("finish");
    id
}

async fn record(l: &Ledger, call: i64, contractor: i64, category: &str, purpose: &str) -> i64 {
    l.add_first_response(&NewFirstResponse {
        call_row: call,
        contractor_id: contractor,
        seat_id: None,
        supersedes: None,
        caller_name: "山田商事 山田様".into(),
        callback_number: Some("090-1234-5678".into()),
        callback_wanted: true,
        purpose: purpose.into(),
        category: category.into(),
        hearing_answers: serde_json::json!([]),
        written_by: "op1".into(),
        created_at: Utc::now(),
    })
    .await
    .expect("record")
}

/// A voice message of `call`: a real G.711 WAV in `<data_dir>/recordings/<call>.wav`.
async fn message(env: &Env, l: &Ledger, call: i64) -> Vec<u8> {
    let dir = env.dir.path().join("recordings");
    std::fs::create_dir_all(&dir).expect("recordings dir");
    let samples: Vec<u8> = (0..8000u32)
        .map(|i| if i % 16 < 8 { 0x10 } else { 0x90 })
        .collect();
    let wav = smartdesk::media::wav::write_wav_g711_8k(smartdesk::media::g711::Law::Pcmu, &samples)
        .expect("wav");
    let path = dir.join(format!("{call}.wav"));
    std::fs::write(&path, &wav).expect("write wav");
    l.add_voice_message(&NewVoiceMessage {
        call_id: call,
        path: path.display().to_string(),
        duration_ms: 1000,
        created_at: Utc::now(),
    })
    .await
    .expect("voice message");
    wav
}

/// Logs in through the login form (any state of the browser's session).
fn log_in(b: &Browser, base: &str, user: &str, password: &str) {
    b.goto(&format!("{base}/portal/login"));
    b.fill("#email", user);
    b.fill("#password", password);
    b.click("#login");
}

/// Replaces the one-time password on the page a first login lands on.
fn change_password(b: &Browser, old: &str, new: &str) {
    b.wait_text("#must-change", Duration::from_secs(10), |t| !t.is_empty());
    b.fill("#current", old);
    b.fill("#new", new);
    b.fill("#confirm", new);
    b.click("#change");
    b.wait_text("#password-msg", Duration::from_secs(10), |t| {
        t.contains("変更しました")
    });
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

async fn get(http: &reqwest::Client, url: &str, cookie: &str) -> (u16, Vec<u8>) {
    let r = http
        .get(url)
        .header("cookie", format!("sd_portal={cookie}"))
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    (status, r.bytes().await.expect("body").to_vec())
}

e2e_both!(contractor_portal_and_admin_view, |env| {
    let mut d = Daemon::configure(&env);
    let web = d.web_on_free_port("");
    let base = format!("http://127.0.0.1:{web}");
    let a = contractor(&env, &d, "株式会社ABC", "2026-10-01", None);
    let b_id = contractor(&env, &d, "有限会社XYZ", "2026-10-01", None);
    let l = env.ledger().await;

    // A: October (a past month) and November (this month: the daemon's clock is OPEN,
    // 2026-11-25 10:00 JST).
    for i in 0..3 {
        call(
            &l,
            a,
            &format!("a-oct-{i}"),
            &format!("2026-10-0{}T01:00:00Z", i + 5),
            Some("+819012345678"),
            "answered",
            true,
            Some(10),
        )
        .await;
    }
    call(
        &l,
        a,
        "a-oct-withheld",
        "2026-10-09T02:00:00Z",
        None,
        "answered",
        true,
        Some(5),
    )
    .await;
    let a_answered = call(
        &l,
        a,
        "a-nov-1",
        "2026-11-24T03:00:00Z",
        Some("+819012345678"),
        "answered",
        true,
        Some(12),
    )
    .await;
    let a_record = record(&l, a_answered, a, "normal", "見積もりの件で折り返し希望").await;
    let a_overflow = call(
        &l,
        a,
        "a-nov-2",
        "2026-11-25T00:30:00Z",
        None,
        "overflow",
        true,
        None,
    )
    .await;
    let a_wav = message(&env, &l, a_overflow).await;
    call(
        &l,
        a,
        "a-nov-3",
        "2026-11-25T00:40:00Z",
        Some("+81611112222"),
        "out_of_hours",
        false,
        None,
    )
    .await;

    // B: its own calls, a record, a message, and five complaints in three days (SPEC §6).
    call(
        &l,
        b_id,
        "b-oct-1",
        "2026-10-07T01:00:00Z",
        Some("+819099990000"),
        "answered",
        true,
        Some(3),
    )
    .await;
    let b_answered = call(
        &l,
        b_id,
        "b-nov-1",
        "2026-11-24T04:00:00Z",
        Some("+819099990000"),
        "answered",
        true,
        Some(7),
    )
    .await;
    let b_record = record(&l, b_answered, b_id, "normal", "XYZ社の秘密の用件").await;
    let b_overflow = call(
        &l,
        b_id,
        "b-nov-2",
        "2026-11-24T05:00:00Z",
        Some("+819099990000"),
        "overflow",
        true,
        None,
    )
    .await;
    message(&env, &l, b_overflow).await;
    for i in 0..5 {
        let c = call(
            &l,
            b_id,
            &format!("b-complaint-{i}"),
            &format!("2026-11-2{}T02:00:00Z", i % 3),
            Some("+819088887777"),
            "answered",
            true,
            Some(4),
        )
        .await;
        record(&l, c, b_id, "complaint", &format!("苦情{i}")).await;
    }

    // Accounts from the CLI: one-time passwords.
    let ua = d
        .cli(
            &env,
            &[
                "contractor",
                "user",
                "add",
                &a.to_string(),
                "--email",
                "Tanaka@ABC.example.jp",
                "--json",
            ],
        )
        .ok()
        .json();
    assert_eq!(ua["login"], "tanaka@abc.example.jp");
    let a_otp = ua["one_time_password"].as_str().expect("otp").to_owned();
    let bad = d.cli(
        &env,
        &[
            "contractor",
            "user",
            "add",
            &a.to_string(),
            "--email",
            "not-an-address",
        ],
    );
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--email"), "{}", bad.stderr);
    let dup = d.cli(
        &env,
        &[
            "contractor",
            "user",
            "add",
            &b_id.to_string(),
            "--email",
            "tanaka@abc.example.jp",
        ],
    );
    assert_eq!(dup.code, 2, "{}", dup.stderr);
    d.cli(
        &env,
        &[
            "contractor",
            "user",
            "add",
            &b_id.to_string(),
            "--email",
            "b@xyz.example.jp",
        ],
    )
    .ok();
    let admin = d.cli(&env, &["admin", "add", "boss", "--json"]).ok().json();
    let admin_otp = admin["one_time_password"].as_str().expect("otp").to_owned();

    let (hook_port, hooks) = http_server(0).await;
    d.start(&env, OPEN);
    let br = Browser::start(env.dir.path());

    // First login: the one-time password must be replaced before anything else.
    br.goto(&format!("{base}/portal"));
    br.wait_text("#login", Duration::from_secs(10), |t| t == "ログイン");
    log_in(&br, &base, "tanaka@abc.example.jp", &a_otp);
    change_password(&br, &a_otp, A_PASSWORD);
    br.goto(&format!("{base}/portal"));

    // The call log: this month by default, every call with 非通知 for the withheld one.
    let summary = br.wait_text("#calls-summary", Duration::from_secs(10), |t| !t.is_empty());
    assert!(summary.contains("2026-11-01 〜 2026-11-25"), "{summary}");
    assert_eq!(br.text("#calls-count"), "3");
    assert_eq!(br.text("#calls-billable"), "2");
    assert!(br
        .text(&format!("#call-{a_overflow} .caller"))
        .contains("非通知"));
    assert_eq!(br.text(&format!("#call-{a_overflow} .billable")), "対象");
    assert!(
        br.text(&format!("#call-{a_answered}")).contains("12秒"),
        "wait shown"
    );
    // A date range.
    br.goto(&format!(
        "{base}/portal/{a}/calls?from=2026-10-01&to=2026-10-31"
    ));
    br.wait_text("#calls-count", Duration::from_secs(10), |t| t == "4");
    let page = br.cmd("GET", "/source", None).to_string();
    assert!(
        !page.contains("XYZ") && !page.contains("090-9999"),
        "nothing of B's"
    );
    // A bad date names the field and changes nothing.
    br.goto(&format!("{base}/portal/{a}/calls?from=2026-13-01"));
    assert!(br.text("#input-error").starts_with("from:"));

    // The bill: this month so far and October's statement, as `smartdesk bill` has them.
    let oct = d
        .cli(
            &env,
            &[
                "bill",
                "--month",
                "2026-10",
                "--contractor",
                &a.to_string(),
                "--json",
            ],
        )
        .ok()
        .json();
    let nov = d
        .cli(
            &env,
            &[
                "bill",
                "--month",
                "2026-11",
                "--contractor",
                &a.to_string(),
                "--json",
            ],
        )
        .ok()
        .json();
    br.goto(&format!("{base}/portal/{a}/bill"));
    br.wait_text("#current-calls", Duration::from_secs(10), |t| !t.is_empty());
    assert_eq!(br.text("#current-calls"), format!("{}件", nov["calls"]));
    assert_eq!(
        br.text("#current-total"),
        format_yen(nov["total"].as_i64().expect("total"))
    );
    let left =
        nov["included_calls"].as_u64().expect("included") - nov["calls"].as_u64().expect("calls");
    assert!(br.text("#current-left").starts_with(&format!("{left}件")));
    assert_eq!(br.text("#bill-2026-10 .calls"), oct["calls"].to_string());
    assert_eq!(
        br.text("#bill-2026-10 .total"),
        format_yen(oct["total"].as_i64().expect("total"))
    );
    assert_eq!(
        br.text("#bill-2026-10 .due"),
        oct["due"].as_str().expect("due")
    );
    br.goto(&format!("{base}/portal/{a}/bill/2026-10"));
    assert_eq!(
        br.text("#statement-total"),
        format_yen(oct["total"].as_i64().expect("total"))
    );

    // CSV downloads with the browser's session.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie = br.cookie("sd_portal").expect("session cookie");
    let (st, csv) = get(&http, &format!("{base}/portal/{a}/bill.csv"), &cookie).await;
    assert_eq!(st, 200);
    let csv = String::from_utf8(csv).expect("utf-8");
    let cli_csv = d
        .cli(
            &env,
            &[
                "bill",
                "--month",
                "2026-10",
                "--contractor",
                &a.to_string(),
                "--csv",
            ],
        )
        .ok()
        .stdout;
    let cli_row = cli_csv.lines().nth(1).expect("cli csv row");
    assert!(
        csv.lines().any(|l| l == cli_row),
        "portal CSV {csv:?} has bill --csv's row {cli_row:?}"
    );
    let (st, csv) = get(
        &http,
        &format!("{base}/portal/{a}/calls.csv?from=2026-10-01&to=2026-11-25"),
        &cookie,
    )
    .await;
    assert_eq!(st, 200);
    let csv = String::from_utf8(csv).expect("utf-8");
    assert_eq!(csv.lines().count(), 1 + 7, "{csv}");
    assert!(csv.contains("非通知"));
    assert!(!csv.contains("XYZ") && !csv.contains("090-9999"));

    // Records and the message, playable in the browser.
    br.goto(&format!("{base}/portal/{a}/records"));
    br.wait_text("#records-count", Duration::from_secs(10), |t| t == "1");
    assert!(br
        .text(&format!("#record-{a_record} .purpose"))
        .contains("見積もり"));
    assert_eq!(br.text("#messages-count"), "1");
    let played = br.execute_async(
        "const done = arguments[arguments.length - 1];\
         const a = document.querySelector('audio');\
         a.addEventListener('loadedmetadata', () => done(a.duration));\
         a.addEventListener('error', () => done('error ' + (a.error && a.error.code)));\
         a.preload = 'auto'; a.load();",
    );
    assert!(
        played.as_f64().is_some_and(|s| s > 0.9 && s < 1.1),
        "audio duration {played}"
    );
    let (st, bytes) = get(
        &http,
        &format!("{base}/portal/{a}/recordings/{a_overflow}"),
        &cookie,
    )
    .await;
    assert_eq!((st, bytes == a_wav), (200, true));

    // B's data by URL: refused, whichever way it is asked for.
    for (url, want) in [
        (format!("/portal/{b_id}/calls"), 403),
        (format!("/portal/{b_id}/calls/{b_answered}"), 403),
        (format!("/portal/{a}/calls/{b_answered}"), 404),
        (format!("/portal/{b_id}/records/{b_record}"), 403),
        (format!("/portal/{a}/records/{b_record}"), 404),
        (format!("/portal/{b_id}/recordings/{b_overflow}"), 403),
        (format!("/portal/{a}/recordings/{b_overflow}"), 404),
        (format!("/portal/{b_id}/bill"), 403),
        (format!("/portal/{b_id}/bill/2026-10"), 403),
        (format!("/portal/{b_id}/bill.csv"), 403),
        (format!("/portal/{b_id}/calls.csv"), 403),
        (format!("/portal/{b_id}/settings"), 403),
        ("/admin".to_owned(), 403),
    ] {
        let (st, body) = get(&http, &format!("{base}{url}"), &cookie).await;
        assert_eq!(st, want, "{url}");
        let body = String::from_utf8_lossy(&body);
        assert!(
            !body.contains("XYZ") && !body.contains("秘密"),
            "{url}: {body}"
        );
    }
    br.goto(&format!("{base}/portal/{b_id}/records/{b_record}"));
    assert_eq!(br.text("#refused"), "表示できません");
    let log = d.log_text();
    assert!(log.contains("refused another contractor's data"), "{log}");
    assert!(log.contains("refused a row of another contractor"), "{log}");
    assert!(!log.contains("秘密"), "no record content in the log");

    // Settings: a webhook with its secret, then a test report through the outbox.
    br.goto(&format!("{base}/portal/{a}/settings"));
    br.fill("#webhook", &format!("http://127.0.0.1:{hook_port}/hook"));
    br.fill("#webhook_secret", "short");
    br.click("#save-channels");
    let m = br.wait_text("#settings-msg", Duration::from_secs(10), |t| !t.is_empty());
    assert!(m.starts_with("Webhook 署名用シークレット"), "{m}");
    assert!(
        br.text("#channel-list").contains("登録されていません"),
        "nothing saved"
    );
    br.fill("#webhook", &format!("http://127.0.0.1:{hook_port}/hook"));
    br.fill("#webhook_secret", WEBHOOK_SECRET);
    br.click("#save-channels");
    br.wait_text("#settings-msg", Duration::from_secs(10), |t| {
        t.contains("保存しました")
    });
    // Without the CSRF token: refused.
    let forged = http
        .post(format!("{base}/portal/{a}/settings/test"))
        .header("cookie", format!("sd_portal={cookie}"))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), 403);
    br.click("#send-test");
    br.wait_text("#settings-msg", Duration::from_secs(10), |t| {
        t.contains("テスト送信")
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let hook = loop {
        if let Some(h) = hooks.lock().expect("lock").first().cloned() {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "no test report arrived\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(hook.path, "/hook");
    assert_eq!(
        hook.headers
            .get("x-smartdesk-signature")
            .map(String::as_str),
        Some(hmac_hex(WEBHOOK_SECRET, &hook.body).as_str())
    );
    let body: serde_json::Value = serde_json::from_slice(&hook.body).expect("json");
    assert_eq!(body["kind"], "test");
    assert_eq!(body["contractor_id"], a);
    br.goto(&format!("{base}/portal/{a}/settings"));
    br.wait_text("#recent-reports", Duration::from_secs(10), |t| {
        t.contains("送信済み")
    });

    // The admin view: today's calls and B's complaint flag with the records behind it.
    br.click("#logout");
    br.wait_text("#login", Duration::from_secs(10), |t| t == "ログイン");
    log_in(&br, &base, "boss", &admin_otp);
    change_password(&br, &admin_otp, ADMIN_PASSWORD);
    br.goto(&format!("{base}/admin"));
    br.wait_text(
        &format!("#contractor-{a} .today-calls"),
        Duration::from_secs(10),
        |t| t == "2",
    );
    assert_eq!(br.text(&format!("#contractor-{a} .today-billable")), "1");
    assert_eq!(br.text(&format!("#contractor-{a} .flag")), "—");
    assert!(br
        .text(&format!("#contractor-{b_id} .flag"))
        .contains("苦情5件"));
    let flag = br.text(&format!("#flag-{b_id}"));
    assert!((0..5).all(|i| flag.contains(&format!("苦情{i}"))), "{flag}");
    // An admin may open any contractor's pages.
    let admin_cookie = br.cookie("sd_portal").expect("cookie");
    let (st, _) = get(&http, &format!("{base}/portal/{b_id}/bill"), &admin_cookie).await;
    assert_eq!(st, 200);
    br.click("#logout");
    br.wait_text("#login", Duration::from_secs(10), |t| t == "ログイン");

    // Lockout: five wrong passwords, then the right one is refused with a clear message.
    for _ in 0..5 {
        log_in(&br, &base, "tanaka@abc.example.jp", "wrong-password-1");
        br.wait_text("#login-error", Duration::from_secs(10), |t| {
            t.contains("違います")
        });
    }
    log_in(&br, &base, "tanaka@abc.example.jp", A_PASSWORD);
    br.wait_text("#login-error", Duration::from_secs(10), |t| {
        t.contains("しばらくログインできません")
    });
    assert!(d.log_text().contains("portal login throttled"));

    drop(br);
    assert_eq!(d.stop(), Some(0), "{}", d.log_text());
    l.close().await;
});

/// The one-time password a successful `… user add|reset --json` printed.
fn one_time_password(run: common::Run) -> String {
    run.ok().json()["one_time_password"]
        .as_str()
        .expect("otp")
        .to_owned()
}

/// The portal session token a response sets.
fn session_of(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("sd_portal="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// Logs in over HTTP; the portal session token, or the refusal's status.
async fn http_login(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    pw: &str,
) -> Result<String, u16> {
    let (cookie, csrf) = login_form(http, &format!("{base}/portal/login")).await;
    let r = http
        .post(format!("{base}/portal/login"))
        .header("cookie", &cookie)
        .form(&[("email", user), ("password", pw), ("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    if r.status() != 303 {
        return Err(r.status().as_u16());
    }
    Ok(session_of(&r).expect("session cookie"))
}

// Without a session nothing opens; the one-time password opens only the password page;
// a password change needs the current password and ends the user's other sessions.
e2e_both!(portal_refuses_what_it_must, |env| {
    let mut d = Daemon::configure(&env);
    let web = d.web_on_free_port("");
    let base = format!("http://127.0.0.1:{web}");
    let a = contractor(&env, &d, "株式会社ABC", "2026-10-01", None);
    let otp = one_time_password(d.cli(
        &env,
        &[
            "contractor",
            "user",
            "add",
            &a.to_string(),
            "--email",
            "a@abc.example.jp",
            "--json",
        ],
    ));
    d.start(&env, OPEN);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    // No session: pages go to the login, anything else is 401.
    let r = http
        .get(format!("{base}/portal/{a}/calls"))
        .send()
        .await
        .expect("get");
    assert_eq!(
        (r.status().as_u16(), r.headers()["location"].to_str().ok()),
        (303, Some("/portal/login"))
    );
    let r = http
        .post(format!("{base}/portal/{a}/settings/test"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    // A forged login form token is refused before the password is looked at.
    let (cookie, _) = login_form(&http, &format!("{base}/portal/login")).await;
    let r = http
        .post(format!("{base}/portal/login"))
        .header("cookie", &cookie)
        .form(&[
            ("email", "a@abc.example.jp"),
            ("password", otp.as_str()),
            ("csrf", "forged"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);

    // The one-time password opens only the password page.
    let s1 = http_login(&http, &base, "A@ABC.example.jp", &otp)
        .await
        .expect("login");
    let (st, _) = get(&http, &format!("{base}/portal/{a}/calls"), &s1).await;
    assert_eq!(st, 303, "must change the password first");
    let s2 = http_login(&http, &base, "a@abc.example.jp", &otp)
        .await
        .expect("second session");
    let change = |session: String, current: &str, new: &str, confirm: &str| {
        let (current, new, confirm) = (current.to_owned(), new.to_owned(), confirm.to_owned());
        let http = http.clone();
        let base = base.clone();
        async move {
            let page = http
                .get(format!("{base}/portal/password"))
                .header("cookie", format!("sd_portal={session}"))
                .send()
                .await
                .expect("get")
                .text()
                .await
                .expect("html");
            let csrf = csrf_of(&page);
            http.post(format!("{base}/portal/password"))
                .header("cookie", format!("sd_portal={session}"))
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("current", current.as_str()),
                    ("new", new.as_str()),
                    ("confirm", confirm.as_str()),
                ])
                .send()
                .await
                .expect("post")
        }
    };
    assert_eq!(
        change(
            s1.clone(),
            "not-the-password",
            "brand-new-pw-1",
            "brand-new-pw-1"
        )
        .await
        .status(),
        401
    );
    assert_eq!(
        change(s1.clone(), &otp, "short", "short").await.status(),
        400
    );
    assert_eq!(
        change(s1.clone(), &otp, "brand-new-pw-1", "different-pw-1")
            .await
            .status(),
        400
    );
    let ok = change(s1.clone(), &otp, "brand-new-pw-1", "brand-new-pw-1").await;
    assert_eq!(ok.status(), 303);
    let s1 = session_of(&ok).expect("renewed session");
    let (st, _) = get(&http, &format!("{base}/portal/{a}/calls"), &s1).await;
    assert_eq!(st, 200);
    let (st, _) = get(&http, &format!("{base}/portal/{a}/calls"), &s2).await;
    assert_eq!(st, 303, "the other session ended with the password change");
    assert_eq!(
        http_login(&http, &base, "a@abc.example.jp", &otp).await,
        Err(401)
    );
    assert!(
        http_login(&http, &base, "a@abc.example.jp", "brand-new-pw-1")
            .await
            .is_ok()
    );
    // Bad input names its field.
    let (st, body) = get(
        &http,
        &format!("{base}/portal/{a}/calls?from=2026-11-10&to=2026-11-01"),
        &s1,
    )
    .await;
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&body).contains("to: "));
    let log = d.log_text();
    assert!(
        !log.contains(&otp) && !log.contains("brand-new-pw-1"),
        "no passwords in the log"
    );

    // A reset from the CLI (forgotten or leaked password) ends the user's sessions at their
    // next request; so does removing the account, and its login is refused afterwards.
    let reset = one_time_password(d.cli(
        &env,
        &[
            "contractor",
            "user",
            "reset",
            "--email",
            "a@abc.example.jp",
            "--json",
        ],
    ));
    let (st, _) = get(&http, &format!("{base}/portal/{a}/calls"), &s1).await;
    assert_eq!(st, 303, "the session ended with the reset");
    let s3 = http_login(&http, &base, "a@abc.example.jp", &reset)
        .await
        .expect("login with the new one-time password");
    let (st, _) = get(&http, &format!("{base}/portal/password"), &s3).await;
    assert_eq!(st, 200);
    let unknown = d.cli(
        &env,
        &[
            "contractor",
            "user",
            "remove",
            "--email",
            "nobody@abc.example.jp",
        ],
    );
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("--email"), "{}", unknown.stderr);
    d.cli(
        &env,
        &[
            "contractor",
            "user",
            "remove",
            "--email",
            "A@abc.example.jp",
        ],
    )
    .ok();
    let (st, _) = get(&http, &format!("{base}/portal/password"), &s3).await;
    assert_eq!(st, 303, "the session ended with the removal");
    assert_eq!(
        http_login(&http, &base, "a@abc.example.jp", &reset).await,
        Err(401)
    );
    let listed = d
        .cli(
            &env,
            &["contractor", "user", "list", &a.to_string(), "--json"],
        )
        .ok()
        .json();
    assert_eq!(listed.as_array().map(Vec::len), Some(0));
    assert!(d
        .log_text()
        .contains("portal session ended: the account was removed or its password reset"));
    assert_eq!(d.stop(), Some(0), "{}", d.log_text());
});
