//! Capturing a folder as a tar stream.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use globset::{Glob, GlobSet, GlobSetBuilder};
use lifeboat_core::producer::{StreamSink, blocking_capture};
use lifeboat_core::{Backup, Capture, Kind, Result};
use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags, openat, readlinkat, statat};
use serde::{Deserialize, Serialize};
use tar::{EntryType, Header, HeaderMode};

use crate::error::DirError;

/// A folder to capture.
#[derive(Debug, Clone)]
pub struct DirBackup {
    root: PathBuf,
    excludes: Vec<String>,
}

/// What a folder capture saw, stored in the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirMetadata {
    /// The folder captured.
    pub root: String,
    /// Permission bits of the folder itself (its entries carry theirs in the stream).
    /// Absent in snapshots taken before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_mode: Option<u32>,
    /// Modification time of the folder itself, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_mtime: Option<i64>,
    /// Owner (user id) of the folder itself; its entries carry theirs in the stream.
    /// Absent in snapshots taken before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_uid: Option<u32>,
    /// Group id of the folder itself. Absent in snapshots taken before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_gid: Option<u32>,
    /// Regular files (first links).
    pub files: u64,
    /// Folders below the root.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Further names of files already captured (hard links).
    pub hardlinks: u64,
    /// FIFOs and device nodes (captured as headers).
    pub specials: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Exclude patterns in force.
    pub excludes: Vec<String>,
    /// Entries left out by the exclude patterns.
    pub excluded: u64,
    /// Files that changed while they were read (their size or mtime moved): captured as
    /// read, and reported so nobody mistakes them for a consistent copy.
    pub changed: Vec<String>,
    /// Entries that could not be captured, with the reason (sockets, unreadable files).
    pub skipped: Vec<String>,
}

impl DirBackup {
    /// Captures the folder at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirBackup { root: root.into(), excludes: Vec::new() }
    }

    /// Leaves out paths (relative to the root) matching `pattern`, e.g. `*.log`, `cache/**`.
    pub fn exclude(mut self, pattern: impl Into<String>) -> Self {
        self.excludes.push(pattern.into());
        self
    }

    fn glob_set(&self) -> std::result::Result<GlobSet, DirError> {
        let mut set = GlobSetBuilder::new();
        for pattern in &self.excludes {
            let glob = Glob::new(pattern).map_err(|e| DirError::BadPattern {
                pattern: pattern.clone(),
                reason: e.to_string(),
            })?;
            set.add(glob);
        }
        set.build().map_err(|e| DirError::BadPattern {
            pattern: self.excludes.join(" "),
            reason: e.to_string(),
        })
    }
}

#[async_trait]
impl Backup for DirBackup {
    fn kind(&self) -> Kind {
        Kind::DIR
    }

    fn default_name(&self) -> String {
        fs::canonicalize(&self.root)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "dir".into())
    }

    fn target(&self) -> String {
        self.root.display().to_string()
    }

    async fn capture(&self) -> Result<Capture> {
        match fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(DirError::NotADirectory { path: self.root.clone() }.into()),
            Err(_) => return Err(DirError::NotFound { path: self.root.clone() }.into()),
        }
        let excludes = self.glob_set()?;
        // A first walk that only looks at sizes, so progress knows the total.
        let (root, set) = (self.root.clone(), excludes.clone());
        let total =
            tokio::task::spawn_blocking(move || stream_size(&root, Path::new(""), &set)).await.ok();
        let (root, patterns) = (self.root.clone(), self.excludes.clone());
        blocking_capture("lifeboat-dir-walk", Kind::DIR, total, move |sink| {
            // The root is the one path followed as given (it may be a symlink the user chose);
            // everything below it is reached through its handle.
            let root_fd = open_dir_at(CWD, &root, OFlags::empty()).map_err(|e| {
                lifeboat_core::Error::from(DirError::Io {
                    action: "opening",
                    path: root.clone(),
                    source: e.into(),
                })
            })?;
            let root_md = File::from(root_fd.try_clone().map_err(|e| {
                lifeboat_core::Error::from(DirError::Io {
                    action: "opening",
                    path: root.clone(),
                    source: e,
                })
            })?)
            .metadata()
            .map_err(|e| {
                lifeboat_core::Error::from(DirError::Io {
                    action: "reading",
                    path: root.clone(),
                    source: e,
                })
            })?;
            let mut walk = Walk {
                excludes,
                links: HashMap::new(),
                meta: DirMetadata {
                    root: root.display().to_string(),
                    root_mode: Some(root_md.mode() & 0o7777),
                    root_mtime: Some(root_md.mtime()),
                    root_uid: Some(root_md.uid()),
                    root_gid: Some(root_md.gid()),
                    excludes: patterns,
                    ..Default::default()
                },
            };
            let mut builder = tar::Builder::new(sink);
            builder.follow_symlinks(false);
            walk.dir(&mut builder, &root_fd, Path::new(""))
                .and_then(|()| builder.finish())
                .map_err(|source| {
                    lifeboat_core::Error::from_stream("walking the folder", source)
                })?;
            serde_json::to_value(&walk.meta).map_err(|e| lifeboat_core::Error::Backend {
                kind: Kind::DIR,
                message: e.to_string(),
            })
        })
    }
}

