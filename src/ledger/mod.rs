//! The ledger: the one durable truth for calls and billing, and the only module with SQL.
//!
//! Two first-class backends (issue #2 §4): SQLite embedded (default; WAL with
//! `synchronous=FULL`, checked at open, so a committed call row survives power loss) and
//! PostgreSQL for production scale. Both run the *same* SQL text: sqlx's SQLite driver
//! accepts `$N` placeholders, and the schema keeps to types both map the same way
//! (`DateTime<Utc>` = TEXT/TIMESTAMPTZ, `NaiveDate` = TEXT/DATE, bool = INTEGER/BOOLEAN).
//! The `on_pool!` macro expands one body per backend, so every query is written once.
//!
//! Every write takes its instant (`at`) from the caller: the ledger never reads a clock.

mod calls;
mod contractors;
mod queue;
mod records;
mod registrations;
mod reports;
mod seats;
pub mod spool;
mod web_users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use calls::{CallFilter, CallUpdate, CallView, NewCall, OutcomeCount};
pub use contractors::{
    CancellationRow, Contractor, ContractorState, NewContractor, NumberRow, PlanChangeRow,
    SuspensionRow,
};
pub use queue::{NewQueueEvent, NewVoiceMessage, QueueEventRow, VoiceMessage};
pub use records::{EarlierCall, NewFirstResponse, RecordFilter, RecordView, CATEGORIES};
pub use reports::{
    idempotency_key, NewChannel, OutboxCounts, OutboxRow, ReportChannel, CHANNEL_KINDS,
};
pub use seats::{NewSeat, Seat};
pub use spool::{Spool, SpoolBacklog, SpoolError};
pub use web_users::{WebUser, ROLE_ADMIN, ROLE_CONTRACTOR};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// A connection that comes back to the pool still inside a transaction is closed rather
/// than reused (`after_release`). That is how the pool recovers from a full disk: SQLite
/// may roll a transaction back by itself when its COMMIT fails with SQLITE_FULL; sqlx's
/// ROLLBACK then fails ("no transaction is active") and the connection's transaction depth
/// stays at 1, so its next `begin()` would open a SAVEPOINT, whose rollback leaves a read
/// transaction open on a stale snapshot: every later write on it fails with
/// SQLITE_BUSY_SNAPSHOT (517) although the disk has space again.
///
/// Waiting this long for SQLite's write lock covers a CLI write racing the daemon;
/// longer would stall a call setup that waits on its durable row.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// A PostgreSQL outage must not hang the CLI forever.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger URL {0:?}: expected sqlite:PATH or postgres://…")]
    BadUrl(String),
    #[error("SQLite ledger refused: {0}")]
    Durability(String),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("corrupt ledger value in {field}: {value:?}")]
    Corrupt { field: &'static str, value: String },
}

