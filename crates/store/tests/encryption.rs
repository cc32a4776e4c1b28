//! Encryption at rest (#15), against every store: memory, a local folder, and s3s-fs.
//! What the store holds reveals neither content nor chunk hashes; damage to any object is
//! named; a wrong password writes nothing; keys come and go without rewriting data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use lifeboat_core::{Digest, Kind, MemoryBackup, NoProgress, Snapshot, Verifier};
use lifeboat_store::{BackupOptions, Password, Repository, RepositoryVerifier, StoreError};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncReadExt;

const MARKER: &[u8] = b"LIFEBOAT-SECRET-MARKER-9f2c";

fn password() -> Password {
    Password::new("correct horse battery staple")
}

/// Random (incompressible) data with the marker in it every 50 KB, so a plaintext pack
/// would hold it verbatim.
fn marked_data(len: usize, seed: u64) -> Vec<u8> {
    let mut data = lifeboat_testkit::pseudo_random(len, seed);
    for at in (0..len - MARKER.len()).step_by(50_000) {
        data[at..at + MARKER.len()].copy_from_slice(MARKER);
    }
    data
}

fn source(name: &str, data: Vec<u8>) -> MemoryBackup {
    MemoryBackup { name: name.into(), kind: Kind::DIR, data }
}

/// Every object in the store: key to bytes.
async fn objects(store: &Arc<dyn ObjectStore>) -> BTreeMap<String, Vec<u8>> {
    let keys: Vec<Path> = store.list(None).map_ok(|m| m.location).try_collect().await.unwrap();
    let mut out = BTreeMap::new();
    for key in keys {
        let body = store.get(&key).await.unwrap().bytes().await.unwrap();
        out.insert(key.to_string(), body.to_vec());
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn read_back(snap: &impl Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    snap.open().await.unwrap().read_to_end(&mut out).await.unwrap();
    out
}

async fn nothing_readable_in_the_store(store: Arc<dyn ObjectStore>) {
    let data = marked_data(1_500_000, 7);
    // The same data in a plaintext repository: its chunk ids are the plain SHA-256s, and its
    // packs hold the marker (so this test would see a leak).
    let plain_store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let plain = Repository::init_store(plain_store.clone(), "plain").await.unwrap();
    let plain_source = source("tenant-db", data.clone());
    let plain_snap = plain.backup(&plain_source, &BackupOptions::default(), &NoProgress).await;
    let plain_chunks = plain_snap.unwrap().manifest().chunks.clone();
    assert!(objects(&plain_store).await.values().any(|o| contains(o, MARKER)), "test is real");

    let repo = Repository::init_store_with(store.clone(), "t", Some(&password())).await.unwrap();
    assert!(repo.is_encrypted());
    let options = BackupOptions {
        tags: [("tier-marker-tag".to_string(), "pro".to_string())].into_iter().collect(),
        ..BackupOptions::default()
    };
    let snap =
        repo.backup(&source("tenant-db", data.clone()), &options, &NoProgress).await.unwrap();
    // A second backup of changed data, so deltas are sealed too.
    let mut changed = data.clone();
    changed[700_000..700_100].fill(b'x');
    repo.backup(&source("tenant-db", changed), &options, &NoProgress).await.unwrap();

    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("the marker".into(), MARKER.to_vec()),
        ("the snapshot's name".into(), b"tenant-db".to_vec()),
        ("a tag".into(), b"tier-marker-tag".to_vec()),
        ("the stream's SHA-256".into(), Digest::of(&data).0.to_vec()),
        ("the stream's SHA-256 in hex".into(), Digest::of(&data).to_hex().into_bytes()),
    ];
    for chunk in &plain_chunks {
        needles.push((format!("chunk {chunk}"), chunk.0.to_vec()));
        needles.push((format!("chunk {chunk} in hex"), chunk.to_hex().into_bytes()));
    }
    let all = objects(&store).await;
    assert!(all.keys().any(|k| k.starts_with("data/")), "{:?}", all.keys());
    for (key, body) in &all {
        for (what, needle) in &needles {
            assert!(!contains(body, needle), "{key} holds {what}");
            assert!(!contains(key.as_bytes(), needle), "the key {key} holds {what}");
        }
    }
    // Keyed chunk ids: none equals the plain SHA-256 of its chunk.
    for id in &snap.manifest().chunks {
        assert!(!plain_chunks.contains(id), "chunk id {id} is the plain SHA-256");
    }
    // And a new opener with the password reads everything back.
    let again = Repository::open_store_with(store, "t", Some(&password())).await.unwrap();
    let back = again.find("latest", Some("tenant-db")).await.unwrap();
    assert_eq!(back.manifest().tags.get("tier-marker-tag").map(String::as_str), Some("pro"));
    let first = again.load_snapshot(snap.id()).await.unwrap();
    assert_eq!(read_back(&first).await, data);
}

/// Flips one byte of `key` in place; returns the original bytes.
async fn flip(store: &Arc<dyn ObjectStore>, key: &str, at: usize) -> Vec<u8> {
    let path = Path::from(key);
    let original = store.get(&path).await.unwrap().bytes().await.unwrap().to_vec();
    let mut damaged = original.clone();
    damaged[at.min(original.len() - 1)] ^= 0x01;
    store.put(&path, PutPayload::from(damaged)).await.unwrap();
    original
}

/// Everything `verify --all --read-data` reports, as one string (an error counts too).
async fn verify_all(store: &Arc<dyn ObjectStore>) -> String {
    let repo = match Repository::open_store_with(store.clone(), "t", Some(&password())).await {
        Ok(repo) => repo,
        Err(e) => return e.to_string(),
    };
    let verifier = RepositoryVerifier::new(repo.clone(), true);
    let mut out = Vec::new();
    match verifier.check_index(None).await {
        Ok(report) => out.extend(report.failures()),
        Err(e) => out.push(e.to_string()),
    }
    match repo.snapshots().await {
        Ok(snaps) => {
            for snap in snaps {
                let report = verifier.verify(&snap).await.unwrap();
                out.extend(report.failures());
            }
        }
        Err(e) => out.push(e.to_string()),
    }
    out.join("; ")
}

async fn every_flipped_byte_is_named(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store_with(store.clone(), "t", Some(&password())).await.unwrap();
    repo.backup(&source("a", marked_data(600_000, 3)), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(verify_all(&store).await, "", "a sound repository verifies");
    let keys: Vec<String> = objects(&store)
        .await
        .into_keys()
        .filter(|k| ["data/", "index/", "snapshots/"].iter().any(|p| k.starts_with(p)))
        .collect();
    assert!(keys.len() >= 3, "{keys:?}");
    for key in keys {
        let size = objects(&store).await[&key].len();
        // A byte inside the first blob (or the object's body), and one near the end (a pack's
        // sealed trailer, just before its 12-byte footer).
        for at in [30, size.saturating_sub(20)] {
            let original = flip(&store, &key, at).await;
            let report = verify_all(&store).await;
            assert!(report.contains(&key), "flipping byte {at} of {key}: {report}");
            store.put(&Path::from(key.as_str()), PutPayload::from(original)).await.unwrap();
        }
    }
    assert_eq!(verify_all(&store).await, "", "sound again");
}

async fn a_wrong_password_writes_nothing(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store_with(store.clone(), "t", Some(&password())).await.unwrap();
    repo.backup(&source("a", marked_data(300_000, 4)), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let before = objects(&store).await;
    let guess = Password::new("guess");
    let err = Repository::open_store_with(store.clone(), "t", Some(&guess)).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongPassword { .. }), "{err}");
    assert!(err.to_string().contains("wrong password"), "{err}");
    let none = Repository::open_store(store.clone(), "t").await.unwrap_err();
    assert!(matches!(none, StoreError::KeyRequired { .. }), "{none}");
    assert!(none.to_string().contains("is encrypted: give a password"), "{none}");
    assert!(none.hint().unwrap_or_default().contains("LIFEBOAT_PASSWORD"));
    assert_eq!(objects(&store).await, before, "nothing written");
}

async fn keys_are_added_and_removed(store: Arc<dyn ObjectStore>) {
    let first = password();
    let second = Password::new("a second, longer pass phrase");
    let repo = Repository::init_store_with(store.clone(), "t", Some(&first)).await.unwrap();
    let data = marked_data(500_000, 5);
    repo.backup(&source("a", data.clone()), &BackupOptions::default(), &NoProgress).await.unwrap();
    let keys = repo.keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].current);
    let last = repo.remove_key(&keys[0].id).await.unwrap_err();
    assert!(matches!(last, StoreError::LastKey { .. }), "{last}");

    let data_before: BTreeMap<String, Vec<u8>> =
        objects(&store).await.into_iter().filter(|(k, _)| !k.starts_with("keys/")).collect();
    let added = repo.add_key(&second).await.unwrap();
    assert_eq!(repo.keys().await.unwrap().len(), 2);
    assert_eq!(repo.remove_key(&keys[0].id[..8]).await.unwrap(), keys[0].id, "a prefix will do");
    let data_after: BTreeMap<String, Vec<u8>> =
        objects(&store).await.into_iter().filter(|(k, _)| !k.starts_with("keys/")).collect();
    assert_eq!(data_before, data_after, "adding and removing keys rewrites no data");

    let err = Repository::open_store_with(store.clone(), "t", Some(&first)).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongPassword { .. }), "the removed key no longer opens");
    let repo = Repository::open_store_with(store.clone(), "t", Some(&second)).await.unwrap();
    let keys = repo.keys().await.unwrap();
    assert_eq!((keys.len(), keys[0].id.as_str(), keys[0].current), (1, added.as_str(), true));
    let snap = repo.find("latest", Some("a")).await.unwrap();
    assert_eq!(read_back(&snap).await, data, "restored with the new key");
}

async fn plaintext_repositories_have_no_keys(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    assert!(!repo.is_encrypted());
    let err = repo.add_key(&password()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotEncrypted { .. }), "{err}");
    // A password given for a plaintext repository is not needed, and does no harm.
    Repository::open_store_with(store, "t", Some(&password())).await.unwrap();
}

lifeboat_testkit::for_each_store!(
    nothing_readable_in_the_store,
    every_flipped_byte_is_named,
    a_wrong_password_writes_nothing,
    keys_are_added_and_removed,
    plaintext_repositories_have_no_keys,
);
