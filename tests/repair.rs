//! One damaged index file costs the snapshots that need it, not the repository, and
//! `lifeboat repair index` rebuilds it from the packs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use util::*;

fn index_files(repo: &str) -> BTreeSet<PathBuf> {
    tree(&Path::new(repo).join("index")).into_keys().collect()
}

fn output(cmd: &mut std::process::Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn a_damaged_index_costs_only_its_snapshots_and_repair_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b"));
    make_sqlite_db(&a, 1);
    std::fs::create_dir(&b).unwrap();
    std::fs::write(b.join("blob.bin"), pseudo_random(2 << 20, 11)).unwrap();
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&a));
    let before = index_files(&repo);
    ok(lifeboat(&repo).args(["backup", "dir"]).arg(&b));
    let damaged: Vec<PathBuf> = index_files(&repo).difference(&before).cloned().collect();
    assert_eq!(damaged.len(), 1);
    let damaged = &damaged[0];
    std::fs::write(damaged, b"").unwrap();
    let name = damaged.file_name().unwrap().to_str().unwrap();

    // Listing and the unaffected snapshot keep working.
    let snaps = snapshots(&repo);
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    let a_id = snaps[0]["id"].as_str().unwrap();
    let restored = dir.path().join("restored.db");
    ok(lifeboat(&repo).args(["restore", a_id, "--to"]).arg(&restored));
    assert_eq!(sqlite3_integrity_check(&restored), "ok");
    assert_eq!(table_counts(&restored), table_counts(&a));

    // verify names the damaged index and fails.
    let (passed, text) = output(lifeboat(&repo).arg("verify"));
    assert!(!passed, "verify passed with a damaged index: {text}");
    assert!(text.contains(name) && text.contains("repair index"), "{text}");
    let (_, text) = output(lifeboat(&repo).arg("stats"));
    assert!(text.contains("1 damaged index files"), "{text}");

    // Backups and a prune still run.
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&a));
    ok(lifeboat(&repo).args(["prune", "--dry-run"]));

    let dry: serde_json::Value =
        serde_json::from_str(&ok(lifeboat(&repo).args(["repair", "index", "--dry-run", "--json"])))
            .unwrap();
    assert_eq!(dry["damaged_indexes"].as_array().unwrap().len(), 1, "{dry}");
    assert!(damaged.exists(), "a dry run removed the damaged index");
    let out = ok(lifeboat(&repo).args(["repair", "index"]));
    assert!(out.contains("damaged index rebuilt") && out.contains(name), "{out}");
    let out = ok(lifeboat(&repo).args(["verify", "--all", "--read-data"]));
    assert!(out.contains("repository index ok") && out.contains("0 failed"), "{out}");
    let out = ok(lifeboat(&repo).args(["repair", "index"]));
    assert!(out.contains("nothing to repair"), "{out}");
}
