//! The snapshot catalog (#20), against every store: memory, a local folder, and s3s-fs. A
//! fresh reader lists a repository's snapshots with one GET for all manifests; the listing
//! of `snapshots/` stays the truth, so a missing, stale, damaged or forged catalog changes
//! nothing but the number of requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::StreamExt;
use lifeboat_core::{Digest, Kind, MemoryBackup, NoProgress, Snapshot, Verifier};
use lifeboat_store::format::{CATALOG_KEY, decode_catalog, encode_catalog, snapshot_key};
use lifeboat_store::{BackupOptions, Repository, RepositoryVerifier};
use lifeboat_testkit::{FaultyStore, pseudo_random as random};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncReadExt;

async fn backups(repo: &Repository, count: u64, seed: u64) -> Vec<Digest> {
    let mut ids = Vec::new();
    for n in 0..count {
        let name = format!("db{}", n % 3);
        let source =
            MemoryBackup { name, kind: Kind::SQLITE, data: random(20_000, 2 * (seed + n) + 1) };
        ids.push(repo.backup(&source, &BackupOptions::default(), &NoProgress).await.unwrap().id());
    }
    ids
}

/// A fresh reader's listing: the ids, oldest first, and how many reads it took.
async fn fresh_listing(store: &Arc<FaultyStore>) -> (Vec<Digest>, u32) {
    let repo = Repository::open_store(store.clone(), "t").await.unwrap();
    let before = store.gets.load(Ordering::SeqCst);
    let ids = repo.snapshots().await.unwrap().iter().map(|s| s.id()).collect();
    (ids, store.gets.load(Ordering::SeqCst) - before)
}

async fn catalog_entries(store: &Arc<dyn ObjectStore>) -> Vec<Digest> {
    let body = store.get(&Path::from(CATALOG_KEY)).await.unwrap().bytes().await.unwrap();
    let mut ids: Vec<Digest> = decode_catalog(&body).unwrap().into_keys().collect();
    ids.sort();
    ids
}

fn sorted(ids: &[Digest]) -> Vec<Digest> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids
}

async fn a_fresh_reader_lists_with_one_request(store: Arc<dyn ObjectStore>) {
    let counted = FaultyStore::new(store.clone());
    let repo = Repository::init_store(counted.clone(), "t").await.unwrap();
    let mut ids = backups(&repo, 20, 1).await;
    // Backups keep a small catalog whole: a fresh reader reads it alone.
    assert_eq!(catalog_entries(&store).await, sorted(&ids));
    let (listed, reads) = fresh_listing(&counted).await;
    assert_eq!((listed, reads), (ids.clone(), 1));
    // Without a catalog (a repository from before it), the first fresh listing reads every
    // manifest, then writes the catalog.
    store.delete(&Path::from(CATALOG_KEY)).await.unwrap();
    let (listed, reads) = fresh_listing(&counted).await;
    assert_eq!(listed, ids);
    assert_eq!(reads, 1 + 20, "the catalog (absent), then each manifest");
    assert_eq!(catalog_entries(&store).await, sorted(&ids));
    // The next one reads only the catalog.
    let (listed, reads) = fresh_listing(&counted).await;
    assert_eq!((listed, reads), (ids.clone(), 1));
    // New snapshots go into the catalog with their backup.
    ids.extend(backups(&repo, 3, 100).await);
    let (listed, reads) = fresh_listing(&counted).await;
    assert_eq!((listed, reads), (ids.clone(), 1));
    assert_eq!(catalog_entries(&store).await, sorted(&ids));
    // Forgotten snapshots leave the listing and the catalog at once.
    repo.forget(&ids[..5]).await.unwrap();
    let kept = ids[5..].to_vec();
    assert_eq!(fresh_listing(&counted).await.0, kept);
    let in_catalog = catalog_entries(&store).await;
    assert!(ids[..5].iter().all(|id| !in_catalog.contains(id)), "forgotten ids stay out");
    // Forgotten by a client that knows no catalog: still gone from the listing.
    store.delete(&snapshot_key(&kept[0])).await.unwrap();
    assert_eq!(fresh_listing(&counted).await.0, kept[1..].to_vec());
}

