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

    /// Deletes segments `files` of replica `name` (merged into others); their data goes
    /// with the next prune.
    async fn drop_segments(&self, name: &str, files: &[String]) -> Result<()>;

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
    /// How shipped segments are merged into levels, and how long each level's points stay.
    pub compaction: Compaction,
}

/// How a replicator merges its segments, so a restore reads a bounded number of objects:
/// every `spans[0]` the segments shipped are merged into one of level 1 (the net effect:
/// each page's last image), and level-1 segments older than `keep_level1` into level 2,
/// one per `spans[1]`. A merged segment's only restore point is its end, so the segments it
/// replaces are dropped only after a while: every commit stays a restore point for
/// `keep_commits`, every level-1 end for `keep_level1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// The spans of level 1 and level 2 (1 minute, 1 hour).
    pub spans: [Duration; 2],
    /// How long every commit stays a point of its own (1 hour).
    pub keep_commits: Duration,
    /// How long every level-1 end stays a point (24 hours).
    pub keep_level1: Duration,
}

impl Default for Compaction {
    fn default() -> Self {
        Compaction {
            spans: [Duration::from_secs(60), Duration::from_secs(3600)],
            keep_commits: Duration::from_secs(3600),
            keep_level1: Duration::from_secs(24 * 3600),
        }
    }
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
    /// Merged segments written (compaction).
    pub merged: u64,
    /// Segments dropped after a merged segment replaced them.
    pub dropped: u64,
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
    /// When the point asked for could not be reached exactly because the segments around it
    /// were merged: why, and which points are kept near it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nearest: Option<String>,
}

/// Resolves when a replicator should stop (an interrupt, a lost lease).
pub type Stop = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A replica segment's name, parsed, so a listing alone tells which transactions each
/// segment holds and when it ends: `L<level>-<first txid>-<last txid>-g<generation>-t<end>`
/// (16, 16 and 8 hex digits; `end` is its last commit's time in Unix milliseconds, hex).
/// Level 0 is a segment as shipped, every commit in it a restore point; level 1 and up are
/// merged, the net effect of their span, with only their end a point. Level-0 names written
/// before levels existed have no `-t<end>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentName {
    /// Its first transaction id.
    pub first: u64,
    /// Its last transaction id.
    pub last: u64,
    /// Its generation.
    pub generation: u32,
    /// 0 as shipped (every commit its own point); 1 and up merged (only its end is a point).
    pub level: u8,
    /// When its last commit was seen, in Unix milliseconds (`None` only in older level-0
    /// names).
    pub end_ms: Option<i64>,
}

impl SegmentName {
    /// Parses a segment's name; `None` for any other name.
    pub fn parse(name: &str) -> Option<SegmentName> {
        let rest = name.strip_prefix('L')?;
        let mut parts = rest.split('-');
        let level: u8 = parts.next()?.parse().ok()?;
        let first = u64::from_str_radix(parts.next()?, 16).ok()?;
        let last = u64::from_str_radix(parts.next()?, 16).ok()?;
        let generation = u32::from_str_radix(parts.next()?.strip_prefix('g')?, 16).ok()?;
        let end_ms = match parts.next() {
            None => None,
            Some(t) => Some(i64::from_str_radix(t.strip_prefix('t')?, 16).ok()?),
        };
        let shape = level == 0 || end_ms.is_some();
        (parts.next().is_none() && first <= last && shape).then_some(SegmentName {
            first,
            last,
            generation,
            level,
            end_ms,
        })
    }

    /// When its last commit was seen.
    pub fn end_time(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.end_ms?)
    }

    /// Whether it holds transaction `txid`.
    pub fn holds(&self, txid: u64) -> bool {
        self.first <= txid && txid <= self.last
    }
}

impl std::fmt::Display for SegmentName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "L{}-{:016x}-{:016x}-g{:08x}",
            self.level, self.first, self.last, self.generation
        )?;
        match self.end_ms {
            Some(ms) => write!(f, "-t{ms:x}"),
            None => Ok(()),
        }
    }
}
