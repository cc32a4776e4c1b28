//! Directory snapshots end to end: tricky names round trip exactly, excludes, includes, ls,
//! deduplication of an unchanged folder, restores that need --force, exact modes, safety
//! snapshots named after their target, and what a killed restore leaves.
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
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
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
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
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

/// Restoring snapshot "a" over the folder b saves b's old contents under b's own name (what
/// `lifeboat backup dir b` would call it), tagged with the restored snapshot's id.
#[test]
fn the_safety_snapshot_is_named_after_the_target_it_protects() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("from-a.txt"), "a").unwrap();
    std::fs::write(b.join("only-in-b.txt"), "b's own data").unwrap();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let snap: serde_json::Value =
        serde_json::from_str(&ok(lifeboat(&repo).args(["backup", "dir", "--json"]).arg(&a)))
            .unwrap();
    assert_eq!(snap["name"], "a");
    let plan = ok(lifeboat(&repo)
        .args(["restore", "latest", "--name", "a", "--force", "--dry-run", "--to"])
        .arg(format!("dir:{}", b.display())));
    assert!(plan.contains("as \"b\""), "{plan}");
    ok(lifeboat(&repo)
        .args(["restore", "latest", "--name", "a", "--force", "--to"])
        .arg(format!("dir:{}", b.display())));
    assert_eq!(std::fs::read_to_string(b.join("from-a.txt")).unwrap(), "a");

    let snaps = snapshots(&repo);
    let safety: Vec<_> = snaps.iter().filter(|s| s["tags"].get("pre-restore").is_some()).collect();
    assert_eq!(safety.len(), 1, "{snaps:?}");
    assert_eq!(safety[0]["name"], "b", "the safety snapshot is not named after the target");
    assert_eq!(safety[0]["tags"]["pre-restore"], snap["id"]);
    // And it holds what b was.
    let back = dir.path().join("b-before");
    ok(lifeboat(&repo)
        .args(["restore", safety[0]["id"].as_str().unwrap(), "--to"])
        .arg(format!("dir:{}", back.display())));
    assert_eq!(std::fs::read_to_string(back.join("only-in-b.txt")).unwrap(), "b's own data");
    assert!(!back.join("from-a.txt").exists());
}

/// Every path's permission bits (setuid, setgid and sticky included) and, for the folder
/// itself, its modification time.
fn modes(root: &Path) -> Vec<String> {
    let mut out = vec![format!(
        ". {:o} {}",
        std::fs::metadata(root).unwrap().mode() & 0o7777,
        std::fs::metadata(root).unwrap().mtime()
    )];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                stack.push(p.clone());
            }
            if !md.file_type().is_symlink() {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.push(format!("{rel} {:o}", md.mode() & 0o7777));
            }
        }
    }
    out.sort();
    out
}

/// A restored folder, and everything in it, gets exactly the modes the source had: private
/// files stay 0600, no setuid/setgid bit appears or disappears, the folder itself too.
#[test]
fn restored_modes_are_exactly_the_sources() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    let src = dir.path().join("srv");
    std::fs::create_dir_all(src.join("shared/inner")).unwrap();
    std::fs::create_dir_all(src.join("tmp")).unwrap();
    let set = |rel: &str, mode: u32| {
        std::fs::set_permissions(src.join(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    };
    for (name, mode) in
        [("key", 0o600), ("log", 0o640), ("tool", 0o4755), ("group-tool", 0o2711), ("ro", 0o444)]
    {
        std::fs::write(src.join(name), name).unwrap();
        set(name, mode);
    }
    std::fs::write(src.join("shared/inner/file"), "x").unwrap();
    set("shared/inner/file", 0o664);
    // A setgid folder makes new subfolders setgid: the restored inner one must not become so.
    set("shared", 0o2775);
    set("shared/inner", 0o755);
    set("tmp", 0o1777);
    set(".", 0o750);
    let touched = std::process::Command::new("touch")
        .args(["-d", "2002-03-04 05:06:07"])
        .arg(&src)
        .status()
        .unwrap();
    assert!(touched.success());
    let want = modes(&src);
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    ok(lifeboat(&repo).args(["backup", "dir"]).arg(&src));

    let fresh = dir.path().join("fresh");
    ok(lifeboat(&repo).args(["restore", "latest", "--to"]).arg(format!("dir:{}", fresh.display())));
    assert_eq!(modes(&fresh), want, "a restore into a new folder");

    let over = dir.path().join("over");
    std::fs::create_dir(&over).unwrap();
    std::fs::write(over.join("old"), "old").unwrap();
    std::fs::set_permissions(&over, std::fs::Permissions::from_mode(0o777)).unwrap();
    ok(lifeboat(&repo)
        .args(["restore", "latest", "--force", "--to"])
        .arg(format!("dir:{}", over.display())));
    assert_eq!(modes(&over), want, "a restore over an existing folder");
}

/// Names beside `target` that a restore of it leaves while it works.
fn restore_leftovers(target: &Path) -> Vec<String> {
    let stem = target.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::read_dir(target.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!(".{stem}.lifeboat-")))
        .collect()
}

/// `kill -9` of `lifeboat restore` while it unpacks leaves its temporary copy beside the
/// target; the next restore of that target removes it, and the target is whole.
#[test]
fn a_killed_restore_leaves_temporary_copies_the_next_one_removes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    let src = dir.path().join("data");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..400 {
        std::fs::write(src.join(format!("f{i:03}")), pseudo_random(64 << 10, i)).unwrap();
    }
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let snap: serde_json::Value =
        serde_json::from_str(&ok(lifeboat(&repo).args(["backup", "dir", "--json"]).arg(&src)))
            .unwrap();
    // By id: each killed run leaves a newer (pre-restore) snapshot behind.
    let id = snap["id"].as_str().unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("old"), "old").unwrap();

    // Kill as soon as the temporary copy has entries: the unpack is under way.
    let mut killed_mid_restore = false;
    for _attempt in 0..5 {
        let mut child = lifeboat(&repo)
            .args(["restore", id, "--force", "--to"])
            .arg(format!("dir:{}", target.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let prefix = format!(".target.lifeboat-restore-{}-", child.id());
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            let temp = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&prefix));
            if temp.is_some_and(|t| std::fs::read_dir(t).is_ok_and(|mut d| d.next().is_some())) {
                child.kill().unwrap();
                killed_mid_restore = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        child.wait().unwrap();
        if killed_mid_restore {
            break;
        }
        // It finished first: start from the old target again.
        std::fs::remove_dir_all(&target).unwrap();
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("old"), "old").unwrap();
    }
    assert!(killed_mid_restore, "the restore always finished before it could be killed");
    assert!(!restore_leftovers(&target).is_empty(), "the kill left no temporary copy");
    assert_eq!(std::fs::read_to_string(target.join("old")).unwrap(), "old", "target damaged");

    ok(lifeboat(&repo)
        .args(["restore", id, "--force", "--to"])
        .arg(format!("dir:{}", target.display())));
    assert_eq!(restore_leftovers(&target), Vec::<String>::new(), "left beside the target");
    assert_eq!(listing(&target), listing(&src));
}
