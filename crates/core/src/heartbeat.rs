//! Heartbeat files for external monitors, written the same way by the `lifeboat` CLI and by
//! lifeboatd: to a temporary file, synced, then renamed, so a monitor never reads half a
//! file and the beat survives a crash.
//!
//! - [`beat`]: `DIR/NAME.last-success` holds the time of NAME's last success (RFC 3339) and
//!   the snapshot; its mtime moves with it, for `find -mmin`.
//! - [`merge`]: one JSON file mapping each name to its last success, for drills.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let time = chrono::Utc::now();
//! lifeboat_core::heartbeat::beat(dir.path(), "auth", time, "0123abcd")?;
//! let text = std::fs::read_to_string(lifeboat_core::heartbeat::path(dir.path(), "auth"))?;
//! assert!(text.ends_with("snapshot 0123abcd\n"));
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::{Error, Result};

/// The heartbeat file of `name` in `dir` (a `/` in the name becomes `_`).
pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{}.last-success", name.replace('/', "_")))
}

/// Records that `name` last succeeded at `time` with `snapshot`.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn beat(dir: &Path, name: &str, time: DateTime<Utc>, snapshot: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let body =
        format!("{}\nsnapshot {snapshot}\n", time.to_rfc3339_opts(SecondsFormat::Secs, true));
    write_atomic(&path(dir, name), body.as_bytes())
}

/// Merges `beats` (name → time of last success) into the JSON heartbeat file at `file`,
/// keeping the names it already holds.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn merge(file: &Path, beats: impl IntoIterator<Item = (String, DateTime<Utc>)>) -> Result<()> {
    let mut all: BTreeMap<String, String> =
        std::fs::read(file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    for (name, time) in beats {
        all.insert(name, time.to_rfc3339());
    }
    let body = serde_json::to_vec_pretty(&all).map_err(|e| Error::InvalidInput {
        what: format!("heartbeat {}: {e}", file.display()),
        hint: "report this as a bug".into(),
    })?;
    write_atomic(file, &body)
}

/// Writes `body` to `file` through a synced temporary file beside it.
fn write_atomic(file: &Path, body: &[u8]) -> Result<()> {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = file.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&temp).and_then(|mut f| {
        f.write_all(body)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(Error::io("writing", &temp, e));
    }
    std::fs::rename(&temp, file).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        Error::io("writing", file, e)
    })?;
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The rename is durable once the folder is synced; a folder that cannot be opened
        // (some filesystems) still holds the new file.
        if let Ok(folder) = std::fs::File::open(parent) {
            let _ = folder.sync_all();
        }
    }
    Ok(())
}
