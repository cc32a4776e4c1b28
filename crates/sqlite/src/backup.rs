//! Consistent online capture of a SQLite database.
//!
//! SQLite's online backup API copies every page in one step (`step(-1)`) inside one read
//! transaction. In WAL mode writers keep committing while it runs; in rollback-journal mode
//! they wait only for the copy. Copying in small steps is avoided on purpose: each write by
//! another connection restarts a stepwise copy, and under a steady writer it never finishes.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lifeboat_core::{Backup, ByteStream, Capture, Kind, Result};
use rusqlite::Connection;
use rusqlite::backup::StepResult;
use tokio::io::{AsyncRead, ReadBuf};
use tracing::debug;

use crate::error::{SqliteError, backend};
use crate::inspect::{SqliteMetadata, check_is_database, inspect, open_existing};

/// How long a copy waits for a lock held by another connection before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// A SQLite database file to capture.
#[derive(Debug, Clone)]
pub struct SqliteBackup {
    path: PathBuf,
    temp_dir: Option<PathBuf>,
}

impl SqliteBackup {
    /// Captures the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteBackup {
            path: path.into(),
            temp_dir: None,
        }
    }

    /// Puts the temporary copy in `dir` instead of the system temp folder.
    pub fn with_temp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = Some(dir.into());
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn capture_blocking(
        &self,
    ) -> std::result::Result<(tempfile::NamedTempFile, SqliteMetadata), SqliteError> {
        check_is_database(&self.path)?;
        let src = open_existing(&self.path)?;
        let journal_mode: String = src
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(|source| match source {
                rusqlite::Error::SqliteFailure(e, _)
                    if e.code == rusqlite::ErrorCode::NotADatabase =>
                {
                    SqliteError::NotADatabase {
                        path: self.path.clone(),
                        reason: e.to_string(),
                    }
                }
                source => SqliteError::Sqlite {
                    action: "reading",
                    path: self.path.clone(),
                    source,
                },
            })?;
        let dir = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let temp = tempfile::Builder::new()
            .prefix(".lifeboat-sqlite-capture-")
            .suffix(".db")
            .tempfile_in(&dir)
            .map_err(SqliteError::io("creating a temporary file in", &dir))?;
        let started = Instant::now();
        let mut dst =
            Connection::open(temp.path()).map_err(SqliteError::sqlite("creating", temp.path()))?;
        copy_all_pages(&src, &mut dst, &self.path, "capturing")?;
        let metadata = inspect(&dst, temp.path(), &journal_mode.to_ascii_lowercase())?;
        // Closing the copy folds any WAL it has back into the file before it is streamed.
        dst.close()
            .map_err(|(_, e)| SqliteError::sqlite("closing", temp.path())(e))?;
        debug!(path = %self.path.display(), elapsed = ?started.elapsed(), pages = metadata.page_count, "consistent copy taken");
        Ok((temp, metadata))
    }
}

/// Copies every page of `src` into `dst` in one step of the backup API, waiting out locks.
pub(crate) fn copy_all_pages(
    src: &Connection,
    dst: &mut Connection,
    path: &Path,
    action: &'static str,
) -> std::result::Result<(), SqliteError> {
    let backup =
        rusqlite::backup::Backup::new(src, dst).map_err(SqliteError::sqlite(action, path))?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match backup.step(-1).map_err(SqliteError::sqlite(action, path))? {
            StepResult::Done => return Ok(()),
            StepResult::More => continue,
            StepResult::Busy | StepResult::Locked => {
                if Instant::now() > deadline {
                    return Err(SqliteError::Locked {
                        action,
                        path: path.into(),
                        seconds: LOCK_WAIT.as_secs(),
                    });
                }
                std::thread::sleep(Duration::from_millis(25));
            }
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
        Kind::Sqlite
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
        let (temp, metadata) = tokio::task::spawn_blocking(move || this.capture_blocking())
            .await
            .map_err(|e| backend(format!("capture task failed: {e}")))??;
        let temp = temp.into_temp_path();
        let file = tokio::fs::File::open(&temp)
            .await
            .map_err(|e| lifeboat_core::Error::io("opening", temp.to_path_buf(), e))?;
        let size = file.metadata().await.map(|m| m.len()).ok();
        let reader: ByteStream = Box::pin(TempFileReader { file, _temp: temp });
        let metadata = serde_json::to_value(&metadata).map_err(|e| backend(e.to_string()))?;
        let capture = Capture::new(reader, metadata);
        Ok(match size {
            Some(size) => capture.with_size_hint(size),
            None => capture,
        })
    }
}
