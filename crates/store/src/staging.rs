//! Staging files of a local repository.
//!
//! object_store's local store writes an object as `<key>#<n>` and renames it into place.
//! A write killed in between leaves the staging file behind, and listings hide it (`#<n>`
//! names are not objects), so nothing else would ever remove it. Prune removes the stale
//! ones; `stats` counts them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use lifeboat_core::Error as CoreError;
use serde::Serialize;
use tracing::{debug, info};

use crate::error::Result;
use crate::repository::Repository;

/// Staging files younger than this are never removed, whatever the grace period: a write in
/// progress owns its file for at most seconds, and a prune with no grace must not break it.
pub const STAGING_MIN_AGE: Duration = Duration::from_secs(15 * 60);

/// A staging file left in a local repository folder.
#[derive(Debug, Clone, Serialize)]
pub struct StagingFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: SystemTime,
}

/// Whether `name` is a staging name: `<anything>#<digits>`.
fn is_staging_name(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn walk(root: &Path) -> std::io::Result<Vec<StagingFile>> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                folders.push(entry.path());
            } else if kind.is_file() && entry.file_name().to_str().is_some_and(is_staging_name) {
                let meta = entry.metadata()?;
                found.push(StagingFile {
                    path: entry.path(),
                    size: meta.len(),
                    modified: meta.modified()?,
                });
            }
        }
    }
    Ok(found)
}

impl Repository {
    /// Staging files left in a local repository folder; none for other stores.
    ///
    /// # Errors
    /// When the folder cannot be read.
    pub async fn staging_files(&self) -> Result<Vec<StagingFile>> {
        let Some(root) = self.local_folder() else { return Ok(Vec::new()) };
        let found = tokio::task::spawn_blocking(move || {
            walk(&root).map_err(|e| CoreError::io("listing staging files in", root.as_path(), e))
        })
        .await
        .map_err(|e| CoreError::io("listing staging files", "", std::io::Error::other(e)))??;
        Ok(found)
    }

    /// Removes staging files older than `grace` (and at least [`STAGING_MIN_AGE`]), or with
    /// `dry_run` only counts them. Returns how many and their bytes.
    pub(crate) async fn remove_stale_staging(
        &self,
        grace: Duration,
        dry_run: bool,
    ) -> Result<(usize, u64)> {
        let cutoff = SystemTime::now() - grace.max(STAGING_MIN_AGE);
        let (mut count, mut bytes) = (0, 0);
        for file in self.staging_files().await? {
            if file.modified > cutoff {
                continue;
            }
            if !dry_run {
                match std::fs::remove_file(&file.path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(CoreError::io("removing", file.path, e).into()),
                }
                debug!(path = %file.path.display(), "stale staging file removed");
            }
            count += 1;
            bytes += file.size;
        }
        if count > 0 && !dry_run {
            info!(count, bytes, "stale staging files removed");
        }
        Ok((count, bytes))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn staging_names() {
        assert!(super::is_staging_name("abcd#1"));
        assert!(super::is_staging_name("abcd#12"));
        assert!(!super::is_staging_name("abcd#"));
        assert!(!super::is_staging_name("abcd#1x"));
        assert!(!super::is_staging_name("abcd"));
    }
}
