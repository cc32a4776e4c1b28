//! Consistent online capture of a SQLite database, two ways:
//!
//! - **WAL mode, page stream** (when SQLite was built with `sqlite_dbpage`, as this
//!   workspace's `.cargo/config.toml` does): every page image is read through the
//!   `sqlite_dbpage` virtual table inside one read transaction and streamed straight into the
//!   repository, with no temporary copy; the metadata (row counts) is taken in the same
//!   transaction afterwards. Writers keep committing throughout (WAL readers never block
//!   them); checkpoints pause at our snapshot until the read ends.
//! - **Otherwise, online backup API**: every page is copied in one step (`step(-1)`) into a
//!   temporary file, which is then streamed. In rollback-journal mode a read transaction would
//!   block writers for the whole upload; this way they wait only for the local copy. Copying
//!   in small steps is avoided on purpose: each write by another connection restarts a
//!   stepwise copy, and under a steady writer it never finishes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lifeboat_core::producer::blocking_capture;
use lifeboat_core::{Backup, ByteStream, Capture, Kind, Result};
use rusqlite::Connection;
use rusqlite::backup::StepResult;
use tokio::io::{AsyncRead, ReadBuf};
use tracing::{debug, info};

use crate::error::{SqliteError, backend};
use crate::inspect::{SqliteMetadata, check_is_database, file_mode, inspect, open_existing};

/// The name temporary capture copies are derived from, in the temp folder:
/// `.lifeboat-sqlite-capture.lifeboat-restore-<pid>-<random>.db`.
const CAPTURE_TEMP: &str = "lifeboat-sqlite-capture";

/// How long a copy waits for a lock held by another connection before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(60);

type Sqlite<T> = std::result::Result<T, SqliteError>;

/// A SQLite database file to capture.
#[derive(Debug, Clone)]
pub struct SqliteBackup {
    path: PathBuf,
    temp_dir: Option<PathBuf>,
    force_copy: bool,
}

impl SqliteBackup {
    /// Captures the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteBackup { path: path.into(), temp_dir: None, force_copy: false }
    }

    /// Puts a temporary copy, when one is needed, in `dir` instead of the system temp folder.
    pub fn with_temp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = Some(dir.into());
        self
    }

    /// Always captures through a temporary copy made with the online backup API, even when a
    /// page stream is possible (the stream is faster; this exists to test both ways).
    pub fn with_backup_copy(mut self) -> Self {
        self.force_copy = true;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the file and opens it; returns the connection and its journal mode.
    fn open_source(&self) -> Sqlite<(Connection, String)> {
        check_is_database(&self.path)?;
        let src = open_existing(&self.path)?;
        let journal_mode: String = src.query_row("PRAGMA journal_mode", [], |r| r.get(0)).map_err(
            |source| match source {
                rusqlite::Error::SqliteFailure(e, _)
                    if e.code == rusqlite::ErrorCode::NotADatabase =>
                {
                    SqliteError::NotADatabase { path: self.path.clone(), reason: e.to_string() }
                }
                source => {
                    SqliteError::Sqlite { action: "reading", path: self.path.clone(), source }
                }
            },
        )?;
        Ok((src, journal_mode.to_ascii_lowercase()))
    }

    /// Copies the database into a temporary file with the backup API.
    ///
    /// The copy is a full plaintext database, so where it goes is predictable and a killed
    /// capture's copy does not stay: it is named after [`CAPTURE_TEMP`] with our process id
    /// (the restore temp-file convention of [`lifeboat_core::temp_prefix`]), and every capture
    /// first removes the copies (and their `-wal`/`-journal`) whose process is gone.
    fn copy_to_temp(
        &self,
        src: &Connection,
        journal_mode: &str,
    ) -> Sqlite<(tempfile::NamedTempFile, SqliteMetadata)> {
        let dir = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let marker = dir.join(CAPTURE_TEMP);
        for leftover in lifeboat_core::remove_leftovers(&marker) {
            info!(path = %leftover.display(), "removed the copy an interrupted capture left");
        }
        let temp = tempfile::Builder::new()
            .prefix(&lifeboat_core::temp_prefix(&marker))
            .suffix(".db")
            .tempfile_in(&dir)
            .map_err(SqliteError::io("creating a temporary file in", &dir))?;
        let started = Instant::now();
        let mut dst =
            Connection::open(temp.path()).map_err(SqliteError::sqlite("creating", temp.path()))?;
        copy_all_pages(src, &mut dst, &self.path, "capturing")?;
        let mut metadata = inspect(&dst, temp.path(), journal_mode)?;
        metadata.mode = file_mode(&self.path);
        // Closing the copy folds any WAL it has back into the file before it is streamed.
        dst.close().map_err(|(_, e)| SqliteError::sqlite("closing", temp.path())(e))?;
        debug!(path = %self.path.display(), elapsed = ?started.elapsed(), pages = metadata.page_count, "consistent copy taken");
        Ok((temp, metadata))
    }

    async fn capture_by_copy(&self, src: Connection, journal_mode: String) -> Result<Capture> {
        let this = self.clone();
        let (temp, metadata) =
            tokio::task::spawn_blocking(move || this.copy_to_temp(&src, &journal_mode))
                .await
                .map_err(|e| backend(format!("capture task failed: {e}")))??;
        let temp = temp.into_temp_path();
        let file = tokio::fs::File::open(&temp)
            .await
            .map_err(|e| lifeboat_core::Error::io("opening", temp.to_path_buf(), e))?;
        let size = file.metadata().await.map(|m| m.len()).ok();
        let reader: ByteStream = Box::pin(TempFileReader { file, _temp: temp });
        let metadata = serde_json::to_value(&metadata).map_err(|e| backend(e.to_string()))?;
        Ok(with_size(Capture::new(reader, metadata), size))
    }

    fn capture_by_pages(&self, src: Connection, journal_mode: String) -> Result<Capture> {
        page_capture(src, self.path.clone(), journal_mode, Transaction::Begin, None)
    }
}

