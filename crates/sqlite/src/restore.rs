//! Restoring a SQLite snapshot to a new path or, with `force`, over a live database.
//!
//! Over a live database the data goes in through SQLite's backup API rather than a file
//! rename: connections the application holds open then see either the old or the new
//! database, never a mix, and stale `-wal`/`-shm` files of the old file cannot be replayed
//! onto the new one.
//!
//! At a new path, a `-wal`, `-shm` or `-journal` left there by an earlier database (the
//! usual "rm the broken db, restore" step leaves them) would be replayed over the restored
//! file by the first connection that opens it, and `integrity_check` would still say ok. So
//! they are moved aside (kept, renamed, reported) before the rename, and the file is checked
//! at its final path, opened the way an application opens it. Before the rename its bytes
//! are already proven (every chunk and the whole stream's SHA-256 against the manifest) and
//! synced; the SQLite checks run once, there, where they cover what applications will read.
//! A file that fails them is removed: nothing was at the path before.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use lifeboat_core::{
    Backup, Check, Error, Kind, Manifest, PRE_RESTORE_TAG, PlanStep, Progress, RestoreContext,
    RestoreOptions, RestorePlan, RestoreReport, Result, Snapshot, SnapshotId, Tags,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info, warn};

use crate::backup::{RawCopy, RawMetadata, SqliteBackup, copy_all_pages};
use crate::error::{SqliteError, backend};
use crate::inspect::{
    SqliteMetadata, check_database, check_is_database, check_private_copy, damage, file_mode,
    open_existing,
};

/// Reads the SQLite metadata out of a manifest.
///
/// # Errors
/// [`Error::Unsupported`] when the snapshot is not a SQLite snapshot.
pub fn metadata_of(manifest: &Manifest) -> Result<SqliteMetadata> {
    if manifest.kind != Kind::SQLITE {
        return Err(Error::Unsupported {
            operation: "restoring as a SQLite database".into(),
            kind: manifest.kind.clone(),
        });
    }
    if let Some(raw) = manifest.metadata.get("raw") {
        let raw: Option<RawMetadata> = serde_json::from_value(raw.clone()).ok();
        let (db, wal) = raw.map(|r| (r.db_bytes, r.wal_bytes)).unwrap_or_default();
        return Err(Error::InvalidInput {
            what: format!(
                "the snapshot of {} taken {} is an unverified raw copy of a damaged database, not a checked capture",
                manifest.name,
                manifest.time.to_rfc3339()
            ),
            hint: format!(
                "its stream holds the database file's {db} bytes followed by {wal} bytes of its -wal; \
                 read it back with cat and split it to inspect or salvage it"
            ),
        });
    }
    serde_json::from_value(manifest.metadata.clone())
        .map_err(|e| backend(format!("the manifest's SQLite metadata is unreadable: {e}")))
}

/// The files SQLite reads beside a database and replays into it when it opens it.
const JOURNAL_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// `<path><suffix>`, the way SQLite names a database's journal files.
pub(crate) fn journal_path(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Moves the journal files beside `target` aside, keeping them as
/// `<target>-wal.lifeboat-aside-<unix seconds>`; returns one line per file moved.
fn move_journals_aside(target: &Path) -> Result<Vec<String>> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut moved = Vec::new();
    for suffix in JOURNAL_SUFFIXES {
        let journal = journal_path(target, suffix);
        if std::fs::symlink_metadata(&journal).is_err() {
            continue;
        }
        let aside = journal_path(target, &format!("{suffix}.lifeboat-aside-{stamp}"));
        std::fs::rename(&journal, &aside)
            .map_err(|e| Error::io("moving aside the leftover journal file", &journal, e))?;
        warn!(journal = %journal.display(), aside = %aside.display(), "moved a journal file that does not belong to the restored database aside");
        moved.push(format!("{} moved aside to {}", journal.display(), aside.display()));
    }
    Ok(moved)
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

/// How much is written between two background syncs of a restored file.
const SYNC_EVERY_BYTES: u64 = 32 << 20;

/// Whether [`write_stream`] makes the disk keep up while it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// A scratch copy: nothing is synced.
    Scratch,
    /// A file that will be synced when written: syncs run in the background every
    /// [`SYNC_EVERY_BYTES`], so the final sync waits only for the tail.
    SyncAsYouGo,
}

