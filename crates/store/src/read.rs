//! The read engine: brings a run of chunks (a snapshot's stream) back from the packs that
//! hold them, in order, with few requests, several in flight, and every core decoding.
//!
//! 1. **Plan.** The stream is cut into batches of about [`READ_BATCH_BYTES`] plain bytes. A
//!    batch needs a set of blobs (its chunks, and the bases of its deltas, each once);
//!    they are grouped by pack and neighbouring ones merged into one range request while
//!    the gap between them is at most [`MERGE_GAP`] and the request at most
//!    [`MAX_REQUEST`]. A chunk seen again within half a window of its last use is not
//!    fetched again: the bytes are kept until that use.
//! 2. **Fetch.** Up to [`ReadOptions::concurrency`] range requests are in flight at once,
//!    from as many batches as the window holds.
//! 3. **Decode.** Every blob is opened, decompressed and hashed on the blocking pool, so
//!    all cores work; deltas after the bases they need.
//! 4. **Write in order.** Batches come out in stream order; at most
//!    [`ReadOptions::window_bytes`] plain bytes are fetched or waiting at any time, so
//!    memory stays flat whatever the snapshot's size.
//!
//! A batch whose requests fail (a pack a concurrent prune repacked, a store that keeps
//! failing) is read again chunk by chunk through [`read_chunk`], which looks the chunks up
//! in a fresh index: slower, never wrong.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use lifeboat_codec::{compress, delta};
use lifeboat_core::{ChunkId, Digest, Error as CoreError};
use tokio::sync::Semaphore;
use tracing::debug;

use crate::crypt::Domain;
use crate::error::{Result, StoreError};
use crate::format::pack_key;
use crate::repository::{BlobLocation, Repository};

/// Plain bytes of stream per batch: the unit of planning, fetching and decoding.
pub const READ_BATCH_BYTES: u64 = 4 << 20;
/// Two blobs of one pack are read by one request when at most this many unneeded bytes lie
/// between them: reading them costs less than a round trip.
pub const MERGE_GAP: u64 = 256 << 10;
/// The largest range one request reads.
pub const MAX_REQUEST: u64 = 16 << 20;

/// Chunks of a batch read one by one at once (each still takes a permit).
const BY_CHUNK_AHEAD: usize = 16;

/// Below this measured round trip (ms) the store is treated as near.
const SHORT_ROUND_TRIP_MS: u128 = 5;
/// From this measured round trip (ms) on the link is treated as long.
const LONG_ROUND_TRIP_MS: u128 = 50;

/// How the read engine uses the link and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Range requests in flight at once. An opened repository sets it from the measured
    /// round trip ([`ReadOptions::for_round_trip`]); the default, 24 (with a 96 MiB window),
    /// fills a link with 50-100 ms round trips; more helps on longer ones.
    pub concurrency: usize,
    /// Plain bytes fetched, decoded or waiting to be written at most: the reorder window.
    pub window_bytes: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { concurrency: 24, window_bytes: 96 << 20 }
    }
}

impl ReadOptions {
    /// The options for a store `round_trip` away (as [`FoundRepository::round_trip`]
    /// measures it): fewer requests in flight where round trips are short, so the store's
    /// and the link's per-request work does not take the cores decoding needs; more on long
    /// links, where each request mostly waits. `bench/s3-read-ab.sh` measured the steps.
    ///
    /// [`FoundRepository::round_trip`]: crate::FoundRepository::round_trip
    pub fn for_round_trip(round_trip: std::time::Duration) -> Self {
        let concurrency = match round_trip.as_millis() {
            0..SHORT_ROUND_TRIP_MS => 8,
            SHORT_ROUND_TRIP_MS..LONG_ROUND_TRIP_MS => 16,
            _ => 24,
        };
        ReadOptions { concurrency, ..ReadOptions::default() }
    }

