//! The repository conformance suite, run against every store: memory, a local folder and a
//! real S3-compatible server (s3s-fs) on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use lifeboat_core::{
    Backup, ByteStream, Capture, Error as CoreError, Kind, MemoryBackup, NoProgress, Snapshot,
    Verifier,
};
use lifeboat_store::format::{CONFIG_KEY, pack_key};
use lifeboat_store::{BackupOptions, Repository, RepositoryVerifier, StoreError};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use lifeboat_testkit::pseudo_random as random;

fn source(name: &str, data: Vec<u8>) -> MemoryBackup {
    MemoryBackup { name: name.into(), kind: Kind::DIR, data }
}

async fn read_all(snap: &dyn Snapshot) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::new();
    snap.open().await.map_err(std::io::Error::other)?.read_to_end(&mut out).await?;
    Ok(out)
}

/// A source whose stream fails after `ok_bytes`: a capture that dies half-way.
struct DyingBackup {
    ok_bytes: usize,
}

struct DyingReader {
    left: usize,
}

impl AsyncRead for DyingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.left == 0 {
            return Poll::Ready(Err(std::io::Error::other("the source went away")));
        }
        let n = self.left.min(buf.remaining()).min(64 << 10);
        buf.put_slice(&random(n, self.left as u64));
        self.left -= n;
        Poll::Ready(Ok(()))
    }
}

#[async_trait]
impl Backup for DyingBackup {
    fn kind(&self) -> Kind {
        Kind::DIR
    }
    fn default_name(&self) -> String {
        "dying".into()
    }
    fn target(&self) -> String {
        "dying".into()
    }
    async fn capture(&self) -> lifeboat_core::Result<Capture> {
        let reader: ByteStream = Box::pin(DyingReader { left: self.ok_bytes });
        Ok(Capture::new(reader, serde_json::Value::Null))
    }
}

async fn init_and_open(store: Arc<dyn ObjectStore>) {
    assert!(matches!(
        Repository::open_store(store.clone(), "t").await,
        Err(StoreError::NotInitialised { .. })
    ));
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    assert!(matches!(
        Repository::init_store(store.clone(), "t").await,
        Err(StoreError::AlreadyInitialised { .. })
    ));
    let again = Repository::open_store(store, "t").await.unwrap();
    assert_eq!(again.config().id, repo.config().id);
}

