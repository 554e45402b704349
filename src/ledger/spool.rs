//! The durable local spool of a PostgreSQL ledger (issue #10 §2): where call rows and their
//! updates go while PostgreSQL cannot take them, and from where they are replayed into it.
//!
//! ```text
//!  admission ──(PG write failed / PG known down)──► spool_calls   (provisional id = -seq)
//!  row updates ─(PG failed, or spool not empty)──► spool_updates (in arrival order)
//!  replayer ──► INSERT … ON CONFLICT DO NOTHING into `calls` ──► spool_calls.ledger_id
//!           ──► updates, provisional ids mapped, applied in order ──► deleted from spool
//! ```
//!
//! **Why an embedded SQLite file** (`<data_dir>/spool.db`, WAL, `synchronous=FULL`) rather
//! than an append-only log of our own: a spooled call must be durable before the caller
//! hears anything beyond 100 Trying, exactly like a ledger row, and SQLite gives that
//! (one fsync'd transaction per admission batch: group commit again), a unique key on
//! (trunk, Call-ID, From-tag) that makes a re-sent INVITE find its spooled row, torn-write
//! safety and crash recovery without code of ours, and a bounded size we can count. The
//! spool is a separate file from any ledger and never needs migrations of the ledger.
//!
//! **Exactly once across replays.** Replay inserts with the ledger's own unique key
//! (`ON CONFLICT DO NOTHING`, then reads the row's id), records the ledger id in the spool,
//! and only then replays the call's updates. A crash (or `kill -9`) between the ledger
//! commit and the spool commit replays the same rows again: the insert finds the existing
//! row, the updates only fill empty fields (COALESCE). Queue-log entries are the one thing a
//! crash in that window can write twice; they are diagnostics, never counted or billed.
//!
//! **Provisional ids.** A spooled call has no ledger id yet; the call core gets `-seq`
//! (negative, never reused: `AUTOINCREMENT`) and its later updates carry it. Replay maps it
//! through `spool_calls.ledger_id`, which is kept for [`MAPPING_KEEP`] after replay so that
//! updates of calls still in progress find their row.

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{CallUpdate, Ledger, LedgerError, NewCall};

/// The spool's file name inside the data directory.
pub const SPOOL_FILE: &str = "spool.db";
/// Rows replayed per ledger transaction.
const REPLAY_BATCH: i64 = 256;
/// How long a replayed call's provisional → ledger id mapping is kept: longer than any call
/// lasts, so that updates of a call still in progress when PostgreSQL returned find it.
pub const MAPPING_KEEP: Duration = Duration::from_secs(24 * 3600);
/// Updates spooled at most per spooled-call capacity (answered, finished, queue log).
const UPDATES_PER_CALL: u64 = 16;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool full ({0} calls waiting for the ledger)")]
    Full(u64),
    #[error("spool: {0}")]
    Db(#[from] sqlx::Error),
    #[error("spool: {0}")]
    Ledger(#[from] LedgerError),
}

/// Counts for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpoolBacklog {
    /// Call rows waiting for the ledger.
    pub calls: u64,
    /// Row updates waiting for the ledger.
    pub updates: u64,
}

/// The spool: a small SQLite file, one connection (writes are serialised anyway).
#[derive(Debug)]
pub struct Spool {
    pool: SqlitePool,
    max_calls: u64,
    calls: AtomicU64,
    updates: AtomicU64,
    /// Set when a ledger write or lookup failed; cleared by the replayer's probe. While set,
    /// admission does not wait on the ledger at all (each attempt could take the pool's
    /// acquire timeout).
    unreachable: AtomicBool,
    spooled_total: AtomicU64,
    replayed_total: AtomicU64,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS spool_calls (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        trunk TEXT NOT NULL, sip_call_id TEXT NOT NULL, from_tag TEXT NOT NULL,
        contractor_id INTEGER, number TEXT NOT NULL, caller TEXT,
        caller_withheld INTEGER NOT NULL, outcome TEXT, billable INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        spooled_at TEXT NOT NULL,
        ledger_id INTEGER,
        UNIQUE (trunk, sip_call_id, from_tag))",
    "CREATE TABLE IF NOT EXISTS spool_updates (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id INTEGER NOT NULL,
        body TEXT NOT NULL)",
];

