//! The run log: a local SQLite file that survives restarts. The repository stays the source
//! of truth for snapshots; this only says what the service did, when, and how it went.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::DaemonError;

/// Status of a run that has not finished.
pub const IN_PROGRESS: &str = "in_progress";
/// Status of a run that did what it should.
pub const COMPLETED: &str = "completed";
/// Status of a run that did not.
pub const FAILED: &str = "failed";
/// The error of a run the service did not see finish (crash, kill, power loss).
pub const INTERRUPTED: &str =
    "interrupted: lifeboatd stopped before the run finished; no snapshot was made visible by it";

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// A backup of a job.
    Backup,
    /// A verification of a snapshot.
    Verify,
    /// A restore of a snapshot.
    Restore,
    /// A restore drill.
    Drill,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Verify => "verify",
            Operation::Restore => "restore",
            Operation::Drill => "drill",
        }
    }
}

/// One row of the run log.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Run id.
    pub id: i64,
    /// The job (or snapshot name for API operations).
    pub job: String,
    /// backup, verify, restore or drill.
    pub operation: String,
    /// schedule, catch-up, api.
    pub trigger: String,
    /// in_progress, completed or failed.
    pub status: String,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it ended.
    pub finished: Option<DateTime<Utc>>,
    /// How long it took.
    pub duration_ms: Option<u64>,
    /// The snapshot made or used.
    pub snapshot: Option<String>,
    /// Bytes captured.
    pub size: Option<u64>,
    /// New bytes stored.
    pub stored: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Notes (retention, verification).
    pub detail: Option<String>,
    /// Why it failed, as a word for metrics: see [`Outcome::reason`].
    pub reason: Option<String>,
    /// How long the verification after a backup took.
    pub verify_ms: Option<u64>,
    /// A drill's measured recovery time (the restore and its checks).
    pub rto_ms: Option<u64>,
}

/// How a run ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The snapshot made or used.
    pub snapshot: Option<String>,
    /// Bytes captured.
    pub size: Option<u64>,
    /// New bytes stored.
    pub stored: Option<u64>,
    /// Why it failed (`None`: it completed).
    pub error: Option<String>,
    /// Notes.
    pub detail: Option<String>,
    /// Why it failed, as one word for `lifeboat_failures_total`: `timeout` (past
    /// `run_timeout`), `panic` (a lifeboatd bug), `interrupted` (lifeboatd stopped),
    /// `verification` (the snapshot did not verify), `check` (a drill's checks or objectives
    /// failed) or `error` (anything else: the target, the repository); `None` is `error`.
    pub reason: Option<&'static str>,
    /// How long the verification after a backup took.
    pub verify_ms: Option<u64>,
    /// A drill's measured recovery time.
    pub rto_ms: Option<u64>,
}

/// The reason of a failed run, also of one recorded before reasons were.
macro_rules! reason_sql {
    () => {
        "coalesce(reason, CASE WHEN error LIKE 'interrupted%' THEN 'interrupted' ELSE 'error' END)"
    };
}

/// Failed runs of one job, operation and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureCount {
    /// The job (or snapshot name for API verifications).
    pub job: String,
    /// backup, verify, restore or drill.
    pub operation: String,
    /// See [`Outcome::reason`].
    pub reason: String,
    /// How many.
    pub count: u64,
}

/// Which runs to list.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct RunFilter {
    /// Only this job.
    pub job: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only this operation.
    pub operation: Option<String>,
    /// At most this many, newest first (default 100).
    pub limit: Option<u32>,
}

/// Per-job counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobCounts {
    /// Backups that completed.
    pub completed: u64,
    /// Backups that failed (interrupted ones included).
    pub failed: u64,
}

/// The run log.
pub struct Catalog {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("path", &self.path).finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    operation TEXT NOT NULL,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    duration_ms INTEGER,
    snapshot TEXT,
    size INTEGER,
    stored INTEGER,
    error TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job, operation, started);
CREATE TABLE IF NOT EXISTS overrides (
    job TEXT PRIMARY KEY,
    settings TEXT NOT NULL
);
";

