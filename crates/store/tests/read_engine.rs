//! The read engine (#20), against every store: memory, a local folder, and s3s-fs. A
//! snapshot comes back byte-exact with a few range requests per pack instead of one per
//! chunk: repeated chunks, deltas, a tiny window, a flaky store and a prune that moved the
//! data under a reader's feet included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lifeboat_codec::compress::compress;
use lifeboat_core::{Kind, MemoryBackup, NoProgress, Snapshot};
use lifeboat_store::format::{DATA_PREFIX, pack_key};
use lifeboat_store::{BackupOptions, PruneOptions, ReadOptions, Repository, StoredSnapshot};
use lifeboat_testkit::{FaultyStore, pseudo_random as random};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncReadExt;

async fn backup(repo: &Repository, name: &str, data: Vec<u8>) -> StoredSnapshot {
    let source = MemoryBackup { name: name.into(), kind: Kind::DIR, data };
    repo.backup(&source, &BackupOptions::default(), &NoProgress).await.unwrap()
}

async fn read_back(snap: &StoredSnapshot) -> Vec<u8> {
    let mut out = Vec::new();
    snap.open().await.unwrap().read_to_end(&mut out).await.unwrap();
    out
}

/// Data whose chunks repeat: distinct blocks, one of them again and again (near and far),
/// and runs of zeros, as free pages in a database are.
fn repetitive() -> Vec<u8> {
    let block = |seed: u64| random(1 << 20, 2 * seed + 1);
    let mut data = Vec::new();
    for (i, seed) in [1, 2, 1, 3, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1].iter().enumerate() {
        data.extend(block(*seed));
        if i % 4 == 0 {
            data.extend(vec![0u8; 3 << 20]);
        }
    }
    data
}

/// Packs the snapshot's chunks live in.
fn packs_of(repo: &Repository, snap: &StoredSnapshot) -> usize {
    let mut packs: Vec<_> =
        snap.manifest().chunks.iter().map(|c| repo.locate(c).unwrap().pack).collect();
    packs.sort();
    packs.dedup();
    packs.len()
}

async fn reads_with_few_requests(store: Arc<dyn ObjectStore>) {
    let counted = FaultyStore::new(store);
    let repo = Repository::init_store(counted.clone(), "t").await.unwrap();
    let data = repetitive();
    let snap = backup(&repo, "app", data.clone()).await;
    let chunks = snap.manifest().chunks.len();
    let before = counted.gets.load(Ordering::SeqCst);
    assert_eq!(read_back(&snap).await, data);
    let requests = (counted.gets.load(Ordering::SeqCst) - before) as usize;
    // At most one request per batch and pack it touches; never one per chunk.
    let batches = data.len().div_ceil(lifeboat_store::READ_BATCH_BYTES as usize) + 1;
    let bound = batches + packs_of(&repo, &snap);
    assert!(
        requests <= bound && requests < chunks / 2,
        "{requests} range requests for {chunks} chunks (bound {bound})"
    );
}

async fn reads_deltas_and_repeats_through_any_window(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let first = repetitive();
    backup(&repo, "app", first.clone()).await;
    // Scattered edits: the second snapshot is mostly deltas against the first.
    let mut second = first.clone();
    for i in (4096..second.len()).step_by(1 << 17) {
        second[i] ^= 0x5a;
    }
    let snap = backup(&repo, "app", second.clone()).await;
    let deltas = snap.manifest().chunks.iter().filter(|c| repo.locate(c).unwrap().base.is_some());
    assert!(deltas.count() > 0, "the edit made delta chunks");
    for options in [
        ReadOptions::default(),
        ReadOptions { concurrency: 1, window_bytes: 1 },
        ReadOptions { concurrency: 64, window_bytes: 6 << 20 },
    ] {
        let reader = Repository::open_store(store.clone(), "t").await.unwrap();
        reader.set_read_options(options);
        let snap = reader.load_snapshot(snap.id()).await.unwrap();
        assert!(read_back(&snap).await == second, "{options:?}: the stream differs");
    }
}

/// An open measures the store's round trip, and the read engine keeps more requests in
/// flight over a long link than over a near one; the stream is the same either way.
async fn requests_in_flight_follow_the_measured_round_trip(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let data = repetitive();
    let id = backup(&repo, "app", data.clone()).await.id();
    let link = FaultyStore::new(store);
    let mut chosen = Vec::new();
    for round_trip in [Duration::ZERO, Duration::from_millis(20), Duration::from_millis(80)] {
        link.set_round_trip(round_trip);
        let found = Repository::discover_in_store(link.clone(), "t").await.unwrap();
        let measured = found.round_trip();
        assert!(measured >= round_trip, "{measured:?} measured over a {round_trip:?} link");
        let reader = found.open(None).await.unwrap();
        let options = reader.read_options();
        assert_eq!(options, ReadOptions::for_round_trip(measured));
        let snap = reader.load_snapshot(id).await.unwrap();
        assert!(read_back(&snap).await == data, "{round_trip:?}: the stream differs");
        chosen.push(options.concurrency);
    }
    // However busy the machine, 80 ms is a long link: more in flight than a near store gets.
    let near = ReadOptions::for_round_trip(Duration::ZERO).concurrency;
    assert!(chosen[2] > near, "requests in flight at 0, 20 and 80 ms: {chosen:?}");
}

