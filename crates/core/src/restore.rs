//! The `RestorePlan` role: ordered, printable steps that put a snapshot onto a target.
//!
//! Building a plan has no side effects, so `--dry-run` can print it; executing it does the
//! work. Plans that replace something take a safety snapshot first through a [`SafetyNet`],
//! which the repository provides (backends never depend on the store).

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;

use crate::{Backup, Check, Progress, Result, Snapshot, SnapshotId, Tags};

/// Tag set on the safety snapshot taken before a restore replaces a target; its value is the
/// id of the snapshot that was restored over it.
pub const PRE_RESTORE_TAG: &str = "pre-restore";

/// Whether `tags` mark a safety snapshot ([`PRE_RESTORE_TAG`]).
///
/// A safety snapshot holds whatever was on a target before a restore replaced it: maybe the
/// damaged database the restore was meant to fix. It is kept and restorable by id, but it is
/// never a backup: never `latest`, never a parent, never a retention slot, never what makes a
/// name fresh. Every place that picks "the newest backup" filters with this.
pub fn is_safety_snapshot(tags: &crate::Tags) -> bool {
    tags.contains_key(PRE_RESTORE_TAG)
}

/// The folder a restore target lives in (`.` for a bare file name). Restores write their
/// temporary copy there, so the final move into place is a rename on one file system.
pub fn parent_folder(target: &std::path::Path) -> &std::path::Path {
    target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."))
}

/// Makes the unpacked tree at `root` durable before it replaces anything (a restore's
/// staging copy): one `syncfs` of
/// its file system writes out, and waits for, every file, folder, link and node written
/// there. One call instead of an fsync per entry: on 10,000 files the per-entry fsyncs made
/// a restore three times slower. (Linux reports a failed writeback to `syncfs` since 5.8.)
///
/// # Errors
/// The file system's error, or `root` not being a folder (a symlink is not followed).
pub fn sync_tree(root: &std::path::Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, Mode, OFlags, openat};
    let fd = openat(
        CWD,
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::syncfs(&fd)?;
    Ok(())
}

/// Fsyncs the folder `target` is in, so a rename into it survives a power loss.
///
/// # Errors
/// The folder cannot be opened or synced.
pub fn sync_parent_folder(target: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(parent_folder(target))?.sync_all()
}

/// [`parent_folder`], which must exist.
///
/// # Errors
/// [`crate::Error::InvalidInput`] naming the missing folder.
pub fn existing_parent(target: &std::path::Path) -> Result<&std::path::Path> {
    let parent = parent_folder(target);
    if parent.is_dir() {
        Ok(parent)
    } else {
        Err(crate::Error::InvalidInput {
            what: format!("the folder {} for the restore target does not exist", parent.display()),
            hint: "create it first, or restore into an existing folder".into(),
        })
    }
}

/// What a restore of `target` puts beside it while it works: `.<name>.lifeboat-restore-<pid>-`
/// starts its temporary copy, `.<name>.lifeboat-old-<pid>` names the previous version moved
/// aside during a swap. The process id tells a later restore whether the owner is gone.
pub fn temp_prefix(target: &std::path::Path) -> String {
    format!(".{}.lifeboat-restore-{}-", file_stem(target), std::process::id())
}

/// The name the previous version of `target` gets while a swap moves the new one in.
pub fn aside_name(target: &std::path::Path) -> String {
    format!(".{}.lifeboat-old-{}", file_stem(target), std::process::id())
}

