//! Write-only keys and key files (#15), against every store: memory, a local folder, and
//! s3s-fs. A write-only host backs up and deduplicates without ever asking the store for
//! data or manifests, or to delete anything; what it writes only a full key reads back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use futures::StreamExt;
use lifeboat_core::{Kind, MemoryBackup, NoProgress, Snapshot, Verifier};
use lifeboat_store::{
    Access, BackupOptions, Password, PruneOptions, Repository, RepositoryVerifier, StoreError,
    read_chunk,
};
use lifeboat_testkit::WriteOnlyPolicy;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncReadExt;

fn password() -> Password {
    Password::new("correct horse battery staple")
}

fn source(name: &str, data: Vec<u8>) -> MemoryBackup {
    MemoryBackup { name: name.into(), kind: Kind::DIR, data }
}

async fn backup(
    repo: &Repository,
    name: &str,
    data: Vec<u8>,
) -> Result<lifeboat_store::StoredSnapshot, StoreError> {
    repo.backup(&source(name, data), &BackupOptions::default(), &NoProgress).await
}

async fn read_back(snap: &impl Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    snap.open().await.unwrap().read_to_end(&mut out).await.unwrap();
    out
}

fn write_only_refusal(err: StoreError) -> String {
    assert!(matches!(err, StoreError::WriteOnly { .. }), "{err}");
    let line = err.to_string();
    assert!(line.contains("write-only"), "{line}");
    assert!(err.hint().is_some_and(|h| h.contains("full key")), "{:?}", err.hint());
    line
}

