//! What a service embedding the store needs without glue: a repository opened or created in
//! one call, and S3 configured in code rather than through `AWS_*` variables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lifeboat_core::{Kind, MemoryBackup, NoProgress};
use lifeboat_store::{BackupOptions, Repository, S3Options, StoreError};
use lifeboat_testkit::S3Server;

#[tokio::test]
async fn s3_from_options_opens_or_creates_the_repository_without_the_environment() {
    let server = S3Server::start();
    // Only the options name the server and the credentials (the builder reads no variable).
    let options = S3Options::new(&server.bucket, "team/app")
        .endpoint(server.endpoint())
        .credentials(&server.access_key, &server.secret_key);
    let repo = Repository::open_or_init_s3(&options).await.unwrap();
    let source = MemoryBackup { name: "app".into(), kind: Kind::DIR, data: vec![9; 100_000] };
    let snap = repo.backup(&source, &BackupOptions::default(), &NoProgress).await.unwrap();

    // The second call opens what the first made.
    let again = Repository::open_or_init_s3(&options).await.unwrap();
    assert_eq!(again.snapshots().await.unwrap().len(), 1);
    assert_eq!(again.find("latest", Some("app")).await.unwrap().id(), snap.id());

    // The same bucket under the URL form sees it too.
    let store = server.store();
    let keys: Vec<_> =
        futures::TryStreamExt::try_collect::<Vec<_>>(store.list(None)).await.unwrap();
    assert!(keys.iter().all(|m| m.location.as_ref().starts_with("team/app/")), "{keys:?}");

    // Wrong credentials: an error naming the repository, nothing created.
    let wrong = S3Options::new(&server.bucket, "team/other")
        .endpoint(server.endpoint())
        .credentials(&server.access_key, "not-the-secret");
    let err = Repository::open_or_init_s3(&wrong).await.unwrap_err();
    assert!(err.to_string().contains("refused access to config"), "{err}");
    let no_keys = S3Options::new(&server.bucket, "x").endpoint(server.endpoint());
    assert!(matches!(no_keys.store(), Err(StoreError::NoCredentials { .. })));
}

#[tokio::test]
async fn open_or_init_creates_once_and_then_opens() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("repo").display().to_string();
    let first = Repository::open_or_init(&url).await.unwrap();
    let source = MemoryBackup { name: "x".into(), kind: Kind::SQLITE, data: vec![1; 10_000] };
    first.backup(&source, &BackupOptions::default(), &NoProgress).await.unwrap();
    let second = Repository::open_or_init(&url).await.unwrap();
    assert_eq!(second.snapshots().await.unwrap().len(), 1, "opened, not made anew");
}

#[tokio::test]
async fn open_or_init_with_a_password_creates_an_encrypted_one_and_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("repo").display().to_string();
    let password = lifeboat_store::Password::new("service password");
    let first = Repository::open_or_init_with(&url, Some(&password)).await.unwrap();
    assert!(first.is_encrypted());
    let source = MemoryBackup { name: "x".into(), kind: Kind::SQLITE, data: vec![1; 10_000] };
    first.backup(&source, &BackupOptions::default(), &NoProgress).await.unwrap();
    let second = Repository::open_or_init_with(&url, Some(&password)).await.unwrap();
    assert_eq!(second.snapshots().await.unwrap().len(), 1, "opened, not made anew");
    let err = Repository::open_or_init_with(&url, None).await.unwrap_err();
    assert!(matches!(err, StoreError::KeyRequired { .. }), "{err}");
    let plain = dir.path().join("plain").display().to_string();
    assert!(!Repository::open_or_init_with(&plain, None).await.unwrap().is_encrypted());
}
