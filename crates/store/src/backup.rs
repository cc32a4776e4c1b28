//! Writing snapshots: chunk, hash, deduplicate, compress, pack, upload, index, manifest.
//!
//! Order of writes is what makes a crash harmless: packs first, then the index file that
//! describes them, then the manifest, last and in one conditional PUT. Until the manifest
//! exists nothing refers to the new packs; a crash leaves only unreferenced objects that
//! prune removes, never a half-visible snapshot.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use lifeboat_codec::{StreamChunker, compress, delta};
use lifeboat_core::{
    Backup, Capture, ChunkId, Digest, Error as CoreError, MANIFEST_FORMAT, Manifest, Progress,
    SafetyNet, SnapshotId, StreamHasher, Tags,
};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::crypt::Domain;
use crate::delta::BaseFinder;
use crate::error::{Result, StoreError};
use crate::format::{
    BlobEntry, INDEX_VERSION, IndexFile, PackBuilder, PackEntry, encode_metadata, head_of,
    pack_key, snapshot_key, tail_of,
};
use crate::prune::MERGE_INDEX_FILES_ABOVE;
use crate::read::read_chunk;
use crate::repository::{ChunkIndex, Repository};
use crate::snapshot::StoredSnapshot;

/// Packs uploaded at once while the next one fills.
const UPLOADS_IN_FLIGHT: usize = 2;

/// What to call a new snapshot and how to label it.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Snapshot name; the source's default name when `None`.
    pub name: Option<String>,
    /// Labels.
    pub tags: Tags,
    /// Host recorded in the manifest; this machine's name when `None`.
    pub host: Option<String>,
    /// When the source's fingerprint equals the previous snapshot's, record an "unchanged"
    /// snapshot that refers to the previous one's data instead of capturing again.
    pub changed_only: bool,
}

/// A chunk after hashing and, when new, compression.
struct Sealed {
    id: ChunkId,
    plain: u32,
    /// The compressed blob; `None` when the repository has the chunk already.
    blob: Option<Vec<u8>>,
    /// The chunk the blob is a delta against.
    base: Option<ChunkId>,
    head: u64,
    tail: u64,
}

/// This machine's host name (`LIFEBOAT_HOST` overrides it).
pub fn host_name() -> String {
    lifeboat_core::host::host_name()
}