async fn round_trips_and_dedups(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("tiny", b"x".to_vec()),
        ("repetitive", b"lifeboat ".repeat(300_000)),
        ("multi-pack", random(20 << 20, 3)),
    ];
    for (name, data) in &cases {
        let snap = repo
            .backup(&source(name, data.clone()), &BackupOptions::default(), &NoProgress)
            .await
            .unwrap();
        assert_eq!(snap.manifest().size, data.len() as u64, "{name}");
        assert_eq!(snap.manifest().sha256, lifeboat_core::Digest::of(data), "{name}");
        assert_eq!(&read_all(&snap).await.unwrap(), data, "{name} read back differs");
    }
    // The same bytes again store nothing new; a small edit stores little.
    let big = &cases[3].1;
    let again = repo
        .backup(&source("multi-pack", big.clone()), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(again.manifest().stored, 0);
    let mut edited = big.clone();
    edited.splice(1000..1000, b"inserted".iter().copied());
    let edit = repo
        .backup(&source("multi-pack", edited.clone()), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert!(
        edit.manifest().stored < 4 << 20,
        "an 8-byte insert stored {} bytes",
        edit.manifest().stored
    );
    assert_eq!(read_all(&edit).await.unwrap(), edited);
    assert_eq!(edit.manifest().parent, Some(again.id()));

    // A new machine with only the URL sees and restores everything.
    let fresh = Repository::open_store(store, "t").await.unwrap();
    let listed = fresh.snapshots().await.unwrap();
    assert_eq!(listed.len(), cases.len() + 2);
    let found = fresh.find(&edit.id().to_hex()[..10], None).await.unwrap();
    assert_eq!(read_all(&found).await.unwrap(), edited);
    let latest = fresh.find("latest", Some("tiny")).await.unwrap();
    assert_eq!(read_all(&latest).await.unwrap(), b"x");
    assert!(matches!(
        fresh.find("deadbeef", None).await,
        Err(StoreError::Core(CoreError::SnapshotNotFound { .. }))
    ));
    assert!(matches!(
        fresh.find("latest", Some("nope")).await,
        Err(StoreError::Core(CoreError::SnapshotNotFound { .. }))
    ));
}

async fn failed_capture_leaves_no_snapshot(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let err = repo
        .backup(&DyingBackup { ok_bytes: 12 << 20 }, &BackupOptions::default(), &NoProgress)
        .await;
    assert!(err.is_err(), "a capture that fails must not succeed");
    assert!(repo.snapshots().await.unwrap().is_empty(), "a failed capture became visible");
    let ok = repo
        .backup(&source("after", random(3 << 20, 9)), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let report = RepositoryVerifier::new(repo.clone(), true).verify(&ok).await.unwrap();
    assert!(report.ok(), "{:?}", report.failures());
}

async fn verify_catches_damage(store: Arc<dyn ObjectStore>) {
    let repo = Repository::init_store(store.clone(), "t").await.unwrap();
    let snap = repo
        .backup(&source("v", random(2 << 20, 5)), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let structure = RepositoryVerifier::new(repo.clone(), false);
    let data = RepositoryVerifier::new(repo.clone(), true);
    assert!(structure.verify(&snap).await.unwrap().ok());
    assert!(data.verify(&snap).await.unwrap().ok());

    // Flip one byte inside the first blob of the pack holding the first chunk.
    let loc = repo.locate(&snap.manifest().chunks[0]).unwrap();
    let key = pack_key(&loc.pack);
    let mut bytes = store.get(&key).await.unwrap().bytes().await.unwrap().to_vec();
    let at = (loc.offset + u64::from(loc.length) / 2) as usize;
    bytes[at] ^= 0x40;
    store.put(&key, PutPayload::from(Bytes::from(bytes))).await.unwrap();
    assert!(structure.verify(&snap).await.unwrap().ok(), "structure does not read data");
    let report = data.verify(&snap).await.unwrap();
    assert!(!report.ok(), "a flipped byte went unnoticed");
    let failure = report.failures().join("\n");
    assert!(
        failure.contains(&snap.manifest().chunks[0].to_hex()),
        "the failure names the chunk: {failure}"
    );
    assert!(
        read_all(&snap).await.is_err(),
        "reading a corrupt snapshot must fail, not return wrong bytes"
    );

    // A missing pack is a structural problem.
    store.delete(&key).await.unwrap();
    let report = structure.verify(&snap).await.unwrap();
    assert!(!report.ok());
    assert!(report.failures().join("\n").contains("missing"));
}

async fn conditional_create_is_exclusive(store: Arc<dyn ObjectStore>) {
    let key = Path::from("locks/probe");
    store.put_opts(&key, PutPayload::from_static(b"a"), PutMode::Create.into()).await.unwrap();
    let second = store.put_opts(&key, PutPayload::from_static(b"b"), PutMode::Create.into()).await;
    assert!(matches!(second, Err(object_store::Error::AlreadyExists { .. })), "{second:?}");
    let _ = store.head(&Path::from(CONFIG_KEY)).await;
}

lifeboat_testkit::for_each_store!(
    init_and_open,
    round_trips_and_dedups,
    failed_capture_leaves_no_snapshot,
    verify_catches_damage,
    conditional_create_is_exclusive,
);

/// Transient store errors are retried with backoff; persistent ones fail the backup with the
/// object key named, and leave no snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried() {
    use std::sync::atomic::Ordering;
    let faulty = lifeboat_testkit::FaultyStore::new(Arc::new(InMemory::new()));
    let store: Arc<dyn ObjectStore> = faulty.clone();
    let repo = Repository::init_store(store.clone(), "faulty").await.unwrap();
    let data = random(10 << 20, 11);

    faulty.fail_puts(3);
    let snap = repo
        .backup(&source("r", data.clone()), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(faulty.injected.load(Ordering::SeqCst), 3);
    faulty.fail_gets(3);
    assert_eq!(read_all(&snap).await.unwrap(), data, "reads are retried too");
    assert_eq!(faulty.injected.load(Ordering::SeqCst), 6);

    faulty.fail_puts(1000);
    let err = repo
        .backup(&source("r", random(3 << 20, 12)), &BackupOptions::default(), &NoProgress)
        .await
        .unwrap_err();
    let message = err.to_string();
    let names_a_key =
        ["data/", "index/", "snapshots/", "locks/"].iter().any(|k| message.contains(k));
    assert!(names_a_key, "the error does not name the object: {message}");
    faulty.fail_puts(0);
    assert_eq!(
        Repository::open_store(store, "faulty").await.unwrap().snapshots().await.unwrap().len(),
        1
    );
}
