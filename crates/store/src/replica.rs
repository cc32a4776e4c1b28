//! The repository as a replicator's store ([`ReplicaStore`]): segments are files of the WAL
//! archive in a series of their own (`sqlite-replica NAME`, so a replica and a PostgreSQL
//! cluster of the same name never share one), snapshots are regular snapshots.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use lifeboat_core::replica::{ReplicaStore, SegmentName};
use lifeboat_core::{Backup, Check, Digest, Snapshot, SnapshotId, Tags};

use crate::repository::Repository;

/// The WAL archive series that holds replica `name`'s segments.
pub fn replica_series(name: &str) -> String {
    format!("sqlite-replica {name}")
}

#[async_trait]
impl ReplicaStore for Repository {
    async fn push_segment(
        &self,
        name: &str,
        file: &str,
        content: Vec<u8>,
    ) -> lifeboat_core::Result<()> {
        lifeboat_core::check_snapshot_name(name)?;
        self.wal_push_held(&replica_series(name), file, Bytes::from(content)).await?;
        Ok(())
    }

    async fn segment_names(&self, name: &str) -> lifeboat_core::Result<Vec<String>> {
        lifeboat_core::check_snapshot_name(name)?;
        Ok(self.wal_files(&replica_series(name)).await?.into_iter().map(|f| f.file).collect())
    }

    async fn fetch_segment(&self, name: &str, file: &str) -> lifeboat_core::Result<Vec<u8>> {
        lifeboat_core::check_snapshot_name(name)?;
        match self.wal_fetch(&replica_series(name), file).await? {
            Some(bytes) => Ok(bytes.to_vec()),
            None => Err(lifeboat_core::Error::Missing {
                object: format!("segment {file} of replica {name:?}"),
            }),
        }
    }

    async fn drop_segments(&self, name: &str, files: &[String]) -> lifeboat_core::Result<()> {
        lifeboat_core::check_snapshot_name(name)?;
        let series = replica_series(name);
        for file in files {
            crate::wal::check_wal_file_name(file)?;
            self.delete_key(&self.wal_key(&series, file)).await?;
        }
        Ok(())
    }

    async fn snapshots_named(&self, name: &str) -> lifeboat_core::Result<Vec<Arc<dyn Snapshot>>> {
        let mut snaps: Vec<_> =
            self.snapshots().await?.into_iter().filter(|s| s.manifest().name == name).collect();
        snaps.sort_by_key(|s| s.manifest().time);
        Ok(snaps.into_iter().map(|s| Arc::new(s) as Arc<dyn Snapshot>).collect())
    }

    async fn save_snapshot(
        &self,
        source: &dyn Backup,
        name: &str,
        tags: Tags,
    ) -> lifeboat_core::Result<SnapshotId> {
        Ok(self.backup_as(source, name, tags).await?.id())
    }
}

/// Where a replica's base snapshot stands, from its metadata (`replica`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaBase {
    /// Its generation.
    pub generation: u32,
    /// The last transaction it holds.
    pub txid: u64,
}

impl ReplicaBase {
    /// The base a snapshot's metadata declares; `None` for other snapshots (and for a file
    /// made by laying segments over a base, which declares `applied`).
    pub fn from_metadata(metadata: &serde_json::Value) -> Option<ReplicaBase> {
        let replica = metadata.get("replica")?;
        if replica.get("applied").and_then(|a| a.as_u64()).unwrap_or(0) != 0 {
            return None;
        }
        Some(ReplicaBase {
            generation: u32::try_from(replica.get("generation")?.as_u64()?).ok()?,
            txid: replica.get("txid")?.as_u64()?,
        })
    }
}

impl Repository {
    /// When replica `name` last shipped: its newest shipped segment's (level 0) time in the
    /// store, or a merged segment's last commit if that is newer (compaction drops shipped
    /// segments; it writes merged ones later, which says nothing of how fresh it is).
    ///
    /// # Errors
    /// Store errors listing the segments.
    pub async fn newest_shipped(&self, name: &str) -> crate::Result<Option<DateTime<Utc>>> {
        Ok(newest_shipped_of(&self.wal_files(&replica_series(name)).await?))
    }