/// About how long the tar stream of the folder `dir` (at `rel` below the root) is: a
/// 512-byte header per entry, file contents padded to 512 bytes. Unreadable entries count
/// nothing; symlinks are not followed.
fn stream_size(dir: &Path, rel: &Path, excludes: &GlobSet) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let mut total = 0;
    for entry in entries.flatten() {
        let rel = rel.join(entry.file_name());
        if excludes.is_match(&rel) {
            continue;
        }
        let Ok(md) = entry.metadata() else { continue };
        total += 512;
        if md.is_dir() {
            total += stream_size(&entry.path(), &rel, excludes);
        } else if md.is_file() {
            total += md.len().div_ceil(512) * 512;
        }
    }
    total
}

/// Opens the folder `path` relative to `parent` for listing.
fn open_dir_at(parent: impl AsFd, path: &Path, extra: OFlags) -> rustix::io::Result<OwnedFd> {
    openat(
        parent,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | extra,
        Mode::empty(),
    )
}

/// Names in the folder behind `fd`, sorted so the stream of an unchanged folder is identical
/// every time.
fn sorted_names(fd: &OwnedFd) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in Dir::read_from(fd)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name));
        }
    }
    names.sort();
    Ok(names)
}

struct Walk {
    excludes: GlobSet,
    /// (device, inode) of multiply-linked files already captured, with their path.
    links: HashMap<(u64, u64), PathBuf>,
    meta: DirMetadata,
}

impl Walk {
    fn skip(&mut self, rel: &Path, why: impl std::fmt::Display) {
        tracing::warn!(path = %rel.display(), "left out of the snapshot: {why}");
        self.meta.skipped.push(format!("{}: {why}", rel.display()));
    }

    /// Captures the folder open as `fd` (at `rel` below the root).
    fn dir(
        &mut self,
        out: &mut tar::Builder<&mut StreamSink>,
        fd: &OwnedFd,
        rel: &Path,
    ) -> io::Result<()> {
        let names = match sorted_names(fd) {
            Ok(names) => names,
            Err(e) => {
                self.skip(rel, e);
                return Ok(());
            }
        };
        for name in names {
            let rel = rel.join(&name);
            if self.excludes.is_match(&rel) {
                self.meta.excluded += 1;
                continue;
            }
            self.entry(out, fd, &name, &rel)?;
        }
        Ok(())
    }

