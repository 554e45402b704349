//! Test support: every ledger test runs on SQLite (temp file) and PostgreSQL (own schema).
//!
//! PostgreSQL comes from `SMARTDESK_TEST_POSTGRES_URL` (default: the machine's server at
//! 127.0.0.1:5432, database `test`). An unreachable server fails the test: the PostgreSQL
//! tests must never be silently skipped (issue #2 §6).

use super::Ledger;

pub const DEFAULT_TEST_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn pg_base_url() -> String {
    std::env::var("SMARTDESK_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_PG_URL.into())
}

/// Test schemas are named `sdtest_<unix seconds>_<random>`; those older than this are
/// left-overs of crashed runs and are dropped when a new one is made.
const STALE_SCHEMA_SECS: i64 = 3600;

/// A fresh, migrated ledger in a backend of the caller's choice.
pub struct TestLedger {
    pub ledger: Ledger,
    #[allow(dead_code)]
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<String>,
}

impl TestLedger {
    pub async fn sqlite() -> TestLedger {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite:{}", dir.path().join("ledger.db").display());
        let ledger = Ledger::connect(&url, 4).await.expect("open sqlite");
        ledger.migrate().await.expect("migrate sqlite");
        TestLedger {
            ledger,
            url,
            _dir: Some(dir),
            pg_schema: None,
        }
    }

    pub async fn postgres() -> TestLedger {
        let (url, schema) = fresh_pg_schema().await;
        let ledger = Ledger::connect(&url, 4)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL test ledger at {url}: {e}"));
        ledger.migrate().await.expect("migrate postgres");
        TestLedger {
            ledger,
            url,
            _dir: None,
            pg_schema: Some(schema),
        }
    }

    /// Drop the PostgreSQL schema; call at the end of a passing test.
    pub async fn cleanup(self) {
        self.ledger.close().await;
        if let Some(schema) = self.pg_schema {
            drop_pg_schema(&schema).await;
        }
    }
}

/// Create an empty schema and return a URL whose connections use it.
pub async fn fresh_pg_schema() -> (String, String) {
    use rand::Rng;
    let base = pg_base_url();
    let admin = Ledger::connect(&base, 1).await.unwrap_or_else(|e| {
        panic!("PostgreSQL must be reachable at {base} for the test suite (set SMARTDESK_TEST_POSTGRES_URL): {e}")
    });
    let now = chrono::Utc::now().timestamp();
    let schema = format!("sdtest_{now}_{:08x}", rand::thread_rng().gen::<u32>());
    let super::Pool::Postgres(p) = &admin.pool else {
        panic!("{base} is not a PostgreSQL URL")
    };
    let stale: Vec<String> =
        sqlx::query_scalar("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sdtest\\_%'")
            .fetch_all(p)
            .await
            .unwrap_or_default();
    for s in stale {
        let ts = s
            .split('_')
            .nth(1)
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(now);
        if now - ts > STALE_SCHEMA_SECS {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"))
                .execute(p)
                .await;
        }
    }
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(p)
        .await
        .expect("create schema");
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    (format!("{base}{sep}options[search_path]={schema}"), schema)
}

pub async fn drop_pg_schema(schema: &str) {
    if let Ok(admin) = Ledger::connect(&pg_base_url(), 1).await {
        if let super::Pool::Postgres(p) = &admin.pool {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(p)
                .await;
        }
        admin.close().await;
    }
}

/// Define one async test body and run it as two tests, `<name>::sqlite` and
/// `<name>::postgres` (CI counts the `::postgres` ones to prove they ran).
#[allow(unused_macros)]
macro_rules! both_backends {
    ($name:ident, |$l:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                let t = $crate::ledger::testing::TestLedger::sqlite().await;
                {
                    let $l = &t.ledger;
                    $body
                }
                t.cleanup().await;
            }
            #[tokio::test]
            async fn postgres() {
                let t = $crate::ledger::testing::TestLedger::postgres().await;
                {
                    let $l = &t.ledger;
                    $body
                }
                t.cleanup().await;
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use both_backends;
