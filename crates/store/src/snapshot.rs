//! Stored snapshots and reading them back as a verified stream.

use std::io;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use lifeboat_core::{
    ByteStream, Error as CoreError, Manifest, Snapshot, SnapshotId, verified_pieces,
};
use tokio_util::io::StreamReader;

use crate::error::Result;
use crate::read::ChunkChecks;
use crate::repository::Repository;

/// A snapshot stored in a [`Repository`].
#[derive(Debug, Clone)]
pub struct StoredSnapshot {
    repo: Repository,
    id: SnapshotId,
    manifest: Manifest,
}

impl StoredSnapshot {
    pub(crate) fn new(repo: Repository, id: SnapshotId, manifest: Manifest) -> Self {
        StoredSnapshot { repo, id, manifest }
    }

    /// The snapshot's id.
    pub fn id(&self) -> SnapshotId {
        self.id
    }

    /// The snapshot's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The repository holding it.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The snapshot's chunks, in order, each checked against its id, read by the read
    /// engine with the repository's [`ReadOptions`](crate::ReadOptions). The whole-stream
    /// digest is checked by [`Snapshot::open`]'s reader.
    pub fn chunk_stream(&self) -> BoxStream<'static, Result<Bytes>> {
        self.read(ChunkChecks::Each)
    }

    fn read(&self, checks: ChunkChecks) -> BoxStream<'static, Result<Bytes>> {
        let (repo, chunks) = (self.repo.clone(), &self.manifest.chunks);
        crate::read::read_chunks(repo, chunks, self.repo.read_options(), checks)
    }

    /// The chunk stream as `checks` says, checked whole at its end.
    fn verified(&self, checks: ChunkChecks) -> ByteStream {
        let stream = self.read(checks).map_err(|e| io::Error::other(CoreError::from(e)));
        let m = &self.manifest;
        let object = format!("snapshot {}", self.id);
        let verified = verified_pieces(stream.boxed(), m.sha256, m.size, object);
        Box::pin(StreamReader::new(verified))
    }
}

#[async_trait]
impl Snapshot for StoredSnapshot {
    fn id(&self) -> SnapshotId {
        self.id
    }

    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn open(&self) -> lifeboat_core::Result<ByteStream> {
        Ok(self.verified(ChunkChecks::Each))
    }

    /// Chunks are not hashed one by one: the whole stream's SHA-256, checked at its end,
    /// covers them (in an encrypted repository each blob still authenticates under its
    /// chunk id). A damaged chunk then shows as a whole-stream mismatch at the end; `verify
    /// --read-data` names it.
    async fn open_whole(&self) -> lifeboat_core::Result<ByteStream> {
        Ok(self.verified(ChunkChecks::LeftToTheWhole))
    }
}