fn file_stem(target: &std::path::Path) -> String {
    target.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Removes what interrupted restores of `target` (killed, out of power) left beside it: the
/// [`temp_prefix`] and [`aside_name`] files and folders whose process is gone. A restore of
/// the same target that still runs keeps its own. Returns what was removed; what cannot be
/// removed is left for the next time.
///
/// An [`aside_name`] entry holds the previous version of the target, moved there by a swap
/// that needs two renames. When the target is missing, the restore died (or failed to roll
/// back) between the two renames: the aside entry is the only copy of the original, so it is
/// renamed back to `target` (with a warning), never removed. Only when the target exists,
/// the swap finished and the aside entry is the replaced version (whose safety snapshot was
/// taken before the swap), is it removed.
pub fn remove_leftovers(target: &std::path::Path) -> Vec<std::path::PathBuf> {
    let stem = file_stem(target);
    let aside_prefix = format!(".{stem}.lifeboat-old-");
    let prefixes = [format!(".{stem}.lifeboat-restore-"), aside_prefix.clone()];
    let Ok(entries) = std::fs::read_dir(parent_folder(target)) else { return Vec::new() };
    let mut entries: Vec<_> = entries.flatten().collect();
    // Set-aside originals first, so one put back is in place before temporary copies go.
    entries.sort_by_key(|e| !e.file_name().to_string_lossy().starts_with(&aside_prefix));
    let mut removed = Vec::new();
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = prefixes.iter().find_map(|p| name.strip_prefix(p.as_str())) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        // Without a process id the owner is unknown: leave it.
        let Some(pid) = pid else { continue };
        if pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        if name.starts_with(&aside_prefix) && std::fs::symlink_metadata(target).is_err() {
            match std::fs::rename(&path, target) {
                Ok(()) => tracing::warn!(
                    aside = %path.display(),
                    target = %target.display(),
                    "an interrupted restore had set the original aside: put it back"
                ),
                Err(e) => tracing::warn!(
                    aside = %path.display(),
                    target = %target.display(),
                    "an interrupted restore set the original aside and it cannot be put back ({e}): left where it is"
                ),
            }
            continue;
        }
        let gone = match std::fs::symlink_metadata(&path) {
            Ok(md) if md.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(e) => Err(e),
        };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// `s` as one word for a POSIX shell: as it is when it holds nothing the shell reads
/// specially, else in single quotes.
///
/// ```
/// assert_eq!(lifeboat_core::shell_quote("/usr/bin/lifeboat"), "/usr/bin/lifeboat");
/// assert_eq!(lifeboat_core::shell_quote("it's"), r"'it'\''s'");
/// ```
pub fn shell_quote(s: &str) -> String {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"/._-:=@,+%".contains(&b);
    if !s.is_empty() && s.bytes().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Choices that apply to every kind of restore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Replace an existing target (after taking a safety snapshot of it).
    pub force: bool,
    /// Create a target that must be created explicitly (a PostgreSQL database).
    pub create: bool,
    /// A shell command that fetches one file of this repository's WAL archive when given
    /// `FILE DEST --name SERIES` (`lifeboat --repo URL wal-fetch`), for restores that
    /// recover from the archive; set by the CLI.
    pub archive_fetch: Option<String>,
}

/// One step of a restore, as printed by `--dry-run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanStep {
    /// Short imperative title ("write to a temporary file").
    pub title: String,
    /// What exactly happens (paths, names).
    pub detail: String,
}

impl PlanStep {
    /// A step with a title and detail.
    pub fn new(title: impl Into<String>, detail: impl Into<String>) -> Self {
        PlanStep { title: title.into(), detail: detail.into() }
    }
}

impl fmt::Display for PlanStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.title, self.detail)
    }
}

/// Stores a safety capture of a target before a restore replaces it.
#[async_trait]
pub trait SafetyNet: Send + Sync {
    /// Captures `source` into the repository under `name` with `tags`; returns its id.
    ///
    /// # Errors
    /// When the capture or the store fails; the restore must then stop.
    async fn save(&self, source: &dyn Backup, name: &str, tags: Tags) -> Result<SnapshotId>;
}

/// What a plan needs while it runs.
pub struct RestoreContext<'a> {
    /// The snapshot being restored.
    pub snapshot: &'a dyn Snapshot,
    /// Where safety snapshots go.
    pub safety_net: &'a dyn SafetyNet,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
}

