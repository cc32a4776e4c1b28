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

impl Manifest {
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
