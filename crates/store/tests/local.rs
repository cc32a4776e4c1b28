//! A repository in a local folder: private permissions, durable writes, no leftovers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use lifeboat_core::{Kind, MemoryBackup, NoProgress};
use lifeboat_store::{BackupOptions, PruneOptions, Repository};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn every_entry(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            every_entry(&path, out);
        }
        out.push(path);
    }
}

async fn backed_up(dir: &Path) -> Repository {
    let repo = Repository::init(dir.to_str().unwrap()).await.unwrap();
    let source = MemoryBackup {
        name: "a".into(),
        kind: Kind::DIR,
        data: lifeboat_testkit::pseudo_random(900_000, 9),
    };
    repo.backup(&source, &BackupOptions::default(), &NoProgress).await.unwrap();
    repo
}

#[tokio::test]
async fn objects_are_0600_and_folders_0700() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let repo = backed_up(&root).await;
    repo.prune(&PruneOptions { grace: Duration::ZERO, ..Default::default() }).await.unwrap();
    assert_eq!(mode(&root), 0o700, "the repository folder");
    let mut entries = Vec::new();
    every_entry(&root, &mut entries);
    assert!(entries.iter().any(|p| p.starts_with(root.join("data"))), "{entries:?}");
    for path in entries {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
}

/// A write killed between creating its staging file and renaming it leaves `<key>#<n>`,
/// which listings hide: prune removes it once stale, stats counts it.
#[tokio::test]
async fn prune_removes_stale_staging_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let repo = backed_up(&root).await;
    let folder = root.join("data").join("ab");
    std::fs::create_dir_all(&folder).unwrap();
    let stale = folder.join(format!("{}#1", "ab".repeat(32)));
    let fresh = root.join("index").join(format!("{}#2", "cd".repeat(32)));
    std::fs::write(&stale, vec![7u8; 5000]).unwrap();
    std::fs::write(&fresh, vec![7u8; 300]).unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(two_hours_ago).unwrap();

    let repo = Repository::open(repo.url()).await.unwrap();
    let staging = repo.staging_files().await.unwrap();
    assert_eq!(staging.len(), 2, "{staging:?}");
    let dry = repo.prune(&PruneOptions { dry_run: true, ..Default::default() }).await.unwrap();
    assert_eq!((dry.staging_removed, dry.staging_bytes), (1, 5000));
    assert!(stale.exists(), "a dry run removes nothing");
    let report = repo.prune(&PruneOptions::default()).await.unwrap();
    assert_eq!((report.staging_removed, report.staging_bytes), (1, 5000), "{report:?}");
    assert!(!stale.exists(), "the stale staging file is gone");
    assert!(fresh.exists(), "a recent one may belong to a write in progress");
}
