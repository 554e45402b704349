//! The SIP front door under attack, end to end: SIPVicious (Debian `sipvicious`: svmap,
//! svwar, svcrack) finds and cracks nothing; a REGISTER brute force is banned with a
//! fail2ban-friendly line; a legitimate storm of 500 seats re-registering from one address is
//! not; an OPTIONS flood from one source is limited and banned while the carrier's calls at
//! 10/s all go through and are counted; seats cannot call out (toll fraud).
//!
//! Sources: the trunk is 127.0.0.1; attackers and seats use other loopback addresses.

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::calls::*;
use common::peers::{scenario, sipp, sipp_trace, Daemon, Proc, OPEN};
use common::Env;
use smartdesk::ledger::{Ledger, NewSeat};

/// Runs a SIPVicious tool from 127.0.0.3 (bounded by `timeout`, killed by pid otherwise)
/// and returns what it printed.
fn sipvicious(env: &Env, tool: &str, args: &[&str], timeout: Duration) -> String {
    let out = env.dir.path().join(format!("{tool}.out"));
    let file = std::fs::File::create(&out).expect("output file");
    let child = Command::new(tool)
        .args(["-b", "127.0.0.3"])
        .args(args)
        .current_dir(env.dir.path())
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {tool} (Debian package sipvicious): {e}"));
    let mut p = Proc {
        child,
        name: "sipvicious",
    };
    p.wait(timeout);
    p.kill9();
    std::fs::read_to_string(&out).unwrap_or_default()
}

