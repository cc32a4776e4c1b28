//! Restoring a folder snapshot: unpack beside the target, refuse anything that would land
//! outside it, check, then swap.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use globset::{Glob, GlobSet, GlobSetBuilder};
use lifeboat_core::{
    Backup, Check, Error, Kind, PRE_RESTORE_TAG, PlanStep, RestoreContext, RestoreOptions,
    RestorePlan, RestoreReport, Result, Snapshot, SnapshotId, Tags,
};
use tar::EntryType;
use tokio_util::io::SyncIoBridge;

use crate::backup::{DirBackup, DirMetadata};
use crate::error::DirError;

/// The steps that put a folder snapshot onto a path.
#[derive(Debug, Clone)]
pub struct DirRestorePlan {
    target: PathBuf,
    replace: bool,
    snapshot: SnapshotId,
    name: String,
    /// What the safety snapshot of the replaced folder is called: the name a backup of the
    /// target would get, so it sits with that folder's history, not with the restored one's.
    safety_name: String,
    expected: DirMetadata,
    includes: Vec<String>,
}

/// Checks that `path` (from a snapshot) stays inside the folder it is restored into: relative,
/// no `..`, not empty. Returns the reason when it does not.
///
/// # Errors
/// A sentence saying why the path is refused.
pub fn safe_relative_path(path: &Path) -> std::result::Result<(), String> {
    if path.as_os_str().is_empty() {
        return Err("empty path".into());
    }
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err("contains '..'".into()),
            Component::RootDir | Component::Prefix(_) => return Err("is absolute".into()),
        }
    }
    Ok(())
}

impl DirRestorePlan {
    /// Plans restoring `snapshot` into the folder `target`, only the paths matching
    /// `includes` when any are given. Has no side effects.
    ///
    /// # Errors
    /// [`Error::TargetExists`] when `target` is a non-empty folder and `force` is not set;
    /// [`Error::InvalidInput`] for a target that is a file, a missing parent folder, or a bad
    /// pattern.
    pub fn new(
        snapshot: &dyn Snapshot,
        target: &Path,
        options: &RestoreOptions,
        includes: &[String],
    ) -> Result<Self> {
        let manifest = snapshot.manifest();
        if manifest.kind != Kind::DIR {
            return Err(Error::Unsupported {
                operation: "restoring as a folder".into(),
                kind: manifest.kind.clone(),
            });
        }
        let expected: DirMetadata =
            serde_json::from_value(manifest.metadata.clone()).map_err(|e| Error::Backend {
                kind: Kind::DIR,
                message: format!("unreadable folder metadata: {e}"),
            })?;
        glob_set(includes)?;
        lifeboat_core::existing_parent(target)?;
        let replace = match std::fs::symlink_metadata(target) {
            Ok(md) if !md.is_dir() => {
                return Err(Error::InvalidInput {
                    what: format!("restore target {} exists and is not a folder", target.display()),
                    hint: "choose a folder path".into(),
                });
            }
            Ok(_) => {
                let empty =
                    std::fs::read_dir(target).map(|mut d| d.next().is_none()).unwrap_or(false);
                if !empty && !options.force {
                    return Err(Error::TargetExists { target: target.display().to_string() });
                }
                !empty
            }
            Err(_) => false,
        };
        Ok(DirRestorePlan {
            target: target.to_path_buf(),
            replace,
            snapshot: snapshot.id(),
            name: manifest.name.clone(),
            safety_name: DirBackup::new(target).default_name(),
            expected,
            includes: includes.to_vec(),
        })
    }
}

fn glob_set(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        set.add(
            Glob::new(p)
                .map_err(|e| DirError::BadPattern { pattern: p.clone(), reason: e.to_string() })?,
        );
    }
    Ok(Some(set.build().map_err(|e| DirError::BadPattern {
        pattern: patterns.join(" "),
        reason: e.to_string(),
    })?))
}

/// What unpacking did.
#[derive(Debug, Default)]
struct Unpacked {
    counts: DirMetadata,
    refused: Vec<String>,
}

