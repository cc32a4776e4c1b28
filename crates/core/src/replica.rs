//! Continuous replication: what a replicator needs from the repository, seen from a backend
//! (backends depend only on core). A replica is a series of immutable segments, each the
//! pages some committed transactions wrote, beside regular snapshots of the same name that
//! segments are applied to.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Backup, Result, Snapshot, SnapshotId, Tags};

/// The repository as a replicator and a point-in-time restore use it.
#[async_trait]
pub trait ReplicaStore: Send + Sync {
    /// Stores `content` as segment `file` of replica `name`: visible only once completely
    /// stored; the same bytes again succeed, other bytes under the name are refused.
    async fn push_segment(&self, name: &str, file: &str, content: Vec<u8>) -> Result<()>;

    /// The names of the segments of replica `name`, in name order (one listing).
    async fn segment_names(&self, name: &str) -> Result<Vec<String>>;

    /// Reads segment `file` of replica `name` back, checked.
    async fn fetch_segment(&self, name: &str, file: &str) -> Result<Vec<u8>>;

    /// The snapshots named `name`, oldest first.
    async fn snapshots_named(&self, name: &str) -> Result<Vec<Arc<dyn Snapshot>>>;

    /// Captures `source` as a snapshot named `name` with `tags`.
    async fn save_snapshot(
        &self,
        source: &dyn Backup,
        name: &str,
        tags: Tags,
    ) -> Result<SnapshotId>;
}

/// What `lifeboat replicate KIND TARGET` asks of a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicateRequest {
    /// The target (a database file's path).
    pub target: String,
    /// The replica's name: its base snapshots' name and its segments' series.
    pub name: String,
    /// The longest a commit waits before it is shipped (commits seen meanwhile go together).
    pub interval: Duration,
    /// How often the source is looked at; commit times are as precise as this.
    pub poll: Duration,
    /// How often a new base snapshot is taken.
    pub snapshot_every: Duration,
    /// The command line that runs this program's replica helper (`[lifeboat,
    /// __replica-helper, KIND]`); the backend appends its own arguments, and the program
    /// hands them to [`crate::Backend::replica_helper`].
    pub helper: Vec<String>,
}

/// The argument that makes `lifeboat` run a backend's replica helper:
/// `lifeboat __replica-helper KIND ARGS…`.
pub const HELPER_ARG: &str = "__replica-helper";

/// What a replicator has done, for its status lines and `--json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplicaStatus {
    /// The current generation (the run of segments after one base snapshot).
    pub generation: u32,
    /// The last transaction shipped.
    pub last_txid: u64,
    /// When the last shipped transaction was seen committed.
    pub last_commit: Option<DateTime<Utc>>,
    /// Segments written.
    pub segments: u64,
    /// Transactions shipped.
    pub transactions: u64,
    /// Page bytes shipped (before compression).
    pub page_bytes: u64,
    /// Base snapshots taken.
    pub snapshots: u64,
    /// Restarts of the source's log followed without a break.
    pub restarts_followed: u64,
    /// Generations started (the first one included): after a break that could not be ruled
    /// out, a new one starts with a fresh base snapshot.
    pub generations_started: u64,
    /// Whether this run resumed an earlier run's history without a gap.
    pub resumed: bool,
    /// Milliseconds the oldest commit not shipped yet has waited.
    pub lag_ms: u64,
}

/// Which commit a restore from a replica goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointTarget {
    /// The newest shipped commit.
    Latest,
    /// The commit with this transaction id.
    Txid(u64),
    /// The newest commit seen at or before this time.
    Time(DateTime<Utc>),
}

/// The commit a restore from a replica reached, and from what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReachedPoint {
    /// The replica.
    pub name: String,
    /// The transaction restored to.
    pub txid: u64,
    /// When it was seen committed.
    pub time: DateTime<Utc>,
    /// Its generation.
    pub generation: u32,
    /// The base snapshot the segments were applied to.
    pub base: SnapshotId,
    /// The segments read.
    pub segments: usize,
    /// The transactions applied on top of the base.
    pub transactions: u64,
}

/// Resolves when a replicator should stop (an interrupt, a lost lease).
pub type Stop = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A replica segment's name, parsed: `L0-<first txid>-<last txid>-g<generation>` (16, 16
/// and 8 hex digits), so a listing alone tells which transactions each segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentName {
    /// Its first transaction id.
    pub first: u64,
    /// Its last transaction id.
    pub last: u64,
    /// Its generation.
    pub generation: u32,
}

impl SegmentName {
    /// Parses `L0-<first>-<last>-g<generation>`; `None` for any other name.
    pub fn parse(name: &str) -> Option<SegmentName> {
        let rest = name.strip_prefix("L0-")?;
        let mut parts = rest.split('-');
        let first = u64::from_str_radix(parts.next()?, 16).ok()?;
        let last = u64::from_str_radix(parts.next()?, 16).ok()?;
        let generation = u32::from_str_radix(parts.next()?.strip_prefix('g')?, 16).ok()?;
        (parts.next().is_none() && first <= last).then_some(SegmentName { first, last, generation })
    }
}

impl std::fmt::Display for SegmentName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "L0-{:016x}-{:016x}-g{:08x}", self.first, self.last, self.generation)
    }
}