    /// Captures the entry `name` of the folder `parent`.
    ///
    /// Someone who can write to the folder can replace an entry between the moment it is
    /// looked at and the moment it is opened: a file by a symlink to root's secrets, a folder
    /// by a symlink to /etc. So the entry is opened relative to its parent's handle, never
    /// following a symlink, and only captured when the opened inode is the one looked at; a
    /// mismatch leaves the entry out with a warning. Its header comes from the opened handle,
    /// so metadata and content describe the same inode.
    fn entry(
        &mut self,
        out: &mut tar::Builder<&mut StreamSink>,
        parent: &OwnedFd,
        name: &OsStr,
        rel: &Path,
    ) -> io::Result<()> {
        let seen = match statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) => {
                self.skip(rel, io::Error::from(e));
                return Ok(());
            }
        };
        let kind = FileType::from_raw_mode(seen.st_mode);
        if kind == FileType::Socket {
            self.skip(rel, "sockets cannot be captured");
            return Ok(());
        }
        let opened = match kind {
            FileType::Directory => open_dir_at(parent, Path::new(name), OFlags::NOFOLLOW),
            // Non-blocking, so a FIFO swapped in cannot hang the walk.
            FileType::RegularFile => openat(
                parent,
                name,
                OFlags::RDONLY
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::NOCTTY
                    | OFlags::CLOEXEC,
                Mode::empty(),
            ),
            // A handle on the node itself: symlinks and devices are never opened for I/O.
            _ => openat(
                parent,
                name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ),
        };
        let fd = match opened {
            Ok(fd) => fd,
            Err(e) => {
                self.skip(
                    rel,
                    format!("changed while the folder was read ({})", io::Error::from(e)),
                );
                return Ok(());
            }
        };
        let file = File::from(fd.try_clone()?);
        let md = match file.metadata() {
            Ok(md) => md,
            Err(e) => {
                self.skip(rel, e);
                return Ok(());
            }
        };
        if (md.dev(), md.ino()) != (seen.st_dev, seen.st_ino) {
            self.skip(rel, "replaced by another file while the folder was read");
            return Ok(());
        }
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(&md, HeaderMode::Complete);
        let kind = md.file_type();
        if kind.is_dir() {
            header.set_size(0);
            out.append_data(&mut header, rel, io::empty())?;
            self.meta.dirs += 1;
            return self.dir(out, &fd, rel);
        }
        if kind.is_symlink() {
            // The link read is the one held open: an empty path names the handle itself.
            let target = match readlinkat(&fd, "", Vec::new()) {
                Ok(t) => PathBuf::from(OsString::from_vec(t.into_bytes())),
                Err(e) => {
                    self.skip(rel, io::Error::from(e));
                    return Ok(());
                }
            };
            header.set_size(0);
            out.append_link(&mut header, rel, target)?;
            self.meta.symlinks += 1;
            return Ok(());
        }
        if kind.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                    header.set_entry_type(EntryType::Link);
                    header.set_size(0);
                    out.append_link(&mut header, rel, first)?;
                    self.meta.hardlinks += 1;
                    return Ok(());
                }
                self.links.insert((md.dev(), md.ino()), rel.to_path_buf());
            }
            // Exactly the size in the header, whatever the file does meanwhile: a file that
            // grows is cut, one that shrinks is padded with zeros; either is reported.
            let size = md.len();
            let mut data = ExactSize { inner: (&file).take(size), left: size };
            out.append_data(&mut header, rel, &mut data)?;
            let changed = match file.metadata() {
                Ok(after) => {
                    after.len() != size
                        || after.mtime() != md.mtime()
                        || after.mtime_nsec() != md.mtime_nsec()
                }
                Err(_) => true,
            };
            if changed {
                self.meta.changed.push(rel.display().to_string());
            }
            self.meta.files += 1;
            self.meta.bytes += size;
            return Ok(());
        }
        if kind.is_fifo() || kind.is_char_device() || kind.is_block_device() {
            header.set_size(0);
            out.append_data(&mut header, rel, io::empty())?;
            self.meta.specials += 1;
            return Ok(());
        }
        self.skip(rel, "this kind of file cannot be captured");
        Ok(())
    }
}

/// Reads exactly `left` bytes: the file's, then zeros if it ended early.
struct ExactSize<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let mut n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            buf[..want].fill(0);
            n = want;
        }
        self.left -= n as u64;
        Ok(n)
    }
}