impl RestoreContext<'_> {
    /// Takes the safety snapshot of what a restore is about to replace: `current` captured
    /// under `name` (the target's own name, as backing it up would name it), tagged
    /// [`PRE_RESTORE_TAG`] with the id of the snapshot being restored, plus `tags`. The one
    /// place every plan's safety step goes through.
    ///
    /// # Errors
    /// When the capture or the store fails; the restore must then stop.
    pub async fn save_safety(
        &self,
        current: &dyn Backup,
        name: &str,
        tags: Tags,
    ) -> Result<SnapshotId> {
        let mut tags = tags;
        tags.insert(PRE_RESTORE_TAG.to_string(), self.snapshot.id().to_hex());
        self.safety_net.save(current, name, tags).await
    }
}

/// What a finished restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// Where the snapshot was restored.
    pub target: String,
    /// The snapshot that was restored.
    pub snapshot: SnapshotId,
    /// The safety snapshot of what was there before, if anything was.
    pub safety_snapshot: Option<SnapshotId>,
    /// Bytes written.
    pub bytes: u64,
    /// Checks run on the restored target.
    pub checks: Vec<Check>,
}

/// Ordered steps that put one snapshot onto one target.
#[async_trait]
pub trait RestorePlan: Send + Sync {
    /// The steps, in order, for printing.
    fn steps(&self) -> Vec<PlanStep>;

    /// Runs the steps. On failure the target is left as it was before (the plan rolls back
    /// what it did) and the error says which step failed.
    ///
    /// # Errors
    /// The failing step's error.
    async fn execute(&self, ctx: &RestoreContext<'_>) -> Result<RestoreReport>;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn leftovers_of_gone_processes_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("app.db");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let ours = std::process::id();
        let stale = dir.path().join(format!(".app.db.lifeboat-restore-{dead}-x1y2z3"));
        let stale_aside = dir.path().join(format!(".app.db.lifeboat-old-{dead}"));
        let live = dir.path().join(format!(".app.db.lifeboat-restore-{ours}-a1b2c3"));
        let unknown = dir.path().join(".app.db.lifeboat-restore-abcdef");
        let other = dir.path().join(format!(".other.db.lifeboat-restore-{dead}-q"));
        // The target is there: the swap that set the old version aside had finished.
        std::fs::write(&target, b"new").unwrap();
        std::fs::write(&stale, b"half").unwrap();
        std::fs::create_dir_all(stale_aside.join("inner")).unwrap();
        for keep in [&live, &unknown, &other] {
            std::fs::write(keep, b"keep").unwrap();
        }
        let mut removed = remove_leftovers(&target);
        removed.sort();
        let mut expected = vec![stale_aside.clone(), stale.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(live.exists() && unknown.exists() && other.exists());
        assert!(temp_prefix(&target).starts_with(&format!(".app.db.lifeboat-restore-{ours}-")));
        assert_eq!(aside_name(&target), format!(".app.db.lifeboat-old-{ours}"));
    }

    /// A restore that died between the two renames of a swap left the target missing and the
    /// original under the aside name: the next restore's cleaning puts it back instead of
    /// removing the only copy. (Before, it was removed like any leftover.)
    #[test]
    fn a_set_aside_original_is_put_back_when_the_target_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("site");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let aside = dir.path().join(format!(".site.lifeboat-old-{dead}"));
        let half = dir.path().join(format!(".site.lifeboat-restore-{dead}-x1"));
        std::fs::create_dir_all(aside.join("inner")).unwrap();
        std::fs::write(aside.join("inner/original"), b"the only copy").unwrap();
        std::fs::create_dir(&half).unwrap();
        let removed = remove_leftovers(&target);
        assert_eq!(removed, vec![half], "only the temporary copy goes");
        assert_eq!(std::fs::read(target.join("inner/original")).unwrap(), b"the only copy");
        assert!(!aside.exists());
    }
}
