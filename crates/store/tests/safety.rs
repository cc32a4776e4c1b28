//! Safety snapshots are not backups, and a repository keeps one name to one kind: the catalog
//! rules that stop a restore from handing back the wrong data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use lifeboat_core::{
    Error as CoreError, Kind, MemoryBackup, NoProgress, PRE_RESTORE_TAG, SafetyNet, Snapshot, Tags,
};
use lifeboat_store::format::pack_key;
use lifeboat_store::{BackupOptions, Repository, StoreError};
use lifeboat_testkit::pseudo_random as random;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncReadExt;

fn source(name: &str, kind: Kind, data: Vec<u8>) -> MemoryBackup {
    MemoryBackup { name: name.into(), kind, data }
}

fn safety_tags(restored: &str) -> Tags {
    Tags::from([(PRE_RESTORE_TAG.to_string(), restored.to_string())])
}

async fn read_all(snap: &dyn Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    snap.open().await.unwrap().read_to_end(&mut out).await.unwrap();
    out
}

fn invalid_input(e: &StoreError) -> bool {
    matches!(e, StoreError::Core(CoreError::InvalidInput { .. }))
}

async fn memory_repo() -> Repository {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    Repository::init_store(store, "memory://").await.unwrap()
}

/// After `restore --force`, the safety copy of what was replaced is newer than the backup.
/// `latest` must still be the backup, the next backup's parent too; the safety copy is
/// restorable by its id.
#[tokio::test]
async fn a_safety_snapshot_is_never_latest_nor_a_parent() {
    let repo = memory_repo().await;
    let good = random(300_000, 1);
    let damaged = random(300_000, 2);
    let backup = repo
        .backup(&source("db", Kind::SQLITE, good.clone()), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let safety_id = repo
        .save(
            &source("db", Kind::SQLITE, damaged.clone()),
            "db",
            safety_tags(&backup.id().to_hex()),
        )
        .await
        .unwrap();

    let latest = repo.find("latest", Some("db")).await.unwrap();
    assert_eq!(latest.id(), backup.id(), "latest is the backup, not the safety copy");
    assert_eq!(read_all(&latest).await, good);
    let latest_any = repo.find("latest", None).await.unwrap();
    assert_eq!(latest_any.id(), backup.id());

    let by_id = repo.find(&safety_id.to_hex(), None).await.unwrap();
    assert!(by_id.manifest().is_safety());
    assert_eq!(read_all(&by_id).await, damaged, "a safety snapshot restores by id");

    let next = repo
        .backup(&source("db", Kind::SQLITE, good), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(next.manifest().parent, Some(backup.id()), "the parent is the last backup");
}

#[tokio::test]
async fn latest_of_a_name_with_only_safety_snapshots_is_not_found_and_says_why() {
    let repo = memory_repo().await;
    repo.save(&source("staging", Kind::SQLITE, random(10_000, 3)), "staging", safety_tags("x"))
        .await
        .unwrap();
    let err = repo.find("latest", Some("staging")).await.unwrap_err();
    assert!(matches!(err, StoreError::Core(CoreError::SnapshotNotFound { .. })), "{err}");
    assert!(err.to_string().contains("safety"), "{err}");
}

#[tokio::test]
async fn latest_without_a_name_is_refused_when_several_names_exist() {
    let repo = memory_repo().await;
    for name in ["auth", "billing"] {
        repo.backup(
            &source(name, Kind::SQLITE, random(10_000, 4)),
            &BackupOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
    }
    let err = repo.find("latest", None).await.unwrap_err();
    assert!(invalid_input(&err), "{err}");
    assert!(err.to_string().contains("auth") && err.to_string().contains("billing"), "{err}");
    assert_eq!(repo.find("latest", Some("auth")).await.unwrap().manifest().name, "auth");
}

/// A folder `big` and a database `big/big.db` both default to the name `big`: the second
/// kind is refused instead of sharing `latest` and retention with the first.
#[tokio::test]
async fn one_name_holds_one_kind() {
    let repo = memory_repo().await;
    repo.backup(
        &source("big", Kind::DIR, random(10_000, 5)),
        &BackupOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    let err = repo
        .backup(
            &source("big", Kind::SQLITE, random(10_000, 6)),
            &BackupOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap_err();
    assert!(invalid_input(&err), "{err}");
    assert!(err.to_string().contains("dir"), "the message names the kind in the way: {err}");
    assert_eq!(repo.snapshots().await.unwrap().len(), 1, "nothing was stored");
    // A safety snapshot never blocks a restore over a target that shares a name.
    repo.save(&source("big", Kind::SQLITE, random(10_000, 7)), "big", safety_tags("y"))
        .await
        .unwrap();
}

#[tokio::test]
async fn names_shaped_like_paths_or_empty_are_refused() {
    let repo = memory_repo().await;
    for bad in ["", "..", "/", "/etc/passwd", "a/../b", "line\nbreak", "tab\there", "x/"] {
        let options = BackupOptions { name: Some(bad.into()), ..BackupOptions::default() };
        let err = repo
            .backup(&source("ok", Kind::DIR, random(1000, 8)), &options, &NoProgress)
            .await
            .unwrap_err();
        assert!(invalid_input(&err), "{bad:?}: {err}");
    }
    assert!(repo.snapshots().await.unwrap().is_empty());
    let options = BackupOptions { name: Some("tenants/abc".into()), ..BackupOptions::default() };
    repo.backup(&source("ok", Kind::DIR, random(1000, 9)), &options, &NoProgress).await.unwrap();
}

/// A safety snapshot that deduplicates against a damaged chunk would hold nothing readable;
/// the restore must learn that before it destroys the original.
async fn safety_net_refuses_a_copy_it_cannot_read_back(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let data = random(1 << 20, 10);
    let first = repo
        .backup(&source("app", Kind::DIR, data.clone()), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let loc = repo.locate(&first.manifest().chunks[0]).unwrap();
    let key = pack_key(&loc.pack);
    let mut bytes = store.get(&key).await.unwrap().bytes().await.unwrap().to_vec();
    bytes[(loc.offset + u64::from(loc.length) / 2) as usize] ^= 0x10;
    store.put(&key, PutPayload::from(Bytes::from(bytes))).await.unwrap();

    let err = repo
        .save(&source("app", Kind::DIR, data), "app", safety_tags(&first.id().to_hex()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cannot be read back"), "{text}");
    assert!(text.contains("nothing was replaced"), "{text}");
}

lifeboat_testkit::for_each_store!(safety_net_refuses_a_copy_it_cannot_read_back);