/// Unpacks a tar stream into `dst`, entry by entry, refusing unsafe ones, then reads the
/// stream to its end so its digest check runs.
fn unpack(stream: impl Read, dst: &Path, includes: Option<&GlobSet>) -> std::io::Result<Unpacked> {
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    let mut done = Unpacked::default();
    // Creating a folder's entries changes its modification time: folders get theirs back
    // once everything is in place.
    let mut folder_times: Vec<(PathBuf, u64)> = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        if let Err(why) = safe_relative_path(&path) {
            done.refused.push(format!("{}: {why}", path.display()));
            continue;
        }
        let kind = entry.header().entry_type();
        if kind == EntryType::Link
            && let Some(link) = entry.link_name()?
            && let Err(why) = safe_relative_path(&link)
        {
            done.refused.push(format!(
                "{} (hard link to {}): {why}",
                path.display(),
                link.display()
            ));
            continue;
        }
        if includes.is_some_and(|set| !set.is_match(&path)) {
            continue;
        }
        let size = entry.header().size().unwrap_or(0);
        if matches!(kind, EntryType::Fifo | EntryType::Char | EntryType::Block) {
            // tar-rs would write these as empty regular files: make the real node.
            match make_special(&entry, &path, dst) {
                Ok(()) => done.counts.specials += 1,
                Err(why) => done.refused.push(format!("{}: {why}", path.display())),
            }
            continue;
        }
        match entry.unpack_in(dst) {
            Ok(true) => {}
            Ok(false) => {
                done.refused.push(format!("{}: would land outside the target", path.display()));
                continue;
            }
            Err(e) if e.to_string().contains("outside") => {
                done.refused.push(format!("{}: {e}", path.display()));
                continue;
            }
            Err(e) => return Err(e),
        }
        let c = &mut done.counts;
        match kind {
            EntryType::Directory => {
                c.dirs += 1;
                if let Ok(mtime) = entry.header().mtime() {
                    folder_times.push((path, mtime));
                }
            }
            EntryType::Symlink => c.symlinks += 1,
            EntryType::Link => c.hardlinks += 1,
            _ => {
                c.files += 1;
                c.bytes += size;
            }
        }
    }
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink())?;
    set_folder_times(dst, &folder_times)?;
    Ok(done)
}

/// Sets each unpacked folder's modification time (by path, so folders without read
/// permission get theirs too), never through a symlink and never outside `dst` (a later
/// entry could have replaced a folder by a link).
fn set_folder_times(dst: &Path, folders: &[(PathBuf, u64)]) -> std::io::Result<()> {
    let root = dst.canonicalize()?;
    for (path, mtime) in folders {
        let full = dst.join(path);
        let Ok(md) = std::fs::symlink_metadata(&full) else { continue };
        if !md.is_dir() || !full.canonicalize().is_ok_and(|c| c.starts_with(&root)) {
            continue;
        }
        let mtime = filetime::FileTime::from_unix_time(i64::try_from(*mtime).unwrap_or(0), 0);
        filetime::set_symlink_file_times(
            &full,
            filetime::FileTime::from_last_access_time(&md),
            mtime,
        )?;
    }
    Ok(())
}

/// Creates a FIFO or device node for `entry` at `dst/path`, inside `dst` only.
fn make_special<R: Read>(
    entry: &tar::Entry<'_, R>,
    path: &Path,
    dst: &Path,
) -> std::result::Result<(), String> {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    let full = dst.join(path);
    let parent = full.parent().ok_or("no parent folder")?;
    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    let (real_parent, real_dst) = (
        parent.canonicalize().map_err(|e| e.to_string())?,
        dst.canonicalize().map_err(|e| e.to_string())?,
    );
    if !real_parent.starts_with(&real_dst) {
        return Err("would land outside the target".into());
    }
    let header = entry.header();
    let mode = Mode::from_bits_truncate(header.mode().unwrap_or(0o644) & 0o7777);
    let (kind, dev) = match header.entry_type() {
        EntryType::Fifo => (SFlag::S_IFIFO, 0),
        EntryType::Char => (SFlag::S_IFCHR, device(header)),
        _ => (SFlag::S_IFBLK, device(header)),
    };
    fn device(h: &tar::Header) -> u64 {
        makedev(
            u64::from(h.device_major().ok().flatten().unwrap_or(0)),
            u64::from(h.device_minor().ok().flatten().unwrap_or(0)),
        )
    }
    mknod(&full, kind, mode, dev)
        .map_err(|e| format!("could not create the node ({e}); device nodes need root"))
}

