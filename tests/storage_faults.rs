//! Storage faults (issue #10 §2), end to end with the real binary and a SIPp carrier.
//!
//! * PostgreSQL stopped under load: a private cluster (initdb + pg_ctl, as the `postgres`
//!   user, on a free loopback port) is stopped for [`PG_OUTAGE`] while the carrier places
//!   10 calls/s. Calls go on (rows spooled), the daemon is killed with `kill -9` while the
//!   ledger is still away and restarted on its spool (new calls: 503), PostgreSQL returns,
//!   the daemon replays the spool; then the spool as it was at the kill is put back and
//!   replayed a second time. Every call that got its final answer is in the ledger exactly
//!   once, and no call answered 503 is.
//! * SQLite on a full filesystem: the ledger on a small tmpfs filled up with a file. Calls
//!   get 503 with Retry-After and leave no row; once the file is deleted, calls are taken
//!   and counted again without a restart.
//!
//! Each scenario is specific to one backend (the spool exists only for PostgreSQL; a full
//! disk is a local-file fault), so each runs on that backend only.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::calls::*;
use common::peers::{free_sip_port, sipp_trace, Daemon, OPEN};
use common::Env;

/// Long enough that the first ledger write of the outage runs into the pool's 10 s acquire
/// timeout and later calls go to the spool without waiting (about 200 calls at 10/s), short
/// enough to keep the test near a minute and a half.
const PG_OUTAGE: Duration = Duration::from_secs(20);

fn as_postgres(args: &[&str]) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).args(args);
    c
}

