//! Chunk ids: new repositories name chunks with BLAKE3 (format 2); format-1 repositories,
//! made before it with SHA-256 ids, keep working, deduplicating against their own chunks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use lifeboat_core::{Digest, Kind, MemoryBackup, NoProgress, Snapshot, Verifier};
use lifeboat_store::format::{CONFIG_KEY, ChunkIdScheme, RepoConfig};
use lifeboat_store::{BackupOptions, Password, Repository, RepositoryVerifier, StoreError};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncReadExt;

fn source(data: &[u8]) -> MemoryBackup {
    MemoryBackup { name: "a".into(), kind: Kind::DIR, data: data.to_vec() }
}

async fn read_all(snap: &dyn Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    snap.open().await.unwrap().read_to_end(&mut out).await.unwrap();
    out
}

/// Backs `data` up twice and once edited; checks every read, the dedup and `verify
/// --read-data`; returns the first snapshot's chunk ids.
async fn round_trip(repo: &Repository, data: &[u8]) -> Vec<Digest> {
    let options = BackupOptions::default();
    let first = repo.backup(&source(data), &options, &NoProgress).await.unwrap();
    assert_eq!(read_all(&first).await, data);
    assert_eq!(first.manifest().sha256, Digest::of(data), "the stream's digest is SHA-256");
    let again = repo.backup(&source(data), &options, &NoProgress).await.unwrap();
    assert_eq!(again.manifest().stored, 0, "the same bytes again store nothing");
    let mut edited = data.to_vec();
    edited[data.len() / 2] ^= 1;
    let edit = repo.backup(&source(&edited), &options, &NoProgress).await.unwrap();
    assert!(edit.manifest().stored < data.len() as u64 / 4, "{}", edit.manifest().stored);
    assert_eq!(read_all(&edit).await, edited);
    for snap in [&first, &edit] {
        let report = RepositoryVerifier::new(repo.clone(), true).verify(snap).await.unwrap();
        assert!(report.ok(), "{:?}", report.failures());
    }
    first.manifest().chunks.clone()
}

#[tokio::test]
async fn new_repositories_name_chunks_with_blake3_and_format_1_ones_keep_sha256() {
    let data = lifeboat_testkit::pseudo_random(3 << 20, 4);

    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let repo = Repository::init_store(store.clone(), "new").await.unwrap();
    assert_eq!((repo.config().version, repo.config().chunk_ids), (2, ChunkIdScheme::Blake3));
    let blake3_ids = round_trip(&repo, &data).await;
    let reopened = Repository::open_store(store, "new").await.unwrap();
    assert_eq!(reopened.config().chunk_ids, ChunkIdScheme::Blake3);
    assert_eq!(round_trip(&reopened, &data).await, blake3_ids, "the same ids after an open");

    // A repository as lifeboat made it before format 2: version 1, no `chunk_ids` field.
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let config = RepoConfig::with_chunk_ids(ChunkIdScheme::Sha256);
    let old = Repository::init_store_as(store.clone(), "old", None, config).await.unwrap();
    let mut config = serde_json::to_value(old.config()).unwrap();
    assert_eq!(config["version"], 1);
    config.as_object_mut().unwrap().remove("chunk_ids");
    let key = Path::from(CONFIG_KEY);
    store.put(&key, PutPayload::from(serde_json::to_vec(&config).unwrap())).await.unwrap();
    let old = Repository::open_store(store, "old").await.unwrap();
    assert_eq!((old.config().version, old.config().chunk_ids), (1, ChunkIdScheme::Sha256));
    let sha256_ids = round_trip(&old, &data).await;
    assert_ne!(sha256_ids, blake3_ids);
    // Plaintext SHA-256 ids are the chunks' SHA-256, as format 1 has always made them.
    let first = old.config().chunker.split(&data);
    assert_eq!(Digest::of(first[0]), sha256_ids[0]);
}

#[tokio::test]
async fn encrypted_repositories_key_both_hashes() {
    let data = lifeboat_testkit::pseudo_random(2 << 20, 5);
    let password = Password::new("correct horse");
    let mut ids = Vec::new();
    for scheme in [ChunkIdScheme::Blake3, ChunkIdScheme::Sha256] {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let config = RepoConfig::with_chunk_ids(scheme);
        let repo =
            Repository::init_store_as(store.clone(), "t", Some(&password), config).await.unwrap();
        assert_eq!(repo.config().chunk_ids, scheme);
        assert!(repo.config().encrypted());
        let got = round_trip(&repo, &data).await;
        let reopened = Repository::open_store_with(store, "t", Some(&password)).await.unwrap();
        assert_eq!(round_trip(&reopened, &data).await, got, "{scheme}: other ids after an open");
        ids.push(got);
    }
    // Keyed: neither is the plain hash of the chunk, and the two differ.
    let chunks = lifeboat_codec::ChunkerParams::default().split(&data);
    assert_ne!(ids[1][0], Digest::of(chunks[0]));
    assert_ne!(ids[0][0].0, *blake3::hash(chunks[0]).as_bytes());
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn configs_with_an_unknown_version_or_a_mismatched_hash_are_refused() {
    for (version, chunk_ids, expected) in [
        (3, "blake3", "format version 3 is not supported (this lifeboat reads versions 1 to 2)"),
        (0, "sha256", "format version 0 is not supported"),
        (1, "blake3", "format version 1 does not go with blake3 chunk ids"),
        (2, "sha256", "format version 2 does not go with sha256 chunk ids"),
        (2, "md5", "unknown variant `md5`"),
    ] {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let repo = Repository::init_store(store.clone(), "t").await.unwrap();
        let mut config = serde_json::to_value(repo.config()).unwrap();
        config["version"] = version.into();
        config["chunk_ids"] = chunk_ids.into();
        let key = Path::from(CONFIG_KEY);
        store.put(&key, PutPayload::from(serde_json::to_vec(&config).unwrap())).await.unwrap();
        let err = Repository::open_store(store, "t").await.unwrap_err();
        assert!(err.to_string().contains(expected), "{version} {chunk_ids}: {err}");
        if version == 3 {
            assert!(matches!(err, StoreError::UnsupportedVersion { .. }), "{err}");
        }
    }
}
