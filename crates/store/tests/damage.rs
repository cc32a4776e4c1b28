//! A damaged index file costs the snapshots that need it, not the repository; `repair_index`
//! rebuilds it from the packs. Against every store: memory, a local folder, and s3s-fs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use lifeboat_core::Digest;
use lifeboat_core::{Kind, MemoryBackup, NoProgress, Snapshot, Verifier};
use lifeboat_store::format::{
    INDEX_PREFIX, IndexFile, decode_metadata, encode_metadata, index_key,
};
use lifeboat_store::{BackupOptions, Repository, RepositoryVerifier, StoredSnapshot};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncReadExt;

use lifeboat_testkit::pseudo_random as random;

fn source(name: &str, data: Vec<u8>) -> MemoryBackup {
    MemoryBackup { name: name.into(), kind: Kind::DIR, data }
}

async fn read_back(snap: &StoredSnapshot) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut reader = snap.open().await.map_err(|e| e.to_string())?;
    reader.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
    Ok(out)
}

async fn index_keys(store: &Arc<dyn ObjectStore>) -> HashSet<Path> {
    use futures::TryStreamExt;
    store.list(Some(&Path::from(INDEX_PREFIX))).map_ok(|m| m.location).try_collect().await.unwrap()
}

/// Two snapshots with nothing in common, each with its own index file; returns the key of
/// the second one's index file.
async fn two_snapshots(
    store: &Arc<dyn ObjectStore>,
) -> (Repository, MemoryBackup, MemoryBackup, Path) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let a = source("a", random(700_000, 1));
    let b = source("b", random(700_000, 2));
    repo.backup(&a, &BackupOptions::default(), &NoProgress).await.unwrap();
    let before = index_keys(store).await;
    repo.backup(&b, &BackupOptions::default(), &NoProgress).await.unwrap();
    let after = index_keys(store).await;
    let mut new: Vec<Path> = after.difference(&before).cloned().collect();
    assert_eq!(new.len(), 1, "one index file per backup");
    (repo, a, b, new.pop().unwrap())
}

async fn snapshot_named(repo: &Repository, name: &str) -> StoredSnapshot {
    repo.find("latest", Some(name)).await.unwrap()
}

/// Everything not touched by the damage keeps working; what is touched is reported; repair
/// makes it whole again.
async fn survive_and_repair(store: Arc<dyn ObjectStore>, damaged: Bytes) {
    let (_, a, b, key) = two_snapshots(&store).await;
    store.put(&key, PutPayload::from(damaged)).await.unwrap();

    let repo = Repository::open_store(store.clone(), "t").await.expect("open with a bad index");
    assert_eq!(repo.damaged_indexes().len(), 1);
    assert_eq!(repo.damaged_indexes()[0].key, key.to_string());
    assert_eq!(repo.snapshots().await.unwrap().len(), 2, "both snapshots still listed");
    let snap_a = snapshot_named(&repo, "a").await;
    assert_eq!(read_back(&snap_a).await.unwrap(), a.data, "an unaffected snapshot restores");
    let snap_b = snapshot_named(&repo, "b").await;
    let err = read_back(&snap_b).await.unwrap_err();
    assert!(err.contains("not in any index"), "{err}");

    let verifier = RepositoryVerifier::new(repo.clone(), false);
    assert!(verifier.verify(&snap_a).await.unwrap().ok());
    assert!(!verifier.verify(&snap_b).await.unwrap().ok(), "the affected snapshot fails");
    let index = verifier.check_index(None).await.unwrap();
    assert!(!index.ok());
    let failures = index.failures().join("; ");
    assert!(failures.contains(key.as_ref()), "verify names the damaged index: {failures}");

    // Backups keep working (one of b's data again is the other test below: it rewrites the
    // very same index file, which heals the damage by itself).
    let c = source("c", random(300_000, 3));
    let c_snap = repo.backup(&c, &BackupOptions::default(), &NoProgress).await.unwrap();
    assert_eq!(read_back(&c_snap).await.unwrap(), c.data);

    // A dry run changes nothing.
    let dry = repo.repair_index(true).await.unwrap();
    assert_eq!(dry.damaged_indexes.len(), 1);
    assert!(dry.packs_indexed >= 1, "{dry:?}");
    assert!(index_keys(&store).await.contains(&key));

    let report = repo.repair_index(false).await.unwrap();
    assert_eq!(report.damaged_indexes.len(), 1, "{report:?}");
    assert!(report.damaged_packs.is_empty(), "{report:?}");
    assert!(report.new_index.is_some());
    // Rebuilt from the same pack, the new file is the lost original: same bytes, same key.
    assert_eq!(report.new_index.as_deref(), Some(key.as_ref()), "{report:?}");
    let body = store.get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(Digest::of(&body).to_hex(), key.filename().unwrap(), "the damage is replaced");
    let repo = Repository::open_store(store.clone(), "t").await.unwrap();
    assert!(repo.damaged_indexes().is_empty());
    let verifier = RepositoryVerifier::new(repo.clone(), true);
    assert!(verifier.check_index(None).await.unwrap().ok());
    for snap in repo.snapshots().await.unwrap() {
        let report = verifier.verify(&snap).await.unwrap();
        assert!(report.ok(), "{}: {:?}", snap.id(), report.failures());
    }
    assert_eq!(read_back(&snapshot_named(&repo, "b").await).await.unwrap(), b.data);
    assert!(repo.repair_index(false).await.unwrap().clean(), "a second repair finds nothing");
}

