//! # lifeboat-sqlite
//!
//! SQLite for lifeboat: [`SqliteBackup`] takes one consistent capture of a live database with
//! SQLite's online backup API (writers are not stopped), records page size, `user_version`,
//! a schema hash and every table's row count; [`SqliteRestorePlan`] restores to a new path or,
//! with `force`, over a live database after a safety snapshot; [`SqliteDrill`] restores into
//! a scratch file and runs `PRAGMA integrity_check` and the row counts.
//!
//! ```
//! use lifeboat_core::{Backup, MemorySafetyNet, MemorySnapshot, NoProgress, RestoreContext,
//!                     RestoreOptions, RestorePlan, Snapshot};
//! use lifeboat_sqlite::{SqliteBackup, SqliteRestorePlan};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let db = dir.path().join("app.db");
//! let conn = rusqlite::Connection::open(&db).unwrap();
//! conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);").unwrap();
//!
//! let snap = MemorySnapshot::capture(&SqliteBackup::new(&db), Default::default()).await?;
//! assert_eq!(snap.manifest().metadata["tables"]["t"], 2);
//!
//! let target = dir.path().join("restored.db");
//! let plan = SqliteRestorePlan::new(&snap, &target, &RestoreOptions::default())?;
//! let net = MemorySafetyNet::default();
//! let ctx = RestoreContext { snapshot: &snap, safety_net: &net, progress: &NoProgress };
//! let report = plan.execute(&ctx).await?;
//! assert!(report.checks.iter().all(|c| c.ok));
//! # Ok::<_, lifeboat_core::Error>(()) }).unwrap();
//! ```

mod backend;
mod backup;
mod drill;
mod error;
mod export;
mod inspect;
pub mod replica;
mod restore;
mod rows;

pub use backend::SqliteBackend;
pub use backup::{SqliteBackup, page_stream_available};
pub use drill::SqliteDrill;
pub use error::SqliteError;
pub use export::export;
pub use inspect::{SqliteMetadata, check_database, check_is_database, check_private_copy, inspect};
pub use restore::{NOTE, SqliteRestorePlan, UNVERIFIED_TAG, metadata_of};
pub use rows::restore_rows;
