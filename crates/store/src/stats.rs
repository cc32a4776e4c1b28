//! Per-name counts, sizes and deduplication of a repository.

use std::collections::BTreeMap;

use crate::format::DATA_PREFIX;
use crate::{Repository, StoredSnapshot};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What the snapshots of one name hold. Counts, times and sizes are of backups only; safety
/// snapshots (`pre-restore`) are counted apart.
#[derive(Debug, Clone, Serialize, Default)]
pub struct NameStats {
    /// How many backups.
    pub snapshots: usize,
    /// How many safety snapshots taken before restores over this name's target.
    pub safety_snapshots: usize,
    /// When the oldest was taken.
    pub oldest: Option<DateTime<Utc>>,
    /// When the newest was taken.
    pub newest: Option<DateTime<Utc>>,
    /// Bytes captured, summed over every snapshot.
    pub total_size: u64,
    /// New bytes each snapshot added to the repository, summed.
    pub stored: u64,
    /// total_size / stored: how much deduplication and compression save.
    pub dedup_ratio: f64,
    /// Size of the newest capture.
    pub newest_size: u64,
}

/// The whole repository.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Per snapshot name.
    pub names: BTreeMap<String, NameStats>,
    /// Backups in all.
    pub snapshots: usize,
    /// Safety snapshots in all (not counted as backups).
    pub safety_snapshots: usize,
    /// Bytes in pack objects.
    pub pack_bytes: u64,
    /// Pack objects.
    pub packs: usize,
    /// Chunks in the index.
    pub chunks_indexed: usize,
    /// Staging files of interrupted writes in a local repository (prune removes the stale).
    pub staging_files: usize,
    /// Bytes in them.
    pub staging_bytes: u64,
    /// Index files found damaged and set aside (`repair index` rebuilds them).
    pub damaged_indexes: usize,
    /// The WAL archive of each name with base backups.
    pub wal_archives: BTreeMap<String, WalArchiveStats>,
    /// Each SQLite replica (`lifeboat replicate`).
    pub replicas: BTreeMap<String, ReplicaStats>,
}

/// What one SQLite replica holds, and whether its replicator runs.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ReplicaStats {
    /// Segments stored (and not forgotten or dropped by compaction), merged ones included.
    pub segments: usize,
    /// Of those, merged segments (compaction's levels 1 and 2).
    pub merged: usize,
    /// Generations they belong to.
    pub generations: usize,
    /// The newest transaction shipped.
    pub last_txid: Option<u64>,
    /// When the newest segment was shipped.
    pub newest_shipped: Option<DateTime<Utc>>,
    /// The running replicator (`host pid`), when its lease is live.
    pub replicator: Option<String>,
}

/// What the WAL archive of one name (a PostgreSQL cluster) holds.
#[derive(Debug, Clone, Serialize, Default)]
pub struct WalArchiveStats {
    /// Files archived: segments, history and backup-history files.
    pub files: usize,
    /// Of them, WAL segments.
    pub segments: usize,
    /// The first file by name.
    pub first: Option<String>,
    /// The last file by name.
    pub last: Option<String>,
    /// When the newest file was archived: the name's RPO is its age.
    pub newest_archived: Option<DateTime<Utc>>,
}

/// Per-name statistics of `snaps`.
pub fn by_name(snaps: &[StoredSnapshot]) -> BTreeMap<String, NameStats> {
    let mut names: BTreeMap<String, NameStats> = BTreeMap::new();
    for s in snaps {
        let m = s.manifest();
        let n = names.entry(m.name.clone()).or_default();
        if m.is_safety() {
            n.safety_snapshots += 1;
            continue;
        }
        n.snapshots += 1;
        n.oldest = Some(n.oldest.map_or(m.time, |t| t.min(m.time)));
        if n.newest.is_none_or(|t| m.time >= t) {
            n.newest = Some(m.time);
            n.newest_size = m.size;
        }
        n.total_size += m.size;
        n.stored += m.stored;
    }
    for n in names.values_mut() {
        n.dedup_ratio = if n.stored == 0 { 0.0 } else { n.total_size as f64 / n.stored as f64 };
    }
    names
}

/// Statistics of the repository.
///
/// # Errors
/// Store errors listing snapshots or packs.
pub async fn stats(repo: &Repository) -> crate::Result<Stats> {
    repo.ensure_index().await?;
    let snaps = repo.snapshots().await?;
    let (pack_bytes, packs) = repo.usage(DATA_PREFIX).await?;
    let safety_snapshots = snaps.iter().filter(|s| s.manifest().is_safety()).count();
    let staging = repo.staging_files().await?;
    let mut wal_archives = BTreeMap::new();
    for series in crate::wal::wal_series_of(&snaps) {
        let files = repo.wal_files(series).await?;
        let segments =
            files.iter().filter(|f| lifeboat_core::wal::Segment::parse(&f.file).is_some());
        wal_archives.insert(
            series.to_string(),
            WalArchiveStats {
                files: files.len(),
                segments: segments.count(),
                first: files.first().map(|f| f.file.clone()),
                last: files.last().map(|f| f.file.clone()),
                newest_archived: files.iter().map(|f| f.archived).max(),
            },
        );
    }
    let mut replicas = BTreeMap::new();
    for name in crate::wal::replica_names_of(&snaps) {
        replicas.insert(name.to_string(), replica_stats(repo, name).await?);
    }
    Ok(Stats {
        replicas,
        wal_archives,
        staging_files: staging.len(),
        staging_bytes: staging.iter().map(|f| f.size).sum(),
        damaged_indexes: repo.damaged_indexes().len(),
        names: by_name(&snaps),
        snapshots: snaps.len() - safety_snapshots,
        safety_snapshots,
        pack_bytes,
        packs,
        chunks_indexed: repo.index().len(),
    })
}

/// What the repository holds of replica `name`: its segments (one listing) and whether a
/// replicator runs now (its lease). `stats` and `snapshots` show it.
///
/// # Errors
/// Store errors listing the segments or reading the lease.
pub async fn replica_stats(repo: &Repository, name: &str) -> crate::Result<ReplicaStats> {
    let files = repo.wal_files(&crate::replica_series(name)).await?;
    let names: Vec<lifeboat_core::replica::SegmentName> =
        files.iter().filter_map(|f| lifeboat_core::replica::SegmentName::parse(&f.file)).collect();
    let generations: std::collections::BTreeSet<u32> = names.iter().map(|n| n.generation).collect();
    let replicator = repo
        .replica_holder(name)
        .await?
        .filter(|h| h.is_live(Utc::now()))
        .map(|h| format!("{} pid {}", h.host, h.pid));
    Ok(ReplicaStats {
        segments: names.len(),
        merged: names.iter().filter(|n| n.level > 0).count(),
        generations: generations.len(),
        last_txid: names.iter().map(|n| n.last).max(),
        newest_shipped: crate::replica::newest_shipped_of(&files),
        replicator,
    })
}
