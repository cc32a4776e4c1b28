//! Listing the entries of a folder snapshot without restoring it.

use std::io::Read;
use std::path::PathBuf;

use serde::Serialize;
use tar::EntryType;

/// One entry of a folder snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryInfo {
    /// Path relative to the captured folder.
    pub path: PathBuf,
    /// `file`, `dir`, `symlink`, `hardlink`, `fifo`, `char`, `block` or `other`.
    pub kind: &'static str,
    /// Bytes of content.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Where a symlink points, or the first name of a hard-linked file.
    pub link: Option<PathBuf>,
}

/// Kind name of a tar entry type.
pub(crate) fn kind_name(t: EntryType) -> &'static str {
    match t {
        EntryType::Regular | EntryType::Continuous => "file",
        EntryType::Directory => "dir",
        EntryType::Symlink => "symlink",
        EntryType::Link => "hardlink",
        EntryType::Fifo => "fifo",
        EntryType::Char => "char",
        EntryType::Block => "block",
        _ => "other",
    }
}

/// Reads a folder snapshot's stream and lists its entries (paths under `prefix` only, when
/// given).
///
/// # Errors
/// When the stream is not a valid tar or fails while being read.
pub fn list_entries(stream: impl Read, prefix: Option<&str>) -> std::io::Result<Vec<EntryInfo>> {
    let mut archive = tar::Archive::new(stream);
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let path = entry.path()?.into_owned();
        if let Some(prefix) = prefix.map(|p| p.trim_end_matches('/')).filter(|p| !p.is_empty())
            && !path.starts_with(prefix)
        {
            continue;
        }
        let header = entry.header();
        out.push(EntryInfo {
            kind: kind_name(header.entry_type()),
            size: header.size().unwrap_or(0),
            mode: header.mode().unwrap_or(0),
            mtime: header.mtime().unwrap_or(0),
            link: entry.link_name()?.map(|l| l.into_owned()),
            path,
        });
    }
    Ok(out)
}
