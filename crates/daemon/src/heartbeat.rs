//! Heartbeat files for external monitors: `<heartbeat_dir>/<job>.last-success` holds the time
//! of the job's last successful backup (RFC 3339) and its mtime moves with it, so a monitor
//! can alert on age with `find -mmin` or by reading the file.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::error::DaemonError;

/// The heartbeat file of `job`.
pub fn path(dir: &Path, job: &str) -> PathBuf {
    dir.join(format!("{job}.last-success"))
}

/// Writes the heartbeat of `job` (to a temporary file, then renamed: never half-written).
///
/// # Errors
/// [`DaemonError::Io`] naming the file.
pub fn beat(dir: &Path, job: &str, time: DateTime<Utc>, snapshot: &str) -> Result<(), DaemonError> {
    let target = path(dir, job);
    let temp = dir.join(format!(".{job}.last-success.tmp"));
    let body = format!(
        "{}\nsnapshot {snapshot}\n",
        time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    std::fs::create_dir_all(dir).map_err(|source| DaemonError::Io {
        action: "creating",
        path: dir.to_path_buf(),
        source,
    })?;
    std::fs::write(&temp, body).map_err(|source| DaemonError::Io {
        action: "writing",
        path: temp.clone(),
        source,
    })?;
    std::fs::rename(&temp, &target).map_err(|source| DaemonError::Io {
        action: "writing",
        path: target,
        source,
    })
}
