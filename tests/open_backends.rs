//! Open backends: a repository holding snapshots of a kind this binary has no backend for
//! still lists, verifies, forgets and prunes them, and says plainly what it cannot do; and
//! a build with one backend has none of the others' drivers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use lifeboat_core::{Kind, MemoryBackup, NoProgress};
use lifeboat_store::{BackupOptions, Repository};
use util::*;

/// A repository with one SQLite snapshot (known) and two of kind `redis` (unknown to the
/// standard binary), written through the library as a newer or custom lifeboat would.
async fn mixed_repository(repo: &str, db: &std::path::Path) {
    ok(lifeboat(repo).args(["init", "--no-encryption"]));
    make_sqlite_db(db, 1);
    ok(lifeboat(repo).args(["backup", "sqlite"]).arg(db));
    let store = Repository::open(repo).await.unwrap();
    let redis: Kind = "redis".parse().unwrap();
    for round in 0..2u8 {
        let source = MemoryBackup {
            name: "cache".into(),
            kind: redis.clone(),
            data: pseudo_random(300_000, u64::from(round) * 2 + 11),
        };
        store.backup(&source, &BackupOptions::default(), &NoProgress).await.unwrap();
    }
}

#[tokio::test]
async fn snapshots_of_an_unknown_kind_list_verify_forget_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    let db = dir.path().join("app.db");
    mixed_repository(&repo, &db).await;

    let listed = snapshots(&repo);
    let kinds: Vec<&str> = listed.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "redis").count(), 2, "{kinds:?}");
    let table = ok(lifeboat(&repo).arg("snapshots"));
    assert!(table.contains("redis"), "{table}");
    ok(lifeboat(&repo).args(["verify", "--all", "--read-data"]));
    ok(lifeboat(&repo).arg("stats"));

    let err = fails(
        lifeboat(&repo)
            .args(["restore", "latest", "--name", "cache", "--to"])
            .arg(dir.path().join("out")),
    );
    assert!(err.contains("no redis backend"), "{err}");
    let err = fails(
        lifeboat(&repo)
            .args(["drill", "--name", "cache", "--heartbeat"])
            .arg(dir.path().join("beat.json")),
    );
    assert!(err.contains("no redis backend"), "{err}");
    let err = fails(lifeboat(&repo).args(["verify", "latest", "--name", "cache", "--restore"]));
    assert!(err.contains("no redis backend"), "{err}");
    // Its stream is still there for whoever has the backend.
    let out = dir.path().join("cache.bin");
    ok(lifeboat(&repo).args(["cat", "latest", "--name", "cache", "--out"]).arg(&out));
    assert_eq!(std::fs::read(&out).unwrap(), pseudo_random(300_000, 13));

    ok(lifeboat(&repo).args(["forget", "--name", "cache", "--keep-last", "1"]));
    let report = ok(lifeboat(&repo).args(["prune", "--grace", "0s", "--json"]));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert!(
        report["deleted"].as_u64().unwrap() + report["marked"].as_u64().unwrap() > 0,
        "{report}"
    );
    let left = snapshots(&repo);
    assert_eq!(left.iter().filter(|s| s["kind"] == "redis").count(), 1, "{left:?}");
    ok(lifeboat(&repo).args(["verify", "--all", "--read-data"]));
    // The known kind was untouched by all of it.
    ok(lifeboat(&repo)
        .args(["restore", "latest", "--name", "app", "--to"])
        .arg(dir.path().join("back.db")));
}

#[test]
fn a_cli_built_with_only_sqlite_has_no_docker_or_postgres_driver() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "-p", "lifeboat-cli", "--no-default-features", "--features", "sqlite"])
        .args(["-e", "normal", "--prefix", "none", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(tree.contains("lifeboat-sqlite"), "{tree}");
    for driver in ["bollard", "tokio-postgres", "lifeboat-container", "lifeboat-postgres"] {
        assert!(
            !tree.lines().any(|l| l.starts_with(&format!("{driver} "))),
            "{driver} is in:\n{tree}"
        );
    }
}