impl LedgerError {
    /// `Ok` when a statement touched a row; `NotFound` naming `what` and `id` when it touched
    /// none (an UPDATE or DELETE by key).
    pub(crate) fn touched(rows: u64, what: &'static str, id: impl ToString) -> Result<(), Self> {
        if rows == 0 {
            return Err(LedgerError::NotFound {
                what,
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// Whether waiting can cure it: SQLite's disk full (`SQLITE_FULL`), busy or locked, or
    /// an I/O error; a lost connection or an exhausted pool. A constraint violation or bad
    /// data stays bad however often it is retried.
    pub fn is_transient(&self) -> bool {
        let LedgerError::Db(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
            sqlx::Error::Database(d) => d
                .try_downcast_ref::<sqlx::sqlite::SqliteError>()
                .and_then(|_| d.code())
                .and_then(|c| c.parse::<i32>().ok())
                // Primary result codes: BUSY 5, LOCKED 6, IOERR 10, FULL 13.
                .is_some_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13)),
            _ => false,
        }
    }

    /// Unique-key violations are how duplicates are refused without a race.
    pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
        e.as_database_error()
            .map(|d| d.is_unique_violation())
            .unwrap_or(false)
    }
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A handle to the ledger; cheap to clone (pools are reference-counted).
#[derive(Clone)]
pub struct Ledger {
    pool: Pool,
}

/// Expand `$body` once per backend with `$p` bound to that backend's pool
/// (or transaction). One SQL text, two monomorphised call sites.
macro_rules! on_pool {
    ($ledger:expr, |$p:ident| $body:expr) => {
        match &$ledger.pool {
            $crate::ledger::Pool::Sqlite($p) => $body,
            $crate::ledger::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Ledger {
    /// Open (and for SQLite create) the ledger. Does not migrate: see [`Ledger::migrate`].
    pub async fn connect(url: &str, max_connections: u32) -> Result<Ledger, LedgerError> {
        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, max_connections).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = sqlx::postgres::PgConnectOptions::from_str(url)
                .map_err(|_| LedgerError::BadUrl(url.to_string()))?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(PG_ACQUIRE_TIMEOUT)
                .connect_with(opts)
                .await?;
            Ok(Ledger {
                pool: Pool::Postgres(pool),
            })
        } else {
            Err(LedgerError::BadUrl(url.to_string()))
        }
    }

    /// A PostgreSQL ledger whose connections are made on first use: for a daemon that must
    /// start while PostgreSQL is away because its spool holds calls (see `ledger::spool`).
    pub fn connect_postgres_lazy(url: &str, max_connections: u32) -> Result<Ledger, LedgerError> {
        let opts = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(|_| LedgerError::BadUrl(url.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(PG_ACQUIRE_TIMEOUT)
            .connect_lazy_with(opts);
        Ok(Ledger {
            pool: Pool::Postgres(pool),
        })
    }

    async fn connect_sqlite(url: &str, max_connections: u32) -> Result<Ledger, LedgerError> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|_| LedgerError::BadUrl(url.to_string()))?;
        if let Some(parent) = opts.get_filename().parent() {
            if !parent.as_os_str().is_empty() && !parent.exists() {
                std::fs::create_dir_all(parent).map_err(|source| LedgerError::DataDir {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
        }
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .after_release(|conn, _| {
                Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
            })
            .connect_with(opts)
            .await?;
        // Refuse to run on a ledger that could lose a committed call (SPEC §3).
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await?;
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&pool)
            .await?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(LedgerError::Durability(format!(
                "journal_mode is {mode}, WAL required (is the file on a filesystem without shared memory?)"
            )));
        }
        // 2 = FULL, 3 = EXTRA (stricter, also fine).
        if sync < 2 {
            return Err(LedgerError::Durability(format!(
                "synchronous is {sync}, FULL (2) required"
            )));
        }
        Ok(Ledger {
            pool: Pool::Sqlite(pool),
        })
    }

    pub async fn migrate(&self) -> Result<(), LedgerError> {
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match &self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// A cheap round trip, for health reporting.
    pub async fn ping(&self) -> Result<(), LedgerError> {
        on_pool!(self, |p| {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    /// SQLite pragmas as they are now (for `status` and tests).
    pub async fn sqlite_pragmas(&self) -> Result<Option<(String, i64)>, LedgerError> {
        match &self.pool {
            Pool::Sqlite(p) => {
                let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(p)
                    .await?;
                let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(p)
                    .await?;
                Ok(Some((mode, sync)))
            }
            Pool::Postgres(_) => Ok(None),
        }
    }

    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }
}

#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod testing;

#[cfg(test)]
mod tests;

#[cfg(test)]
impl Ledger {
    async fn raw_insert_first_response_for_test(
        &self,
        call: i64,
        contractor: i64,
    ) -> Result<i64, LedgerError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_scalar(
                "INSERT INTO first_responses (call_id, contractor_id, callback_wanted, category, written_by, created_at)
                 VALUES ($1, $2, $3, 'normal', 'test', $4) RETURNING id",
            )
            .bind(call)
            .bind(contractor)
            .bind(false)
            .bind(chrono::Utc::now())
            .fetch_one(p)
            .await?
        }))
    }
    async fn raw_update_first_response_for_test(&self, id: i64) -> Result<(), LedgerError> {
        on_pool!(self, |p| {
            sqlx::query("UPDATE first_responses SET purpose = 'tampered' WHERE id = $1")
                .bind(id)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}