async fn a_damaged_or_forged_catalog_changes_nothing(store: Arc<dyn ObjectStore>) {
    let counted = FaultyStore::new(store.clone());
    let repo = Repository::init_store_with(
        counted.clone(),
        "t",
        Some(&lifeboat_store::Password::new("catalog test")),
    )
    .await
    .unwrap();
    let ids = backups(&repo, 12, 7).await;
    let open = || async {
        Repository::open_store_with(
            counted.clone(),
            "t",
            Some(&lifeboat_store::Password::new("catalog test")),
        )
        .await
        .unwrap()
    };
    let list = |repo: Repository| async move {
        repo.snapshots().await.unwrap().iter().map(|s| s.id()).collect::<Vec<_>>()
    };
    assert_eq!(list(open().await).await, ids);
    let key = Path::from(CATALOG_KEY);
    let good = store.get(&key).await.unwrap().bytes().await.unwrap();
    // Garbage: every manifest is read one by one, and the catalog is written anew.
    store.put(&key, PutPayload::from(Bytes::from_static(b"not a catalog"))).await.unwrap();
    assert_eq!(list(open().await).await, ids);
    assert_eq!(catalog_entries(&store).await, sorted(&ids));
    // Forged: an entry for a snapshot that is not listed, and another snapshot's manifest
    // under a listed id. Neither is believed.
    let mut entries = decode_catalog(&good).unwrap();
    let (first, second) = (entries[&ids[0]].clone(), entries[&ids[1]].clone());
    entries.insert(Digest::of(b"nobody"), first.clone());
    entries.insert(ids[0], second);
    let forged = encode_catalog(entries.iter());
    store.put(&key, PutPayload::from(forged)).await.unwrap();
    let repo = open().await;
    let snaps = repo.snapshots().await.unwrap();
    assert_eq!(snaps.iter().map(|s| s.id()).collect::<Vec<_>>(), ids);
    let original = repo.load_snapshot(ids[0]).await.unwrap();
    assert_eq!(snaps[0].manifest(), original.manifest());
    // A manifest damaged in the store while the catalog still holds it whole: listing goes
    // on from the catalog, verify names the damaged object.
    store.put(&key, PutPayload::from(good)).await.unwrap();
    store.put(&snapshot_key(&ids[3]), PutPayload::from(Bytes::from_static(b"x"))).await.unwrap();
    let repo = open().await;
    let snaps = repo.snapshots().await.unwrap();
    assert_eq!(snaps.len(), ids.len());
    let report = RepositoryVerifier::new(repo.clone(), false).verify(&snaps[3]).await.unwrap();
    let failures = report.failures().join("; ");
    assert!(failures.contains(&ids[3].to_hex()), "verify names the damaged manifest: {failures}");
    let others = RepositoryVerifier::new(repo.clone(), false).verify(&snaps[4]).await.unwrap();
    assert!(others.ok(), "{:?}", others.failures());
}

/// A handle opened with a deferred index lists snapshots without reading one index file,
/// and still reads, verifies and backs up: each reads the index when it first needs it.
async fn a_deferred_index_is_read_only_when_needed(store: Arc<dyn ObjectStore>) {
    let counted = FaultyStore::new(store.clone());
    let repo = Repository::init_store(counted.clone(), "t").await.unwrap();
    let ids = backups(&repo, 12, 7).await;
    let index_files = store.list(Some(&Path::from("index"))).count().await;
    assert!(index_files >= 12, "one index file per backup: {index_files}");
    let listing_gets = |defer: bool| {
        let counted = counted.clone();
        async move {
            let before = counted.gets.load(Ordering::SeqCst);
            let found = Repository::discover_in_store(counted.clone(), "t").await.unwrap();
            assert!(!found.is_encrypted());
            let found = if defer { found.defer_index() } else { found };
            let repo = found.open(None).await.unwrap();
            let listed: Vec<Digest> =
                repo.snapshots().await.unwrap().iter().map(|s| s.id()).collect();
            (repo, listed, counted.gets.load(Ordering::SeqCst) - before)
        }
    };
    // The first listing writes the catalog; the next ones read it.
    let (_, listed, _) = listing_gets(false).await;
    assert_eq!(listed, ids);
    let (_, _, eager) = listing_gets(false).await;
    let (deferred, listed, gets) = listing_gets(true).await;
    assert_eq!(listed, ids);
    assert_eq!(eager - gets, index_files as u32, "the deferred open read no index file");
    // Reading a snapshot loads the index first.
    let snaps = deferred.snapshots().await.unwrap();
    let mut data = Vec::new();
    snaps[4].open().await.unwrap().read_to_end(&mut data).await.unwrap();
    assert_eq!(data, random(20_000, 2 * (7 + 4) + 1));
    // So does verifying one, on another deferred handle.
    let (fresh, _, _) = listing_gets(true).await;
    let snap = fresh.load_snapshot(ids[2]).await.unwrap();
    let report = RepositoryVerifier::new(fresh.clone(), true).verify(&snap).await.unwrap();
    assert!(report.ok(), "{:?}", report.failures());
    // And a backup of data already stored stores nothing new.
    let (fresh, _, _) = listing_gets(true).await;
    let again = MemoryBackup {
        name: "again".into(),
        kind: Kind::SQLITE,
        data: random(20_000, 2 * (7 + 4) + 1),
    };
    let snap = fresh.backup(&again, &BackupOptions::default(), &NoProgress).await.unwrap();
    assert_eq!(snap.manifest().stored, 0, "deduplicated against the index it read");
}

