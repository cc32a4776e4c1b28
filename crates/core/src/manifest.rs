//! The snapshot manifest: everything known about one stored capture.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ChunkId, Digest, Kind, SnapshotId};

/// Current manifest format version.
pub const MANIFEST_FORMAT: u32 = 1;

/// Free-form `key=value` labels on a snapshot (`tier=pro`, `pre-restore=...`).
pub type Tags = BTreeMap<String, String>;

/// One stored, immutable capture. Written last, in one PUT: a snapshot exists exactly when
/// its manifest does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version ([`MANIFEST_FORMAT`]).
    pub format: u32,
    /// What was captured.
    pub kind: Kind,
    /// The name snapshots of one target share (`auth`, `billing`).
    pub name: String,
    /// The host that took the capture.
    pub host: String,
    /// Labels.
    #[serde(default)]
    pub tags: Tags,
    /// When the capture started: the point in time the data reflects.
    pub time: DateTime<Utc>,
    /// How long capture and upload took, in milliseconds.
    pub duration_ms: u64,
    /// Bytes in the captured stream.
    pub size: u64,
    /// Compressed bytes this snapshot added to the repository (0 when all deduplicated).
    pub stored: u64,
    /// SHA-256 of the whole captured stream.
    pub sha256: Digest,
    /// The stream's chunks, in order.
    pub chunks: Vec<ChunkId>,
    /// Backend-specific facts (page size, tables and row counts, server version, ...).
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// The previous snapshot of the same name and host, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<SnapshotId>,
    /// A summary of the source's state taken before the capture (see
    /// [`Backup::fingerprint`](crate::Backup::fingerprint)); `--changed-only` compares it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// True when the source had not changed since `parent` (a `changed_only` backup): by
    /// its fingerprint, recorded cheaply by referring to the parent's chunks without a
    /// capture; or, without a usable fingerprint, by a captured stream equal to the parent's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
}

/// Longest snapshot name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// Checks a snapshot name before anything is stored under it.
///
/// Names travel into listings, file names (drill reports, heartbeat files), metrics labels
/// and URLs, so they are refused when empty, longer than [`MAX_NAME_LEN`], carrying control
/// characters, or shaped like a path that climbs or starts at the root: `..`, `/x`, `a//b`,
/// `a/`. An inner `/` is allowed (lifeboatd names a label job's members `JOB/CONTAINER`).
///
/// ```
/// use lifeboat_core::check_snapshot_name;
/// assert!(check_snapshot_name("auth").is_ok());
/// assert!(check_snapshot_name("tenants/abc").is_ok());
/// for bad in ["", "..", "/", "/etc", "a/../b", "a\nb", "a/"] {
///     assert!(check_snapshot_name(bad).is_err(), "{bad:?}");
/// }
/// ```
///
/// # Errors
/// [`crate::Error::InvalidInput`] saying what is wrong with the name.
pub fn check_snapshot_name(name: &str) -> crate::Result<()> {
    let problem = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("it is {} bytes long (at most {MAX_NAME_LEN})", name.len()))
    } else if name.chars().any(char::is_control) {
        Some("it contains control characters".to_string())
    } else if name.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        Some(
            "it is shaped like a path (empty parts, `.` or `..`, a leading or trailing `/`)".into(),
        )
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(crate::Error::InvalidInput {
            what: format!("{name:?} cannot be a snapshot name: {why}"),
            hint: "give a plain name (letters, digits, `-`, `_`, `.`)".into(),
        }),
    }
}

impl Manifest {
    /// Whether this is a safety snapshot taken before a restore ([`crate::is_safety_snapshot`]),
    /// not a backup.
    pub fn is_safety(&self) -> bool {
        crate::is_safety_snapshot(&self.tags)
    }

    /// The canonical serialised form; its SHA-256 is the snapshot id.
    ///
    /// # Errors
    /// Never in practice (serialising plain data).
    pub fn to_bytes(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec_pretty(self)
    }

    /// The id this manifest gets when stored.
    ///
    /// # Errors
    /// Never in practice.
    pub fn id(&self) -> serde_json::Result<SnapshotId> {
        Ok(Digest::of(&self.to_bytes()?))
    }
}
