//! A folder backup never leaves the folder, even when someone who can write to it swaps an
//! entry for a symlink while the walk runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lifeboat_core::{MemorySnapshot, Snapshot};
use lifeboat_dir::{DirBackup, DirMetadata};
use rustix::fs::{CWD, RenameFlags, renameat_with};

const MARKER: &[u8] = b"OUTSIDE-THE-FOLDER";
const ROUNDS: usize = 1500;

/// Exchanges the names `a` and `b` (one step, so each name always exists) until `stop`,
/// then leaves them as they were. Returns how many exchanges it made.
fn swapper(a: PathBuf, b: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut swaps = 0u64;
        while !stop.load(Ordering::Relaxed) || swaps % 2 == 1 {
            renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE)
                .expect("this file system must support RENAME_EXCHANGE for this test");
            swaps += 1;
        }
        swaps
    })
}

/// What one capture held for the swapped names.
#[derive(Default, Debug)]
struct Seen {
    file_as_file: usize,
    file_as_link: usize,
    dir_as_dir: usize,
    dir_as_link: usize,
    skipped: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_swapped_for_symlinks_mid_walk_never_capture_outside_bytes() {
    let base = tempfile::tempdir().unwrap();
    let outside = base.path().join("outside");
    let src = base.path().join("src");
    std::fs::create_dir_all(outside.join("secret-dir")).unwrap();
    std::fs::create_dir_all(src.join("sub")).unwrap();

    // Root's private files, outside the folder being backed up.
    let secret = outside.join("secret.txt");
    let secret_body = MARKER.repeat(256);
    std::fs::write(&secret, &secret_body).unwrap();
    std::fs::write(outside.join("secret-dir/inside-secret.txt"), &secret_body).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();

    // The folder: a file as long as the secret (so a followed link would give all of it), a
    // folder, and neighbours.
    let file_body =
        b"ordinary content!".repeat(secret_body.len() / 17 + 1)[..secret_body.len()].to_vec();
    std::fs::write(src.join("a-file.txt"), &file_body).unwrap();
    std::fs::write(src.join("sub/own.txt"), b"sub content").unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("n{i:02}.txt")), format!("neighbour {i}")).unwrap();
    }
    let file_link = outside.join("link-to-secret");
    let dir_link = outside.join("link-to-dir");
    std::os::unix::fs::symlink(&secret, &file_link).unwrap();
    std::os::unix::fs::symlink(outside.join("secret-dir"), &dir_link).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let swappers = [
        swapper(src.join("a-file.txt"), file_link.clone(), stop.clone()),
        swapper(src.join("sub"), dir_link.clone(), stop.clone()),
    ];
    let mut seen = Seen::default();
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let snap = MemorySnapshot::capture(&DirBackup::new(&src), Default::default()).await;
        let snap = match snap {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("round {round}: the backup failed: {e}"));
                continue;
            }
        };
        let meta: DirMetadata = serde_json::from_value(snap.manifest().metadata.clone()).unwrap();
        seen.skipped += meta.skipped.len();
        for skipped in &meta.skipped {
            if !(skipped.starts_with("a-file.txt:") || skipped.starts_with("sub")) {
                failures.push(format!("round {round}: an unswapped entry was skipped: {skipped}"));
            }
        }
        check_capture(snap.bytes(), &file_body, &secret, &outside, &mut seen, &mut failures, round);
    }
    stop.store(true, Ordering::Relaxed);
    let swaps: Vec<u64> = swappers.into_iter().map(|s| s.join().unwrap()).collect();
    println!("{ROUNDS} backups while swapping ({swaps:?} exchanges): {seen:?}");
    assert!(
        failures.is_empty(),
        "{} problems, first ones: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(swaps.iter().all(|&n| n > 0), "the swapping threads never ran");
    // Once the swapping stops, everything is captured as it is.
    let calm = MemorySnapshot::capture(&DirBackup::new(&src), Default::default()).await.unwrap();
    let meta: DirMetadata = serde_json::from_value(calm.manifest().metadata.clone()).unwrap();
    assert!(meta.skipped.is_empty(), "{:?}", meta.skipped);
    assert_eq!((meta.files, meta.dirs, meta.symlinks), (22, 1, 0));
}

fn check_capture(
    tar_bytes: &[u8],
    file_body: &[u8],
    secret: &Path,
    outside: &Path,
    seen: &mut Seen,
    failures: &mut Vec<String>,
    round: usize,
) {
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let kind = entry.header().entry_type();
        let link = entry.link_name().unwrap().map(|l| l.into_owned());
        let mode = entry.header().mode().unwrap() & 0o7777;
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if data.windows(MARKER.len()).any(|w| w == MARKER) {
            failures.push(format!(
                "round {round}: {} holds bytes from outside the folder (mode {mode:o})",
                path.display()
            ));
        }
        let name = path.to_string_lossy();
        match name.as_ref() {
            "a-file.txt" if kind.is_file() => {
                seen.file_as_file += 1;
                if data != file_body {
                    failures.push(format!("round {round}: a-file.txt has other content"));
                }
            }
            "a-file.txt" if kind.is_symlink() => {
                seen.file_as_link += 1;
                if link.as_deref() != Some(secret) {
                    failures.push(format!("round {round}: a-file.txt links to {link:?}"));
                }
            }
            "sub" if kind.is_dir() => seen.dir_as_dir += 1,
            "sub" if kind.is_symlink() => {
                seen.dir_as_link += 1;
                if link.as_deref() != Some(outside.join("secret-dir").as_path()) {
                    failures.push(format!("round {round}: sub links to {link:?}"));
                }
            }
            "sub/own.txt" if data == b"sub content" => {}
            n if n.starts_with('n') && n.ends_with(".txt") && !n.contains('/') => {}
            other => failures.push(format!("round {round}: unexpected entry {other} ({kind:?})")),
        }
    }
}