impl Catalog {
    /// Opens (creating) the catalog at `path` and marks every run left `in_progress` by a
    /// previous process as failed and interrupted; returns the catalog and how many.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`] when the file cannot be opened or written.
    pub fn open(path: &Path) -> Result<(Self, usize), DaemonError> {
        let err = |source| DaemonError::Catalog { path: path.to_path_buf(), source };
        let conn = Connection::open(path).map_err(err)?;
        // WAL: readers (the API) never wait for the writer; NORMAL sync survives a process
        // crash, which is what the interrupted-run bookkeeping relies on.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        // Columns added after the first release: a catalog from before gets them, empty.
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('runs')")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(err)?;
        for (column, kind) in [("reason", "TEXT"), ("verify_ms", "INTEGER"), ("rto_ms", "INTEGER")]
        {
            if !columns.iter().any(|c| c == column) {
                conn.execute_batch(&format!("ALTER TABLE runs ADD COLUMN {column} {kind}"))
                    .map_err(err)?;
            }
        }
        let interrupted = conn
            .execute(
                "UPDATE runs SET status = ?1, error = ?2, finished = ?3, reason = 'interrupted' WHERE status = ?4",
                params![FAILED, INTERRUPTED, Utc::now().to_rfc3339(), IN_PROGRESS],
            )
            .map_err(err)?;
        Ok((Catalog { path: path.to_path_buf(), conn: Mutex::new(conn) }, interrupted))
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, DaemonError> {
        let conn = match self.conn.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&conn).map_err(|source| DaemonError::Catalog { path: self.path.clone(), source })
    }