impl Repository {
    /// Captures `source` and stores it as a new snapshot.
    ///
    /// # Errors
    /// The capture's error, or a store error naming the object. Nothing becomes visible
    /// unless the whole capture was stored.
    pub async fn backup(
        &self,
        source: &dyn Backup,
        options: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<StoredSnapshot> {
        let started = Instant::now();
        let time = chrono::Utc::now();
        let name = options.name.clone().unwrap_or_else(|| source.default_name());
        lifeboat_core::check_snapshot_name(&name)?;
        let host = options.host.clone().unwrap_or_else(host_name);
        let safety = lifeboat_core::is_safety_snapshot(&options.tags);
        // A write-only key reads no manifest: no name check against others, no parent (so
        // no delta against it, and no "unchanged" shortcut); deduplication against the whole
        // index still works.
        let snapshots = if self.is_write_only() { Vec::new() } else { self.snapshots().await? };
        // One name, one kind: a folder `big` and a database `big/big.db` under one name would
        // share `latest` and retention. Safety snapshots are exempt: they are named after the
        // target they protect, and must never stop a restore.
        if !safety
            && let Some(other) = snapshots.iter().find(|s| {
                let m = s.manifest();
                m.name == name && m.kind != source.kind() && !m.is_safety()
            })
        {
            return Err(CoreError::InvalidInput {
                what: format!(
                    "the name {name:?} is already used by {} snapshots (such as {}); this is a {} backup",
                    other.manifest().kind,
                    other.id().short(),
                    source.kind()
                ),
                hint: "give this backup another name".into(),
            }
            .into());
        }
        // The parent is the newest backup of this target: never a safety snapshot (it holds
        // what a restore replaced, not what this target's backups hold).
        let parent = snapshots.into_iter().rev().find(|s| {
            let m = s.manifest();
            m.name == name && m.host == host && m.kind == source.kind() && !m.is_safety()
        });
        // Taken before the capture: a change while capturing makes the next one differ.
        let fingerprint = source.fingerprint().await?;

        // The shared lease tells prune this backup may rely on packs in the index as loaded
        // now; the index is (re)loaded after the lease exists, never before. The lease ends
        // on every path, so a failed backup does not hold up prune until the lease expires.
        let lease = self.start_backup_lease(&format!("backup {name}"), self.lease_ttl()).await?;
        let draft = Manifest {
            format: MANIFEST_FORMAT,
            kind: source.kind(),
            name,
            host,
            tags: options.tags.clone(),
            time,
            duration_ms: 0,
            size: 0,
            stored: 0,
            sha256: Digest([0; 32]),
            chunks: Vec::new(),
            metadata: serde_json::Value::Null,
            parent: parent.as_ref().map(StoredSnapshot::id),
            fingerprint,
            unchanged: false,
        };
        let unchanged = match &parent {
            Some(parent) if options.changed_only => self.unchanged_since(parent, &draft).await,
            _ => Ok(None),
        };
        // Without a usable fingerprint, the stream's digest still tells an unchanged source.
        let parent_digest =
            parent.as_ref().filter(|_| options.changed_only).map(|p| p.manifest().sha256);
        let result = match unchanged {
            Ok(Some(manifest)) => self.save_manifest(manifest).await,
            Ok(None) => {
                let parent_chunks = parent.as_ref().map_or(&[][..], |p| &p.manifest().chunks[..]);
                self.capture_and_store(
                    source,
                    draft,
                    parent_digest,
                    parent_chunks,
                    started,
                    progress,
                )
                .await
            }
            Err(e) => Err(e),
        };
        if result.is_ok() {
            self.merge_fragmented_index().await;
        }
        lease.end().await;
        result
    }

    /// Merges the index files into one when the backup read more than
    /// [`MERGE_INDEX_FILES_ABOVE`], so the next open reads a handful instead of one per
    /// backup. It runs under the backup's lease: a prune that marks packs meanwhile finds
    /// them listed again in the merged file and cleans the index before it deletes any
    /// (see `prune.rs`). Best effort: the snapshot is saved whatever happens here.
    async fn merge_fragmented_index(&self) {
        if self.is_write_only() || self.index_files_loaded() <= MERGE_INDEX_FILES_ABOVE {
            return;
        }
        let merged = async {
            let (files, _damaged) = self.read_index_files().await?;
            if files.len() <= MERGE_INDEX_FILES_ABOVE {
                return Ok(0);
            }
            self.rewrite_index(&files, &HashSet::new()).await?;
            Ok::<_, StoreError>(files.len())
        };
        match merged.await {
            Ok(0) => {}
            Ok(n) => info!(merged = n, "merged the index files into one"),
            Err(e) => {
                warn!(error = %e, "could not merge the index files; the next backup tries again")
            }
        }
    }

    /// The manifest of an "unchanged" snapshot when `draft`'s fingerprint equals `parent`'s
    /// and every chunk of the parent is still in the repository; `None` when a capture is
    /// needed.
    async fn unchanged_since(
        &self,
        parent: &StoredSnapshot,
        draft: &Manifest,
    ) -> Result<Option<Manifest>> {
        let before = parent.manifest();
        if draft.fingerprint.is_none()
            || draft.fingerprint != before.fingerprint
            || draft.kind != before.kind
        {
            return Ok(None);
        }
        self.reload_index().await?;
        let index = self.index();
        if !before.chunks.iter().all(|c| index.contains_key(c)) {
            debug!(parent = %parent.id(), "parent's chunks are being pruned; capturing again");
            return Ok(None);
        }
        info!(name = %draft.name, parent = %parent.id(), "unchanged since the last snapshot");
        Ok(Some(Manifest {
            size: before.size,
            sha256: before.sha256,
            chunks: before.chunks.clone(),
            metadata: before.metadata.clone(),
            unchanged: true,
            ..draft.clone()
        }))
    }

    /// Writes `manifest` as a new snapshot (one conditional create).
    async fn save_manifest(&self, manifest: Manifest) -> Result<StoredSnapshot> {
        let body =
            self.crypt().seal(Domain::Manifest, encode_metadata(&manifest, "new manifest")?)?;
        let id = Digest::of(&body);
        let body = Bytes::from(body);
        self.create_bytes(&snapshot_key(&id), body.clone()).await?;
        info!(snapshot = %id, name = %manifest.name, size = manifest.size, stored = manifest.stored, "snapshot saved");
        if !self.is_write_only() {
            self.catalog_saved(id, manifest.clone(), body).await;
        }
        Ok(StoredSnapshot::new(self.clone(), id, manifest))
    }

    async fn capture_and_store(
        &self,
        source: &dyn Backup,
        mut manifest: Manifest,
        parent_digest: Option<Digest>,
        parent_chunks: &[ChunkId],
        started: Instant,
        progress: &dyn Progress,
    ) -> Result<StoredSnapshot> {
        self.reload_index().await?;
        let capture = source.capture().await?;
        let (reader, metadata, size_hint, finish) = capture.into_parts();
        progress.start(&format!("backup {}", manifest.name), size_hint);
        let stored = self.store_stream(reader, parent_chunks, progress).await;
        progress.finish();
        let stored = stored?;
        debug!(
            chunks = stored.chunks.len(),
            new_bytes = stored.new_bytes,
            deltas = stored.deltas,
            "stream stored"
        );
        // The source's own check (a dump's exit status) decides whether this is a snapshot.
        manifest.metadata = Capture::finish(finish, metadata).await?;
        manifest.duration_ms = started.elapsed().as_millis() as u64;
        manifest.size = stored.size;
        manifest.stored = stored.new_bytes;
        manifest.sha256 = stored.sha256;
        manifest.chunks = stored.chunks;
        manifest.unchanged = parent_digest == Some(stored.sha256);
        self.save_manifest(manifest).await
    }

    /// Backs `source` up under `name` with `tags`, this host's, without progress (safety and
    /// replica base snapshots).
    pub(crate) async fn backup_as(
        &self,
        source: &dyn Backup,
        name: &str,
        tags: Tags,
    ) -> Result<StoredSnapshot> {
        let options =
            BackupOptions { name: Some(name.to_string()), tags, host: None, changed_only: false };
        self.backup(source, &options, &lifeboat_core::NoProgress).await
    }

    /// Chunks, deduplicates and stores a stream; returns what the manifest needs.
    pub(crate) async fn store_stream(
        &self,
        reader: lifeboat_core::ByteStream,
        parent_chunks: &[ChunkId],
        progress: &dyn Progress,
    ) -> Result<StoredStream> {
        let config = self.config();
        let level = config.compression_level;
        let pack_size = config.pack_size as usize;
        let known = self.index();
        let bases = Arc::new(BaseFinder::new(parent_chunks, &known, config.chunker.avg_size));
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        // Each delta being made holds its base and a zstd context with a window over both:
        // no more at once than there are cores to make them.
        let making_deltas = Arc::new(tokio::sync::Semaphore::new(workers));

        // Four stages, with at most `4 * workers` chunks in flight (enough to keep every core
        // busy while the head of the queue is still compressing):
        // 1. this task reads the stream and cuts chunks;
        // 2. one blocking task hashes the whole stream, in order;
        // 3. the blocking pool hashes each chunk and compresses only chunks the repository
        //    does not have yet, in parallel;
        // 4. this task takes results in stream order, packs new chunks and hands full packs
        //    to background uploads.
        // The whole-stream hash is the one step that cannot be split; giving it its own
        // thread keeps it off the path of cutting, which is the other sequential step.
        let mut chunker = StreamChunker::new(reader, config.chunker);
        let (digest_tx, mut digest_rx) = tokio::sync::mpsc::channel::<Bytes>(workers * 4);
        let digest = tokio::task::spawn_blocking(move || {
            let mut hasher = StreamHasher::new();
            while let Some(chunk) = digest_rx.blocking_recv() {
                hasher.update(&chunk);
            }
            (hasher.len(), hasher.finish())
        });
        let mut in_flight: VecDeque<JoinHandle<Result<Sealed>>> = VecDeque::new();
        let mut eof = false;
        let mut stream_offset = 0u64;
        let mut out = StoredStream {
            chunks: Vec::new(),
            size: 0,
            sha256: Digest([0; 32]),
            new_bytes: 0,
            deltas: 0,
        };
        let mut seen: HashSet<ChunkId> = HashSet::new();
        let mut pack = PackBuilder::with_capacity(pack_size + (1 << 20));
        let mut uploads: JoinSet<Result<PackEntry>> = JoinSet::new();
        let mut packs: Vec<PackEntry> = Vec::new();
        loop {
            while !eof && in_flight.len() < workers * 4 {
                let chunk = chunker.next_chunk().await.map_err(|source| {
                    StoreError::Core(CoreError::from_stream("reading the capture", source))
                })?;
                match chunk {
                    Some(chunk) => {
                        let offset = stream_offset;
                        stream_offset += chunk.len() as u64;
                        progress.advance(chunk.len() as u64);
                        digest_tx.send(chunk.clone()).await.map_err(|_| StoreError::Malformed {
                            key: "capture".into(),
                            reason: "the stream hasher stopped".into(),
                        })?;
                        let sealing = seal(
                            self.clone(),
                            chunk,
                            offset,
                            known.clone(),
                            bases.clone(),
                            making_deltas.clone(),
                            level,
                        );
                        in_flight.push_back(tokio::spawn(sealing));
                    }
                    None => eof = true,
                }
            }
            let Some(next) = in_flight.pop_front() else {
                break;
            };
            let Sealed { id, plain, blob, base, head, tail } = joined(next.await)??;
            out.chunks.push(id);
            let Some(blob) = blob else { continue };
            if !seen.insert(id) {
                continue;
            }
            out.new_bytes += blob.len() as u64;
            out.deltas += u64::from(base.is_some());
            // A delta's head and tail are most often its base's: written only when not.
            let of_base = base.and_then(|b| known.get(&b));
            let head = Some(head).filter(|h| of_base.is_none_or(|b| b.head != Some(*h)));
            let tail = Some(tail).filter(|t| of_base.is_none_or(|b| b.tail != Some(*t)));
            let entry = BlobEntry { id, offset: 0, length: 0, plain, base, head, tail };
            pack.push(entry, &blob);
            if pack.len() >= pack_size {
                let full =
                    std::mem::replace(&mut pack, PackBuilder::with_capacity(pack_size + (1 << 20)));
                while uploads.len() >= UPLOADS_IN_FLIGHT {
                    if let Some(done) = uploads.join_next().await {
                        packs.push(joined(done)??);
                    }
                }
                let repo = self.clone();
                uploads.spawn(async move { repo.upload_pack(full).await });
            }
        }
        if !pack.is_empty() {
            packs.push(self.upload_pack(pack).await?);
        }
        while let Some(done) = uploads.join_next().await {
            packs.push(joined(done)??);
        }
        drop(digest_tx);
        (out.size, out.sha256) = joined(digest.await)?;
        if !packs.is_empty() {
            self.write_index_file(IndexFile { version: INDEX_VERSION, packs }).await?;
        }
        Ok(out)
    }

    async fn upload_pack(&self, pack: PackBuilder) -> Result<PackEntry> {
        let (bytes, entry) = pack.finish_in(self.crypt())?;
        debug!(pack = %entry.id, size = entry.size, blobs = entry.blobs.len(), "uploading pack");
        self.put_bytes(&pack_key(&entry.id), Bytes::from(bytes)).await?;
        Ok(entry)
    }
}

fn joined<T>(r: std::result::Result<T, tokio::task::JoinError>) -> Result<T> {
    r.map_err(|e| StoreError::Malformed {
        key: "pack upload".into(),
        reason: format!("task failed: {e}"),
    })
}

/// Hashes a chunk (at `offset` in the stream) and, when the repository lacks it, compresses
/// it: as a delta against a similar chunk of the parent when that is clearly smaller, whole
/// otherwise.
async fn seal(
    repo: Repository,
    chunk: Bytes,
    offset: u64,
    known: Arc<ChunkIndex>,
    bases: Arc<BaseFinder>,
    making_deltas: Arc<tokio::sync::Semaphore>,
    level: i32,
) -> Result<Sealed> {
    let plain = chunk.len() as u32;
    let crypt = repo.crypt().clone();
    let (id, head, tail) = blocking({
        let (chunk, repo) = (chunk.clone(), repo.clone());
        move || Ok((repo.chunk_id(&chunk), head_of(&chunk), tail_of(&chunk)))
    })
    .await?;
    if known.contains_key(&id) {
        bases.seen(&id, offset);
        return Ok(Sealed { id, plain, blob: None, base: None, head, tail });
    }
    if let Some((base_id, base_loc)) = bases.base_for(head, tail, offset, plain) {
        // An unreadable base is the repository's problem, which verify reports; this backup
        // then stores the chunk whole.
        match read_chunk(&repo, base_id).await {
            Ok(base) => {
                // Never closed; a failed acquire only lifts the cap.
                let _making = making_deltas.acquire().await.ok();
                let blob = blocking(move || {
                    // The chunk's size compressed whole, guessed from its base's ratio.
                    let guess = u64::from(base_loc.length) * u64::from(plain)
                        / u64::from(base_loc.plain.max(1));
                    let good_enough = usize::try_from(guess / 8).unwrap_or(usize::MAX);
                    let delta = delta::compress_against(&chunk, &base, level, good_enough)
                        .map_err(|e| compressing(e, "compressing a chunk as a delta"))?;
                    // Worth a second read only when clearly smaller than the chunk whole,
                    // judged first by the guess, then by compressing it whole.
                    if (delta.len() as u64) * 2 < guess {
                        return Ok((crypt.seal(Domain::Blob(id), delta)?, true));
                    }
                    let whole = compress::compress(&chunk, level)
                        .map_err(|e| compressing(e, "compressing a chunk"))?;
                    let (blob, is_delta) =
                        if delta.len() * 2 < whole.len() { (delta, true) } else { (whole, false) };
                    Ok((crypt.seal(Domain::Blob(id), blob)?, is_delta))
                })
                .await?;
                let base = blob.1.then_some(base_id);
                return Ok(Sealed { id, plain, blob: Some(blob.0), base, head, tail });
            }
            Err(e) => {
                debug!(chunk = %id, base = %base_id, error = %e, "base unreadable; storing the chunk whole")
            }
        }
    }
    let blob = blocking(move || {
        let blob =
            compress::compress(&chunk, level).map_err(|e| compressing(e, "compressing a chunk"))?;
        crypt.seal(Domain::Blob(id), blob)
    })
    .await?;
    Ok(Sealed { id, plain, blob: Some(blob), base: None, head, tail })
}

fn compressing(source: std::io::Error, action: &'static str) -> StoreError {
    StoreError::Core(CoreError::Stream { action, source })
}

/// Runs CPU-bound work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    joined(tokio::task::spawn_blocking(work).await)?
}