/// Whether [`page_capture`] begins the read transaction or finds it begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transaction {
    /// Begin it.
    Begin,
    /// `src` is already inside the read transaction to capture (a replica's base, begun at
    /// a known place in the `-wal`).
    Begun,
}

/// The page-stream capture of `src` (see [`stream_pages`]), with the file's permission bits
/// and, for a replica's base snapshot, where it stands.
pub(crate) fn page_capture(
    src: Connection,
    path: PathBuf,
    journal_mode: String,
    transaction: Transaction,
    replica: Option<crate::replica::ReplicaPoint>,
) -> Result<Capture> {
    let size = src
        .query_row(
            "SELECT page_size * page_count FROM pragma_page_size, pragma_page_count",
            [],
            |r| r.get::<_, i64>(0),
        )
        .ok()
        .map(|n| n.max(0) as u64);
    blocking_capture("lifeboat-sqlite-pages", Kind::SQLITE, size, move |sink| {
        if transaction == Transaction::Begin {
            src.execute_batch("BEGIN")
                .map_err(SqliteError::sqlite("starting a read transaction on", &path))?;
        }
        let mut metadata = stream_pages(&src, &path, &journal_mode, sink)?;
        metadata.mode = file_mode(&path);
        metadata.replica = replica;
        serde_json::to_value(&metadata).map_err(|e| backend(e.to_string()))
    })
}

fn with_size(capture: Capture, size: Option<u64>) -> Capture {
    match size {
        Some(size) => capture.with_size_hint(size),
        None => capture,
    }
}

/// Whether this build of SQLite can stream WAL-mode databases page by page (it was compiled
/// with `SQLITE_ENABLE_DBPAGE_VTAB`); otherwise captures go through a temporary copy.
pub fn page_stream_available() -> bool {
    Connection::open_in_memory().map(|c| has_dbpage(&c)).unwrap_or(false)
}

/// Whether this SQLite build has the `sqlite_dbpage` virtual table.
fn has_dbpage(conn: &Connection) -> bool {
    conn.prepare("SELECT data FROM sqlite_dbpage LIMIT 0").is_ok()
}

/// Writes every page image of the read transaction `src` is in, then gathers the metadata in
/// the same transaction (so the row counts describe exactly the pages sent), and ends it.
fn stream_pages(
    src: &Connection,
    path: &Path,
    journal_mode: &str,
    out: &mut impl Write,
) -> Sqlite<SqliteMetadata> {
    let err = |action| SqliteError::sqlite(action, path);
    {
        let mut stmt =
            src.prepare("SELECT data FROM sqlite_dbpage").map_err(err("reading pages of"))?;
        let mut rows = stmt.query([]).map_err(err("reading pages of"))?;
        while let Some(row) = rows.next().map_err(err("reading pages of"))? {
            let page = row.get_ref(0).map_err(err("reading pages of"))?;
            let page = page.as_blob().map_err(|e| err("reading pages of")(e.into()))?;
            // A failed write means the repository side stopped: stop reading too.
            out.write_all(page).map_err(|_| SqliteError::Cancelled { path: path.into() })?;
        }
    }
    let metadata = inspect(src, path, journal_mode)?;
    src.execute_batch("COMMIT").map_err(err("ending the read transaction on"))?;
    Ok(metadata)
}

