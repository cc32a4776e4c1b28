//! Stored snapshots and reading them back as a verified stream.

use std::io;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use lifeboat_codec::{compress, delta};
use lifeboat_core::{
    ByteStream, ChunkId, Error as CoreError, Manifest, Snapshot, SnapshotId, VerifiedReader,
};
use tokio_util::io::StreamReader;
use tracing::debug;

use crate::crypt::Domain;
use crate::error::{Result, StoreError};
use crate::format::pack_key;
use crate::repository::{BlobLocation, Repository};

/// How many chunks are fetched ahead of the reader. Memory stays at this many chunks
/// (at most 1 MiB each by default) whatever the snapshot's size.
const READ_AHEAD: usize = 8;

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

    /// The snapshot's chunks, in order, each checked against its id. The whole-stream
    /// digest is checked by [`Snapshot::open`]'s reader.
    pub fn chunk_stream(&self) -> BoxStream<'static, Result<Bytes>> {
        let repo = self.repo.clone();
        stream::iter(self.manifest.chunks.clone())
            .map(move |id| {
                let repo = repo.clone();
                async move { read_chunk(&repo, id).await }
            })
            .buffered(READ_AHEAD)
            .boxed()
    }
}

/// Reads one chunk: fetches its blob (and, for a delta, its base first), decompresses it and
/// checks it hashes to its id.
///
/// The index this handle loaded can be stale: a prune running meanwhile may have repacked
/// the chunk and deleted its old pack, or a backup may have written the snapshot after the
/// index was loaded. A chunk found missing is therefore looked up again in a fresh index and
/// the pending marks before it is reported missing.
///
/// # Errors
/// [`CoreError::Missing`] when the chunk or its base is not indexed or a pack is gone;
/// [`CoreError::Corrupt`] when the bytes do not match.
pub async fn read_chunk(repo: &Repository, id: ChunkId) -> Result<Bytes> {
    repo.refuse_write_only("read backed-up data")?;
    /// A prune moves a chunk at most once per sweep; three looks cover a sweep in between.
    const LOOKS: usize = 3;
    let mut look = 1;
    loop {
        let generation = repo.index_generation();
        match read_chunk_once(repo, id).await {
            Err(StoreError::Core(CoreError::Missing { object })) if look < LOOKS => {
                debug!(chunk = %id, %object, "missing from the loaded index; reloading it");
                repo.reload_index_since(generation).await?;
                look += 1;
            }
            other => return other,
        }
    }
}

async fn read_chunk_once(repo: &Repository, id: ChunkId) -> Result<Bytes> {
    let loc = repo
        .locate(&id)
        .ok_or_else(|| CoreError::Missing { object: format!("chunk {id} (not in any index)") })?;
    let Some(base_id) = loc.base else {
        let blob = fetch_blob(repo, &loc).await?;
        return decode_blob(repo, id, loc, blob, None, Hash::Check { base: None }).await;
    };
    let base_loc = repo.locate(&base_id).ok_or_else(|| CoreError::Missing {
        object: format!("chunk {base_id}, the base of chunk {id} (not in any index)"),
    })?;
    if base_loc.base.is_some() {
        return Err(CoreError::Corrupt {
            object: format!("chunk {id} in {}", pack_key(&loc.pack)),
            expected: "a base stored whole".into(),
            actual: format!("its base {base_id} is a delta itself"),
        }
        .into());
    }
    // The delta's blob is fetched while the base is fetched and decoded. The base is not
    // hashed on its own: the delta's result is, and any damage to the base shows there;
    // only then is the base hashed, to say which of the two is damaged.
    let base = async {
        let blob = fetch_blob(repo, &base_loc).await?;
        decode_blob(repo, base_id, base_loc, blob, None, Hash::Skip).await
    };
    let (blob, base) = futures::try_join!(fetch_blob(repo, &loc), base)?;
    decode_blob(repo, id, loc, blob, Some(base), Hash::Check { base: Some((base_id, base_loc)) })
        .await
}

/// Whether [`decode_blob`] checks the chunk's hash.
enum Hash {
    /// Checks it; when it fails for a delta, checks the base's too, to name the damaged one.
    Check { base: Option<(ChunkId, BlobLocation)> },
    /// Leaves it to a later check that covers these bytes (a base, by its delta's result).
    Skip,
}

/// The compressed blob at `loc`: one range request.
async fn fetch_blob(repo: &Repository, loc: &BlobLocation) -> Result<Bytes> {
    repo.get_range(&pack_key(&loc.pack), loc.offset..loc.offset + u64::from(loc.length)).await
}

/// Decompresses the blob of chunk `id` (against `base` for a delta) and checks its hash as
/// `hash` says.
async fn decode_blob(
    repo: &Repository,
    id: ChunkId,
    loc: BlobLocation,
    blob: Bytes,
    base: Option<Bytes>,
    hash: Hash,
) -> Result<Bytes> {
    let key = pack_key(&loc.pack);
    let object = format!("chunk {id} in {key}");
    let crypt = repo.crypt().clone();
    tokio::task::spawn_blocking(move || {
        // A damaged base makes its delta fail: say so rather than blame the delta.
        let damaged_base = || match (&hash, &base) {
            (Hash::Check { base: Some((base_id, base_loc)) }, Some(plain)) => {
                let actual = crypt.chunk_id(plain);
                (actual != *base_id).then(|| CoreError::Corrupt {
                    object: format!(
                        "chunk {base_id} in {} (the base of chunk {id})",
                        pack_key(&base_loc.pack)
                    ),
                    expected: base_id.to_hex(),
                    actual: actual.to_hex(),
                })
            }
            _ => None,
        };
        // A blob that does not authenticate is never decompressed.
        let blob = crypt.open(&object, Domain::Blob(id), blob).map_err(CoreError::from)?;
        let plain = match &base {
            None => compress::decompress(&blob, loc.plain as usize),
            Some(base) => delta::decompress_against(&blob, base, loc.plain as usize),
        }
        .map_err(|e| {
            damaged_base().unwrap_or_else(|| CoreError::Corrupt {
                object: object.clone(),
                expected: if base.is_some() { "a delta of its base" } else { "a zstd blob" }.into(),
                actual: e.to_string(),
            })
        })?;
        let actual = match hash {
            Hash::Check { .. } => crypt.chunk_id(&plain),
            Hash::Skip => id,
        };
        if actual != id {
            return Err(damaged_base().unwrap_or(CoreError::Corrupt {
                object,
                expected: id.to_hex(),
                actual: actual.to_hex(),
            }));
        }
        Ok(Bytes::from(plain))
    })
    .await
    .map_err(|e| StoreError::Malformed {
        key: key.to_string(),
        reason: format!("decoder task failed: {e}"),
    })?
    .map_err(StoreError::from)
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
        let stream = self.chunk_stream().map_err(|e| io::Error::other(CoreError::from(e)));
        let m = &self.manifest;
        let object = format!("snapshot {}", self.id);
        Ok(Box::pin(VerifiedReader::new(StreamReader::new(stream), m.sha256, m.size, object)))
    }
}
