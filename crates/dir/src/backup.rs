//! Capturing a folder as a tar stream.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use globset::{Glob, GlobSet, GlobSetBuilder};
use lifeboat_core::producer::{StreamSink, blocking_capture};
use lifeboat_core::{Backup, Capture, Kind, Result};
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
        Kind::Dir
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
        let (root, patterns) = (self.root.clone(), self.excludes.clone());
        blocking_capture("lifeboat-dir-walk", Kind::Dir, None, move |sink| {
            let mut walk = Walk {
                root: root.clone(),
                excludes,
                links: HashMap::new(),
                meta: DirMetadata {
                    root: root.display().to_string(),
                    excludes: patterns,
                    ..Default::default()
                },
            };
            let mut builder = tar::Builder::new(sink);
            builder.follow_symlinks(false);
            walk.dir(&mut builder, Path::new("")).and_then(|()| builder.finish()).map_err(
                |source| lifeboat_core::Error::from_stream("walking the folder", source),
            )?;
            serde_json::to_value(&walk.meta).map_err(|e| lifeboat_core::Error::Backend {
                kind: Kind::Dir,
                message: e.to_string(),
            })
        })
    }
}

struct Walk {
    root: PathBuf,
    excludes: GlobSet,
    /// (device, inode) of multiply-linked files already captured, with their path.
    links: HashMap<(u64, u64), PathBuf>,
    meta: DirMetadata,
}

impl Walk {
    /// Captures the folder at `rel` (relative to the root), names sorted so the stream of an
    /// unchanged folder is identical every time.
    fn dir(&mut self, out: &mut tar::Builder<&mut StreamSink>, rel: &Path) -> io::Result<()> {
        let full = self.root.join(rel);
        let mut names: Vec<_> = match fs::read_dir(&full) {
            Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.file_name())).collect(),
            Err(e) => {
                self.meta.skipped.push(format!("{}: {e}", rel.display()));
                return Ok(());
            }
        };
        names.sort();
        for name in names {
            let rel = rel.join(&name);
            if self.excludes.is_match(&rel) {
                self.meta.excluded += 1;
                continue;
            }
            let path = self.root.join(&rel);
            let md = match fs::symlink_metadata(&path) {
                Ok(md) => md,
                Err(e) => {
                    self.meta.skipped.push(format!("{}: {e}", rel.display()));
                    continue;
                }
            };
            self.entry(out, &rel, &path, &md)?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        out: &mut tar::Builder<&mut StreamSink>,
        rel: &Path,
        path: &Path,
        md: &Metadata,
    ) -> io::Result<()> {
        let kind = md.file_type();
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(md, HeaderMode::Complete);
        if kind.is_dir() {
            header.set_size(0);
            out.append_data(&mut header, rel, io::empty())?;
            self.meta.dirs += 1;
            return self.dir(out, rel);
        }
        if kind.is_symlink() {
            let target = fs::read_link(path)?;
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
            let file = match File::open(path) {
                Ok(f) => f,
                Err(e) => {
                    self.meta.skipped.push(format!("{}: {e}", rel.display()));
                    return Ok(());
                }
            };
            // Exactly the size in the header, whatever the file does meanwhile: a file that
            // grows is cut, one that shrinks is padded with zeros; either is reported.
            let size = md.len();
            let mut data = ExactSize { inner: file.take(size), left: size };
            out.append_data(&mut header, rel, &mut data)?;
            let changed = match fs::symlink_metadata(path) {
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
        self.meta.skipped.push(format!("{}: sockets cannot be captured", rel.display()));
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
