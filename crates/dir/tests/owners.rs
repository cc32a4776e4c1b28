//! Restores run as root give every entry back its owner and group, symlinks included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, lchown, symlink};
use std::path::Path;

use lifeboat_core::{
    MemorySafetyNet, MemorySnapshot, NoProgress, RestoreContext, RestoreOptions, RestorePlan,
};
use lifeboat_dir::{DirBackup, DirRestorePlan};

const UID: u32 = 1234;
const GID: u32 = 2345;

/// Owner and group of `path` itself (a symlink's own, not its target's).
fn owner(path: &Path) -> (u32, u32) {
    let md = std::fs::symlink_metadata(path).unwrap();
    (md.uid(), md.gid())
}

async fn restore(snap: &MemorySnapshot, target: &Path, force: bool) {
    let options = RestoreOptions { force, ..Default::default() };
    let plan = DirRestorePlan::new(snap, target, &options, &[]).unwrap();
    let net = MemorySafetyNet::default();
    let ctx = RestoreContext { snapshot: snap, safety_net: &net, progress: &NoProgress };
    plan.execute(&ctx).await.unwrap();
}

/// Files, folders, symlinks, hard links and FIFOs owned by 1234:2345 (the folder itself
/// too) come back so owned, into a new folder and over an existing one. Before, a restore
/// as root left everything owned by root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_as_root_gives_owners_back() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test restores owners, which needs root: run it as root (the test suite does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("file"), b"data").unwrap();
    std::fs::write(src.join("sub/inner"), b"more").unwrap();
    std::fs::hard_link(src.join("file"), src.join("hard")).unwrap();
    symlink("file", src.join("link")).unwrap();
    symlink("/nonexistent/target", src.join("dangling")).unwrap();
    nix::unistd::mkfifo(&src.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600))
        .unwrap();
    let entries = ["", "file", "sub", "sub/inner", "hard", "link", "dangling", "fifo"];
    for rel in entries {
        lchown(src.join(rel), Some(UID), Some(GID)).unwrap();
    }
    // Changing a file's owner clears its set-id bits: they must come back.
    std::fs::set_permissions(
        src.join("file"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    // One entry keeps another owner, so "everything got the root's owner" would not pass.
    lchown(src.join("sub/inner"), Some(GID), Some(UID)).unwrap();
    let snap = MemorySnapshot::capture(&DirBackup::new(&src), Default::default()).await.unwrap();

    let expect = |root: &Path| {
        for rel in entries {
            let want = if rel == "sub/inner" { (GID, UID) } else { (UID, GID) };
            assert_eq!(owner(&root.join(rel)), want, "owner of {:?} in {}", rel, root.display());
        }
        assert_eq!(std::fs::read(root.join("link")).unwrap(), b"data");
        let mode = std::fs::symlink_metadata(root.join("file")).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o4755, "mode of file in {}", root.display());
    };
    let fresh = dir.path().join("fresh");
    restore(&snap, &fresh, false).await;
    expect(&fresh);

    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("old"), b"old").unwrap();
    assert_eq!(owner(&existing), (0, 0));
    restore(&snap, &existing, true).await;
    expect(&existing);
    assert!(!existing.join("old").exists());
}