type SpooledRow = (
    i64,
    String,
    String,
    String,
    Option<i64>,
    String,
    Option<String>,
    bool,
    Option<String>,
    bool,
    DateTime<Utc>,
);

impl Spool {
    /// Opens (creating) the spool at `path`, holding at most `max_calls` calls.
    pub async fn open(path: &Path, max_calls: u64) -> Result<Spool, SpoolError> {
        let opts = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        for s in SCHEMA {
            sqlx::query(s).execute(&pool).await?;
        }
        let spool = Spool {
            pool,
            max_calls,
            calls: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            unreachable: AtomicBool::new(false),
            spooled_total: AtomicU64::new(0),
            replayed_total: AtomicU64::new(0),
        };
        spool.recount().await?;
        Ok(spool)
    }

    async fn recount(&self) -> Result<(), SpoolError> {
        let calls: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM spool_calls WHERE ledger_id IS NULL")
                .fetch_one(&self.pool)
                .await?;
        let updates: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM spool_updates")
            .fetch_one(&self.pool)
            .await?;
        self.calls.store(calls as u64, Relaxed);
        self.updates.store(updates as u64, Relaxed);
        Ok(())
    }

    pub fn backlog(&self) -> SpoolBacklog {
        SpoolBacklog {
            calls: self.calls.load(Relaxed),
            updates: self.updates.load(Relaxed),
        }
    }