    /// The `segments` check of a replica's base snapshot: the segments of its generation after
    /// it follow one another with no gap (one listing); with `read_data`, each read back and
    /// checked against its hash.
    pub async fn check_segments(&self, name: &str, base: &ReplicaBase, read_data: bool) -> Check {
        let series = replica_series(name);
        let files = match self.wal_files(&series).await {
            Ok(files) => files,
            Err(e) => {
                return Check::fail("segments", format!("the segments of replica {name:?}: {e}"));
            }
        };
        let mut names: Vec<SegmentName> = files
            .iter()
            .filter_map(|f| SegmentName::parse(&f.file))
            .filter(|n| n.generation == base.generation && n.last > base.txid)
            .collect();
        names.sort();
        let mut next = base.txid + 1;
        for n in &names {
            if n.first > next {
                return Check::fail(
                    "segments",
                    format!(
                        "replica {name:?} lacks transactions {next} to {} of generation {} (the segment after them is {n}): restores from this base stop at transaction {}",
                        n.first - 1,
                        base.generation,
                        next - 1
                    ),
                );
            }
            next = next.max(n.last + 1);
        }
        let Some(last) = names.last() else {
            return Check::pass(
                "segments",
                format!(
                    "nothing shipped in replica {name:?} after this base yet: it restores to its own transaction {}",
                    base.txid
                ),
            );
        };
        let mut detail = format!(
            "{} segments, transactions {} to {}, no gap",
            names.len(),
            base.txid + 1,
            last.last
        );
        if read_data {
            let files = names.iter().map(ToString::to_string).collect();
            let failures = self.wal_read_back(&series, files).await;
            if !failures.is_empty() {
                return Check::fail("segments", failures.join("; "));
            }
            detail.push_str(", every one read back");
        }
        Check::pass("segments", detail)
    }
}

impl Repository {
    /// After `removed` were forgotten: deletes the segments of each replica that no remaining
    /// base snapshot can be restored with (a segment is needed by a base of its generation
    /// that holds less than its last transaction). A replica whose bases are all gone keeps
    /// its segments. Their data goes with the next prune. Returns how many were deleted.
    ///
    /// # Errors
    /// Store errors listing or deleting entries.
    pub(crate) async fn forget_unneeded_segments(
        &self,
        snapshots: &[crate::StoredSnapshot],
        removed: &[Digest],
    ) -> crate::Result<usize> {
        let removed: HashSet<&Digest> = removed.iter().collect();
        let names: BTreeSet<&str> = snapshots
            .iter()
            .filter(|s| removed.contains(&s.id()))
            .filter(|s| ReplicaBase::from_metadata(&s.manifest().metadata).is_some())
            .map(|s| s.manifest().name.as_str())
            .collect();
        let mut deleted = 0;
        for name in names {
            let kept: Vec<ReplicaBase> = snapshots
                .iter()
                .filter(|s| !removed.contains(&s.id()) && s.manifest().name == name)
                .filter_map(|s| ReplicaBase::from_metadata(&s.manifest().metadata))
                .collect();
            if kept.is_empty() {
                continue;
            }
            let series = replica_series(name);
            for file in self.wal_files(&series).await? {
                let Some(segment) = SegmentName::parse(&file.file) else { continue };
                let needed = kept
                    .iter()
                    .any(|b| b.generation == segment.generation && b.txid < segment.last);
                if !needed {
                    self.delete_key(&self.wal_key(&series, &file.file)).await?;
                    deleted += 1;
                }
            }
            tracing::info!(replica = name, deleted, "forgot the segments no kept base needs");
        }
        Ok(deleted)
    }
}

impl Repository {
    /// Refuses a write-only key: a replicator reads its own segments and base snapshots back
    /// to resume and to merge them.
    ///
    /// # Errors
    /// [`crate::StoreError::WriteOnly`].
    pub fn check_can_replicate(&self) -> crate::Result<()> {
        if self.is_write_only() {
            return Err(crate::StoreError::WriteOnly {
                action: "replicate: a replicator reads its own segments and base snapshots back to resume and to merge them".into(),
            });
        }
        Ok(())
    }