async fn empty_index_file(store: Arc<dyn ObjectStore>) {
    survive_and_repair(store, Bytes::new()).await;
}

async fn garbage_index_file(store: Arc<dyn ObjectStore>) {
    survive_and_repair(store, Bytes::from_static(b"\x28\xb5\x2f\xfd not really zstd")).await;
}

/// An index file whose offsets were changed after it was written (a bit flip that still
/// parses): it no longer hashes to its key.
fn shifted(body: &[u8], key: &Path) -> Bytes {
    let mut file: IndexFile = decode_metadata(key.as_ref(), body).unwrap();
    for blob in &mut file.packs[0].blobs {
        blob.offset += 1;
    }
    Bytes::from(encode_metadata(&file, "test").unwrap())
}

async fn flipped_offset_does_not_poison_later_backups(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let data = source("a", random(700_000, 5));
    repo.backup(&data, &BackupOptions::default(), &NoProgress).await.unwrap();
    let key = index_keys(&store).await.into_iter().next().unwrap();
    let body = store.get(&key).await.unwrap().bytes().await.unwrap();
    store.put(&key, PutPayload::from(shifted(&body, &key))).await.unwrap();

    let repo = Repository::open_store(store.clone(), "t").await.unwrap();
    let verifier = RepositoryVerifier::new(repo.clone(), false);
    let index = verifier.check_index(None).await.unwrap();
    assert!(index.failures().join(" ").contains(key.as_ref()), "{:?}", index.failures());
    let again = repo.backup(&data, &BackupOptions::default(), &NoProgress).await.unwrap();
    assert!(again.manifest().stored > 0, "deduplicated against entries nobody can trust");
    assert_eq!(
        read_back(&again).await.expect("a backup after the damage reads back"),
        data.data,
        "the new snapshot must not rely on the damaged entries"
    );
}