async fn a_write_only_host_backs_up_and_reads_nothing(store: Arc<dyn ObjectStore>) {
    let full = Repository::init_store_with(store.clone(), "t", Some(&password())).await.unwrap();
    let shared = lifeboat_testkit::pseudo_random(1_200_000, 11);
    let first = backup(&full, "app", shared.clone()).await.unwrap();
    let (slot, text) = full.add_key_file(Access::WriteOnly).await.unwrap();
    let key = Password::from_key_file("host.key", text.0.as_bytes()).unwrap();
    assert_eq!(key.access(), Access::WriteOnly);

    // The host, behind the write-only bucket policy.
    let policy = WriteOnlyPolicy::new(store.clone());
    let host = Repository::open_store_with(policy.clone(), "t", Some(&key)).await.unwrap();
    assert!(host.is_write_only() && host.is_encrypted());
    // Half of its data is what the full key stored already: deduplicated against it.
    let mut data = shared[..600_000].to_vec();
    data.extend(lifeboat_testkit::pseudo_random(600_000, 12));
    let a = backup(&host, "host-db", data.clone()).await.unwrap();
    assert!(
        a.manifest().stored < 800_000,
        "deduplicated against the repository: {}",
        a.manifest().stored
    );
    let b = backup(&host, "host-db", data.clone()).await.unwrap();
    assert_eq!(b.manifest().stored, 0, "a second backup stores nothing new");

    // The host archives WAL behind the same policy (wal/ allowed): a retry is told from other
    // bytes by the entry's clear tag; reading it back needs a full key.
    let segment = bytes::Bytes::from(lifeboat_testkit::pseudo_random(300_000, 13));
    let name = "000000010000000000000007";
    assert!(matches!(
        host.wal_push("db", name, segment.clone()).await.unwrap(),
        lifeboat_store::WalPushed::Stored { .. }
    ));
    assert_eq!(
        host.wal_push("db", name, segment.clone()).await.unwrap(),
        lifeboat_store::WalPushed::AlreadyArchived
    );
    let other = bytes::Bytes::from(lifeboat_testkit::pseudo_random(300_000, 14));
    let conflict = host.wal_push("db", name, other).await.unwrap_err();
    assert!(matches!(conflict, lifeboat_store::StoreError::WalConflict { .. }), "{conflict}");
    write_only_refusal(host.wal_fetch("db", name).await.unwrap_err());
    assert_eq!(full.wal_fetch("db", name).await.unwrap(), Some(segment));

    // Everything that reads data or manifests, or deletes, is refused by lifeboat itself.
    let mut lines = vec![
        write_only_refusal(host.snapshots().await.unwrap_err()),
        write_only_refusal(host.load_snapshot(first.id()).await.unwrap_err()),
        write_only_refusal(host.find("latest", Some("host-db")).await.unwrap_err()),
        write_only_refusal(host.forget(&[first.id()]).await.unwrap_err()),
        write_only_refusal(host.prune(&PruneOptions::default()).await.unwrap_err()),
        write_only_refusal(host.unlock().await.unwrap_err()),
        write_only_refusal(host.remove_key(&slot).await.unwrap_err()),
        write_only_refusal(host.add_key_file(Access::Full).await.unwrap_err()),
        write_only_refusal(host.delete_key(&Path::from("config")).await.unwrap_err()),
    ];
    let chunk = first.manifest().chunks[0];
    lines.push(write_only_refusal(read_chunk(&host, chunk).await.unwrap_err()));
    // Even the snapshot it just wrote it cannot read.
    let mut reader = a.open().await.unwrap();
    let mut sink = Vec::new();
    let read = reader.read_to_end(&mut sink).await;
    assert!(read.is_err_and(|e| e.to_string().contains("write-only")));
    assert!(lines.iter().all(|l| !l.is_empty()));
    assert_eq!(policy.refused(), Vec::<String>::new(), "the store never saw a forbidden request");

    // A full key reads what the host wrote; verify authenticates every object.
    let reader = Repository::open_store_with(store.clone(), "t", Some(&password())).await.unwrap();
    let found = reader.find("latest", Some("host-db")).await.unwrap();
    assert_eq!(found.id(), b.id());
    assert_eq!(read_back(&found).await, data);
    assert_eq!(read_back(&reader.load_snapshot(a.id()).await.unwrap()).await, data);
    let verifier = RepositoryVerifier::new(reader.clone(), true);
    assert!(verifier.check_index(None).await.unwrap().failures().is_empty());
    for snap in reader.snapshots().await.unwrap() {
        let report = verifier.verify(&snap).await.unwrap();
        assert!(report.failures().is_empty(), "{:?}", report.failures());
    }
    // Its lease ended by expiring (it may not delete); prune takes it as gone and works.
    let now = PruneOptions { grace: std::time::Duration::ZERO, ..Default::default() };
    reader.prune(&now).await.unwrap();
    assert_eq!(read_back(&reader.load_snapshot(a.id()).await.unwrap()).await, data);
    assert!(policy.refused().is_empty());
    // The policy is real: asked directly, it refuses and records.
    let pack = store.list(Some(&Path::from("data"))).next().await.unwrap().unwrap().location;
    assert!(policy.get(&pack).await.is_err());
    assert_eq!(policy.refused(), vec![format!("GET {pack}")]);
}

async fn key_files_open_and_are_revoked(store: Arc<dyn ObjectStore>) {
    let full = Repository::init_store_with(store.clone(), "t", Some(&password())).await.unwrap();
    let snap = backup(&full, "a", vec![5; 300_000]).await.unwrap();
    let (full_slot, text) = full.add_key_file(Access::Full).await.unwrap();
    let full_key = Password::from_key_file("full.key", text.0.as_bytes()).unwrap();
    let (write_slot, text) = full.add_key_file(Access::WriteOnly).await.unwrap();
    let write_key = Password::from_key_file("host.key", text.0.as_bytes()).unwrap();
    let keys = full.keys().await.unwrap();
    assert_eq!(keys.len(), 3);
    let of = |id: &str| keys.iter().find(|k| k.id == id).unwrap();
    assert_eq!((of(&full_slot).access, of(&full_slot).kind), (Access::Full, "key file"));
    assert_eq!((of(&write_slot).access, of(&write_slot).kind), (Access::WriteOnly, "key file"));

    // A full key file reads everything and can even remove the password.
    let by_file = Repository::open_store_with(store.clone(), "t", Some(&full_key)).await.unwrap();
    assert!(!by_file.is_write_only());
    assert_eq!(read_back(&by_file.load_snapshot(snap.id()).await.unwrap()).await, vec![5; 300_000]);
    let password_slot = keys.iter().find(|k| k.kind == "password").unwrap().id.clone();
    by_file.remove_key(&password_slot).await.unwrap();
    // The last full key is never removed; a write-only one does not count as one.
    let err = by_file.remove_key(&full_slot).await.unwrap_err();
    assert!(matches!(err, StoreError::LastKey { .. }), "{err}");
    let err = Repository::open_store_with(store.clone(), "t", Some(&password())).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongPassword { .. }), "{err}");

    // Revoked: the write-only key file no longer opens.
    by_file.remove_key(&write_slot).await.unwrap();
    let err = Repository::open_store_with(store.clone(), "t", Some(&write_key)).await.unwrap_err();
    assert!(matches!(err, StoreError::KeyRemoved { .. }), "{err}");
    assert!(err.to_string().contains(&write_slot), "{err}");

    // A key file of another repository is named as such.
    let other: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    Repository::init_store_with(other.clone(), "other", Some(&password())).await.unwrap();
    let err = Repository::open_store_with(other, "other", Some(&full_key)).await.unwrap_err();
    assert!(matches!(err, StoreError::KeyFileMismatch { .. }), "{err}");
    assert!(err.to_string().contains("full.key"), "{err}");
}