    /// Calls spooled and replayed since this process started.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.spooled_total.load(Relaxed),
            self.replayed_total.load(Relaxed),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.backlog() == SpoolBacklog::default()
    }

    pub fn ledger_unreachable(&self) -> bool {
        self.unreachable.load(Relaxed)
    }

    pub fn set_ledger_unreachable(&self, down: bool) {
        if self.unreachable.swap(down, Relaxed) != down {
            if down {
                tracing::error!("ledger unreachable: calls and their updates go to the spool");
            } else {
                tracing::warn!(backlog = ?self.backlog(), "ledger reachable again; replaying the spool");
            }
        }
    }

    /// Durably spools `calls` (one transaction, one fsync). Returns, per call, the id the
    /// call core uses: `-seq` for a call waiting in the spool, or the ledger id when this is
    /// a re-sent INVITE of a call already replayed. The `bool` is whether the call is new.
    pub async fn put_calls(
        &self,
        calls: &[NewCall],
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, bool)>, SpoolError> {
        let waiting = self.calls.load(Relaxed);
        if waiting + calls.len() as u64 > self.max_calls {
            return Err(SpoolError::Full(waiting));
        }
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(calls.len());
        let mut added = 0;
        for c in calls {
            let seq: Option<i64> = sqlx::query_scalar(
                "INSERT INTO spool_calls (trunk, sip_call_id, from_tag, contractor_id, number, caller,
                    caller_withheld, outcome, billable, started_at, spooled_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (trunk, sip_call_id, from_tag) DO NOTHING RETURNING seq",
            )
            .bind(&c.trunk)
            .bind(&c.sip_call_id)
            .bind(&c.from_tag)
            .bind(c.contractor_id)
            .bind(&c.number)
            .bind(&c.caller)
            .bind(c.caller_withheld)
            .bind(&c.outcome)
            .bind(c.billable)
            .bind(c.started_at)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            match seq {
                Some(seq) => {
                    added += 1;
                    out.push((-seq, true));
                }
                None => {
                    let (seq, ledger_id): (i64, Option<i64>) = sqlx::query_as(
                        "SELECT seq, ledger_id FROM spool_calls
                         WHERE trunk = $1 AND sip_call_id = $2 AND from_tag = $3",
                    )
                    .bind(&c.trunk)
                    .bind(&c.sip_call_id)
                    .bind(&c.from_tag)
                    .fetch_one(&mut *tx)
                    .await?;
                    out.push((ledger_id.unwrap_or(-seq), false));
                }
            }
        }
        tx.commit().await?;
        self.calls.fetch_add(added, Relaxed);
        self.spooled_total.fetch_add(added, Relaxed);
        Ok(out)
    }

    /// Durably spools row updates, in order, after any already spooled.
    pub async fn put_updates(&self, updates: &[CallUpdate]) -> Result<(), SpoolError> {
        let waiting = self.updates.load(Relaxed);
        if waiting + updates.len() as u64 > self.max_calls * UPDATES_PER_CALL {
            return Err(SpoolError::Full(self.calls.load(Relaxed)));
        }
        let mut tx = self.pool.begin().await?;
        for u in updates {
            let body = serde_json::to_string(u).unwrap_or_default();
            sqlx::query("INSERT INTO spool_updates (call_id, body) VALUES ($1, $2)")
                .bind(u.call_id())
                .bind(body)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.updates.fetch_add(updates.len() as u64, Relaxed);
        Ok(())
    }

    /// One replay step: a batch of calls, then a batch of updates. Returns how many spool
    /// entries it moved into the ledger (0 = nothing left that can be replayed now).
    pub async fn replay_step(&self, ledger: &Ledger) -> Result<usize, SpoolError> {
        let rows: Vec<SpooledRow> = sqlx::query_as(
            "SELECT seq, trunk, sip_call_id, from_tag, contractor_id, number, caller,
                    caller_withheld, outcome, billable, started_at
             FROM spool_calls WHERE ledger_id IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(REPLAY_BATCH)
        .fetch_all(&self.pool)
        .await?;
        if !rows.is_empty() {
            let calls: Vec<NewCall> = rows
                .iter()
                .map(|r| NewCall {
                    trunk: r.1.clone(),
                    sip_call_id: r.2.clone(),
                    from_tag: r.3.clone(),
                    contractor_id: r.4,
                    number: r.5.clone(),
                    caller: r.6.clone(),
                    caller_withheld: r.7,
                    outcome: r.8.clone(),
                    billable: r.9,
                    started_at: r.10,
                })
                .collect();
            let ids = ledger.insert_calls(&calls).await?;
            let mut tx = self.pool.begin().await?;
            for (r, (id, _)) in rows.iter().zip(&ids) {
                sqlx::query("UPDATE spool_calls SET ledger_id = $1 WHERE seq = $2")
                    .bind(id)
                    .bind(r.0)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            let created = ids.iter().filter(|(_, new)| *new).count();
            self.calls.fetch_sub(rows.len() as u64, Relaxed);
            self.replayed_total.fetch_add(rows.len() as u64, Relaxed);
            tracing::info!(
                calls = rows.len(),
                created,
                already_in_ledger = rows.len() - created,
                "spooled calls replayed"
            );
            return Ok(rows.len());
        }
        let pending: Vec<(i64, i64, String)> =
            sqlx::query_as("SELECT seq, call_id, body FROM spool_updates ORDER BY seq LIMIT $1")
                .bind(REPLAY_BATCH)
                .fetch_all(&self.pool)
                .await?;
        let mut batch = Vec::with_capacity(pending.len());
        let mut last_seq = None;
        for (seq, call_id, body) in &pending {
            let row = if *call_id < 0 {
                let mapped: Option<(Option<i64>,)> =
                    sqlx::query_as("SELECT ledger_id FROM spool_calls WHERE seq = $1")
                        .bind(-call_id)
                        .fetch_optional(&self.pool)
                        .await?;
                match mapped {
                    Some((Some(id),)) => Some(id),
                    // Its call was spooled after this step began: next step.
                    Some((None,)) => break,
                    None => None,
                }
            } else {
                Some(*call_id)
            };
            last_seq = Some(*seq);
            match (row, serde_json::from_str::<CallUpdate>(body)) {
                (Some(row), Ok(u)) => batch.push(u.for_call(row)),
                (None, _) => {
                    tracing::error!(call = call_id, "spooled update for an unknown call dropped")
                }
                (_, Err(e)) => tracing::error!(error = %e, "unreadable spooled update dropped"),
            }
        }
        let Some(last_seq) = last_seq else {
            return Ok(0);
        };
        ledger.apply_call_updates(&batch).await?;
        let done = sqlx::query("DELETE FROM spool_updates WHERE seq <= $1")
            .bind(last_seq)
            .execute(&self.pool)
            .await?
            .rows_affected();
        self.updates.fetch_sub(done, Relaxed);
        Ok(done as usize)
    }

    /// Forgets provisional-id mappings older than [`MAPPING_KEEP`].
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<u64, SpoolError> {
        let before = now - chrono::Duration::from_std(MAPPING_KEEP).unwrap_or_default();
        Ok(sqlx::query(
            "DELETE FROM spool_calls WHERE ledger_id IS NOT NULL AND spooled_at < $1
               AND NOT EXISTS (SELECT 1 FROM spool_updates u WHERE u.call_id = -spool_calls.seq)",
        )
        .bind(before)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Replays until the spool is empty, the ledger fails, or `within` has passed.
    pub async fn drain(&self, ledger: &Ledger, within: Duration) -> Result<(), SpoolError> {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.replay_step(ledger).await? == 0 {
                break;
            }
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::testing::TestLedger;

    fn call(id: &str) -> NewCall {
        NewCall {
            trunk: "t".into(),
            sip_call_id: id.into(),
            from_tag: "f".into(),
            contractor_id: None,
            number: "+81312345678".into(),
            caller: None,
            caller_withheld: true,
            billable: true,
            outcome: None,
            started_at: Utc::now(),
        }
    }

    /// A spool replayed twice (the second time from a copy taken before the first replay,
    /// as after a crash between the ledger commit and the spool commit) counts every call
    /// once and keeps its updates.
    async fn replay_twice_counts_once(t: TestLedger) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(SPOOL_FILE);
        let spool = Spool::open(&path, 10).await.expect("open");
        let ids = spool
            .put_calls(&[call("a"), call("b"), call("a")], Utc::now())
            .await
            .expect("put");
        assert_eq!(ids[0], (-1, true));
        assert_eq!(ids[1], (-2, true));
        assert_eq!(
            ids[2],
            (-1, false),
            "a re-sent INVITE finds its spooled row"
        );
        let at = Utc::now();
        spool
            .put_updates(&[CallUpdate::Finished {
                id: -2,
                outcome: "abandoned".into(),
                seat_id: None,
                at,
            }])
            .await
            .expect("update");
        assert_eq!(
            spool.backlog(),
            SpoolBacklog {
                calls: 2,
                updates: 1
            }
        );
        assert!(matches!(
            spool.put_calls(&vec![call("c"); 9], Utc::now()).await,
            Err(SpoolError::Full(2))
        ));
        spool.close().await;
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).expect("copy");
        for file in [&path, &copy] {
            let s = Spool::open(file, 10).await.expect("reopen");
            s.drain(&t.ledger, Duration::from_secs(10))
                .await
                .expect("drain");
            assert!(s.is_empty(), "{:?}", s.backlog());
            s.close().await;
        }
        let calls = t
            .ledger
            .calls(&crate::ledger::CallFilter::default())
            .await
            .expect("calls");
        assert_eq!(calls.len(), 2, "{calls:?}");
        let b = calls.iter().find(|c| c.call_id == "b").expect("b");
        assert_eq!(b.outcome.as_deref(), Some("abandoned"));
        t.cleanup().await;
    }

    #[tokio::test]
    async fn replay_twice_counts_once_sqlite() {
        replay_twice_counts_once(TestLedger::sqlite().await).await;
    }

    #[tokio::test]
    async fn replay_twice_counts_once_postgres() {
        replay_twice_counts_once(TestLedger::postgres().await).await;
    }
}
