//! Leases and prune, against every store: memory, a local folder, and s3s-fs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lifeboat_core::{ChunkId, Kind, MemoryBackup, NoProgress, Snapshot, Verifier};
use lifeboat_store::format::DATA_PREFIX;
use lifeboat_store::{
    Access, BackupOptions, Password, PruneOptions, Repository, RepositoryVerifier, StoreError,
    StoredSnapshot,
};
use object_store::{ObjectStore, ObjectStoreExt};

use lifeboat_testkit::pseudo_random as random;

fn source(name: &str, data: Vec<u8>) -> MemoryBackup {
    MemoryBackup { name: name.into(), kind: Kind::DIR, data }
}

fn now_prune() -> PruneOptions {
    PruneOptions { grace: Duration::ZERO, ..Default::default() }
}

async fn verify_all(repo: &Repository) {
    let verifier = RepositoryVerifier::new(repo.clone(), true);
    for snap in repo.snapshots().await.unwrap() {
        let report = verifier.verify(&snap).await.unwrap();
        assert!(report.ok(), "{}: {:?}", snap.id(), report.failures());
    }
}

async fn lease_is_exclusive(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store, "t").await.unwrap();
    let attempts = (0..8).map(|_| {
        let repo = repo.clone();
        tokio::spawn(async move { repo.acquire_maintenance("test", Duration::from_secs(60)).await })
    });
    let mut won = Vec::new();
    for a in attempts {
        match a.await.unwrap() {
            Ok(lease) => won.push(lease),
            Err(StoreError::Locked { holder }) => assert_eq!(holder.operation, "test"),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won.len(), 1, "{} processes hold the maintenance lease at once", won.len());
    let lease = won.pop().unwrap();
    let err = repo.acquire_maintenance("second", Duration::from_secs(60)).await.unwrap_err();
    assert!(err.to_string().contains("locked by test"), "{err}");
    lease.release().await.unwrap();
    let again = repo.acquire_maintenance("after release", Duration::from_secs(60)).await.unwrap();
    again.release().await.unwrap();
}

async fn expired_lease_is_taken_over(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store, "t").await.unwrap();
    let mut dead =
        repo.acquire_maintenance("crashed prune", Duration::from_millis(300)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taker = repo.acquire_maintenance("next prune", Duration::from_secs(60)).await.unwrap();
    assert!(
        matches!(dead.renew().await, Err(StoreError::LeaseLost { .. })),
        "a taken-over lease renewed"
    );
    // A live lease is reported with its holder; unlock clears it by hand.
    let err = repo.acquire_maintenance("third", Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }));
    assert_eq!(repo.unlock().await.unwrap().len(), 1);
    repo.acquire_maintenance("after unlock", Duration::from_secs(60))
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    drop(taker);
}