async fn a_flaky_store_still_restores_byte_exact(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let data = repetitive();
    let id = backup(&repo, "app", data.clone()).await.id();
    let flaky = FaultyStore::new(store);
    flaky.fail_share_of_gets(20);
    // Several readers, each opening the repository through the flaky store too.
    for _ in 0..4 {
        let reader = Repository::open_store(flaky.clone(), "t").await.unwrap();
        let snap = reader.load_snapshot(id).await.unwrap();
        assert!(read_back(&snap).await == data, "the stream differs");
    }
    let (injected, gets) =
        (flaky.injected.load(Ordering::SeqCst), flaky.gets.load(Ordering::SeqCst));
    assert!(injected > 0 && injected * 100 <= gets * 40, "{injected} of {gets} reads failed");
}

async fn a_reader_whose_packs_were_repacked_reads_through_a_fresh_index(
    store: Arc<dyn ObjectStore>,
) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    // A small kept part shares packs with a large forgotten one: prune repacks it.
    let keep = random(2 << 20, 4);
    let mut both = keep.clone();
    both.extend(random(8 << 20, 5));
    let big = backup(&repo, "mixed", both).await;
    let small = backup(&repo, "small", keep.clone()).await;
    // A reader that loaded the index and the manifest before the prune.
    let reader = Repository::open_store(store.clone(), "t").await.unwrap();
    let stale = reader.load_snapshot(small.id()).await.unwrap();
    repo.forget(&[big.id()]).await.unwrap();
    let (before, _) = repo.usage(DATA_PREFIX).await.unwrap();
    let prune = PruneOptions { grace: Duration::ZERO, ..Default::default() };
    let report = repo.prune(&prune).await.unwrap();
    assert!(report.repacked > 0, "{report:?}");
    // The sweep deletes the old packs (the grace is zero, no backup runs).
    repo.prune(&prune).await.unwrap();
    let (after, _) = repo.usage(DATA_PREFIX).await.unwrap();
    assert!(after < before / 2, "the old packs are gone: {before} -> {after}");
    assert!(read_back(&stale).await == keep, "the stream differs");
}

/// A chunk whose stored blob was swapped for a valid blob of other bytes (a plaintext
/// repository: nothing authenticates it) is refused by both ways of reading: `open` names the
/// chunk as soon as it is read, `open_whole` (which does not hash chunks one by one) fails
/// at the end of the stream on the whole stream's SHA-256, naming the snapshot.
async fn a_swapped_chunk_is_refused_by_both_checks(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let data = random(6 << 20, 21);
    let snap = backup(&repo, "app", data.clone()).await;
    let untouched = backup(&repo, "other", random(2 << 20, 22)).await;
    let mut whole = Vec::new();
    untouched.open_whole().await.unwrap().read_to_end(&mut whole).await.unwrap();
    assert!(whole == random(2 << 20, 22), "open_whole of an intact snapshot differs");

    let victim = snap.manifest().chunks[1];
    let loc = repo.locate(&victim).unwrap();
    let key = pack_key(&loc.pack);
    let mut pack = store.get(&key).await.unwrap().bytes().await.unwrap().to_vec();
    // Incompressible bytes of the same length compress to the same length.
    let swapped = compress(&random(loc.plain as usize, 23), 3).unwrap();
    assert_eq!(swapped.len(), loc.length as usize, "the swapped blob must fit in place");
    let at = loc.offset as usize;
    pack[at..at + swapped.len()].copy_from_slice(&swapped);
    store.put(&key, PutPayload::from(pack)).await.unwrap();

    let reader = Repository::open_store(store.clone(), "t").await.unwrap();
    let snap = reader.load_snapshot(snap.id()).await.unwrap();
    let mut out = Vec::new();
    let each = snap.open().await.unwrap().read_to_end(&mut out).await.unwrap_err().to_string();
    assert!(each.contains(&victim.to_hex()), "open names the chunk: {each}");
    out.clear();
    let whole = snap.open_whole().await.unwrap().read_to_end(&mut out).await.unwrap_err();
    let whole = whole.to_string();
    assert!(whole.contains(&snap.id().to_string()), "open_whole names the snapshot: {whole}");
    assert!(out.len() as u64 <= data.len() as u64, "no more than the snapshot came out");
}

lifeboat_testkit::for_each_store!(
    a_swapped_chunk_is_refused_by_both_checks,
    reads_with_few_requests,
    reads_deltas_and_repeats_through_any_window,
    requests_in_flight_follow_the_measured_round_trip,
    a_flaky_store_still_restores_byte_exact,
    a_reader_whose_packs_were_repacked_reads_through_a_fresh_index,
);