/// Gives the restored folder itself the mode and modification time the captured one had
/// (its entries got theirs from the stream; the temporary folder was made 0700).
fn set_root_times_and_mode(folder: &Path, mode: u32, mtime: Option<i64>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(mode & 0o7777))?;
    if let Some(mtime) = mtime {
        filetime::set_file_mtime(folder, filetime::FileTime::from_unix_time(mtime, 0))?;
    }
    Ok(())
}

/// Puts the folder `restored` where `target` is, and removes the old one.
///
/// `renameat2(RENAME_EXCHANGE)` swaps the two names in one step, so a kill at any moment
/// leaves `target` either old or new, never missing; the old folder, now under the temporary
/// name, is removed afterwards (or by the next restore's leftover cleaning if this one dies).
/// Where the file system has no exchange, two renames do it, `aside` holding the old folder
/// between them.
fn swap_in(restored: &Path, target: &Path, aside: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    use rustix::io::Errno;
    match renameat_with(CWD, restored, CWD, target, RenameFlags::EXCHANGE) {
        Ok(()) => {
            if let Err(e) = std::fs::remove_dir_all(restored) {
                tracing::warn!(path = %restored.display(), "could not remove the replaced folder: {e}");
            }
            return Ok(());
        }
        Err(e) if e == Errno::INVAL || e == Errno::NOSYS => {
            tracing::info!(
                target = %target.display(),
                "the file system cannot exchange two names in one step ({e}); swapping with two renames"
            );
        }
        Err(e) => return Err(e.into()),
    }
    {
        // Between the two renames the target is missing: an interrupt waits for both.
        let _swap = lifeboat_core::critical::CriticalSection::enter();
        std::fs::rename(target, aside)?;
        if let Err(e) = std::fs::rename(restored, target) {
            let _ = std::fs::rename(aside, target);
            return Err(e);
        }
    }
    if let Err(e) = std::fs::remove_dir_all(aside) {
        tracing::warn!(path = %aside.display(), "could not remove the replaced folder: {e}");
    }
    Ok(())
}

#[async_trait]
impl RestorePlan for DirRestorePlan {
    fn steps(&self) -> Vec<PlanStep> {
        let target = self.target.display();
        let mut steps = Vec::new();
        if self.replace {
            steps.push(PlanStep::new(
                "safety snapshot",
                format!(
                    "back up the current {target} as {:?}, tagged {PRE_RESTORE_TAG}={}",
                    self.safety_name,
                    self.snapshot.to_hex()
                ),
            ));
        }
        let what = if self.includes.is_empty() {
            "every entry".to_string()
        } else {
            format!("entries matching {}", self.includes.join(", "))
        };
        steps.push(PlanStep::new(
            "unpack",
            format!("{what} of snapshot {} into a temporary folder beside {target}; entries with '..', absolute paths or paths through symlinks are refused", self.snapshot.short()),
        ));
        steps.push(PlanStep::new("verify", "no entry refused, the stream's SHA-256, and (for a full restore) counts of files, folders, links and bytes against the manifest"));
        steps.push(PlanStep::new(
            "swap",
            if self.replace {
                format!(
                    "exchange {target} and the restored folder in one step, then remove the old one"
                )
            } else {
                format!("move the restored folder to {target}")
            },
        ));
        steps
    }