/// A live lease whose holder was a process of this host and boot that is gone (a `kill -9`ed
/// prune) is taken over at once; another host's, or an older lease without a boot id, still
/// blocks until it expires. Before, every live lease blocked for its TTL (120 s).
async fn a_dead_local_holders_lease_is_taken_over_at_once(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store, "t").await.unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let host = lifeboat_store::host_name();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("this test needs /proc/sys/kernel/random/boot_id")
        .trim()
        .to_string();
    let lease = |generation: u64, host: &str, boot: Option<&str>| {
        let now = chrono::Utc::now();
        let mut body = serde_json::json!({
            "owner": format!("killed{generation}"), "host": host, "pid": dead,
            "operation": "prune", "acquired": now, "expires": now + chrono::Duration::seconds(120),
        });
        if let Some(boot) = boot {
            body["boot_id"] = boot.into();
        }
        (
            object_store::path::Path::from(format!("locks/maintenance/{generation:020}")),
            Bytes::from(serde_json::to_vec(&body).unwrap()),
        )
    };
    for (holder, boot) in [("another-host", Some(boot.as_str())), (host.as_str(), None)] {
        let (key, body) = lease(1, holder, boot);
        repo.put_bytes(&key, body).await.unwrap();
        let err = repo.acquire_maintenance("next prune", Duration::from_secs(60)).await;
        assert!(matches!(err, Err(StoreError::Locked { .. })), "{holder} {boot:?}: {err:?}");
        repo.unlock().await.unwrap();
    }
    let (key, body) = lease(7, &host, Some(&boot));
    repo.put_bytes(&key, body).await.unwrap();
    let started = std::time::Instant::now();
    let taken = repo.acquire_maintenance("next prune", Duration::from_secs(60)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(taken.info().boot_id.as_deref(), Some(boot.as_str()));
    // Taken by a live process: it blocks the next one.
    let err = repo.acquire_maintenance("third", Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    taken.release().await.unwrap();
}

/// A backup killed on this host leaves its shared lease behind, live for its TTL. Prune no
/// longer waits for it (its process is known gone) and removes it; a backup lease of another
/// host still holds the sweep up.
async fn a_killed_backups_lease_does_not_hold_up_prune(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store, "t").await.unwrap();
    let old = repo
        .backup(&source("x", random(2 << 20, 9)), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    repo.forget(&[old.id()]).await.unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("this test needs /proc/sys/kernel/random/boot_id")
        .trim()
        .to_string();
    let put_lease = |owner: &str, host: String| {
        let now = chrono::Utc::now();
        let body = serde_json::json!({
            "owner": owner, "host": host, "pid": dead, "boot_id": boot,
            "operation": "backup x", "acquired": now - chrono::Duration::minutes(5),
            "expires": now + chrono::Duration::minutes(5),
        });
        let key = object_store::path::Path::from(format!("locks/backups/{owner}"));
        let repo = repo.clone();
        async move {
            repo.put_bytes(&key, Bytes::from(serde_json::to_vec(&body).unwrap())).await.unwrap()
        }
    };
    put_lease("elsewhere", "another-host".into()).await;
    let report = repo.prune(&now_prune()).await.unwrap();
    assert_eq!(report.deleted, 0, "deleted under another host's running backup: {report:?}");
    assert!(report.waiting.iter().any(|w| w.contains("another-host")), "{:?}", report.waiting);
    repo.delete_key(&object_store::path::Path::from("locks/backups/elsewhere")).await.unwrap();

    put_lease("killed", lifeboat_store::host_name()).await;
    let report = repo.prune(&now_prune()).await.unwrap();
    assert!(report.deleted > 0, "a killed backup's lease held up the prune: {report:?}");
    assert!(repo.backup_leases().await.unwrap().is_empty(), "the dead lease is still there");
}

async fn prune_frees_only_unreferenced_data(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store, "t").await.unwrap();
    let a = repo
        .backup(&source("a", random(6 << 20, 1)), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let b = repo
        .backup(&source("b", random(3 << 20, 2)), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let (before, _) = repo.usage(DATA_PREFIX).await.unwrap();

    // Nothing unreferenced yet: prune deletes nothing.
    let report = repo.prune(&now_prune()).await.unwrap();
    assert_eq!(report.deleted, 0);
    assert_eq!(report.marked, 0);

    repo.forget(&[a.id()]).await.unwrap();
    let dry = repo.prune(&PruneOptions { dry_run: true, ..now_prune() }).await.unwrap();
    assert!(dry.marked > 0);
    assert_eq!(repo.usage(DATA_PREFIX).await.unwrap().0, before, "a dry run deleted data");

    let report = repo.prune(&now_prune()).await.unwrap();
    assert!(report.deleted > 0 && report.freed_bytes > 0, "{report:?}");
    let (after, _) = repo.usage(DATA_PREFIX).await.unwrap();
    assert!(after < before, "{after} >= {before}");
    assert!(after > 0);
    verify_all(&repo).await;
    let mut back = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut b.open().await.unwrap(), &mut back).await.unwrap();
    assert_eq!(back, random(3 << 20, 2));

    // Applying it again finds nothing more; a fresh handle sees a consistent repository.
    let again = repo.prune(&now_prune()).await.unwrap();
    assert_eq!((again.marked, again.deleted), (0, 0), "{again:?}");
    verify_all(&Repository::open_store(repo.store().clone(), "t").await.unwrap()).await;
}

async fn sweep_waits_for_running_backups_and_revives(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let old = repo
        .backup(&source("x", random(4 << 20, 3)), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let chunks = old.manifest().chunks.clone();
    repo.forget(&[old.id()]).await.unwrap();

    // A backup that started before the prune (it has loaded the index with x's packs) is
    // still running: the sweep must wait for it.
    let in_flight = repo.start_backup_lease("backup x", Duration::from_secs(60)).await.unwrap();
    let report = repo.prune(&now_prune()).await.unwrap();
    assert!(report.marked > 0);
    assert_eq!(report.deleted, 0, "deleted under a running backup: {report:?}");
    assert!(report.waiting.iter().any(|w| w.contains("running backups")), "{:?}", report.waiting);

    // That backup deduplicated against x's chunks and now writes its manifest.
    let mut manifest = old.manifest().clone();
    manifest.time = chrono::Utc::now();
    manifest.chunks = chunks;
    let body = manifest.to_bytes().unwrap();
    let id = lifeboat_core::Digest::of(&body);
    repo.create_bytes(&lifeboat_store::format::snapshot_key(&id), Bytes::from(body)).await.unwrap();
    in_flight.end().await;

    // Its chunks left the index with the mark, yet it restores right away: reads fall back
    // to the pending mark, whose packs still exist.
    let meanwhile = Repository::open_store(store.clone(), "t").await.unwrap();
    let snap = meanwhile.load_snapshot(id).await.unwrap();
    let mut back = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut snap.open().await.unwrap(), &mut back).await.unwrap();
    assert_eq!(back, random(4 << 20, 3));

    // The next prune revives the packs the new snapshot needs instead of deleting them.
    let report = repo.prune(&now_prune()).await.unwrap();
    assert!(report.revived > 0, "{report:?}");
    assert_eq!(report.deleted, 0, "{report:?}");
    let fresh = Repository::open_store(store, "t").await.unwrap();
    verify_all(&fresh).await;
    assert_eq!(fresh.snapshots().await.unwrap().len(), 1);
}

async fn repacks_mostly_garbage_packs(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store, "t").await.unwrap();
    // One backup holds both a small kept part and a large forgotten part in the same packs.
    let keep = random(1 << 20, 4);
    let mut both = keep.clone();
    both.extend(random(6 << 20, 5));
    let big =
        repo.backup(&source("mixed", both), &BackupOptions::default(), &NoProgress).await.unwrap();
    let small = repo
        .backup(&source("small", keep.clone()), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    repo.forget(&[big.id()]).await.unwrap();
    let (before, _) = repo.usage(DATA_PREFIX).await.unwrap();
    let report = repo.prune(&now_prune()).await.unwrap();
    assert!(report.repacked > 0, "{report:?}");
    let (after, _) = repo.usage(DATA_PREFIX).await.unwrap();
    assert!(after < before / 2, "repacking freed too little: {before} -> {after}");
    verify_all(&repo).await;
    let mut back = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut small.open().await.unwrap(), &mut back)
        .await
        .unwrap();
    assert_eq!(back, keep);
}