    /// Records a new run in progress; returns its id.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn start(
        &self,
        job: &str,
        operation: Operation,
        trigger: &str,
    ) -> Result<i64, DaemonError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO runs (job, operation, trigger, status, started) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![job, operation.as_str(), trigger, IN_PROGRESS, Utc::now().to_rfc3339()],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Records how run `id` ended.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn finish(&self, id: i64, outcome: &Outcome) -> Result<(), DaemonError> {
        let now = Utc::now();
        let status = if outcome.error.is_some() { FAILED } else { COMPLETED };
        self.with(|c| {
            let started: Option<String> = c
                .query_row("SELECT started FROM runs WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            let duration = started
                .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                .map(|s| (now - s.with_timezone(&Utc)).num_milliseconds().max(0));
            c.execute(
                "UPDATE runs SET status = ?2, finished = ?3, duration_ms = ?4, snapshot = ?5, size = ?6, stored = ?7, error = ?8, detail = ?9, reason = ?10, verify_ms = ?11, rto_ms = ?12 WHERE id = ?1",
                params![
                    id,
                    status,
                    now.to_rfc3339(),
                    duration,
                    outcome.snapshot,
                    outcome.size.map(|v| v as i64),
                    outcome.stored.map(|v| v as i64),
                    outcome.error,
                    outcome.detail,
                    outcome.error.as_ref().map(|_| outcome.reason.unwrap_or("error")),
                    outcome.verify_ms.map(|v| v as i64),
                    outcome.rto_ms.map(|v| v as i64),
                ],
            )?;
            Ok(())
        })
    }

    /// Marks every run still in progress as interrupted (at shutdown, after aborting them).
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn interrupt_all(&self) -> Result<usize, DaemonError> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET status = ?1, error = ?2, finished = ?3, reason = 'interrupted' WHERE status = ?4",
                params![FAILED, INTERRUPTED, Utc::now().to_rfc3339(), IN_PROGRESS],
            )
        })
    }

    /// Failed runs counted by job, operation and reason.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn failures(&self) -> Result<Vec<FailureCount>, DaemonError> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT job, operation, {}, count(*) FROM runs WHERE status = ?1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                reason_sql!()
            ))?;
            let rows = stmt.query_map([FAILED], |r| {
                Ok(FailureCount {
                    job: r.get(0)?,
                    operation: r.get(1)?,
                    reason: r.get(2)?,
                    count: r.get::<_, i64>(3)?.max(0) as u64,
                })
            })?;
            rows.collect()
        })
    }

    /// The newest finished verification of `job`'s snapshots: a backup run that verified,
    /// or a verification through the API; with `completed`, only one that passed.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn last_verification(
        &self,
        job: &str,
        completed: bool,
    ) -> Result<Option<Run>, DaemonError> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM runs WHERE job = ?1 AND ((operation = 'backup' AND verify_ms IS NOT NULL) OR operation = 'verify') AND status != ?2 AND (?3 = 0 OR status = ?4) ORDER BY id DESC LIMIT 1"),
                params![job, IN_PROGRESS, completed, COMPLETED],
                row,
            )
            .optional()
        })
    }

    /// The newest completed run of `operation` for `job`.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn last_completed(
        &self,
        job: &str,
        operation: Operation,
    ) -> Result<Option<Run>, DaemonError> {
        self.newest_run(job, operation, "status = ?3", COMPLETED)
    }

    /// The newest run of `operation` for `job` whose status meets `condition` (a clause on
    /// `status` against `?3`, bound to `status`).
    fn newest_run(
        &self,
        job: &str,
        operation: Operation,
        condition: &str,
        status: &str,
    ) -> Result<Option<Run>, DaemonError> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM runs WHERE job = ?1 AND operation = ?2 AND {condition} ORDER BY id DESC LIMIT 1"),
                params![job, operation.as_str(), status],
                row,
            )
            .optional()
        })
    }

    /// One run.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn get(&self, id: i64) -> Result<Option<Run>, DaemonError> {
        self.with(|c| {
            c.query_row(&format!("SELECT {COLUMNS} FROM runs WHERE id = ?1"), [id], row).optional()
        })
    }

    /// Runs matching `filter`, newest first.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn list(&self, filter: &RunFilter) -> Result<Vec<Run>, DaemonError> {
        let limit = filter.limit.unwrap_or(100).min(10_000);
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM runs WHERE (?1 IS NULL OR job = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR operation = ?3) ORDER BY id DESC LIMIT ?4"
            ))?;
            let rows = stmt.query_map(
                params![filter.job, filter.status, filter.operation, limit],
                row,
            )?;
            rows.collect()
        })
    }

    /// The newest finished backup of `job`.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn last_backup(&self, job: &str) -> Result<Option<Run>, DaemonError> {
        self.last_finished(job, Operation::Backup)
    }

    /// The newest finished run of `operation` for `job`.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn last_finished(
        &self,
        job: &str,
        operation: Operation,
    ) -> Result<Option<Run>, DaemonError> {
        self.newest_run(job, operation, "status != ?3", IN_PROGRESS)
    }

    /// The newest completed backup of `job`.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn last_success(&self, job: &str) -> Result<Option<Run>, DaemonError> {
        self.last_completed(job, Operation::Backup)
    }

    /// When `job` last started an operation (any outcome): the scheduler's catch-up point.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn last_started(
        &self,
        job: &str,
        operation: Operation,
    ) -> Result<Option<DateTime<Utc>>, DaemonError> {
        let text: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT max(started) FROM runs WHERE job = ?1 AND operation = ?2",
                params![job, operation.as_str()],
                |r| r.get(0),
            )
        })?;
        Ok(text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc)))
    }

    /// Completed and failed backups of `job`.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn counts(&self, job: &str) -> Result<JobCounts, DaemonError> {
        self.with(|c| {
            c.query_row(
                "SELECT coalesce(sum(status = ?2), 0), coalesce(sum(status = ?3), 0) FROM runs WHERE job = ?1 AND operation = 'backup'",
                params![job, COMPLETED, FAILED],
                |r| Ok(JobCounts { completed: r.get::<_, i64>(0)? as u64, failed: r.get::<_, i64>(1)? as u64 }),
            )
        })
    }

    /// Settings changed through the API, per job (JSON), to apply over the file's.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn overrides(&self) -> Result<Vec<(String, String)>, DaemonError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT job, settings FROM overrides ORDER BY job")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Forgets every job's changed settings.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn clear_overrides(&self) -> Result<(), DaemonError> {
        self.with(|c| c.execute("DELETE FROM overrides", []).map(|_| ()))
    }

    /// Stores a job's changed settings.
    ///
    /// # Errors
    /// [`DaemonError::Catalog`].
    pub fn set_override(&self, job: &str, settings: &str) -> Result<(), DaemonError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO overrides (job, settings) VALUES (?1, ?2) ON CONFLICT(job) DO UPDATE SET settings = excluded.settings",
                params![job, settings],
            )?;
            Ok(())
        })
    }
}

