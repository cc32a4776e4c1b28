//! The backend conformance suite against real SQLite files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use lifeboat_core::conformance::{self, Harness};
use lifeboat_core::drill::ScratchVerifier;
use lifeboat_core::{Backup, RestoreOptions, RestorePlan, Snapshot, Verifier};
use lifeboat_sqlite::{SqliteBackup, SqliteDrill, SqliteRestorePlan};

/// The ways a database can be captured; the suite runs for each.
#[derive(Clone, Copy)]
enum Way {
    /// WAL mode: streamed page by page through `sqlite_dbpage`.
    PageStream,
    /// WAL mode, forced through the online backup API's temporary copy.
    BackupCopy,
    /// Rollback-journal mode: always the temporary copy.
    RollbackJournal,
}

struct SqliteHarness {
    dir: tempfile::TempDir,
    next: AtomicU32,
    way: Way,
}

impl SqliteHarness {
    fn new(way: Way) -> Self {
        SqliteHarness { dir: tempfile::tempdir().unwrap(), next: AtomicU32::new(0), way }
    }
    fn path(&self, stem: &str) -> PathBuf {
        self.dir.path().join(format!("{stem}-{}.db", self.next.fetch_add(1, Ordering::Relaxed)))
    }
}

#[async_trait]
impl Harness for SqliteHarness {
    async fn source(&self) -> Box<dyn Backup> {
        let path = self.path("live");
        lifeboat_testkit::make_sqlite_db(&path, 3);
        match self.way {
            Way::PageStream => Box::new(SqliteBackup::new(path)),
            Way::BackupCopy => Box::new(SqliteBackup::new(path).with_backup_copy()),
            Way::RollbackJournal => {
                let conn = rusqlite::Connection::open(&path).unwrap();
                let mode: String =
                    conn.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0)).unwrap();
                assert_eq!(mode, "delete");
                Box::new(SqliteBackup::new(path))
            }
        }
    }

    async fn change(&self, source: &dyn Backup) {
        let conn = rusqlite::Connection::open(source.target()).unwrap();
        lifeboat_testkit::insert_events(&conn, 250);
        conn.execute("DELETE FROM users WHERE id % 3 = 0", []).unwrap();
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
        Ok(Box::new(SqliteRestorePlan::new(snapshot, Path::new(target), options)?))
    }

    async fn content(&self, target: &str) -> String {
        if !Path::new(target).exists() {
            return "<absent>".into();
        }
        let conn = rusqlite::Connection::open(target).unwrap();
        let events: (i64, i64) = conn
            .query_row("SELECT count(*), coalesce(sum(length(body)), 0) FROM events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let users: i64 = conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0)).unwrap();
        format!("events={events:?} users={users}")
    }

    fn verifier(&self) -> Box<dyn Verifier> {
        Box::new(ScratchVerifier(SqliteDrill))
    }

    fn damage(&self, bytes: &mut Vec<u8>) {
        let at = bytes.len() / 2;
        bytes[at] ^= 0x55;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_page_stream_conforms() {
    conformance::run_all(&SqliteHarness::new(Way::PageStream)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_backup_copy_conforms() {
    conformance::run_all(&SqliteHarness::new(Way::BackupCopy)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_journal_conforms() {
    conformance::run_all(&SqliteHarness::new(Way::RollbackJournal)).await;
}

/// Both capture ways of one database give the same bytes, and the page stream is the one
/// used for WAL databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_stream_and_backup_copy_agree() {
    assert!(
        lifeboat_sqlite::page_stream_available(),
        "SQLite was built without SQLITE_ENABLE_DBPAGE_VTAB: is .cargo/config.toml in place?"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("same.db");
    lifeboat_testkit::make_sqlite_db(&path, 2);
    let streamed =
        lifeboat_core::MemorySnapshot::capture(&SqliteBackup::new(&path), Default::default())
            .await
            .unwrap();
    let copied = lifeboat_core::MemorySnapshot::capture(
        &SqliteBackup::new(&path).with_backup_copy(),
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(streamed.manifest().metadata, copied.manifest().metadata);
    assert_eq!(streamed.bytes().len(), copied.bytes().len());
    // Page 1 may differ in its change counter; every other page is the same.
    let page = streamed.manifest().metadata["page_size"].as_u64().unwrap() as usize;
    assert_eq!(streamed.bytes()[page..], copied.bytes()[page..]);
}