    async fn execute(&self, ctx: &RestoreContext<'_>) -> Result<RestoreReport> {
        let safety_snapshot = if self.replace {
            let tags = Tags::from([(PRE_RESTORE_TAG.to_string(), self.snapshot.to_hex())]);
            Some(ctx.safety_net.save(&DirBackup::new(&self.target), &self.safety_name, tags).await?)
        } else {
            None
        };
        let parent = lifeboat_core::parent_folder(&self.target);
        for leftover in lifeboat_core::remove_leftovers(&self.target) {
            tracing::info!(path = %leftover.display(), "removed what an interrupted restore left");
        }
        let temp = tempfile::Builder::new()
            .prefix(&lifeboat_core::temp_prefix(&self.target))
            .tempdir_in(parent)
            .map_err(|e| Error::io("creating a temporary folder in", parent, e))?;
        let reader = ctx.snapshot.open().await?;
        let includes = glob_set(&self.includes)?;
        let dst = temp.path().to_path_buf();
        ctx.progress.start(&format!("restore {}", self.name), Some(ctx.snapshot.manifest().size));
        let unpacked = tokio::task::spawn_blocking(move || {
            unpack(SyncIoBridge::new(reader), &dst, includes.as_ref())
        })
        .await
        .map_err(|e| Error::Backend {
            kind: Kind::DIR,
            message: format!("unpack task failed: {e}"),
        })?
        .map_err(|source| Error::from_stream("unpacking the snapshot", source))?;
        ctx.progress.advance(unpacked.counts.bytes);
        ctx.progress.finish();

        let mut checks = vec![Check::new(
            "entries inside the target",
            unpacked.refused.is_empty(),
            if unpacked.refused.is_empty() {
                "none refused".to_string()
            } else {
                format!("refused: {}", unpacked.refused.join("; "))
            },
        )];
        if self.includes.is_empty() {
            let (got, want) = (&unpacked.counts, &self.expected);
            let counts =
                |m: &DirMetadata| (m.files, m.dirs, m.symlinks, m.hardlinks, m.specials, m.bytes);
            checks.push(Check::new(
                "counts",
                counts(got) == counts(want),
                format!(
                    "files, dirs, symlinks, hardlinks, specials, bytes: {:?} (manifest: {:?})",
                    counts(got),
                    counts(want)
                ),
            ));
        }
        let failures: Vec<String> =
            checks.iter().filter(|c| !c.ok).map(|c| format!("{}: {}", c.name, c.detail)).collect();
        if !failures.is_empty() {
            // The temporary folder goes with `temp`; the target was never touched.
            return Err(Error::VerificationFailed {
                subject: format!("the restored copy of snapshot {}", self.snapshot.short()),
                failures,
            });
        }
        let restored = temp.keep();
        // Snapshots from before the folder's own mode was recorded keep the mode of the
        // folder they replace, or the private 0700 of a new one.
        let replaced_mode = || {
            use std::os::unix::fs::MetadataExt;
            std::fs::symlink_metadata(&self.target).ok().filter(|_| self.replace).map(|m| m.mode())
        };
        if let Some(mode) = self.expected.root_mode.or_else(replaced_mode) {
            set_root_times_and_mode(&restored, mode, self.expected.root_mtime)
                .map_err(|e| Error::io("setting the mode of", &restored, e))?;
        }
        if self.replace {
            swap_in(&restored, &self.target, &parent.join(lifeboat_core::aside_name(&self.target)))
                .map_err(|e| Error::io("moving the restored folder to", &self.target, e))?;
        } else {
            std::fs::rename(&restored, &self.target)
                .map_err(|e| Error::io("moving the restored folder to", &self.target, e))?;
        }
        Ok(RestoreReport {
            target: self.target.display().to_string(),
            snapshot: self.snapshot,
            safety_snapshot,
            bytes: unpacked.counts.bytes,
            checks,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::*;

    /// A watcher looks at the target as fast as it can while restores swap new folders in:
    /// it must never find the target missing, and nothing is left beside it.
    #[test]
    fn the_target_never_goes_missing_during_a_swap() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("site");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("v"), "0").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let missing = Arc::new(AtomicU64::new(0));
        let watcher = {
            let (target, stop, missing) = (target.clone(), stop.clone(), missing.clone());
            std::thread::spawn(move || {
                let mut looks = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if std::fs::symlink_metadata(&target).is_err() {
                        missing.fetch_add(1, Ordering::Relaxed);
                    }
                    looks += 1;
                }
                looks
            })
        };
        let aside = dir.path().join(lifeboat_core::aside_name(&target));
        for i in 1..=500 {
            let restored = dir.path().join(format!("{}{i}", lifeboat_core::temp_prefix(&target)));
            std::fs::create_dir(&restored).unwrap();
            std::fs::write(restored.join("v"), i.to_string()).unwrap();
            swap_in(&restored, &target, &aside).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let looks = watcher.join().unwrap();
        assert!(looks > 0);
        assert_eq!(missing.load(Ordering::Relaxed), 0, "the target was missing in {looks} looks");
        assert_eq!(std::fs::read_to_string(target.join("v")).unwrap(), "500");
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["site"], "left beside the target");
    }
}
