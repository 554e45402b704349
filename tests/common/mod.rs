//! Shared end-to-end harness: runs the real `smartdesk` binary against a fresh ledger on
//! SQLite or PostgreSQL, each test in its own data directory / schema.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use smartdesk::ledger::testing::{drop_pg_schema, fresh_pg_schema};
use smartdesk::ledger::Ledger;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub url: String,
    pg_schema: Option<String>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_smartdesk"))
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

impl Env {
    pub async fn new(db: Db) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, pg_schema) = match db {
            Db::Sqlite => (
                format!("sqlite:{}", dir.path().join("ledger.db").display()),
                None,
            ),
            Db::Postgres => {
                let (url, schema) = fresh_pg_schema().await;
                (url, Some(schema))
            }
        };
        Env {
            dir,
            url,
            pg_schema,
        }
    }

    /// Run the CLI with this env's ledger and data dir, the repo's profiles, and no
    /// stray configuration from the environment.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run smartdesk");
        Run::from(out)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .arg("--database")
            .arg(&self.url)
            .arg("--data-dir")
            .arg(self.dir.path())
            .current_dir(repo())
            .env_remove("SMARTDESK_LOG");
        for (k, _) in std::env::vars() {
            if k.starts_with("SMARTDESK__") {
                c.env_remove(k);
            }
        }
        c
    }

    pub async fn ledger(&self) -> Ledger {
        Ledger::connect(&self.url, 2).await.expect("connect")
    }

    pub async fn cleanup(self) {
        if let Some(s) = &self.pg_schema {
            drop_pg_schema(s).await;
        }
    }
}

/// Define one async e2e test body and run it as `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! e2e_both {
    ($name:ident, |$env:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $env = $crate::common::Env::new($crate::common::Db::Sqlite).await;
                $body
                $env.cleanup().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $env = $crate::common::Env::new($crate::common::Db::Postgres).await;
                $body
                $env.cleanup().await;
            }
        }
    };
}
pub mod audio;
pub mod browser;
pub mod calls;
pub mod peers;
