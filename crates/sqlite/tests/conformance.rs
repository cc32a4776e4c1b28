//! The backend conformance suite against real SQLite files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use lifeboat_core::conformance::{self, Harness};
use lifeboat_core::{Backup, RestoreOptions, RestorePlan, Snapshot, Verifier};
use lifeboat_sqlite::{SqliteBackup, SqliteRestorePlan, SqliteVerifier};

struct SqliteHarness {
    dir: tempfile::TempDir,
    next: AtomicU32,
}

impl SqliteHarness {
    fn new() -> Self {
        SqliteHarness {
            dir: tempfile::tempdir().unwrap(),
            next: AtomicU32::new(0),
        }
    }
    fn path(&self, stem: &str) -> PathBuf {
        self.dir.path().join(format!(
            "{stem}-{}.db",
            self.next.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

#[async_trait]
impl Harness for SqliteHarness {
    async fn source(&self) -> Box<dyn Backup> {
        let path = self.path("live");
        lifeboat_testkit::make_sqlite_db(&path, 3);
        Box::new(SqliteBackup::new(path))
    }

    async fn change(&self, source: &dyn Backup) {
        let conn = rusqlite::Connection::open(source.target()).unwrap();
        lifeboat_testkit::insert_events(&conn, 250);
        conn.execute("DELETE FROM users WHERE id % 3 = 0", [])
            .unwrap();
    }

    fn fresh_target(&self) -> String {
        self.path("restored").display().to_string()
    }

    fn live_target(&self, source: &dyn Backup) -> String {
        source.target()
    }

    fn plan(
        &self,
        snapshot: &dyn Snapshot,
        target: &str,
        options: &RestoreOptions,
    ) -> lifeboat_core::Result<Box<dyn RestorePlan>> {
        Ok(Box::new(SqliteRestorePlan::new(
            snapshot,
            Path::new(target),
            options,
        )?))
    }

    async fn content(&self, target: &str) -> String {
        if !Path::new(target).exists() {
            return "<absent>".into();
        }
        let conn = rusqlite::Connection::open(target).unwrap();
        let events: (i64, i64) = conn
            .query_row(
                "SELECT count(*), coalesce(sum(length(body)), 0) FROM events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let users: i64 = conn
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .unwrap();
        format!("events={events:?} users={users}")
    }

    fn verifier(&self) -> Box<dyn Verifier> {
        Box::new(SqliteVerifier)
    }

    fn damage(&self, bytes: &mut Vec<u8>) {
        let at = bytes.len() / 2;
        bytes[at] ^= 0x55;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backend_conforms() {
    conformance::run_all(&SqliteHarness::new()).await;
}