    /// Batches in the window at once (at least two, so one is fetched while one is written).
    fn batches_ahead(&self) -> usize {
        usize::try_from(self.window_bytes / READ_BATCH_BYTES).unwrap_or(usize::MAX).max(2)
    }
}

/// Which checks the read engine makes on each chunk it hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkChecks {
    /// Every chunk is hashed and compared with its id before it is handed out.
    Each,
    /// Chunks are not hashed: the reader checks the whole stream's SHA-256 before it uses any
    /// byte ([`Snapshot::open_whole`](lifeboat_core::Snapshot::open_whole)), which covers
    /// them. Blobs of an encrypted repository still authenticate, bound to their chunk ids,
    /// and a chunk read one by one (the fallback) is still hashed.
    LeftToTheWhole,
}

/// The chunks `ids`, in order, checked as `checks` says (see the module docs).
pub(crate) fn read_chunks(
    repo: Repository,
    ids: &[ChunkId],
    options: ReadOptions,
    checks: ChunkChecks,
) -> BoxStream<'static, Result<Bytes>> {
    if let Err(e) = repo.refuse_write_only("read backed-up data") {
        return stream::once(async { Err(e) }).boxed();
    }
    // A handle opened with a deferred index reads it before planning.
    let ids = ids.to_vec();
    stream::once(async move {
        repo.ensure_index().await?;
        Ok::<_, StoreError>(read_planned(repo, &ids, options, checks))
    })
    .try_flatten()
    .boxed()
}

fn read_planned(
    repo: Repository,
    ids: &[ChunkId],
    options: ReadOptions,
    checks: ChunkChecks,
) -> BoxStream<'static, Result<Bytes>> {
    let plan = Arc::new(Plan::new(&repo, ids, options.window_bytes / 2, checks));
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let fetched = stream::iter(0..plan.batches.len())
        .map({
            let plan = Arc::clone(&plan);
            move |b| {
                let (repo, plan, permits) = (repo.clone(), Arc::clone(&plan), Arc::clone(&permits));
                async move { fetch_batch(&repo, &plan, b, &permits).await.map(|got| (b, got)) }
            }
        })
        .buffered(options.batches_ahead());
    // Writes each batch's positions in order, keeping what a later position reuses.
    let mut kept: HashMap<ChunkId, Bytes> = HashMap::new();
    fetched
        .map_ok(move |(b, got)| {
            let batch = &plan.batches[b];
            let out: Vec<Result<Bytes>> = batch
                .positions
                .clone()
                .map(|p| {
                    let step = &plan.steps[p];
                    let from = if step.reuse { &kept } else { &got };
                    let bytes = from.get(&step.id).cloned();
                    let bytes = bytes.ok_or_else(|| lost(step.id))?;
                    if step.kept {
                        kept.insert(step.id, bytes.clone());
                    } else if step.reuse {
                        kept.remove(&step.id);
                    }
                    Ok(bytes)
                })
                .collect();
            stream::iter(out)
        })
        .try_flatten()
        .boxed()
}

/// A planned chunk that did not come back: a bug in the plan, reported rather than panicked.
fn lost(id: ChunkId) -> StoreError {
    StoreError::Core(CoreError::Missing { object: format!("chunk {id} (lost by the read plan)") })
}

/// One position of the stream.
#[derive(Debug)]
struct Step {
    id: ChunkId,
    /// Taken from an earlier position's bytes, not fetched.
    reuse: bool,
    /// A later position reuses these bytes: keep them until then.
    kept: bool,
}

/// A range request: one pack, one range, the blobs in it that are needed.
#[derive(Debug)]
struct Request {
    pack: Digest,
    range: Range<u64>,
    blobs: Vec<(ChunkId, BlobLocation)>,
}

/// A run of consecutive positions and what fetching them takes.
#[derive(Debug, Default)]
struct Batch {
    positions: Range<usize>,
    requests: Vec<Request>,
    /// Chunks that are only the base of a delta here: decoded, not hash-checked on their own
    /// (the delta's result is; see [`Hash::Skip`]), not handed out.
    bases_only: Vec<ChunkId>,
    /// Some chunk or base is in no loaded index, or a base is a delta itself: read chunk by
    /// chunk, which reloads the index and names what is wrong.
    by_chunk: bool,
}

