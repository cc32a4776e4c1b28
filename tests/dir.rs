//! Directory snapshots end to end: tricky names round trip exactly, excludes, includes, ls,
//! deduplication of an unchanged folder, and restores that need --force.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use util::*;

/// Everything a restore must reproduce, per path: kind, mode, size, mtime (files and
/// folders), link target, content, and which paths share an inode.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut inodes = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let line = if ft.is_symlink() {
                format!("{rel:?} symlink -> {:?}", std::fs::read_link(&p).unwrap())
            } else if ft.is_dir() {
                stack.push(p.clone());
                format!("{rel:?} dir {:o} {}", md.mode() & 0o7777, md.mtime())
            } else if ft.is_file() {
                if md.nlink() > 1 {
                    inodes.entry(md.ino()).or_insert_with(Vec::new).push(rel.clone());
                }
                let digest = fingerprint(&std::fs::read(&p).unwrap());
                format!(
                    "{rel:?} file {:o} {} {} {digest}",
                    md.mode() & 0o7777,
                    md.len(),
                    md.mtime()
                )
            } else {
                format!("{rel:?} special {:o}", md.mode())
            };
            out.push(line);
        }
    }
    for (_, mut names) in inodes {
        names.sort();
        out.push(format!("hard links: {names:?}"));
    }
    out.sort();
    out
}

/// A cheap fingerprint for comparing contents in listings (FNV-1a, 64 bit).
fn fingerprint(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

fn tricky_tree(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    let long_dir = root.join("a".repeat(120)).join("b".repeat(120));
    std::fs::create_dir_all(&long_dir).unwrap();
    std::fs::write(long_dir.join(format!("{}.txt", "c".repeat(200))), "deep and long").unwrap();
    std::fs::write(root.join("héllo wörld ✓.txt"), "unicode").unwrap();
    std::fs::write(root.join("with\nnewline"), "newline in the name").unwrap();
    std::fs::write(root.join(" leading space"), "space").unwrap();
    std::fs::write(root.join("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(root.join("script.sh"), std::fs::Permissions::from_mode(0o750))
        .unwrap();
    std::fs::create_dir(root.join("private")).unwrap();
    std::fs::set_permissions(root.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(root.join("private/key"), "secret").unwrap();
    std::fs::set_permissions(root.join("private/key"), std::fs::Permissions::from_mode(0o600))
        .unwrap();
    std::os::unix::fs::symlink("héllo wörld ✓.txt", root.join("relative link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/absolute", root.join("dangling")).unwrap();
    std::fs::hard_link(root.join("script.sh"), root.join("script-again.sh")).unwrap();
    std::fs::write(root.join("big.bin"), pseudo_random(3 << 20, 9)).unwrap();
    std::fs::write(root.join("debug.log"), "excluded").unwrap();
    let status = std::process::Command::new("mkfifo").arg(root.join("pipe")).status().unwrap();
    assert!(status.success());
}

#[test]
fn tricky_names_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    let src = dir.path().join("home");
    tricky_tree(&src);
    // Folders keep their own modification time, not the time their entries were restored.
    let touched = std::process::Command::new("touch")
        .args(["-d", "2001-02-03 04:05:06"])
        .arg(src.join("private"))
        .status()
        .unwrap();
    assert!(touched.success());
    ok(lifeboat(&repo).arg("init"));
    let snap: serde_json::Value = serde_json::from_str(&ok(lifeboat(&repo)
        .args(["backup", "dir", "--json", "--exclude", "*.log"])
        .arg(&src)))
    .unwrap();
    assert_eq!(snap["kind"], "dir");
    assert_eq!(snap["name"], "home");
    assert_eq!(snap["metadata"]["hardlinks"], 1);
    assert_eq!(snap["metadata"]["specials"], 1);
    assert_eq!(snap["metadata"]["excluded"], 1);

    let out = dir.path().join("restored");
    ok(lifeboat(&repo).args(["restore", "latest", "--to"]).arg(format!("dir:{}", out.display())));
    std::fs::remove_file(src.join("debug.log")).unwrap();
    assert_eq!(listing(&out), listing(&src), "the restored tree differs");

    // ls shows the entries, also under a path.
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&ok(lifeboat(&repo).args(["ls", "latest", "--json"]))).unwrap();
    assert!(entries.iter().any(|e| e["path"] == "with\nnewline" && e["kind"] == "file"));
    assert!(entries.iter().any(|e| e["path"] == "pipe" && e["kind"] == "fifo"));
    assert!(!entries.iter().any(|e| e["path"] == "debug.log"));
    let private = ok(lifeboat(&repo).args(["ls", "latest", "private"]));
    assert!(private.contains("private/key") && !private.contains("big.bin"), "{private}");

    // An unchanged folder stores nothing new; one changed file stores little.
    let again: serde_json::Value = serde_json::from_str(&ok(lifeboat(&repo)
        .args(["backup", "dir", "--json", "--exclude", "*.log"])
        .arg(&src)))
    .unwrap();
    assert_eq!(again["stored"], 0);
    std::fs::write(src.join("héllo wörld ✓.txt"), "unicode, edited").unwrap();
    let edited: serde_json::Value = serde_json::from_str(&ok(lifeboat(&repo)
        .args(["backup", "dir", "--json", "--exclude", "*.log"])
        .arg(&src)))
    .unwrap();
    assert!(edited["stored"].as_u64().unwrap() < 300_000, "{edited}");
    ok(lifeboat(&repo).args(["verify", "--all", "--read-data", "--restore"]));
}

#[test]
fn partial_and_forced_restores() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    let src = dir.path().join("site");
    tricky_tree(&src);
    ok(lifeboat(&repo).arg("init"));
    ok(lifeboat(&repo).args(["backup", "dir"]).arg(&src));

    let part = dir.path().join("part");
    ok(lifeboat(&repo)
        .args(["restore", "latest", "--include", "private/**", "--to"])
        .arg(format!("dir:{}", part.display())));
    assert_eq!(std::fs::read_to_string(part.join("private/key")).unwrap(), "secret");
    assert!(!part.join("big.bin").exists());

    // Over an existing, non-empty folder: refused without --force, untouched.
    let before = listing(&src);
    std::fs::write(src.join("after-backup.txt"), "new").unwrap();
    let changed = listing(&src);
    let err = fails(
        lifeboat(&repo).args(["restore", "latest", "--to"]).arg(format!("dir:{}", src.display())),
    );
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(listing(&src), changed);
    ok(lifeboat(&repo)
        .args(["restore", "latest", "--force", "--to"])
        .arg(format!("dir:{}", src.display())));
    assert_eq!(listing(&src), before);
    let snaps = snapshots(&repo);
    assert!(
        snaps.iter().any(|s| s["tags"].get("pre-restore").is_some()),
        "no pre-restore snapshot"
    );

    // A folder snapshot cannot be restored as a database, nor the other way round.
    let err = fails(lifeboat(&repo).args(["restore", "latest", "--to", "sqlite:/tmp/x.db"]));
    assert!(err.contains("dir snapshot"), "{err}");
    let err = fails(lifeboat(&repo).args(["backup", "dir"]).arg(dir.path().join("missing")));
    assert!(err.contains("does not exist"), "{err}");
}
