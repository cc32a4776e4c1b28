//! Restoring a SQLite snapshot to a new path or, with `force`, over a live database.
//!
//! Over a live database the data goes in through SQLite's backup API rather than a file
//! rename: connections the application holds open then see either the old or the new
//! database, never a mix, and stale `-wal`/`-shm` files of the old file cannot be replayed
//! onto the new one.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use lifeboat_core::{
    Check, Error, Kind, Manifest, PRE_RESTORE_TAG, PlanStep, Progress, RestoreContext,
    RestoreOptions, RestorePlan, RestoreReport, Result, Snapshot, SnapshotId, Tags,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::info;

use crate::backup::{SqliteBackup, copy_all_pages};
use crate::error::{SqliteError, backend};
use crate::inspect::{SqliteMetadata, check_database, check_is_database, open_existing};

/// Reads the SQLite metadata out of a manifest.
///
/// # Errors
/// [`Error::Unsupported`] when the snapshot is not a SQLite snapshot.
pub fn metadata_of(manifest: &Manifest) -> Result<SqliteMetadata> {
    if manifest.kind != Kind::Sqlite {
        return Err(Error::Unsupported {
            operation: "restoring as a SQLite database".into(),
            kind: manifest.kind,
        });
    }
    serde_json::from_value(manifest.metadata.clone())
        .map_err(|e| backend(format!("the manifest's SQLite metadata is unreadable: {e}")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The target does not exist: write beside it, verify, rename into place.
    New,
    /// The target exists and `force` was given: safety snapshot, verify a copy, copy in live.
    Replace,
}

/// The steps that put a SQLite snapshot onto a path.
#[derive(Debug, Clone)]
pub struct SqliteRestorePlan {
    target: PathBuf,
    mode: Mode,
    snapshot: SnapshotId,
    name: String,
    expected: SqliteMetadata,
}

impl SqliteRestorePlan {
    /// Plans restoring `snapshot` to `target`. Has no side effects.
    ///
    /// # Errors
    /// [`Error::TargetExists`] when the target exists and `force` is not set;
    /// [`Error::InvalidInput`] when the target's folder is missing or the target is a folder.
    pub fn new(snapshot: &dyn Snapshot, target: &Path, options: &RestoreOptions) -> Result<Self> {
        let manifest = snapshot.manifest();
        let expected = metadata_of(manifest)?;
        lifeboat_core::existing_parent(target)?;
        let mode = match std::fs::symlink_metadata(target) {
            Ok(meta) if meta.is_dir() => {
                return Err(Error::InvalidInput {
                    what: format!("restore target {} is a folder", target.display()),
                    hint: "give the path of the database file to write".into(),
                });
            }
            Ok(_) if !options.force => {
                return Err(Error::TargetExists { target: target.display().to_string() });
            }
            Ok(_) => Mode::Replace,
            Err(_) => Mode::New,
        };
        Ok(SqliteRestorePlan {
            target: target.to_path_buf(),
            mode,
            snapshot: snapshot.id(),
            name: manifest.name.clone(),
            expected,
        })
    }

    fn temp_in_target_dir(&self) -> Result<tempfile::NamedTempFile> {
        let dir = lifeboat_core::parent_folder(&self.target);
        for leftover in lifeboat_core::remove_leftovers(&self.target) {
            tracing::info!(path = %leftover.display(), "removed what an interrupted restore left");
        }
        tempfile::Builder::new()
            .prefix(&lifeboat_core::temp_prefix(&self.target))
            .tempfile_in(dir)
            .map_err(|e| Error::io("creating a temporary file in", dir, e))
    }
}

/// Writes the snapshot's stream to `path` and returns the bytes written and the open file.
/// The stream itself checks every chunk and, at its end, the whole stream's SHA-256 and
/// length ([`Snapshot::open`]'s contract), so reaching the end means the bytes are right.
/// The file is not synced yet: callers sync it while they run their checks.
pub(crate) async fn write_stream(
    snapshot: &dyn Snapshot,
    path: &Path,
    progress: &dyn Progress,
) -> Result<(u64, tokio::fs::File)> {
    let manifest = snapshot.manifest();
    let mut reader = snapshot.open().await?;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .await
        .map_err(|e| Error::io("opening", path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    progress.start(&format!("restore {}", manifest.name), Some(manifest.size));
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|source| Error::from_stream("reading the snapshot", source))?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).await.map_err(|e| Error::io("writing", path, e))?;
        written += n as u64;
        progress.advance(n as u64);
    }
    progress.finish();
    file.flush().await.map_err(|e| Error::io("writing", path, e))?;
    Ok((written, file))
}

/// Syncs a written file to disk while its checks run; both must succeed.
async fn sync_and_check(
    file: tokio::fs::File,
    path: &Path,
    expected: &SqliteMetadata,
    subject: String,
) -> Result<Vec<Check>> {
    let sync = async { file.sync_all().await.map_err(|e| Error::io("syncing", path, e)) };
    let (synced, checks) =
        tokio::join!(sync, checked(path.to_path_buf(), expected.clone(), subject));
    synced?;
    checks
}

async fn checked(path: PathBuf, expected: SqliteMetadata, subject: String) -> Result<Vec<Check>> {
    let checks = tokio::task::spawn_blocking(move || check_database(&path, Some(&expected)))
        .await
        .map_err(|e| backend(format!("check task failed: {e}")))?;
    let failures: Vec<String> =
        checks.iter().filter(|c| !c.ok).map(|c| format!("{}: {}", c.name, c.detail)).collect();
    if failures.is_empty() {
        Ok(checks)
    } else {
        Err(Error::VerificationFailed { subject, failures })
    }
}

#[async_trait]
impl RestorePlan for SqliteRestorePlan {
    fn steps(&self) -> Vec<PlanStep> {
        let target = self.target.display();
        let mut steps = Vec::new();
        if self.mode == Mode::Replace {
            steps.push(PlanStep::new(
                "safety snapshot",
                format!("back up the current {target} into the repository as {:?}, tagged {PRE_RESTORE_TAG}", self.name),
            ));
        }
        steps.push(PlanStep::new(
            "write",
            format!("stream snapshot {} into a temporary file beside {target}, checking every chunk and the SHA-256", self.snapshot.short()),
        ));
        steps.push(PlanStep::new(
            "verify",
            format!(
                "PRAGMA integrity_check, schema, and row counts of {} tables against the manifest",
                self.expected.tables.len()
            ),
        ));
        match self.mode {
            Mode::New => steps.push(PlanStep::new(
                "move into place",
                format!("rename the verified file to {target}"),
            )),
            Mode::Replace => {
                steps.push(PlanStep::new(
                    "copy into the live database",
                    format!("SQLite backup API from the verified file into {target} in one transaction (open connections see old or new, never a mix)"),
                ));
                steps.push(PlanStep::new(
                    "check",
                    format!("PRAGMA integrity_check and row counts of {target}"),
                ));
            }
        }
        steps.push(PlanStep::new(
            "clean up",
            "remove the temporary file (also on failure; the target is left as it was)",
        ));
        steps
    }

    async fn execute(&self, ctx: &RestoreContext<'_>) -> Result<RestoreReport> {
        let safety_snapshot = if self.mode == Mode::Replace {
            check_is_database(&self.target)?;
            let tags = Tags::from([(PRE_RESTORE_TAG.to_string(), self.snapshot.to_hex())]);
            let id =
                ctx.safety_net.save(&SqliteBackup::new(&self.target), &self.name, tags).await?;
            info!(safety = %id, target = %self.target.display(), "safety snapshot taken");
            Some(id)
        } else {
            None
        };
        let temp = self.temp_in_target_dir()?;
        let (bytes, file) = write_stream(ctx.snapshot, temp.path(), ctx.progress).await?;
        let subject = format!("the restored copy of snapshot {}", self.snapshot.short());
        let mut checks = sync_and_check(file, temp.path(), &self.expected, subject).await?;
        match self.mode {
            Mode::New => {
                temp.persist_noclobber(&self.target)
                    .map_err(|e| Error::io("moving the restored file to", &self.target, e.error))?;
                // Make the rename durable: sync the folder entry too.
                let dir = self.target.parent().filter(|p| !p.as_os_str().is_empty());
                if let Some(Ok(d)) = dir.map(std::fs::File::open) {
                    let _ = d.sync_all();
                }
            }
            Mode::Replace => {
                let (source, target) = (temp.path().to_path_buf(), self.target.clone());
                tokio::task::spawn_blocking(move || -> std::result::Result<(), SqliteError> {
                    let src = open_existing(&source)?;
                    let mut dst = open_existing(&target)?;
                    copy_all_pages(&src, &mut dst, &target, "restoring into")
                })
                .await
                .map_err(|e| backend(format!("restore task failed: {e}")))??;
                drop(temp);
                let subject = format!(
                    "{} after the restore (the pre-restore snapshot holds what was there)",
                    self.target.display()
                );
                checks = checked(self.target.clone(), self.expected.clone(), subject).await?;
            }
        }
        Ok(RestoreReport {
            target: self.target.display().to_string(),
            snapshot: self.snapshot,
            safety_snapshot,
            bytes,
            checks,
        })
    }
}