    /// Runs `backend`'s replicator for `request` until `stop` resolves, under the replica's
    /// lease (a second replicator of the same replica is refused, naming this one) and a
    /// backup lease (prune keeps what it writes). The replica's lease is renewed while it
    /// runs; losing it (the store unreachable past its time to live, say) stops replication
    /// with [`crate::StoreError::LeaseLost`]. `lifeboat replicate` and lifeboatd's replica jobs
    /// both run through here.
    ///
    /// # Errors
    /// [`crate::StoreError::WriteOnly`] for a write-only key; [`crate::StoreError::ReplicaBusy`]; a lost
    /// lease; the backend's errors.
    pub async fn replicate_under_lease(
        &self,
        backend: &dyn lifeboat_core::Backend,
        request: &lifeboat_core::replica::ReplicateRequest,
        operation: &str,
        stop: lifeboat_core::replica::Stop,
        report: &(dyn for<'s> Fn(&'s lifeboat_core::replica::ReplicaStatus) + Send + Sync),
    ) -> crate::Result<lifeboat_core::replica::ReplicaStatus> {
        self.check_can_replicate()?;
        let ttl = self.lease_ttl();
        let lease = self.acquire_replica_lease(&request.name, operation, ttl).await?;
        let backup_lease = self.start_backup_lease(operation, ttl).await?;
        let lease = Arc::new(tokio::sync::Mutex::new(lease));
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
        let keeper = tokio::spawn({
            let lease = lease.clone();
            async move {
                loop {
                    tokio::time::sleep(ttl / 6).await;
                    match lease.lock().await.keep_alive().await {
                        Ok(()) => {}
                        Err(crate::StoreError::LeaseLost { .. }) => {
                            let _ = lost_tx.send(());
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not renew the replica's lease; retrying")
                        }
                    }
                }
            }
        });
        let stop: lifeboat_core::replica::Stop = Box::pin(async move {
            tokio::select! {
                () = stop => {}
                _ = lost_rx => {}
            }
        });
        let result = backend.replicate(request, self, stop, report).await;
        keeper.abort();
        let lost = keeper.await.is_ok();
        if !lost
            && let Ok(lease) = Arc::try_unwrap(lease)
            && let Err(e) = lease.into_inner().release().await
        {
            tracing::warn!(error = %e, "could not release the replica's lease; it expires by itself");
        }
        backup_lease.end().await;
        let status = result?;
        if lost {
            return Err(crate::StoreError::LeaseLost { operation: operation.into() });
        }
        Ok(status)
    }
}

impl Repository {
    /// What a drill of replica `name` restores: the database at a random second of the last
    /// `window` (never before its oldest base), built by `backend` as a snapshot, with the
    /// commit it reached. `None` when no base snapshot says `name` is a replica.
    ///
    /// # Errors
    /// Store errors; the backend's (damaged or missing segments).
    pub async fn recent_point(
        &self,
        backend: &dyn lifeboat_core::Backend,
        name: &str,
        window: std::time::Duration,
    ) -> crate::Result<Option<(Box<dyn Snapshot>, lifeboat_core::replica::ReachedPoint)>> {
        let snapshots = self.snapshots().await?;
        let oldest_base = snapshots
            .iter()
            .filter(|s| s.manifest().name == name)
            .filter(|s| ReplicaBase::from_metadata(&s.manifest().metadata).is_some())
            .map(|s| s.manifest().time)
            .min();
        let Some(oldest_base) = oldest_base else { return Ok(None) };
        let now = Utc::now();
        let window = chrono::TimeDelta::from_std(window).unwrap_or(chrono::TimeDelta::MAX);
        let from = now.checked_sub_signed(window).unwrap_or(oldest_base).max(oldest_base);
        let span_ms = (now - from).num_milliseconds().max(0) as u64;
        // Any spread will do: the clock's nanoseconds, mixed.
        let noise = u64::from(now.timestamp_subsec_nanos()).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let at = from + chrono::TimeDelta::milliseconds((noise % (span_ms + 1)) as i64);
        let target = lifeboat_core::replica::PointTarget::Time(at);
        tracing::info!(replica = name, at = %at.to_rfc3339(), "drilling a point of the replica");
        Ok(Some(backend.replica_point(self, name, target).await?))
    }
}

/// [`Repository::newest_shipped`] from a listing of the replica's segments.
pub(crate) fn newest_shipped_of(files: &[crate::WalFile]) -> Option<DateTime<Utc>> {
    files
        .iter()
        .filter_map(|f| {
            let name = SegmentName::parse(&f.file)?;
            Some(if name.level == 0 { f.archived } else { name.end_time()? })
        })
        .max()
}