/// The whole read: every position and every batch.
#[derive(Debug)]
struct Plan {
    steps: Vec<Step>,
    batches: Vec<Batch>,
    /// How the decoded chunks are checked.
    checks: ChunkChecks,
}

impl Plan {
    /// Plans reading `ids`, checked as `checks` says; a chunk seen again within
    /// `reuse_reach` plain bytes of its last use is reused, not fetched.
    fn new(repo: &Repository, ids: &[ChunkId], reuse_reach: u64, checks: ChunkChecks) -> Self {
        let mut steps: Vec<Step> = Vec::with_capacity(ids.len());
        let mut batches = Vec::new();
        // Last position and stream offset of each chunk.
        let mut last: HashMap<ChunkId, (usize, u64)> = HashMap::new();
        let mut offset = 0u64;
        let mut batch = Batch::default();
        let mut batch_bytes = 0u64;
        // Blobs this batch needs: (chunk, location, needed as a chunk and not only as a base).
        let mut needed: HashMap<ChunkId, (BlobLocation, bool)> = HashMap::new();
        for (p, id) in ids.iter().enumerate() {
            let loc = repo.locate(id);
            let plain = loc.map_or(0, |l| u64::from(l.plain));
            let reuse = match last.get(id) {
                Some(&(earlier, at)) if offset - at <= reuse_reach => {
                    steps[earlier].kept = true;
                    true
                }
                _ => false,
            };
            steps.push(Step { id: *id, reuse, kept: false });
            last.insert(*id, (p, offset));
            if !reuse {
                match loc {
                    None => batch.by_chunk = true,
                    Some(loc) => {
                        needed.entry(*id).or_insert((loc, true)).1 = true;
                        if let Some(base) = loc.base {
                            match repo.locate(&base) {
                                Some(b) if b.base.is_none() => {
                                    needed.entry(base).or_insert((b, false));
                                }
                                _ => batch.by_chunk = true,
                            }
                        }
                    }
                }
            }
            offset += plain;
            batch_bytes += plain;
            if batch_bytes >= READ_BATCH_BYTES {
                batch.positions.end = p + 1;
                batches.push(finish(std::mem::take(&mut batch), &mut needed));
                batch.positions = p + 1..p + 1;
                batch_bytes = 0;
            }
        }
        if batch.positions.start < ids.len() {
            batch.positions.end = ids.len();
            batches.push(finish(batch, &mut needed));
        }
        Plan { steps, batches, checks }
    }
}

/// Completes `batch` with the range requests for `needed` (emptied).
fn finish(mut batch: Batch, needed: &mut HashMap<ChunkId, (BlobLocation, bool)>) -> Batch {
    let mut by_pack: HashMap<Digest, Vec<(ChunkId, BlobLocation)>> = HashMap::new();
    for (id, (loc, as_chunk)) in needed.drain() {
        if !as_chunk {
            batch.bases_only.push(id);
        }
        by_pack.entry(loc.pack).or_default().push((id, loc));
    }
    for (pack, mut blobs) in by_pack {
        blobs.sort_by_key(|(_, loc)| loc.offset);
        let mut current: Option<Request> = None;
        for (id, loc) in blobs {
            let end = loc.offset + u64::from(loc.length);
            match current.as_mut() {
                Some(r)
                    if loc.offset <= r.range.end + MERGE_GAP
                        && end.max(r.range.end) - r.range.start <= MAX_REQUEST =>
                {
                    r.range.end = r.range.end.max(end);
                    r.blobs.push((id, loc));
                }
                _ => {
                    batch.requests.extend(current.take());
                    current =
                        Some(Request { pack, range: loc.offset..end, blobs: vec![(id, loc)] });
                }
            }
        }
        batch.requests.extend(current);
    }
    // The batch's first chunks first: they are written first.
    batch.requests.sort_by_key(|r| (r.pack, r.range.start));
    batch
}

