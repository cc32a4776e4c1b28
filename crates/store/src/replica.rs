//! The repository as a replicator's store ([`ReplicaStore`]): segments are files of the WAL
//! archive in a series of their own (`sqlite-replica NAME`, so a replica and a PostgreSQL
//! cluster of the same name never share one), snapshots are regular snapshots.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use lifeboat_core::replica::ReplicaStore;
use lifeboat_core::{Backup, Snapshot, SnapshotId, Tags};

use crate::backup::BackupOptions;
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
        let options =
            BackupOptions { name: Some(name.to_string()), tags, host: None, changed_only: false };
        Ok(self.backup(source, &options, &lifeboat_core::NoProgress).await?.id())
    }
}