const COLUMNS: &str = concat!(
    "id, job, operation, trigger, status, started, finished, duration_ms, snapshot, size, stored, error, detail, CASE WHEN status = 'failed' THEN ",
    reason_sql!(),
    " END, verify_ms, rto_ms"
);

fn time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        id: r.get(0)?,
        job: r.get(1)?,
        operation: r.get(2)?,
        trigger: r.get(3)?,
        status: r.get(4)?,
        started: time(r.get(5)?).unwrap_or_default(),
        finished: time(r.get(6)?),
        duration_ms: r.get::<_, Option<i64>>(7)?.map(|v| v.max(0) as u64),
        snapshot: r.get(8)?,
        size: r.get::<_, Option<i64>>(9)?.map(|v| v.max(0) as u64),
        stored: r.get::<_, Option<i64>>(10)?.map(|v| v.max(0) as u64),
        error: r.get(11)?,
        detail: r.get(12)?,
        reason: r.get(13)?,
        verify_ms: r.get::<_, Option<i64>>(14)?.map(|v| v.max(0) as u64),
        rto_ms: r.get::<_, Option<i64>>(15)?.map(|v| v.max(0) as u64),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn runs_survive_a_restart_and_unfinished_ones_become_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.db");
        let (cat, n) = Catalog::open(&path).unwrap();
        assert_eq!(n, 0);
        let done = cat.start("auth", Operation::Backup, "schedule").unwrap();
        cat.finish(
            done,
            &Outcome { snapshot: Some("abc".into()), size: Some(10), ..Outcome::default() },
        )
        .unwrap();
        let open = cat.start("auth", Operation::Backup, "api").unwrap();
        drop(cat);
        let (cat, n) = Catalog::open(&path).unwrap();
        assert_eq!(n, 1);
        let run = cat.get(open).unwrap().unwrap();
        assert_eq!(run.status, FAILED);
        assert!(run.error.unwrap().starts_with("interrupted"));
        assert_eq!(cat.get(done).unwrap().unwrap().status, COMPLETED);
        assert_eq!(cat.last_success("auth").unwrap().unwrap().id, done);
        assert_eq!(cat.last_backup("auth").unwrap().unwrap().id, open);
        let counts = cat.counts("auth").unwrap();
        assert_eq!((counts.completed, counts.failed), (1, 1));
        let failed =
            cat.list(&RunFilter { status: Some(FAILED.into()), ..RunFilter::default() }).unwrap();
        assert_eq!(failed.len(), 1);
        assert!(cat.last_started("auth", Operation::Backup).unwrap().is_some());
        assert!(cat.last_started("billing", Operation::Backup).unwrap().is_none());
        assert_eq!(run.reason.as_deref(), Some("interrupted"));
        let slow = cat.start("auth", Operation::Backup, "schedule").unwrap();
        let outcome = Outcome {
            error: Some("still running after 2s".into()),
            reason: Some("timeout"),
            ..Outcome::default()
        };
        cat.finish(slow, &outcome).unwrap();
        let failures = cat.failures().unwrap();
        let count = |reason: &str| {
            failures.iter().find(|f| f.reason == reason && f.operation == "backup").map(|f| f.count)
        };
        assert_eq!((count("interrupted"), count("timeout")), (Some(1), Some(1)), "{failures:?}");
    }

    #[test]
    fn a_catalog_from_before_reasons_gets_the_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, operation TEXT NOT NULL, trigger TEXT NOT NULL, status TEXT NOT NULL, started TEXT NOT NULL, finished TEXT, duration_ms INTEGER, snapshot TEXT, size INTEGER, stored INTEGER, error TEXT, detail TEXT);
             INSERT INTO runs (job, operation, trigger, status, started, error) VALUES ('auth', 'backup', 'schedule', 'failed', '2026-01-01T00:00:00Z', 'no such file');",
        )
        .unwrap();
        drop(old);
        let (cat, _) = Catalog::open(&path).unwrap();
        let run = cat.last_backup("auth").unwrap().unwrap();
        assert_eq!((run.reason.as_deref(), run.verify_ms), (Some("error"), None));
        let v = cat.start("auth", Operation::Backup, "api").unwrap();
        cat.finish(v, &Outcome { verify_ms: Some(1500), ..Outcome::default() }).unwrap();
        assert_eq!(cat.last_verification("auth", true).unwrap().unwrap().verify_ms, Some(1500));
    }
}