/// Writes the snapshot's stream to `path` and returns the bytes written and the open file.
/// The stream's end checks the whole stream's SHA-256 and length
/// ([`Snapshot::open_whole`]'s contract), so returning means the bytes are right; on an
/// error the file holds bytes nobody may use. The file is not fully synced yet: callers
/// sync it.
pub(crate) async fn write_stream(
    snapshot: &dyn Snapshot,
    path: &Path,
    progress: &dyn Progress,
    durability: Durability,
) -> Result<(u64, tokio::fs::File)> {
    let manifest = snapshot.manifest();
    let mut reader = snapshot.open_whole().await?;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .await
        .map_err(|e| Error::io("opening", path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    let mut synced_at = 0u64;
    let mut syncing: Option<tokio::task::JoinHandle<std::io::Result<()>>> = None;
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
        let due = written - synced_at >= SYNC_EVERY_BYTES;
        if durability == Durability::SyncAsYouGo
            && due
            && syncing.as_ref().is_none_or(|s| s.is_finished())
        {
            if let Some(done) = syncing.take() {
                background_sync_result(done, path).await?;
            }
            file.flush().await.map_err(|e| Error::io("writing", path, e))?;
            let handle = file.try_clone().await.map_err(|e| Error::io("syncing", path, e))?;
            let handle = handle.into_std().await;
            syncing = Some(tokio::task::spawn_blocking(move || handle.sync_data()));
            synced_at = written;
        }
    }
    progress.finish();
    file.flush().await.map_err(|e| Error::io("writing", path, e))?;
    if let Some(done) = syncing.take() {
        background_sync_result(done, path).await?;
    }
    Ok((written, file))
}

async fn background_sync_result(
    done: tokio::task::JoinHandle<std::io::Result<()>>,
    path: &Path,
) -> Result<()> {
    done.await
        .map_err(|e| backend(format!("sync task failed: {e}")))?
        .map_err(|e| Error::io("syncing", path, e))
}

/// Checks the file at `path`: `private` when only lifeboat has it open (a temporary copy).
async fn checked(
    path: PathBuf,
    expected: SqliteMetadata,
    subject: String,
    private: bool,
) -> Result<Vec<Check>> {
    let checks = tokio::task::spawn_blocking(move || check_against(&path, &expected, private))
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

/// Checks the database at `path` against the snapshot's `expected` metadata; `private` when
/// only lifeboat has it open. A file made by laying a replica's later pages over its base
/// has no counts of its own in the manifest: it is checked whole and its counts reported.
pub(crate) fn check_against(path: &Path, expected: &SqliteMetadata, private: bool) -> Vec<Check> {
    let pinned = expected.replica.as_ref().is_none_or(|r| r.applied == 0);
    let against = pinned.then_some(expected);
    let mut checks =
        if private { check_private_copy(path, against) } else { check_database(path, against) };
    if !pinned {
        checks.extend(counts_found(path, &expected.journal_mode));
    }
    checks
}

/// The row counts of the database at `path`, reported (there is nothing to compare them to).
fn counts_found(path: &Path, journal_mode: &str) -> Vec<Check> {
    match open_existing(path).and_then(|conn| crate::inspect::inspect(&conn, path, journal_mode)) {
        Ok(found) => found
            .tables
            .iter()
            .map(|(table, n)| Check::pass(format!("rows in {table}"), n.to_string()))
            .collect(),
        Err(e) => vec![Check::fail("inspect", e.to_string())],
    }
}

/// The name of the report entries that tell what a restore did beyond the plan (journal files
/// moved aside, an unverified safety copy, a file replaced instead of written into).
pub const NOTE: &str = "note";

/// The tag set on a safety snapshot that holds raw bytes nobody checked.
pub const UNVERIFIED_TAG: &str = "unverified";

impl SqliteRestorePlan {
    /// Saves what is at the target. A database too damaged for a normal capture (it fails
    /// `integrity_check`) is saved as its raw bytes, tagged [`UNVERIFIED_TAG`]: the database
    /// that most needs a restore must not be the one that cannot get one.
    ///
    /// Returns the snapshot and, when the copy is raw, a note saying so.
    async fn save_safety_snapshot(
        &self,
        ctx: &RestoreContext<'_>,
    ) -> Result<(SnapshotId, Option<String>)> {
        // Named after the target it protects, as `backup sqlite TARGET` would name it:
        // under the restored snapshot's name it would become that name's latest data.
        let source = SqliteBackup::new(&self.target);
        let name = source.default_name();
        // SQLite deletes a `-wal` when its last connection closes, and the attempt below
        // opens one: should the database prove damaged, its `-wal` as it was belongs in the
        // raw copy. A hard link (named like a restore's temp file, so a killed run's is
        // removed by the next) holds on to it without copying.
        let wal = journal_path(&self.target, "-wal");
        let kept_wal = std::fs::symlink_metadata(&wal).ok().and_then(|_| {
            let link = lifeboat_core::parent_folder(&self.target)
                .join(format!("{}wal", lifeboat_core::temp_prefix(&self.target)));
            std::fs::hard_link(&wal, &link)
                .ok()
                .and_then(|()| tempfile::TempPath::try_from_path(link).ok())
        });
        let error = match ctx.save_safety(&source, &name, Tags::new()).await {
            Ok(id) => return Ok((id, None)),
            Err(e) => e,
        };
        // Only damage found by SQLite itself justifies an unchecked copy; any other failure
        // (permissions, a full disk, the store) stops the restore as before.
        let target = self.target.clone();
        let found = tokio::task::spawn_blocking(move || damage(&target))
            .await
            .map_err(|e| backend(format!("check task failed: {e}")))?;
        let Some(damage) = found else {
            return Err(error);
        };
        let reason = format!("{error}; integrity_check: {damage}");
        warn!(target = %self.target.display(), %reason, "the database is damaged: its safety snapshot is a raw, unverified copy");
        let tags = Tags::from([(UNVERIFIED_TAG.into(), "raw-copy-of-damaged-database".into())]);
        let wal = kept_wal.as_ref().map(|k| k.to_path_buf()).unwrap_or(wal);
        let raw = RawCopy { path: self.target.clone(), wal, reason };
        let id = ctx.save_safety(&raw, &name, tags).await?;
        let note = format!(
            "{} is damaged ({}): safety snapshot {} is an unverified raw copy of its file and -wal, tagged {UNVERIFIED_TAG}",
            self.target.display(),
            damage,
            id.short()
        );
        Ok((id, Some(note)))
    }
}

/// Gives the file at `path` the permission bits `mode`.
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("setting the permissions of", path, e))
}