/// Above 64 entries a backup no longer rewrites the catalog each time: once every
/// `CATALOG_SLACK` (8) snapshots it lacks. Between rewrites a fresh reader reads the catalog
/// and the few manifests it lacks, and lists every snapshot all the same.
async fn a_large_catalog_is_rewritten_once_it_lacks_a_round_of_manifests(
    store: Arc<dyn ObjectStore>,
) {
    use lifeboat_store::CATALOG_SLACK;
    let counted = FaultyStore::new(store.clone());
    let repo = Repository::init_store(counted.clone(), "t").await.unwrap();
    // Up to 64 snapshots, every backup writes the catalog whole.
    let mut ids = backups(&repo, 64, 1_000).await;
    assert_eq!(catalog_entries(&store).await, sorted(&ids));
    assert_eq!(fresh_listing(&counted).await, (ids.clone(), 1));
    // Past 64, the next CATALOG_SLACK - 1 backups leave it as it was...
    let lacking = backups(&repo, CATALOG_SLACK as u64 - 1, 2_000).await;
    assert_eq!(catalog_entries(&store).await, sorted(&ids), "not rewritten yet");
    ids.extend(&lacking);
    // ...and a fresh reader reads it plus each manifest it lacks, without rewriting it
    // (fewer than a round of requests).
    let (listed, reads) = fresh_listing(&counted).await;
    assert_eq!(listed, ids);
    assert_eq!(reads as usize, 1 + lacking.len(), "the catalog, then each manifest it lacks");
    assert_eq!(catalog_entries(&store).await.len(), 64);
    // The backup that makes it lack CATALOG_SLACK writes it whole again.
    ids.extend(backups(&repo, 1, 3_000).await);
    assert_eq!(catalog_entries(&store).await, sorted(&ids));
    assert_eq!(fresh_listing(&counted).await, (ids.clone(), 1));
    // A reader that finds a round of manifests missing (here the catalog lost them: an old
    // copy written back) writes it whole itself, for the next reader.
    let old = {
        let body = store.get(&Path::from(CATALOG_KEY)).await.unwrap().bytes().await.unwrap();
        let mut entries = decode_catalog(&body).unwrap();
        for id in &ids[ids.len() - CATALOG_SLACK..] {
            entries.remove(id);
        }
        encode_catalog(entries.iter())
    };
    store.put(&Path::from(CATALOG_KEY), PutPayload::from(old)).await.unwrap();
    let (listed, reads) = fresh_listing(&counted).await;
    assert_eq!((listed, reads as usize), (ids.clone(), 1 + CATALOG_SLACK));
    assert_eq!(catalog_entries(&store).await, sorted(&ids));
    assert_eq!(fresh_listing(&counted).await, (ids, 1));
}

/// A handle opened with `list_early` lists `snapshots/` and reads the catalog while the key
/// is derived (or the index read): its first listing makes no request of its own, and lists
/// the same snapshots as one that did not.
async fn an_early_listing_is_read_while_the_key_is_derived(store: Arc<dyn ObjectStore>) {
    let counted = FaultyStore::new(store.clone());
    let password = lifeboat_store::Password::new("early listing");
    let repo = Repository::init_store_with(counted.clone(), "t", Some(&password)).await.unwrap();
    let mut ids = backups(&repo, 6, 40).await;
    for early in [false, true] {
        let found = Repository::discover_in_store(counted.clone(), "t").await.unwrap();
        let found = if early { found.list_early() } else { found };
        let reader = found.open(Some(&password)).await.unwrap();
        let before = counted.gets.load(Ordering::SeqCst);
        let listed: Vec<Digest> =
            reader.snapshots().await.unwrap().iter().map(|s| s.id()).collect();
        let gets = counted.gets.load(Ordering::SeqCst) - before;
        assert_eq!(listed, ids, "early: {early}");
        assert_eq!(gets, u32::from(!early), "early: {early}: reads after the open");
        // A later listing of the same handle lists again, and reads nothing it holds.
        let more = backups(&repo, 1, 50 + u64::from(early)).await;
        let listed: Vec<Digest> =
            reader.snapshots().await.unwrap().iter().map(|s| s.id()).collect();
        ids.extend(more);
        assert_eq!(listed, ids, "early: {early}: a new snapshot is listed");
    }
}

lifeboat_testkit::for_each_store!(
    an_early_listing_is_read_while_the_key_is_derived,
    a_large_catalog_is_rewritten_once_it_lacks_a_round_of_manifests,
    a_fresh_reader_lists_with_one_request,
    a_damaged_or_forged_catalog_changes_nothing,
    a_deferred_index_is_read_only_when_needed,
);