/// A REGISTER, OPTIONS or INVITE written by the test, with `ua` as User-Agent.
fn request(method: &str, sock: &UdpSocket, d: &Daemon, ua: &str, n: u32) -> String {
    let me = sock.local_addr().expect("addr");
    let t = d.target();
    format!(
        "{method} sip:0312345678@{t} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-t{n}\r\n\
         Max-Forwards: 70\r\nTo: <sip:0312345678@{t}>\r\nFrom: <sip:x@{me}>;tag={n}\r\n\
         Call-ID: t-{n}@{me}\r\nCSeq: 1 {method}\r\nContact: <sip:x@{me}>\r\n\
         User-Agent: {ua}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends `msg` and returns the first status line's code, if any answer comes within `within`.
fn answer(sock: &UdpSocket, d: &Daemon, msg: &str, within: Duration) -> Option<u16> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    sock.send_to(msg.as_bytes(), d.target()).expect("send");
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return std::str::from_utf8(&buf[..n])
                .ok()?
                .get(8..11)?
                .parse()
                .ok();
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipvicious_finds_nothing_and_cracks_nothing() {
    let env = Env::new(common::Db::Sqlite).await;
    let d = setup(&env, OPEN);
    let port = d.sip_port.to_string();
    let map = sipvicious(
        &env,
        "svmap",
        &["-p", &port, "127.0.0.1"],
        Duration::from_secs(30),
    );
    assert!(
        !map.contains(&format!("127.0.0.1:{port}")),
        "svmap found the daemon:\n{map}"
    );
    let war = sipvicious(
        &env,
        "svwar",
        &[
            "-p",
            &port,
            "-e",
            "100-130",
            "-D",
            "-m",
            "REGISTER",
            "127.0.0.1",
        ],
        Duration::from_secs(60),
    );
    assert!(!war.contains("op1"), "svwar:\n{war}");
    assert!(!war.contains("| reqauth"), "svwar found extensions:\n{war}");
    // The dictionary even holds the right password: scanners get no answer at all.
    let dict = env.dir.path().join("dict.txt");
    std::fs::write(&dict, format!("1234\npassword\n{SEAT_PASSWORD}\nop1\n")).expect("dict");
    let crack = sipvicious(
        &env,
        "svcrack",
        &[
            "-p",
            &port,
            "-u",
            "op1",
            "-d",
            dict.to_str().expect("path"),
            "127.0.0.1",
        ],
        Duration::from_secs(60),
    );
    assert!(
        !crack.contains(SEAT_PASSWORD),
        "svcrack cracked it:\n{crack}"
    );
    let log = d.log_text();
    assert!(
        log.contains("smartdesk::security: scanner from 127.0.0.3"),
        "{log}"
    );
    // A plain request from the same address (not a scanner) is still answered.
    let sock = UdpSocket::bind("127.0.0.3:0").expect("bind");
    assert_eq!(
        answer(
            &sock,
            &d,
            &request("OPTIONS", &sock, &d, "softphone/1.0", 1),
            Duration::from_secs(3)
        ),
        Some(200)
    );
    env.cleanup().await;
}

e2e_both!(
    register_brute_force_is_banned_but_a_seat_storm_is_not,
    |env| {
        let mut d = Daemon::configure(&env);
        // 500 seats, written straight into the ledger (the CLI would take minutes).
        let ledger = Ledger::connect(&env.url, 4).await.expect("ledger");
        ledger.migrate().await.expect("migrate");
        let mut users = String::from("SEQUENTIAL\n");
        for i in 0..500 {
            let name = format!("s{i:03}");
            let pw = format!("storm-password-{i:03}");
            ledger
                .add_seat(
                    &NewSeat {
                        name: name.clone(),
                        realm: "smartdesk".into(),
                        ha1_md5: smartdesk::sip::auth::ha1_md5(&name, "smartdesk", &pw)
                            .as_str()
                            .to_owned(),
                        ha1_sha256: smartdesk::sip::auth::ha1_sha256(&name, "smartdesk", &pw)
                            .as_str()
                            .to_owned(),
                        web_password: None,
                    },
                    Utc::now(),
                )
                .await
                .expect("seat");
            users.push_str(&format!(
                "{name};[authentication username={name} password={pw}]\n"
            ));
        }
        ledger.close().await;
        d.start(&env, OPEN);
        // The storm: 500 seats from one address (a call centre's NAT) within 5 s.
        let csv = env.dir.path().join("users.csv");
        std::fs::write(&csv, users).expect("csv");
        let mut storm = sipp(
            env.dir.path(),
            "storm",
            &d.target(),
            &[
                "-sf",
                scenario("seat_storm.xml").to_str().expect("path"),
                "-inf",
                csv.to_str().expect("path"),
                "-i",
                "127.0.0.5",
                "-r",
                "100",
                "-l",
                "200",
                "-m",
                "500",
            ],
        );
        assert_eq!(
            storm.wait(Duration::from_secs(60)),
            Some(0),
            "{}\n{}",
            sipp_trace(env.dir.path(), "storm"),
            d.log_text()
        );
        // The brute force: wrong passwords for s000 from 127.0.0.4, one attempt after another.
        let mut brute = sipp(
            env.dir.path(),
            "brute",
            &d.target(),
            &[
                "-sf",
                scenario("seat_register_refused.xml")
                    .to_str()
                    .expect("path"),
                "-s",
                "s000",
                "-ap",
                "not-the-password",
                "-i",
                "127.0.0.4",
                "-r",
                "20",
                "-l",
                "1",
                "-m",
                "12",
                "-recv_timeout",
                "2000",
            ],
        );
        brute.wait(Duration::from_secs(60));
        let log = d.log_text();
        assert!(
            log.contains(
                "smartdesk::security: ban from 127.0.0.4 reason=auth_failures count=10 for_s=900"
            ),
            "{log}"
        );
        assert!(log.contains("smartdesk::security: auth_failure from 127.0.0.4"));
        assert!(!log.contains("ban from 127.0.0.5"), "the storm was banned");
        // Banned: even a correct login from there gets no answer; the storm's address still does.
        let banned = UdpSocket::bind("127.0.0.4:0").expect("bind");
        assert_eq!(
            answer(
                &banned,
                &d,
                &request("OPTIONS", &banned, &d, "x", 2),
                Duration::from_secs(2)
            ),
            None
        );
        let fine = UdpSocket::bind("127.0.0.5:0").expect("bind");
        assert_eq!(
            answer(
                &fine,
                &d,
                &request("OPTIONS", &fine, &d, "x", 3),
                Duration::from_secs(3)
            ),
            Some(200)
        );
        assert_eq!(d.stop(), Some(0));
    }
);

e2e_both!(flood_from_one_source_does_not_hurt_the_carrier, |env| {
    let mut d = setup(&env, OPEN);
    // The flood: OPTIONS and INVITEs from 127.0.0.6 as fast as one thread sends, for 6 s.
    let flooder = std::thread::spawn({
        let target = d.target();
        move || {
            let sock = UdpSocket::bind("127.0.0.6:0").expect("bind");
            let me = sock.local_addr().expect("addr");
            let deadline = Instant::now() + Duration::from_secs(6);
            let mut sent = 0u64;
            while Instant::now() < deadline && sent < 2_000_000 {
                let method = if sent % 2 == 0 { "OPTIONS" } else { "INVITE" };
                let msg = format!(
                    "{method} sip:0312345678@{target} SIP/2.0\r\n\
                     Via: SIP/2.0/UDP {me};branch=z9hG4bK-f{sent}\r\nMax-Forwards: 70\r\n\
                     To: <sip:0312345678@{target}>\r\nFrom: <sip:f@{me}>;tag={sent}\r\n\
                     Call-ID: f{sent}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
                );
                let _ = sock.send_to(msg.as_bytes(), &target);
                sent += 1;
            }
            sent
        }
    });
    // The carrier meanwhile: 40 calls at 10/s; nobody is registered, so each is a counted 480.
    let mut carrier: Proc = sipp(
        env.dir.path(),
        "carrier",
        &d.target(),
        &[
            "-sf",
            scenario("carrier_refused.xml").to_str().expect("path"),
            "-s",
            NUMBER,
            "-key",
            "aport",
            "40000",
            "-key",
            "caller",
            "09012345678",
            "-r",
            "10",
            "-m",
            "40",
        ],
    );
    let sent = flooder.join().expect("flooder");
    assert_eq!(
        carrier.wait(Duration::from_secs(60)),
        Some(0),
        "{}\n{}",
        sipp_trace(env.dir.path(), "carrier"),
        d.log_text()
    );
    let calls = settled_calls(&env, &d);
    assert_eq!(
        calls.len(),
        40,
        "every carrier call counted once, no flood INVITE"
    );
    assert!(calls.iter().all(|c| c["outcome"] == "overflow"));
    let log = d.log_text();
    assert!(
        log.contains("smartdesk::security: rate_limited from 127.0.0.6"),
        "{sent} flood requests, no limit:\n{log}"
    );
    assert!(
        log.contains("smartdesk::security: ban from 127.0.0.6 reason=flood"),
        "{log}"
    );
    assert!(
        !log.contains("rate_limited from 127.0.0.1"),
        "the carrier was limited:\n{log}"
    );
    assert_eq!(d.stop(), Some(0));
});

/// Toll fraud: a seat's phone cannot place calls through the daemon (it only ever connects
/// carrier calls *to* seats), and REFER is not a method it accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seats_cannot_call_out() {
    let env = Env::new(common::Db::Sqlite).await;
    let d = setup(&env, OPEN);
    let phone = UdpSocket::bind("127.0.0.7:0").expect("bind");
    let mut invite = request("INVITE", &phone, &d, "softphone/1.0", 1);
    invite = invite.replace("0312345678@", "0120999999@");
    assert_eq!(
        answer(&phone, &d, &invite, Duration::from_secs(3)),
        Some(403)
    );
    let refer = request("REFER", &phone, &d, "softphone/1.0", 2);
    assert_eq!(
        answer(&phone, &d, &refer, Duration::from_secs(3)),
        Some(405)
    );
    let calls = settled_calls(&env, &d);
    assert!(calls.is_empty(), "{calls:?}");
    env.cleanup().await;
}