fn pg_bin(tool: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries in /usr/lib/postgresql")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    // Newest major version (16 after 9).
    versions.sort_by_key(|b| {
        b.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().expect("an initdb").join(tool)
}

/// A PostgreSQL cluster of this test: its own data directory and port; `pg_ctl stop -m
/// immediate` on drop (pg_ctl signals the postmaster by the pid in its data directory).
struct PgCluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl PgCluster {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn init() -> PgCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let chown = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(chown.success());
        let c = PgCluster {
            dir,
            port: free_sip_port(),
        };
        let out = as_postgres(&[pg_bin("initdb").to_str().expect("path")])
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(c.data())
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c.start();
        c
    }

    fn pg_ctl(&self, args: &[&str]) -> bool {
        as_postgres(&[pg_bin("pg_ctl").to_str().expect("path"), "-D"])
            .arg(self.data())
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("pg.log");
        assert!(
            self.pg_ctl(&[
                "-w",
                "-t",
                "30",
                "-o",
                &opts,
                "-l",
                log.to_str().expect("path"),
                "start"
            ]),
            "pg_ctl start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// A fast shutdown: sessions are cut, as when the server or its host goes away.
    fn stop(&self) {
        assert!(self.pg_ctl(&["-w", "-t", "30", "-m", "fast", "stop"]));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.pg_ctl(&["-w", "-t", "30", "-m", "immediate", "stop"]);
    }
}

fn status(env: &Env, d: &Daemon) -> serde_json::Value {
    d.cli(env, &["status", "--json"]).ok().json()
}

/// Polls `status` until the spool is empty (at most `within`); returns how long it took.
fn wait_spool_empty(env: &Env, d: &Daemon, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let s = status(env, d);
        let spool = &s["ledger"]["spool"];
        if spool["calls"] == 0 && spool["updates"] == 0 && spool["ledger_unreachable"] == false {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "spool not drained within {within:?}: {s}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn spool_files(data_dir: &Path) -> Vec<PathBuf> {
    ["spool.db", "spool.db-wal", "spool.db-shm"]
        .iter()
        .map(|f| data_dir.join(f))
        .collect()
}

fn copy_spool(from: &Path, to: &Path) {
    for (a, b) in spool_files(from).iter().zip(spool_files(to)) {
        let _ = std::fs::remove_file(&b);
        if a.exists() {
            std::fs::copy(a, &b).expect("copy spool");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_spools_and_replays_exactly_once() {
    let pg = PgCluster::init();
    let env = Env::with_url(pg.url());
    let mut d = setup(&env, OPEN);
    // No operator: each call is admitted (row written or spooled), queued, overflows: 480.
    // 45 s of calls, within SIPp's global 60 s timeout.
    let mut carrier = carrier_load(&env, &d, "carrier", "carrier_refused.xml", 10, 450);
    std::thread::sleep(Duration::from_secs(5));
    pg.stop();
    let outage = Instant::now();
    // Halfway through the outage the daemon says so, and the spool holds calls.
    std::thread::sleep(PG_OUTAGE / 2);
    let s = status(&env, &d);
    assert_eq!(s["ledger"]["healthy"], false, "{s}");
    assert_eq!(s["ledger"]["spool"]["ledger_unreachable"], true, "{s}");
    assert!(
        s["ledger"]["spool"]["calls"].as_u64().unwrap_or(0) > 0,
        "{s}\n{}",
        d.log_text()
    );
    assert!(
        s["warnings"].as_array().is_some_and(|w| w
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("spool backlog")))),
        "{s}"
    );
    std::thread::sleep(PG_OUTAGE.saturating_sub(outage.elapsed()));
    // kill -9 with the ledger still away: the spool must carry what it holds across.
    d.kill9();
    let at_kill = env.dir.path().join("at-kill");
    std::fs::create_dir_all(&at_kill).expect("dir");
    copy_spool(env.dir.path(), &at_kill);
    let spooled = {
        let copy = env.dir.path().join("count");
        std::fs::create_dir_all(&copy).expect("dir");
        copy_spool(&at_kill, &copy);
        let s = smartdesk::ledger::Spool::open(&copy.join("spool.db"), 1_000_000)
            .await
            .expect("open spool copy");
        let b = s.backlog();
        s.close().await;
        b
    };
    assert!(spooled.calls > 50, "too few calls spooled: {spooled:?}");
    // Restarted with PostgreSQL still away: it starts on the spool, says so, and refuses new
    // calls (503: no number has been looked up since this start).
    d.restart(&env);
    let s = status(&env, &d);
    assert_eq!(s["ledger"]["spool"]["ledger_unreachable"], true, "{s}");
    assert_eq!(s["ledger"]["spool"]["calls"], spooled.calls, "{s}");
    std::thread::sleep(Duration::from_secs(2));
    pg.start();
    let back = Instant::now();
    wait_spool_empty(&env, &d, Duration::from_secs(60));
    let drain_time = back.elapsed();
    carrier.wait(Duration::from_secs(70));
    carrier.kill9();
    wait_spool_empty(&env, &d, Duration::from_secs(30));
    assert_eq!(d.stop(), Some(0), "{}", d.log_text());

    // Replay a second time: the spool as it was at the kill, on a ledger that has it all.
    copy_spool(&at_kill, env.dir.path());
    d.restart(&env);
    wait_spool_empty(&env, &d, Duration::from_secs(60));

    let trace = sipp_trace(env.dir.path(), "carrier");
    // Anything beyond 100 Trying (ringing, queue audio, the final 480) means "counted".
    let mut answered = call_ids_with(&trace, "480");
    for code in ["180", "183", "200"] {
        answered.extend(call_ids_with(&trace, code));
    }
    let sent = call_ids_sent(&trace);
    assert!(
        answered.len() > 200,
        "too few calls got through: {}",
        answered.len()
    );
    let refused = call_ids_with(&trace, "503");
    assert!(
        !refused.is_empty(),
        "calls while started on the spool get 503"
    );
    let calls = settled_calls(&env, &d);
    let rows = assert_counted_once(&calls, &answered, &sent);
    let counted_refusals: Vec<_> = calls
        .iter()
        .filter(|c| refused.contains(c["call_id"].as_str().unwrap_or_default()))
        .collect();
    assert!(
        counted_refusals.is_empty(),
        "503 but counted: {counted_refusals:?}"
    );
    eprintln!(
        "PostgreSQL away {:?} under 10 calls/s, kill -9 during the outage: {} INVITEs sent, \
         {} answered beyond 100 Trying (480), {} answered 503 (daemon restarted on the spool), {} call rows / {} \
         updates in the spool at the kill, drained {:?} after PostgreSQL returned \
         (pg_ctl start returned, status polled every 200 ms), replayed twice, {} rows (answered ⊆ rows, no \
         duplicate, no 503 counted)",
        PG_OUTAGE,
        sent.len(),
        answered.len(),
        refused.len(),
        spooled.calls,
        spooled.updates,
        drain_time,
        rows.len()
    );
    assert_eq!(d.stop(), Some(0));
}

/// A tmpfs of `size` at `path`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount -t tmpfs (the test runs as root)");
        Tmpfs(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the filesystem of `path` with one file until it refuses more (bounded by `max`).
fn fill(path: &Path, max: usize) -> usize {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0;
    while written < max {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n,
        }
    }
    let _ = f.sync_all();
    written
}

fn carrier_calls(env: &Env, d: &Daemon, label: &str, scenario_file: &str, n: u32) -> i32 {
    carrier_load(env, d, label, scenario_file, 5, n)
        .wait(Duration::from_secs(60))
        .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_refuses_503_and_recovers_by_itself() {
    let mnt = tempfile::tempdir().expect("tempdir");
    let _tmpfs = Tmpfs::mount(mnt.path(), "16m");
    let env = Env::with_url(format!("sqlite:{}", mnt.path().join("ledger.db").display()));
    let mut d = setup(&env, OPEN);
    let before = settled_calls(&env, &d).len();
    let filler = mnt.path().join("filler");
    let filled = fill(&filler, 32 << 20);
    assert!(filled > 0);

    let code = carrier_calls(&env, &d, "refused", "carrier_unavailable.xml", 5);
    let trace = sipp_trace(env.dir.path(), "refused");
    assert_eq!(
        code,
        0,
        "every call 503 with Retry-After\n{trace}\n{}",
        d.log_text()
    );
    assert!(
        !trace.contains("SIP/2.0 180") && !trace.contains("SIP/2.0 200"),
        "nothing beyond 100 Trying before the 503:\n{trace}"
    );
    assert_eq!(settled_calls(&env, &d).len(), before, "no row while full");

    // Space returns: the same daemon takes and counts calls again.
    std::fs::remove_file(&filler).expect("remove filler");
    let code = carrier_calls(&env, &d, "after", "carrier_refused.xml", 5);
    assert_eq!(
        code,
        0,
        "{}\n{}",
        sipp_trace(env.dir.path(), "after"),
        d.log_text()
    );
    let trace = sipp_trace(env.dir.path(), "after");
    let answered = call_ids_with(&trace, "480");
    let calls = settled_calls(&env, &d);
    assert_eq!(answered.len(), 5);
    assert_eq!(calls.len(), before + 5);
    assert_counted_once(&calls, &answered, &call_ids_sent(&trace));
    let log = d.log_text();
    assert!(log.contains("disk is full"), "the fault happened:\n{log}");
    assert!(
        !log.contains("update dropped") && !log.contains("updates dropped"),
        "no outcome lost:\n{log}"
    );
    eprintln!(
        "SQLite on a full tmpfs ({} KiB of filler): 5 calls got 503 + Retry-After, no row; \
         after deleting the filler 5 calls counted without restart",
        filled / 1024
    );
    assert_eq!(d.stop(), Some(0));
}