pub(crate) struct StoredStream {
    pub(crate) chunks: Vec<ChunkId>,
    pub(crate) size: u64,
    pub(crate) sha256: Digest,
    pub(crate) new_bytes: u64,
    /// New chunks stored as deltas.
    pub(crate) deltas: u64,
}

#[async_trait]
impl SafetyNet for Repository {
    async fn save(
        &self,
        source: &dyn Backup,
        name: &str,
        tags: Tags,
    ) -> lifeboat_core::Result<SnapshotId> {
        let snap = self.backup_as(source, name, tags).await?;
        // The restore destroys the original next, so the copy must be known good first: a
        // backup deduplicates against chunks already stored, and one of those may be damaged
        // (a flipped bit in a pack the index still points at). Every chunk is read back and
        // checked, and the whole stream against its SHA-256; if that fails the restore stops
        // with the original untouched.
        let mut reader = lifeboat_core::Snapshot::open(&snap).await?;
        tokio::io::copy(&mut reader, &mut tokio::io::sink()).await.map_err(|e| {
            let cause = lifeboat_core::Error::from_stream("reading back the safety snapshot", e);
            lifeboat_core::Error::Repository {
                message: format!(
                    "the safety snapshot {} of {name:?} cannot be read back, so nothing was replaced: {cause}",
                    snap.id().short()
                ),
                hint: Some(
                    "run `lifeboat verify --all --read-data` to find the damaged objects, then \
                     `lifeboat repair index` or forget the snapshots that need them"
                        .into(),
                ),
            }
        })?;
        Ok(snap.id())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use lifeboat_core::{Kind, MemoryBackup, NoProgress};

    use super::*;

    #[tokio::test]
    async fn changed_only_marks_a_stream_equal_to_the_parents_unchanged() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let repo = Repository::init_store(store, "t").await.unwrap();
        let data = lifeboat_testkit::pseudo_random(600_000, 3);
        let source = MemoryBackup { name: "m".into(), kind: Kind::DIR, data: data.clone() };
        let hot = BackupOptions { changed_only: true, ..BackupOptions::default() };
        let first = repo.backup(&source, &hot, &NoProgress).await.unwrap();
        assert!(!first.manifest().unchanged, "no parent: not unchanged");
        let second = repo.backup(&source, &hot, &NoProgress).await.unwrap();
        assert!(second.manifest().unchanged, "same stream as the parent");
        assert_eq!(second.manifest().stored, 0);
        let plain = repo.backup(&source, &BackupOptions::default(), &NoProgress).await.unwrap();
        assert!(!plain.manifest().unchanged, "only --changed-only backups say so");
        let mut edited = data;
        edited[1000] ^= 1;
        let changed = MemoryBackup { name: "m".into(), kind: Kind::DIR, data: edited };
        let third = repo.backup(&changed, &hot, &NoProgress).await.unwrap();
        assert!(!third.manifest().unchanged, "a changed stream");
    }
}
