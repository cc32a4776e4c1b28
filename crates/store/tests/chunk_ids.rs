//! Chunk ids: new repositories name chunks with BLAKE3 (format 2); format-1 repositories,
//! made before it with SHA-256 ids, keep working, deduplicating against their own chunks.
//! Every repository here is a folder on disk, as `lifeboat init PATH` makes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use lifeboat_core::{Digest, Kind, MemoryBackup, NoProgress, Snapshot, Verifier};
use lifeboat_store::format::{CONFIG_KEY, ChunkIdScheme, RepoConfig};
use lifeboat_store::{BackupOptions, Password, Repository, RepositoryVerifier, StoreError};
use tokio::io::AsyncReadExt;

fn source(data: &[u8]) -> MemoryBackup {
    MemoryBackup { name: "a".into(), kind: Kind::DIR, data: data.to_vec() }
}

fn url(folder: &Path) -> &str {
    folder.to_str().unwrap()
}

/// Replaces the config object of the repository in `folder`, as a hand or an older build would.
fn rewrite_config(folder: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = folder.join(CONFIG_KEY);
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
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

    let tmp = tempfile::tempdir().unwrap();
    let new = tmp.path().join("new");
    let repo = Repository::init(url(&new)).await.unwrap();
    assert_eq!((repo.config().version, repo.config().chunk_ids), (2, ChunkIdScheme::Blake3));
    let blake3_ids = round_trip(&repo, &data).await;
    let reopened = Repository::open(url(&new)).await.unwrap();
    assert_eq!(reopened.config().chunk_ids, ChunkIdScheme::Blake3);
    assert_eq!(round_trip(&reopened, &data).await, blake3_ids, "the same ids after an open");

    // A repository as lifeboat made it before format 2: version 1, no `chunk_ids` field.
    let folder = tmp.path().join("old");
    let config = RepoConfig::with_chunk_ids(ChunkIdScheme::Sha256);
    let old = Repository::init_as(url(&folder), None, config).await.unwrap();
    assert_eq!(old.config().version, 1);
    rewrite_config(&folder, |config| {
        config.as_object_mut().unwrap().remove("chunk_ids");
    });
    let old = Repository::open(url(&folder)).await.unwrap();
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
    let tmp = tempfile::tempdir().unwrap();
    for scheme in [ChunkIdScheme::Blake3, ChunkIdScheme::Sha256] {
        let folder = tmp.path().join(scheme.to_string());
        let config = RepoConfig::with_chunk_ids(scheme);
        let repo = Repository::init_as(url(&folder), Some(&password), config).await.unwrap();
        assert_eq!(repo.config().chunk_ids, scheme);
        assert!(repo.config().encrypted());
        let got = round_trip(&repo, &data).await;
        let reopened = Repository::open_with(url(&folder), Some(&password)).await.unwrap();
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
        let tmp = tempfile::tempdir().unwrap();
        let folder = tmp.path().join("repo");
        Repository::init(url(&folder)).await.unwrap();
        rewrite_config(&folder, |config| {
            config["version"] = version.into();
            config["chunk_ids"] = chunk_ids.into();
        });
        let err = Repository::open(url(&folder)).await.unwrap_err();
        assert!(err.to_string().contains(expected), "{version} {chunk_ids}: {err}");
        if version == 3 {
            assert!(matches!(err, StoreError::UnsupportedVersion { .. }), "{err}");
        }
    }
}
