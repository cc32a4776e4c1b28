//! The read lock that keeps the `-wal` from being restarted under the replicator.
//!
//! SQLite restarts the log (writes new frames over old ones) only when no reader holds a
//! read mark in it; and it copies pages back into the database only as far as the oldest
//! reader allows. So while a read transaction is open, no frame the replicator has not
//! shipped can be overwritten. The replicator ships, then has the lock moved forward (a new
//! read transaction is begun before the old one ends, so there is never a moment without
//! one), which lets checkpoints proceed up to what is shipped.
//!
//! The lock lives in a small child process (`lifeboat __replica-helper sqlite hold PATH`), not in the
//! replicator: when the replicator is killed, the child keeps holding, so a replicator
//! started again finds every frame it had not shipped still in the `-wal` and resumes with
//! no gap. An orphaned holder lets go when a new replicator's holder has taken over (it
//! writes its pid into the holder file) or after [`ORPHAN_HOLD`].
//!
//! Protocol on the child's stdin, one byte each, answered by one line on its stdout:
//! `h` (hold: move the lock to now) → `held`; `u` (let go) → `released`; `q` → exit.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::config::DbConfig;
use sha2::{Digest as _, Sha256};
use tracing::{debug, info, warn};

use crate::error::SqliteError;

/// The helper argument that runs a holder: `lifeboat __replica-helper sqlite hold PATH`.
pub const HOLD_WORD: &str = "hold";

/// How long an orphaned holder keeps the lock (its replicator was killed) waiting for a new
/// replicator. The `-wal` grows meanwhile: the application's checkpoints cannot restart it.
pub const ORPHAN_HOLD: Duration = Duration::from_secs(15 * 60);

/// Opens a connection of the replicator's own: it never checkpoints or deletes the `-wal`
/// when it closes (that would fold frames not shipped yet into the database).
pub(crate) fn open_quiet(path: &Path) -> Result<Connection, SqliteError> {
    let conn = crate::inspect::open_existing(path)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(SqliteError::sqlite("configuring", path))?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(SqliteError::sqlite("configuring", path))?;
    Ok(conn)
}

pub(crate) fn begin_read(conn: &Connection, path: &Path) -> Result<(), SqliteError> {
    conn.execute_batch("BEGIN")
        .map_err(SqliteError::sqlite("starting a read transaction on", path))?;
    // A deferred transaction takes its read mark at its first read.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))
        .map_err(SqliteError::sqlite("starting a read transaction on", path))?;
    Ok(())
}

fn end_read(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("COMMIT");
    }
}

/// Where the pid of the holder of the database at `db` is written (in the temp folder,
/// named by a hash of the database's path).
pub fn holder_file(db: &Path) -> PathBuf {
    let canonical = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let hash = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    std::env::temp_dir().join(format!("lifeboat-replica-{}.holder", &hex::encode(hash)[..16]))
}

fn recorded_holder(db: &Path) -> Option<u32> {
    std::fs::read_to_string(holder_file(db)).ok()?.trim().parse().ok()
}

fn record_holder(db: &Path, pid: u32) {
    let file = holder_file(db);
    let temp = file.with_extension(format!("holder.{}", std::process::id()));
    if std::fs::write(&temp, pid.to_string()).and_then(|()| std::fs::rename(&temp, &file)).is_err()
    {
        warn!(file = %file.display(), "could not record the lock holder's pid");
    }
}

/// Whether `pid` is a live holder of the database at `db`.
fn is_holder_of(pid: u32, db: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let db = db.as_os_str().as_encoded_bytes();
    let helper = lifeboat_core::replica::HELPER_ARG.as_bytes();
    args.contains(&helper) && args.contains(&db)
}