/// The chunks batch `b` hands out, by id.
async fn fetch_batch(
    repo: &Repository,
    plan: &Plan,
    b: usize,
    permits: &Semaphore,
) -> Result<HashMap<ChunkId, Bytes>> {
    let batch = &plan.batches[b];
    if !batch.by_chunk {
        match fetch_requests(repo, batch, permits).await {
            Ok(blobs) => return decode_batch(repo, batch, blobs, plan.checks).await,
            // Gone or unreachable: a prune may have repacked it; read chunk by chunk below.
            Err(StoreError::Core(CoreError::Missing { .. }) | StoreError::Object { .. }) => {
                debug!(batch = b, "range requests failed; reading the batch chunk by chunk");
            }
            Err(e) => return Err(e),
        }
    }
    let mut ids: Vec<ChunkId> = batch
        .positions
        .clone()
        .filter(|&p| !plan.steps[p].reuse)
        .map(|p| plan.steps[p].id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    stream::iter(ids)
        .map(|id| async move {
            let _permit = permits.acquire().await.ok();
            read_chunk(repo, id).await.map(|bytes| (id, bytes))
        })
        .buffer_unordered(BY_CHUNK_AHEAD)
        .try_collect()
        .await
}

/// Every needed blob of `batch`, still sealed and compressed.
async fn fetch_requests(
    repo: &Repository,
    batch: &Batch,
    permits: &Semaphore,
) -> Result<Vec<(ChunkId, BlobLocation, Bytes)>> {
    let fetched = futures::future::try_join_all(batch.requests.iter().map(|r| async move {
        let _permit = permits.acquire().await.ok();
        let body = repo.get_range(&pack_key(&r.pack), r.range.clone()).await?;
        let expected = r.range.end - r.range.start;
        if body.len() as u64 != expected {
            let short = format!("asked for {expected} bytes, got {}", body.len());
            let source =
                object_store::Error::Generic { store: "read engine", source: short.into() };
            return Err(StoreError::object("get", pack_key(&r.pack).to_string(), source));
        }
        Ok(r.blobs
            .iter()
            .map(|(id, loc)| {
                let start = (loc.offset - r.range.start) as usize;
                (*id, *loc, body.slice(start..start + loc.length as usize))
            })
            .collect::<Vec<_>>())
    }))
    .await?;
    Ok(fetched.into_iter().flatten().collect())
}

/// Decodes the blobs of `batch` on the blocking pool: whole ones first, in parallel, then
/// the deltas against them; hashes them as `checks` says.
async fn decode_batch(
    repo: &Repository,
    batch: &Batch,
    blobs: Vec<(ChunkId, BlobLocation, Bytes)>,
    checks: ChunkChecks,
) -> Result<HashMap<ChunkId, Bytes>> {
    let locations: HashMap<ChunkId, BlobLocation> =
        blobs.iter().map(|(id, loc, _)| (*id, *loc)).collect();
    let (deltas, wholes): (Vec<_>, Vec<_>) =
        blobs.into_iter().partition(|(_, loc, _)| loc.base.is_some());
    let decode_all = |jobs: Vec<(ChunkId, BlobLocation, Bytes, Option<Bytes>, Hash)>| {
        futures::future::try_join_all(jobs.into_iter().map(|(id, loc, blob, base, hash)| {
            let repo = repo.clone();
            async move {
                let plain =
                    on_blocking_pool(&loc, move || decode(&repo, id, loc, blob, base, hash))
                        .await?;
                Ok::<_, StoreError>((id, plain))
            }
        }))
    };
    let whole_jobs = wholes
        .into_iter()
        .map(|(id, loc, blob)| {
            let hash = if checks == ChunkChecks::LeftToTheWhole || batch.bases_only.contains(&id) {
                Hash::Skip
            } else {
                Hash::Check { base: None }
            };
            (id, loc, blob, None, hash)
        })
        .collect();
    let mut decoded: HashMap<ChunkId, Bytes> = decode_all(whole_jobs).await?.into_iter().collect();
    let mut delta_jobs = Vec::with_capacity(deltas.len());
    for (id, loc, blob) in deltas {
        // Planned: every delta's base is in this batch, stored whole.
        let base_id = loc.base.ok_or_else(|| lost(id))?;
        let base = decoded.get(&base_id).cloned().ok_or_else(|| lost(base_id))?;
        let base_loc = *locations.get(&base_id).ok_or_else(|| lost(base_id))?;
        let hash = match checks {
            ChunkChecks::Each => Hash::Check { base: Some((base_id, base_loc)) },
            ChunkChecks::LeftToTheWhole => Hash::Skip,
        };
        delta_jobs.push((id, loc, blob, Some(base), hash));
    }
    decoded.extend(decode_all(delta_jobs).await?);
    for base in &batch.bases_only {
        decoded.remove(base);
    }
    Ok(decoded)
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
    let decoder = repo.clone();
    let Some(base_id) = loc.base else {
        let blob = fetch_blob(repo, &loc).await?;
        let hash = Hash::Check { base: None };
        return on_blocking_pool(&loc, move || decode(&decoder, id, loc, blob, None, hash)).await;
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
        let decoder = decoder.clone();
        on_blocking_pool(&base_loc, move || {
            decode(&decoder, base_id, base_loc, blob, None, Hash::Skip)
        })
        .await
    };
    let (blob, base) = futures::try_join!(fetch_blob(repo, &loc), base)?;
    let hash = Hash::Check { base: Some((base_id, base_loc)) };
    on_blocking_pool(&loc, move || decode(&decoder, id, loc, blob, Some(base), hash)).await
}

/// The compressed blob at `loc`: one range request.
async fn fetch_blob(repo: &Repository, loc: &BlobLocation) -> Result<Bytes> {
    repo.get_range(&pack_key(&loc.pack), loc.offset..loc.offset + u64::from(loc.length)).await
}

/// Runs `decode` for the blob at `loc` on the blocking pool.
async fn on_blocking_pool(
    loc: &BlobLocation,
    decode: impl FnOnce() -> std::result::Result<Bytes, CoreError> + Send + 'static,
) -> Result<Bytes> {
    tokio::task::spawn_blocking(decode)
        .await
        .map_err(|e| StoreError::Malformed {
            key: pack_key(&loc.pack).to_string(),
            reason: format!("decoder task failed: {e}"),
        })?
        .map_err(StoreError::from)
}

/// Whether [`decode`] checks the chunk's hash.
#[derive(Debug)]
enum Hash {
    /// Checks it; when it fails for a delta, checks the base's too, to name the damaged one.
    Check { base: Option<(ChunkId, BlobLocation)> },
    /// Leaves it to a later check that covers these bytes (a base, by its delta's result; a
    /// chunk, by the whole stream's digest).
    Skip,
}

/// Opens and decompresses the blob of chunk `id` (against `base` for a delta) and checks its
/// hash as `hash` says.
fn decode(
    repo: &Repository,
    id: ChunkId,
    loc: BlobLocation,
    blob: Bytes,
    base: Option<Bytes>,
    hash: Hash,
) -> std::result::Result<Bytes, CoreError> {
    let object = format!("chunk {id} in {}", pack_key(&loc.pack));
    // A damaged base makes its delta fail: say so rather than blame the delta.
    let damaged_base = || match (&hash, &base) {
        (Hash::Check { base: Some((base_id, base_loc)) }, Some(plain)) => {
            let actual = repo.chunk_id(plain);
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
    let blob = repo.crypt().open(&object, Domain::Blob(id), blob).map_err(CoreError::from)?;
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
        Hash::Check { .. } => repo.chunk_id(&plain),
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
}