/// `data` with one byte changed every `step` bytes from `from` on: scattered edits that touch
/// every chunk, as updates spread over a database do.
fn edited(data: &[u8], from: usize, step: usize, salt: u8) -> Vec<u8> {
    let mut out = data.to_vec();
    for i in (from..out.len()).step_by(step) {
        out[i] ^= salt;
    }
    out
}

async fn read(snap: &dyn Snapshot) -> Vec<u8> {
    let mut back = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut snap.open().await.unwrap(), &mut back).await.unwrap();
    back
}

fn deltas(repo: &Repository, snap: &StoredSnapshot) -> Vec<(ChunkId, ChunkId)> {
    snap.manifest()
        .chunks
        .iter()
        .filter_map(|c| repo.locate(c).and_then(|l| l.base).map(|base| (*c, base)))
        .collect()
}

async fn deltas_store_scattered_edits_and_keep_their_bases(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let a = random(3 << 20, 11);
    let mut a_and_b = a.clone();
    a_and_b.extend(random(4 << 20, 12));
    let first =
        repo.backup(&source("db", a_and_b), &BackupOptions::default(), &NoProgress).await.unwrap();
    let a2 = edited(&a, 1000, 40_000, 0x5a);
    let second = repo
        .backup(&source("db", a2.clone()), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let made = deltas(&repo, &second);
    assert!(
        made.len() * 2 > second.manifest().chunks.len(),
        "most changed chunks are deltas: {}",
        made.len()
    );
    assert!(
        second.manifest().stored * 20 < first.manifest().stored,
        "scattered edits stored {} of {}",
        second.manifest().stored,
        first.manifest().stored
    );
    assert_eq!(read(&second).await, a2);

    // The parent goes; its chunks that deltas are made against stay, the rest is freed.
    repo.forget(&[first.id()]).await.unwrap();
    let report = repo
        .prune(&PruneOptions { grace: Duration::ZERO, repack_below: 0.9, dry_run: false })
        .await
        .unwrap();
    assert!(report.repacked > 0, "the unreferenced part is repacked away: {report:?}");
    let repo = Repository::open_store(store.clone(), "t").await.unwrap();
    verify_all(&repo).await;
    let second = repo.load_snapshot(second.id()).await.unwrap();
    assert_eq!(read(&second).await, a2, "deltas read back after their parent was pruned");

    // A change of a delta is made against the chunk stored whole, never a chain.
    let a3 = edited(&a2, 20_000, 40_000, 0x33);
    let third = repo
        .backup(&source("db", a3.clone()), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let made = deltas(&repo, &third);
    assert!(!made.is_empty());
    for (_, base) in &made {
        assert_eq!(repo.locate(base).unwrap().base, None, "base {base} is whole");
    }
    assert_eq!(read(&third).await, a3);

    // A damaged base fails the read of its delta, naming the chunk, and verify says so.
    let (delta, base) = made[0];
    let loc = repo.locate(&base).unwrap();
    let key = lifeboat_store::format::pack_key(&loc.pack);
    let mut bytes = store.get(&key).await.unwrap().bytes().await.unwrap().to_vec();
    bytes[(loc.offset + u64::from(loc.length) / 2) as usize] ^= 0x40;
    store.put(&key, object_store::PutPayload::from(Bytes::from(bytes))).await.unwrap();
    let err = lifeboat_store::read_chunk(&repo, delta).await.unwrap_err().to_string();
    assert!(err.contains(&base.to_hex()), "the error names the damaged base: {err}");
    let report = RepositoryVerifier::new(repo.clone(), true).verify(&third).await.unwrap();
    assert!(!report.ok(), "verify notices a damaged base");
}

/// Rows of a table dump: an increasing key, a little data, padding.
fn table_rows(n: u32) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("{}\t{}\t{}\t{:60}\n", 1_000_000 + i, i % 97, i * 7, "").into_bytes())
        .collect()
}