/// Copies every page of `src` into `dst` in one step of the backup API, waiting out locks.
pub(crate) fn copy_all_pages(
    src: &Connection,
    dst: &mut Connection,
    path: &Path,
    action: &'static str,
) -> Sqlite<()> {
    let backup =
        rusqlite::backup::Backup::new(src, dst).map_err(SqliteError::sqlite(action, path))?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match backup.step(-1).map_err(SqliteError::sqlite(action, path))? {
            StepResult::Done => return Ok(()),
            StepResult::Busy | StepResult::Locked if Instant::now() > deadline => {
                return Err(SqliteError::Locked {
                    action,
                    path: path.into(),
                    seconds: LOCK_WAIT.as_secs(),
                });
            }
            StepResult::Busy | StepResult::Locked => std::thread::sleep(Duration::from_millis(25)),
            _ => continue,
        }
    }
}

/// Streams a temporary file and deletes it when dropped.
struct TempFileReader {
    file: tokio::fs::File,
    _temp: tempfile::TempPath,
}

impl AsyncRead for TempFileReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_read(cx, buf)
    }
}

#[async_trait]
impl Backup for SqliteBackup {
    fn kind(&self) -> Kind {
        Kind::SQLITE
    }

    fn default_name(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sqlite".into())
    }

    fn target(&self) -> String {
        self.path.display().to_string()
    }

    async fn capture(&self) -> Result<Capture> {
        let this = self.clone();
        let (src, journal_mode) = tokio::task::spawn_blocking(move || this.open_source())
            .await
            .map_err(|e| backend(format!("capture task failed: {e}")))??;
        if journal_mode == "wal" && !self.force_copy && has_dbpage(&src) {
            debug!(path = %self.path.display(), "capturing by page stream");
            self.capture_by_pages(src, journal_mode)
        } else {
            debug!(path = %self.path.display(), journal_mode, "capturing by online backup copy");
            self.capture_by_copy(src, journal_mode).await
        }
    }
}

/// The raw bytes of a database file and of its `-wal`, unchecked: the safety copy of a
/// database too damaged for [`SqliteBackup`] (which reads every table to record its row
/// counts). Nothing is lost by replacing such a database, and nothing about it is vouched for:
/// its metadata says `raw` and why the normal capture was not possible.
#[derive(Debug, Clone)]
pub(crate) struct RawCopy {
    pub(crate) path: PathBuf,
    /// Where its `-wal` is read from, if it exists.
    pub(crate) wal: PathBuf,
    pub(crate) reason: String,
}

/// The metadata of a [`RawCopy`] snapshot, under the key `raw`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct RawMetadata {
    /// Bytes of the database file, first in the stream.
    pub(crate) db_bytes: u64,
    /// Bytes of its `-wal` that follow (0 when there was none).
    pub(crate) wal_bytes: u64,
    /// Why the database could not be captured normally.
    pub(crate) reason: String,
}

#[async_trait]
impl Backup for RawCopy {
    fn kind(&self) -> Kind {
        Kind::SQLITE
    }

    fn default_name(&self) -> String {
        SqliteBackup::new(&self.path).default_name()
    }

    fn target(&self) -> String {
        self.path.display().to_string()
    }

    async fn capture(&self) -> Result<Capture> {
        use tokio::io::AsyncReadExt;
        let open = |path: PathBuf| async move {
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| lifeboat_core::Error::io("opening", &path, e))?;
            let len = file
                .metadata()
                .await
                .map_err(|e| lifeboat_core::Error::io("reading the size of", &path, e))?
                .len();
            Ok::<_, lifeboat_core::Error>((file, len))
        };
        let (db, db_bytes) = open(self.path.clone()).await?;
        let (wal, wal_bytes) = match tokio::fs::symlink_metadata(&self.wal).await {
            Ok(_) => {
                let (file, len) = open(self.wal.clone()).await?;
                (Some(file), len)
            }
            Err(_) => (None, 0),
        };
        // Only the lengths seen now are copied: an application still appending gets cut at a
        // frame boundary of its own or not, either way the copy is labelled unverified.
        let db = db.take(db_bytes);
        let reader: ByteStream = match wal {
            Some(wal) => Box::pin(db.chain(wal.take(wal_bytes))),
            None => Box::pin(db),
        };
        let raw = RawMetadata { db_bytes, wal_bytes, reason: self.reason.clone() };
        let metadata = serde_json::json!({ "raw": raw });
        Ok(Capture::new(reader, metadata).with_size_hint(db_bytes + wal_bytes))
    }
}