/// An index file lifeboat would accept (it hashes to its key) whose entries disagree with the
/// pack's own trailer: verify without --read-data notices.
async fn verify_checks_the_index_against_pack_trailers(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let data = source("a", random(700_000, 6));
    let snap = repo.backup(&data, &BackupOptions::default(), &NoProgress).await.unwrap();
    let verifier = RepositoryVerifier::new(repo.clone(), false);
    assert!(verifier.check_index(None).await.unwrap().ok());

    let key = index_keys(&store).await.into_iter().next().unwrap();
    let body = store.get(&key).await.unwrap().bytes().await.unwrap();
    let mut file: IndexFile = decode_metadata(key.as_ref(), &body).unwrap();
    file.packs[0].blobs[0].length -= 1;
    let body = encode_metadata(&file, "test").unwrap();
    store.put(&index_key(&Digest::of(&body)), PutPayload::from(body)).await.unwrap();
    store.delete(&key).await.unwrap();

    let repo = Repository::open_store(store.clone(), "t").await.unwrap();
    assert!(repo.damaged_indexes().is_empty(), "the file itself is sound");
    let verifier = RepositoryVerifier::new(repo.clone(), false);
    let report = verifier.check_index(None).await.unwrap();
    let failures = report.failures().join(" ");
    assert!(failures.contains("index agrees with packs"), "{failures}");
    assert!(failures.contains(&file.packs[0].blobs[0].id.short()), "{failures}");
    // Limited to the packs of one snapshot, it still sees it.
    let packs: HashSet<Digest> = file.packs.iter().map(|p| p.id).collect();
    assert!(!verifier.check_index(Some(&packs)).await.unwrap().ok());
    drop(snap);
}

/// A pack that no longer hashes to its key is reported by repair and not indexed.
async fn repair_skips_damaged_packs(store: Arc<dyn ObjectStore>) {
    let (repo, a, _, key) = two_snapshots(&store).await;
    let body = store.get(&key).await.unwrap().bytes().await.unwrap();
    let file: IndexFile = decode_metadata(key.as_ref(), &body).unwrap();
    store.put(&key, PutPayload::from(Bytes::new())).await.unwrap();
    let pack = lifeboat_store::format::pack_key(&file.packs[0].id);
    let mut bytes = store.get(&pack).await.unwrap().bytes().await.unwrap().to_vec();
    bytes[10] ^= 0x40;
    store.put(&pack, PutPayload::from(bytes)).await.unwrap();

    let report = repo.repair_index(false).await.unwrap();
    assert_eq!(report.damaged_packs.len(), 1, "{report:?}");
    assert_eq!(report.damaged_packs[0].key, pack.to_string());
    let repo = Repository::open_store(store.clone(), "t").await.unwrap();
    assert!(repo.damaged_indexes().is_empty());
    assert!(!repo.index().values().any(|l| l.pack == file.packs[0].id), "damaged pack indexed");
    assert_eq!(read_back(&snapshot_named(&repo, "a").await).await.unwrap(), a.data);
}

/// A reader that loaded the index before a prune repacked its chunks and deleted their old
/// pack finds them again instead of reporting them missing.
async fn a_reader_with_a_stale_index_follows_a_prune(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let keep = random(1 << 20, 4);
    let mut both = keep.clone();
    both.extend(random(6 << 20, 5));
    let mixed = source("mixed", both);
    let big = repo.backup(&mixed, &BackupOptions::default(), &NoProgress).await.unwrap();
    repo.backup(&source("small", keep.clone()), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();

    let reader = Repository::open_store(store.clone(), "t").await.unwrap();
    let small = snapshot_named(&reader, "small").await;
    repo.forget(&[big.id()]).await.unwrap();
    let options =
        lifeboat_store::PruneOptions { grace: std::time::Duration::ZERO, ..Default::default() };
    let report = repo.prune(&options).await.unwrap();
    assert!(report.repacked > 0 && report.deleted > 0, "{report:?}");
    assert_eq!(read_back(&small).await.expect("read after a concurrent prune"), keep);
}

lifeboat_testkit::for_each_store!(
    a_reader_with_a_stale_index_follows_a_prune,
    empty_index_file,
    garbage_index_file,
    flipped_offset_does_not_poison_later_backups,
    verify_checks_the_index_against_pack_trailers,
    repair_skips_damaged_packs,
);