/// Folds the restored pages out of the live database's `-wal` and shrinks it.
///
/// The backup API writes the whole database into the `-wal` as one transaction. While an
/// application holds a connection the `-wal` is never deleted, and it is only reused from its
/// start after a checkpoint no reader interrupted, so without this it grew by the database's
/// size with every forced restore (8 restores of 6.5 MB: a 48 MB `-wal`). TRUNCATE needs the
/// readers to be done; when one holds an old snapshot past a short wait, PASSIVE copies what
/// it can and the next restore or the application's own checkpoints finish the job. A failed
/// checkpoint loses nothing (the data is committed), so it is logged, not an error.
fn checkpoint(conn: &rusqlite::Connection, path: &Path) {
    let run = |mode: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get::<_, i64>(0))
    };
    let _ = conn.busy_timeout(std::time::Duration::from_secs(2));
    match run("TRUNCATE") {
        Ok(0) => debug!(path = %path.display(), "-wal checkpointed and truncated"),
        truncate => {
            let passive = run("PASSIVE");
            warn!(path = %path.display(), ?truncate, ?passive, "a reader kept the -wal from being truncated after the restore; checkpointed what it could");
        }
    }
}

/// Makes a rename in `path`'s folder durable by syncing the folder entry.
fn sync_folder(path: &Path) {
    if let Ok(d) = std::fs::File::open(lifeboat_core::parent_folder(path)) {
        let _ = d.sync_all();
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
                format!("back up the current {target} into the repository as {:?}, tagged {PRE_RESTORE_TAG}", SqliteBackup::new(&self.target).default_name()),
            ));
        }
        steps.push(PlanStep::new(
            "write",
            format!("stream snapshot {} into a temporary file beside {target}, checking every chunk and the SHA-256", self.snapshot.short()),
        ));
        let tables = self.expected.tables.len();
        match self.mode {
            Mode::New => {
                steps.push(PlanStep::new(
                    "move into place",
                    format!("sync the file, move any -wal, -shm or -journal left beside {target} aside (kept, renamed), then rename the file to {target} (never over another file)"),
                ));
                steps.push(PlanStep::new(
                    "check",
                    format!("open {target} as an application would: PRAGMA integrity_check, schema, and row counts of {tables} tables against the manifest; on failure {target} is removed"),
                ));
            }
            Mode::Replace => {
                steps.push(PlanStep::new(
                    "verify",
                    format!("PRAGMA integrity_check, schema, and row counts of {tables} tables against the manifest"),
                ));
                steps.push(PlanStep::new(
                    "copy into the live database",
                    format!("SQLite backup API from the verified file into {target} in one transaction (open connections see old or new, never a mix), then checkpoint and truncate its -wal; a database too damaged to be written into is replaced by renaming the verified file over it, its journal files moved aside"),
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
        let mut notes = Vec::new();
        let mut damaged = false;
        let safety_snapshot = if self.mode == Mode::Replace {
            check_is_database(&self.target)?;
            let (id, raw) = self.save_safety_snapshot(ctx).await?;
            info!(safety = %id, target = %self.target.display(), "safety snapshot taken");
            damaged = raw.is_some();
            notes.extend(raw);
            Some(id)
        } else {
            None
        };
        let temp = self.temp_in_target_dir()?;
        let durability = match self.mode {
            Mode::New => Durability::SyncAsYouGo,
            // The temporary copy is read back into the live database, never kept.
            Mode::Replace => Durability::Scratch,
        };
        let (bytes, file) =
            write_stream(ctx.snapshot, temp.path(), ctx.progress, durability).await?;
        let mut checks;
        match self.mode {
            Mode::New => {
                // Durable before it has a name: a crash after the rename must not leave a
                // short file where the database should be.
                file.sync_all().await.map_err(|e| Error::io("syncing", temp.path(), e))?;
                drop(file);
                // Snapshots from before the mode was recorded keep the temp file's 0600.
                if let Some(mode) = self.expected.mode {
                    set_mode(temp.path(), mode)?;
                }
                let moved = move_journals_aside(&self.target)?;
                temp.persist_noclobber(&self.target)
                    .map_err(|e| Error::io("moving the restored file to", &self.target, e.error))?;
                sync_folder(&self.target);
                let subject =
                    format!("{} opened at its final path after the restore", self.target.display());
                checks = match checked(self.target.clone(), self.expected.clone(), subject, false)
                    .await
                {
                    Ok(checks) => checks,
                    Err(e) => {
                        // Nothing was here before: leave nothing unverified behind.
                        let _ = std::fs::remove_file(&self.target);
                        return Err(e);
                    }
                };
                notes.extend(moved);
            }
            Mode::Replace => {
                // The live database is written into only from a copy that passed the checks.
                let subject = format!("the restored copy of snapshot {}", self.snapshot.short());
                drop(file);
                checked(temp.path().to_path_buf(), self.expected.clone(), subject, true).await?;
                let (source, target) = (temp.path().to_path_buf(), self.target.clone());
                let copied =
                    tokio::task::spawn_blocking(move || -> std::result::Result<(), SqliteError> {
                        let src = open_existing(&source)?;
                        let mut dst = open_existing(&target)?;
                        copy_all_pages(&src, &mut dst, &target, "restoring into")?;
                        checkpoint(&dst, &target);
                        Ok(())
                    })
                    .await
                    .map_err(|e| backend(format!("restore task failed: {e}")))?;
                match copied {
                    Ok(()) => drop(temp),
                    // A database too damaged for the backup API to write into (its header
                    // unreadable, say) is replaced as a file instead. Its journal files go
                    // aside first: they belong to the damaged file, which the safety snapshot
                    // already holds, and would be replayed over the new one.
                    Err(copy_error) if damaged => {
                        warn!(target = %self.target.display(), error = %copy_error, "the backup API could not write into the damaged database; replacing the file");
                        if let Some(mode) = file_mode(&self.target) {
                            set_mode(temp.path(), mode)?;
                        }
                        let moved = move_journals_aside(&self.target)?;
                        temp.persist(&self.target).map_err(|e| {
                            Error::io("moving the restored file to", &self.target, e.error)
                        })?;
                        sync_folder(&self.target);
                        notes.push(format!(
                            "the damaged database could not be written into ({copy_error}); the verified file was renamed over it instead: applications that hold it open must reopen it"
                        ));
                        notes.extend(moved);
                    }
                    Err(copy_error) => return Err(copy_error.into()),
                }
                let subject = format!(
                    "{} after the restore (the pre-restore snapshot holds what was there)",
                    self.target.display()
                );
                checks =
                    checked(self.target.clone(), self.expected.clone(), subject, false).await?;
            }
        }
        checks.extend(notes.into_iter().map(|n| Check::pass(NOTE, n)));
        Ok(RestoreReport {
            target: self.target.display().to_string(),
            snapshot: self.snapshot,
            safety_snapshot,
            bytes,
            checks,
        })
    }
}