async fn deleted_rows_are_stored_as_patches(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let rows = table_rows(100_000);
    let first = repo
        .backup(&source("tbl", rows.clone()), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    // One row in 500 gone (moved elsewhere by an UPDATE, say), all over the table.
    let row = rows.len() / 100_000;
    let kept: Vec<u8> = rows
        .chunks(row)
        .enumerate()
        .filter(|(i, _)| i % 500 != 250)
        .flat_map(|(_, r)| r.iter().copied())
        .collect();
    let second = repo
        .backup(&source("tbl", kept.clone()), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let made = deltas(&repo, &second);
    assert_eq!(made.len(), second.manifest().chunks.len(), "every chunk changed and is a delta");
    for (chunk, _) in &made {
        let loc = repo.locate(chunk).unwrap();
        let key = lifeboat_store::format::pack_key(&loc.pack);
        let blob = store.get_range(&key, loc.offset..loc.offset + 4).await.unwrap();
        assert!(lifeboat_codec::patch::is_patch(&blob), "chunk {chunk} is a patch");
    }
    // 200 deleted rows cost a few bytes each.
    assert!(
        second.manifest().stored < 2_000,
        "stored {} for 200 deleted rows",
        second.manifest().stored
    );
    assert!(first.manifest().stored > 20 * second.manifest().stored);
    assert_eq!(read(&second).await, kept);
    let report = RepositoryVerifier::new(repo.clone(), true).verify(&second).await.unwrap();
    assert!(report.ok(), "every byte of the patched chunks checks: {report:?}");
}

async fn listings_read_each_manifest_once(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let options = BackupOptions::default();
    let a = repo.backup(&source("a", random(100_000, 1)), &options, &NoProgress).await.unwrap();
    assert_eq!(repo.snapshots().await.unwrap().len(), 1);
    // Damage the stored manifest. This process lists it from what it read before (a manifest
    // never changes: its id is its digest); a fresh reader, and loading it by id, see the damage.
    let key = lifeboat_store::format::snapshot_key(&a.id());
    store.put(&key, object_store::PutPayload::from(Bytes::from_static(b"garbage"))).await.unwrap();
    let listed = repo.snapshots().await.unwrap();
    assert_eq!((listed[0].id(), listed[0].manifest().sha256), (a.id(), a.manifest().sha256));
    // A fresh reader lists it from the catalog the backup wrote: a copy checked against the
    // id, so the listing is still right. Without the catalog it reads the damaged object.
    let fresh = Repository::open_store(store.clone(), "t").await.unwrap();
    let listed = fresh.snapshots().await.unwrap();
    assert_eq!((listed[0].id(), listed[0].manifest().sha256), (a.id(), a.manifest().sha256));
    store
        .delete(&object_store::path::Path::from(lifeboat_store::format::CATALOG_KEY))
        .await
        .unwrap();
    let fresh = Repository::open_store(store.clone(), "t").await.unwrap();
    assert!(fresh.snapshots().await.is_err(), "a fresh reader lists the damaged manifest");
    assert!(repo.load_snapshot(a.id()).await.is_err(), "loading by id reads the store");
    // Forgotten, by this process or another, it leaves the listing.
    store.delete(&key).await.unwrap();
    assert!(repo.snapshots().await.unwrap().is_empty());
}

async fn prune_merges_many_index_files(store: Arc<dyn ObjectStore>) {
    // Write-only hosts merge nothing (they delete nothing): their backups leave one index
    // file each, for prune to merge.
    let password = Password::new("prune merges");
    let repo = Repository::init_store_with(store.clone(), "t", Some(&password)).await.unwrap();
    let (_, key) = repo.add_key_file(Access::WriteOnly).await.unwrap();
    let key = Password::from_key_file("host.key", key.0.as_bytes()).unwrap();
    let host = Repository::open_store_with(store.clone(), "t", Some(&key)).await.unwrap();
    let mut snaps = Vec::new();
    for n in 0..(lifeboat_store::MERGE_INDEX_FILES_ABOVE as u64 + 4) {
        let many = source("many", random(50_000, 2 * n + 101));
        let id = host.backup(&many, &BackupOptions::default(), &NoProgress).await.unwrap().id();
        snaps.push(repo.load_snapshot(id).await.unwrap());
    }
    let files = repo.index_files().await.unwrap().len();
    assert!(files > lifeboat_store::MERGE_INDEX_FILES_ABOVE, "one index file per backup: {files}");
    let dry = repo.prune(&PruneOptions { dry_run: true, ..now_prune() }).await.unwrap();
    assert_eq!(dry.index_files_merged, files);
    assert_eq!(repo.index_files().await.unwrap().len(), files, "a dry run changes nothing");
    let report = repo.prune(&now_prune()).await.unwrap();
    assert_eq!(report.index_files_merged, files);
    let fresh = Repository::open_store_with(store, "t", Some(&password)).await.unwrap();
    assert_eq!(fresh.index_files().await.unwrap().len(), 1);
    verify_all(&fresh).await;
    for snap in &snaps {
        assert_eq!(read(&fresh.load_snapshot(snap.id()).await.unwrap()).await, read(snap).await);
    }
}

/// A backup that read more than MERGE_INDEX_FILES_ABOVE index files merges them into one,
/// so a fleet's repository never makes every open read one file per backup; a prune marking
/// and sweeping meanwhile loses nothing.
async fn backups_merge_a_fragmented_index(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let limit = lifeboat_store::MERGE_INDEX_FILES_ABOVE;
    let mut snaps = Vec::new();
    let mut most = 0;
    for n in 0..(2 * limit as u64 + 6) {
        let data = random(30_000, 2 * n + 501);
        let fleet = source("fleet", data);
        snaps.push(repo.backup(&fleet, &BackupOptions::default(), &NoProgress).await.unwrap());
        let files = repo.index_files().await.unwrap().len();
        most = most.max(files);
        // Forget and prune now and then: the merges run beside marks and sweeps.
        if n % 7 == 6 {
            repo.forget(&[snaps.remove(0).id()]).await.unwrap();
            repo.prune(&now_prune()).await.unwrap();
        }
    }
    assert!(most <= limit + 1, "at most {} index files at any time, saw {most}", limit + 1);
    assert!(most > 2, "the test made index files pile up: {most}");
    let fresh = Repository::open_store(store, "t").await.unwrap();
    verify_all(&fresh).await;
    for (n, snap) in snaps.iter().enumerate() {
        let stored = fresh.load_snapshot(snap.id()).await.unwrap();
        assert_eq!(read(&stored).await, read(snap).await, "snapshot {n}");
    }
}

/// Opening the repository (which reads the whole index) while a backup merges a fragmented
/// index never fails: the merge deletes the old files one by one after writing the merged
/// one, and a reader that finds a listed file gone reads the index again after a pause.
/// (A `wal-push` beside a base backup failed this way once in the PITR bench.)
async fn opening_while_a_backup_merges_the_index_never_fails(store: Arc<dyn ObjectStore>) {
    let password = Password::new("merge under readers");
    let repo = Repository::init_store_with(store.clone(), "t", Some(&password)).await.unwrap();
    let (_, key) = repo.add_key_file(Access::WriteOnly).await.unwrap();
    let key = Password::from_key_file("host.key", key.0.as_bytes()).unwrap();
    let host = Repository::open_store_with(store.clone(), "t", Some(&key)).await.unwrap();
    // Write-only backups leave one index file each.
    for n in 0..(2 * lifeboat_store::MERGE_INDEX_FILES_ABOVE as u64) {
        let many = source("many", random(20_000, 3 * n + 7));
        host.backup(&many, &BackupOptions::default(), &NoProgress).await.unwrap();
    }
    let before = repo.index_files().await.unwrap().len();
    assert!(before > lifeboat_store::MERGE_INDEX_FILES_ABOVE, "{before} index files");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, stop, password) = (store.clone(), stop.clone(), password.clone());
            tokio::spawn(async move {
                let mut opened = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) || opened == 0 {
                    let fresh = Repository::open_store_with(store.clone(), "t", Some(&password))
                        .await
                        .unwrap_or_else(|e| panic!("an open beside the merge failed: {e}"));
                    assert!(!fresh.index().is_empty());
                    opened += 1;
                }
                opened
            })
        })
        .collect();
    // A backup with the full key reads every file, and merges them.
    let merging = Repository::open_store_with(store.clone(), "t", Some(&password)).await.unwrap();
    merging
        .backup(&source("merge", random(20_000, 999)), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for reader in readers {
        assert!(reader.await.unwrap() > 0);
    }
    let after = repo.index_files().await.unwrap().len();
    assert!(after < before, "the backup merged the index: {before} -> {after} files");
}

lifeboat_testkit::for_each_store!(
    opening_while_a_backup_merges_the_index_never_fails,
    prune_merges_many_index_files,
    backups_merge_a_fragmented_index,
    lease_is_exclusive,
    expired_lease_is_taken_over,
    a_dead_local_holders_lease_is_taken_over_at_once,
    a_killed_backups_lease_does_not_hold_up_prune,
    prune_frees_only_unreferenced_data,
    sweep_waits_for_running_backups_and_revives,
    repacks_mostly_garbage_packs,
    deltas_store_scattered_edits_and_keep_their_bases,
    deleted_rows_are_stored_as_patches,
    listings_read_each_manifest_once,
);
