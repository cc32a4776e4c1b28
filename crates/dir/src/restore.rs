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
    /// Whether the restored tree is fsynced before it replaces anything (off for scratch
    /// drills, whose copy is thrown away).
    durable: bool,
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
            durable: true,
        })
    }

    /// The same plan without fsyncs: for scratch copies nobody keeps.
    pub(crate) fn scratch(mut self) -> Self {
        self.durable = false;
        self
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

/// Whether this process may give files away (root): only then are owners restored.
fn restores_owners() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Unpacks a tar stream into `dst`, entry by entry, refusing unsafe ones, then reads the
/// stream to its end so its digest check runs.
///
/// As root, every entry gets the owner and group its header records (symlinks through
/// `lchown`); otherwise everything belongs to the restoring user, as `tar` does.
fn unpack(stream: impl Read, dst: &Path, includes: Option<&GlobSet>) -> std::io::Result<Unpacked> {
    let owners = restores_owners();
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
            match make_special(&entry, &path, dst, owners) {
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
        if owners {
            set_owner(entry.header(), &dst.join(&path))?;
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

/// Gives the entry unpacked at `full` the owner and group `header` records, without
/// following a symlink. (Done here rather than by tar-rs, which fails the whole restore on a
/// header without a readable owner; such an entry keeps the restoring user, as before.)
/// Changing the owner clears set-id bits, so a mode that has them is set again.
fn set_owner(header: &tar::Header, full: &Path) -> std::io::Result<()> {
    let id = |v: std::io::Result<u64>| v.ok().and_then(|v| u32::try_from(v).ok());
    let (Some(uid), Some(gid)) = (id(header.uid()), id(header.gid())) else {
        return Ok(());
    };
    std::os::unix::fs::lchown(full, Some(uid), Some(gid))?;
    let mode = header.mode().unwrap_or(0) & 0o7777;
    if mode & 0o6000 != 0
        && matches!(
            header.entry_type(),
            EntryType::Regular | EntryType::Link | EntryType::Directory
        )
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(full, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
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
    owners: bool,
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
        .map_err(|e| format!("could not create the node ({e}); device nodes need root"))?;
    if owners {
        let (uid, gid) =
            (header.uid().map_err(|e| e.to_string())?, header.gid().map_err(|e| e.to_string())?);
        let id = |v: u64| u32::try_from(v).map_err(|_| format!("owner id {v} is out of range"));
        std::os::unix::fs::lchown(&full, Some(id(uid)?), Some(id(gid)?))
            .map_err(|e| format!("could not set the owner ({e})"))?;
        // Changing the owner clears set-id bits: give the mode back.
        std::fs::set_permissions(&full, std::os::unix::fs::PermissionsExt::from_mode(mode.bits()))
            .map_err(|e| format!("could not set the mode ({e})"))?;
    }
    Ok(())
}

/// Gives the restored folder itself the owner, mode and modification time the captured one
/// had (its entries got theirs from the stream; the temporary folder was made 0700 and
/// belongs to the restoring user). The owner first: changing it clears set-id bits.
fn set_root_attributes(
    folder: &Path,
    owner: Option<(u32, u32)>,
    mode: Option<u32>,
    mtime: Option<i64>,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(folder, Some(uid), Some(gid))?;
    }
    if let Some(mode) = mode {
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(mode & 0o7777))?;
    }
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
/// Where the file system has no exchange, [`swap_by_renames`] does it.
fn swap_in(restored: &Path, target: &Path, aside: &Path) -> std::result::Result<(), DirError> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    use rustix::io::Errno;
    match renameat_with(CWD, restored, CWD, target, RenameFlags::EXCHANGE) {
        Ok(()) => {
            lifeboat_core::sync_parent_folder(target).map_err(|source| DirError::Io {
                action: "making durable the swap into",
                path: target.to_path_buf(),
                source,
            })?;
            if let Err(e) = std::fs::remove_dir_all(restored) {
                tracing::warn!(path = %restored.display(), "could not remove the replaced folder: {e}");
            }
            Ok(())
        }
        Err(e) if e == Errno::INVAL || e == Errno::NOSYS => {
            tracing::info!(
                target = %target.display(),
                "the file system cannot exchange two names in one step ({e}); swapping with two renames"
            );
            swap_by_renames(restored, target, aside, &|from, to| std::fs::rename(from, to))
        }
        Err(e) => Err(DirError::Io {
            action: "exchanging the restored folder with",
            path: target.to_path_buf(),
            source: e.into(),
        }),
    }
}

/// The swap for file systems without an exchange: `target` moves to `aside`, `restored` to
/// `target`, then `aside` is removed. `rename` is `std::fs::rename` (tests inject failures).
///
/// The original is never removed before the new folder is in place. When the second rename
/// fails, the original is renamed back; when that fails too, it stays at `aside` and the
/// error names it ([`DirError::SetAside`]). A kill between the renames leaves it there as
/// well, and the next restore of the target puts it back
/// ([`lifeboat_core::remove_leftovers`]) instead of removing it.
pub(crate) fn swap_by_renames(
    restored: &Path,
    target: &Path,
    aside: &Path,
    rename: &dyn Fn(&Path, &Path) -> std::io::Result<()>,
) -> std::result::Result<(), DirError> {
    {
        // Between the two renames the target is missing: an interrupt waits for both.
        let _swap = lifeboat_core::critical::CriticalSection::enter();
        rename(target, aside).map_err(|source| DirError::Io {
            action: "moving aside the folder",
            path: target.to_path_buf(),
            source,
        })?;
        if let Err(source) = rename(restored, target) {
            return Err(match rename(aside, target) {
                Ok(()) => DirError::Io {
                    action: "moving the restored folder to",
                    path: target.to_path_buf(),
                    source,
                },
                Err(rollback) => {
                    tracing::error!(target = %target.display(), aside = %aside.display(), "the original folder could not be put back: it is kept aside");
                    DirError::SetAside {
                        target: target.to_path_buf(),
                        aside: aside.to_path_buf(),
                        source,
                        rollback,
                    }
                }
            });
        }
    }
    lifeboat_core::sync_parent_folder(target).map_err(|source| DirError::Io {
        action: "making durable the swap into",
        path: target.to_path_buf(),
        source,
    })?;
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
            let current = DirBackup::new(&self.target);
            Some(ctx.save_safety(&current, &self.safety_name, Tags::new()).await?)
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
        // Snapshots from before the folder's own mode and owner were recorded keep those of
        // the folder they replace, or the private 0700 of a new one and the restoring user.
        let replaced = std::fs::symlink_metadata(&self.target).ok().filter(|_| self.replace);
        let mode = {
            use std::os::unix::fs::MetadataExt;
            self.expected.root_mode.or_else(|| replaced.as_ref().map(|m| m.mode()))
        };
        let owner = match (self.expected.root_uid, self.expected.root_gid) {
            (Some(uid), Some(gid)) => Some((uid, gid)),
            _ => {
                use std::os::unix::fs::MetadataExt;
                replaced.as_ref().map(|m| (m.uid(), m.gid()))
            }
        }
        .filter(|_| restores_owners());
        set_root_attributes(temp.path(), owner, mode, self.expected.root_mtime)
            .map_err(|e| Error::io("setting the owner and mode of", temp.path(), e))?;
        if self.durable {
            let dst = temp.path().to_path_buf();
            tokio::task::spawn_blocking(move || lifeboat_core::sync_tree(&dst))
                .await
                .map_err(|e| Error::Backend {
                    kind: Kind::DIR,
                    message: format!("fsync task failed: {e}"),
                })?
                .map_err(|e| Error::io("making durable the restored copy in", temp.path(), e))?;
        }
        let restored = temp.keep();
        let moved = if self.replace {
            swap_in(&restored, &self.target, &parent.join(lifeboat_core::aside_name(&self.target)))
        } else {
            std::fs::rename(&restored, &self.target)
                .and_then(|()| lifeboat_core::sync_parent_folder(&self.target))
                .map_err(|source| DirError::Io {
                    action: "moving the restored folder to",
                    path: self.target.clone(),
                    source,
                })
        };
        if let Err(e) = moved {
            // Whatever failed, the restored copy is still under its temporary name.
            let _ = std::fs::remove_dir_all(&restored);
            return Err(e.into());
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

    /// A folder `name` beside nothing else, holding one file `v` with `content`.
    fn folder(dir: &Path, name: &str, content: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("v"), content).unwrap();
        path
    }

    /// A rename that fails on the calls numbered in `fail` (1-based) and renames otherwise.
    fn failing_rename(fail: &'static [u32]) -> impl Fn(&Path, &Path) -> std::io::Result<()> {
        let calls = std::sync::atomic::AtomicU32::new(0);
        move |from, to| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if fail.contains(&n) {
                Err(std::io::Error::other(format!("injected failure of rename {n}")))
            } else {
                std::fs::rename(from, to)
            }
        }
    }

    /// The fallback for file systems without an exchange puts the new folder in place and
    /// leaves nothing beside it.
    #[test]
    fn the_two_rename_fallback_swaps_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let target = folder(dir.path(), "site", "old");
        let restored = folder(dir.path(), ".site.lifeboat-restore-1-x", "new");
        let aside = dir.path().join(lifeboat_core::aside_name(&target));
        swap_by_renames(&restored, &target, &aside, &failing_rename(&[])).unwrap();
        assert_eq!(std::fs::read_to_string(target.join("v")).unwrap(), "new");
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["site"]);
    }

    /// When the restored folder cannot be moved in after the original was moved aside, the
    /// original goes back to the target.
    #[test]
    fn a_failure_between_the_renames_puts_the_original_back() {
        let dir = tempfile::tempdir().unwrap();
        let target = folder(dir.path(), "site", "old");
        let restored = folder(dir.path(), ".site.lifeboat-restore-1-x", "new");
        let aside = dir.path().join(lifeboat_core::aside_name(&target));
        let err = swap_by_renames(&restored, &target, &aside, &failing_rename(&[2])).unwrap_err();
        assert!(matches!(err, DirError::Io { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(target.join("v")).unwrap(), "old");
        assert!(!aside.exists());
    }

    /// When the original cannot be put back either, it is kept whole under the aside name,
    /// the error names that path, and cleaning up leftovers (this restore's own, or a later
    /// restore's: `lifeboat_core::remove_leftovers`) never removes it. Before, the error did
    /// not say where the original was, and the next restore removed it as a leftover.
    #[test]
    fn an_original_that_cannot_be_put_back_is_kept_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let target = folder(dir.path(), "site", "old");
        let restored = folder(dir.path(), ".site.lifeboat-restore-1-x", "new");
        let aside = dir.path().join(lifeboat_core::aside_name(&target));
        let err =
            swap_by_renames(&restored, &target, &aside, &failing_rename(&[2, 3])).unwrap_err();
        let DirError::SetAside { aside: named, .. } = &err else { panic!("{err}") };
        assert_eq!(named, &aside);
        assert!(err.to_string().contains(&aside.display().to_string()), "{err}");
        assert!(!target.exists());
        assert_eq!(std::fs::read_to_string(aside.join("v")).unwrap(), "old");
        lifeboat_core::remove_leftovers(&target);
        assert_eq!(std::fs::read_to_string(aside.join("v")).unwrap(), "old");
        // A later restore (another process) finds the aside name of a gone process.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let gone = dir.path().join(format!(".site.lifeboat-old-{dead}"));
        std::fs::rename(&aside, &gone).unwrap();
        lifeboat_core::remove_leftovers(&target);
        assert_eq!(std::fs::read_to_string(target.join("v")).unwrap(), "old");
    }

    /// The restored tree is synced without following a symlink at its root.
    #[test]
    fn sync_tree_syncs_the_tree_and_refuses_a_symlink_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), "1").unwrap();
        lifeboat_core::sync_tree(&root).unwrap();
        std::os::unix::fs::symlink(&root, dir.path().join("link")).unwrap();
        assert!(
            lifeboat_core::sync_tree(&dir.path().join("link")).is_err(),
            "a symlink is not followed"
        );
    }
}
