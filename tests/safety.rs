//! Safety snapshots are not backups, end to end: after `restore --force`, `latest`, retention,
//! `stale` and `stats` still see the backups, and the safety copy is listed, marked and
//! restorable by id.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use util::*;

#[test]
fn after_a_forced_restore_latest_is_still_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    let db = dir.path().join("prod.db");
    make_sqlite_db(&db, 1);
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    let backed_up = table_counts(&db);

    // The live database moves on (or is damaged); the operator rolls it back.
    let conn = rusqlite::Connection::open(&db).unwrap();
    insert_events(&conn, 500);
    drop(conn);
    let replaced = table_counts(&db);
    assert_ne!(replaced, backed_up);
    ok(lifeboat(&repo)
        .args(["restore", "latest", "--name", "prod", "--to"])
        .arg(&db)
        .arg("--force"));
    assert_eq!(table_counts(&db), backed_up);

    let all = snapshots(&repo);
    assert_eq!(all.len(), 2, "the backup and the safety snapshot: {all:?}");
    let safety: Vec<&serde_json::Value> = all.iter().filter(|s| s["safety"] == true).collect();
    assert_eq!(safety.len(), 1, "the safety snapshot is marked: {all:?}");
    let safety_id = safety[0]["id"].as_str().unwrap().to_string();
    let backup_id =
        all.iter().find(|s| s["safety"] == false).unwrap()["id"].as_str().unwrap().to_string();
    let listing = ok(lifeboat(&repo).arg("snapshots"));
    assert!(listing.contains("safety snapshot"), "{listing}");

    // `restore latest` again brings back the backup, not what the first restore replaced:
    // a retry after a failed --force must never restore the bad database's copy.
    let again = dir.path().join("again.db");
    ok(lifeboat(&repo).args(["restore", "latest", "--name", "prod", "--to"]).arg(&again));
    assert_eq!(table_counts(&again), backed_up);

    // The safety copy is restorable by id.
    let before = dir.path().join("before.db");
    ok(lifeboat(&repo).args(["restore", &safety_id, "--to"]).arg(&before));
    assert_eq!(table_counts(&before), replaced);

    // Retention: keep-last 1 keeps the backup; the safety snapshot stays by its own rule.
    let plan: serde_json::Value = serde_json::from_str(&ok(lifeboat(&repo).args([
        "forget",
        "--keep-last",
        "1",
        "--dry-run",
        "--json",
    ])))
    .unwrap();
    let decisions: Vec<&serde_json::Value> =
        plan.as_array().unwrap().iter().flat_map(|g| g["decisions"].as_array().unwrap()).collect();
    let decision = |id: &str| decisions.iter().find(|d| d["id"] == id).unwrap();
    assert_eq!(decision(&backup_id)["keep"], true, "{plan}");
    assert!(
        decision(&backup_id)["reasons"].as_array().unwrap().iter().any(|r| r == "last 1"),
        "{plan}"
    );
    let safety_reasons = decision(&safety_id)["reasons"].as_array().unwrap();
    assert!(
        safety_reasons.iter().all(|r| r.as_str().unwrap().starts_with("pre-restore")),
        "{plan}"
    );
    ok(lifeboat(&repo).args(["forget", "--keep-last", "1"]));
    assert!(snapshots(&repo).iter().any(|s| s["id"] == backup_id.as_str()), "the backup survived");

    // Stats count backups; the safety snapshot is counted apart.
    let stats: serde_json::Value =
        serde_json::from_str(&ok(lifeboat(&repo).args(["stats", "--json"]))).unwrap();
    assert_eq!(stats["snapshots"], 1, "{stats}");
    assert_eq!(stats["safety_snapshots"], 1, "{stats}");
}

#[test]
fn a_safety_snapshot_never_makes_a_name_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    let db = dir.path().join("auth.db");
    make_sqlite_db(&db, 1);
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // A forced restore a moment ago took a safety snapshot named after the target.
    ok(lifeboat(&repo)
        .args(["restore", "latest", "--name", "auth", "--to"])
        .arg(&db)
        .arg("--force"));
    let out = lifeboat(&repo).args(["stale", "--max-age", "2s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "stale: {}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("STALE"));
}

#[test]
fn stale_says_two_when_it_could_not_check() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-repo-here").display().to_string();
    let out = lifeboat(&missing).args(["stale", "--max-age", "1h"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: ") && stderr.contains("hint: "), "{stderr}");
}

#[test]
fn snapshots_show_and_filter_by_host() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    let db = dir.path().join("app.db");
    make_sqlite_db(&db, 1);
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    ok(lifeboat(&repo).env("LIFEBOAT_HOST", "alpha").args(["backup", "sqlite"]).arg(&db));
    ok(lifeboat(&repo).env("LIFEBOAT_HOST", "beta").args(["backup", "sqlite"]).arg(&db));
    let listing = ok(lifeboat(&repo).arg("snapshots"));
    assert!(listing.contains("alpha") && listing.contains("beta"), "{listing}");
    let only: Vec<serde_json::Value> =
        serde_json::from_str(&ok(lifeboat(&repo).args(["snapshots", "--host", "beta", "--json"])))
            .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["host"], "beta");
}

#[test]
fn latest_without_a_name_is_refused_when_two_names_exist() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    for name in ["auth", "billing"] {
        let db = dir.path().join(format!("{name}.db"));
        make_sqlite_db(&db, 1);
        ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    }
    let to = dir.path().join("out.db");
    let err = fails(lifeboat(&repo).args(["restore", "latest", "--to"]).arg(&to));
    assert!(err.contains("auth") && err.contains("billing") && err.contains("--name"), "{err}");
    assert!(!to.exists(), "nothing was written");
}