async fn a_changed_config_is_refused(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store_with(store.clone(), "t", Some(&password())).await.unwrap();
    repo.backup(&source("a", vec![1; 100_000]), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let config = Path::from("config");
    let original = store.get(&config).await.unwrap().bytes().await.unwrap();
    let text = String::from_utf8(original.to_vec()).unwrap();

    // Weaker settings (here, compression) under the same keys.
    let weaker = text.replace("\"compression_level\": 3", "\"compression_level\": 1");
    assert_ne!(weaker, text, "the test edits something");
    store.put(&config, PutPayload::from(weaker.into_bytes())).await.unwrap();
    let err = Repository::open_store_with(store.clone(), "t", Some(&password())).await.unwrap_err();
    assert!(matches!(err, StoreError::ConfigChanged { .. }), "{err}");

    // Switched to plaintext, so a client without a password would write in the clear.
    let plain = text.replace("\"encryption\": \"xchacha20-poly1305\"", "\"encryption\": \"none\"");
    assert_ne!(plain, text, "the test edits something");
    store.put(&config, PutPayload::from(plain.into_bytes())).await.unwrap();
    let err = Repository::open_store(store.clone(), "t").await.unwrap_err();
    assert!(matches!(err, StoreError::ConfigDowngraded { .. }), "{err}");
    assert!(err.hint().is_some());

    // The original config opens as before; a damaged key slot is named by its key.
    store.put(&config, PutPayload::from(original)).await.unwrap();
    let repo = Repository::open_store_with(store.clone(), "t", Some(&password())).await.unwrap();
    let (slots, damaged) = repo.damaged_key_slots().await.unwrap();
    assert!(damaged.is_empty() && slots == 1, "{damaged:?}");
    let slot = repo.keys().await.unwrap()[0].id.clone();
    let key = Path::from(format!("keys/{slot}"));
    let body = store.get(&key).await.unwrap().bytes().await.unwrap();
    let damaged =
        String::from_utf8(body.to_vec()).unwrap().replacen("\"salt\": \"", "\"salt\": \"zz", 1);
    store.put(&key, PutPayload::from(damaged.into_bytes())).await.unwrap();
    let (_, damaged) = repo.damaged_key_slots().await.unwrap();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert!(damaged[0].key.contains(&slot), "{damaged:?}");
    // verify says so, and names a lease that does not open too.
    let verifier = RepositoryVerifier::new(repo.clone(), false);
    let failures = verifier.check_index(None).await.unwrap().failures().join("; ");
    assert!(failures.contains(&format!("keys/{slot}")), "{failures}");
    let lease = Path::from("locks/backups/stranger");
    store.put(&lease, PutPayload::from(b"{\"not\": \"sealed\"}".to_vec())).await.unwrap();
    let failures = verifier.check_index(None).await.unwrap().failures().join("; ");
    assert!(failures.contains("locks/backups/stranger"), "{failures}");
}

lifeboat_testkit::for_each_store!(
    a_write_only_host_backs_up_and_reads_nothing,
    key_files_open_and_are_revoked,
    a_changed_config_is_refused,
);