/// Runs the holder, in the child process: holds a read transaction on `path` as the
/// module's doc says, until told to quit, or, once orphaned, until replaced or timed out.
///
/// # Errors
/// When the database cannot be opened or read.
pub fn run_holder(path: &Path, orphan_hold: Duration) -> Result<(), SqliteError> {
    let conns = [open_quiet(path)?, open_quiet(path)?];
    let mut held: Option<usize> = None;
    let mut out = std::io::stdout();
    let hold = |held: &mut Option<usize>| -> Result<(), SqliteError> {
        let next = held.map_or(0, |h| 1 - h);
        begin_read(&conns[next], path)?;
        if let Some(old) = held.replace(next) {
            end_read(&conns[old]);
        }
        Ok(())
    };
    hold(&mut held)?;
    let _ = writeln!(out, "held");
    let _ = out.flush();
    let mut stdin = std::io::stdin().lock();
    let mut byte = [0u8];
    // Until the replicator is gone (killed): then what is held is kept for its successor.
    while let Ok(1) = stdin.read(&mut byte) {
        let answer = match byte[0] {
            b'h' => {
                hold(&mut held)?;
                "held"
            }
            b'u' => {
                if let Some(old) = held.take() {
                    end_read(&conns[old]);
                }
                "released"
            }
            b'q' => return Ok(()),
            _ => continue,
        };
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
    if held.is_none() {
        return Ok(());
    }
    let me = std::process::id();
    let until = Instant::now() + orphan_hold;
    while Instant::now() < until {
        // Replaced by a new replicator's holder, or the database is gone.
        if recorded_holder(path).is_some_and(|pid| pid != me) || !path.exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The replicator's handle on its holder process.
#[derive(Debug)]
pub struct WalHolder {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    path: PathBuf,
}

/// Whether a holder took over from one that held since the previous replicator's last
/// shipment (so nothing after it can have been overwritten).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// The previous holder still held when ours began to.
    Continuous,
    /// No previous holder held: frames may have been overwritten meanwhile.
    Lapsed,
}

impl WalHolder {
    /// Starts `command` (which runs [`run_holder`] on `path`) and waits until it holds.
    ///
    /// # Errors
    /// When it cannot be started or does not report holding.
    pub fn spawn(mut command: Command, path: &Path) -> Result<(WalHolder, Takeover), SqliteError> {
        let failed = |reason: String| SqliteError::Replica {
            path: path.to_path_buf(),
            reason: format!("the process that holds the -wal's read lock {reason}"),
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("could not be started: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(failed("has no pipes".into()));
        };
        let mut holder =
            WalHolder { child, stdin, stdout: BufReader::new(stdout), path: path.into() };
        holder.answer("held")?;
        // Ours holds now: a previous holder still alive has held without a break since
        // before ours began.
        let takeover = match recorded_holder(path) {
            Some(pid) if pid != holder.child.id() && is_holder_of(pid, path) => {
                info!(
                    pid,
                    "a killed replicator's lock holder held the -wal until now: resuming without a gap"
                );
                Takeover::Continuous
            }
            _ => Takeover::Lapsed,
        };
        record_holder(path, holder.child.id());
        Ok((holder, takeover))
    }

    fn answer(&mut self, want: &str) -> Result<(), SqliteError> {
        let mut line = String::new();
        let read = self.stdout.read_line(&mut line);
        match read {
            Ok(n) if n > 0 && line.trim() == want => Ok(()),
            _ => Err(SqliteError::Replica {
                path: self.path.clone(),
                reason: format!(
                    "the process that holds the -wal's read lock stopped answering (expected {want:?}, got {:?}); see its error above",
                    line.trim()
                ),
            }),
        }
    }

    fn send(&mut self, byte: u8, want: &str) -> Result<(), SqliteError> {
        self.stdin.write_all(&[byte]).and_then(|()| self.stdin.flush()).map_err(|e| {
            SqliteError::Replica {
                path: self.path.clone(),
                reason: format!("the process that holds the -wal's read lock is gone: {e}"),
            }
        })?;
        self.answer(want)
    }

    /// Moves the lock forward to now (everything up to here is shipped).
    ///
    /// # Errors
    /// When the holder is gone.
    pub fn hold(&mut self) -> Result<(), SqliteError> {
        self.send(b'h', "held")
    }

    /// Lets go of the lock (for a checkpoint that restarts the `-wal`).
    ///
    /// # Errors
    /// When the holder is gone.
    pub fn release(&mut self) -> Result<(), SqliteError> {
        self.send(b'u', "released")
    }
}

impl Drop for WalHolder {
    fn drop(&mut self) {
        // A replicator that stops on purpose lets go: the application's checkpoints resume.
        let _ = self.stdin.write_all(b"q");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                debug!("lock holder ended");
                if recorded_holder(&self.path) == Some(self.child.id()) {
                    let _ = std::fs::remove_file(holder_file(&self.path));
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
