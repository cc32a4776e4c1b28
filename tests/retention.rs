//! Retention through the CLI: forget by policy, stats, stale.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use util::*;

fn repo_with_backups(n: usize) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    let db = dir.path().join("billing.db");
    make_sqlite_db(&db, 1);
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    for i in 0..n {
        let conn = rusqlite::Connection::open(&db).unwrap();
        insert_events(&conn, 10);
        drop(conn);
        let tier = if i == 0 { "tier=pro" } else { "tier=free" };
        ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db).args(["--tag", tier]));
    }
    (dir, repo)
}

#[test]
fn forget_keeps_what_the_policy_says_and_explains_why() {
    let (dir, repo) = repo_with_backups(5);
    let all = snapshots(&repo);
    assert_eq!(all.len(), 5);

    // Nothing to keep is refused, and nothing is removed.
    let err = fails(lifeboat(&repo).arg("forget"));
    assert!(err.contains("--keep"), "{err}");
    assert_eq!(snapshots(&repo).len(), 5);

    // A dry run says what would go and removes nothing.
    let plan: serde_json::Value = serde_json::from_str(&ok(lifeboat(&repo).args([
        "forget",
        "--keep-last",
        "2",
        "--keep-tag",
        "tier=pro",
        "--dry-run",
        "--json",
    ])))
    .unwrap();
    let decisions = plan[0]["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 5);
    let kept: Vec<&serde_json::Value> = decisions.iter().filter(|d| d["keep"] == true).collect();
    assert_eq!(kept.len(), 3, "2 last + the pro one: {plan}");
    assert!(
        kept.iter().any(|d| d["reasons"].as_array().unwrap().iter().any(|r| r == "tag tier=pro"))
    );
    assert_eq!(snapshots(&repo).len(), 5, "a dry run removed snapshots");

    let out = ok(lifeboat(&repo).args(["forget", "--keep-last", "2", "--keep-tag", "tier=pro"]));
    assert!(out.contains("2 snapshots removed"), "{out}");
    let left = snapshots(&repo);
    assert_eq!(left.len(), 3);
    let newest_two: Vec<&serde_json::Value> = all.iter().rev().take(2).collect();
    for s in newest_two {
        assert!(left.iter().any(|l| l["id"] == s["id"]), "a newest snapshot was removed");
    }
    assert!(left.iter().any(|l| l["tags"]["tier"] == "pro"));
    // What is left still restores: forget removed catalog entries only.
    ok(lifeboat(&repo).args(["verify", "--all", "--read-data"]));
    let restored = dir.path().join("r.db");
    ok(lifeboat(&repo).args(["restore", left[0]["id"].as_str().unwrap(), "--to"]).arg(&restored));

    // Applying the same policy again removes nothing more.
    let out = ok(lifeboat(&repo).args(["forget", "--keep-last", "2", "--keep-tag", "tier=pro"]));
    assert!(out.contains("0 snapshots removed"), "{out}");
}

#[test]
fn stats_and_stale() {
    let (_dir, repo) = repo_with_backups(3);
    let stats: serde_json::Value =
        serde_json::from_str(&ok(lifeboat(&repo).args(["stats", "--json"]))).unwrap();
    let billing = &stats["names"]["billing"];
    assert_eq!(billing["snapshots"], 3);
    assert!(
        billing["dedup_ratio"].as_f64().unwrap() > 2.0,
        "three near-identical databases should deduplicate: {stats}"
    );
    assert!(stats["pack_bytes"].as_u64().unwrap() > 0);

    let fresh = lifeboat(&repo).args(["stale", "--max-age", "1h"]).output().unwrap();
    assert_eq!(fresh.status.code(), Some(0), "{}", String::from_utf8_lossy(&fresh.stdout));

    std::thread::sleep(std::time::Duration::from_millis(2100));
    let stale = lifeboat(&repo).args(["stale", "--max-age", "1s", "--json"]).output().unwrap();
    assert_eq!(stale.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&stale.stdout).unwrap();
    assert_eq!(report[0]["name"], "billing");
    assert_eq!(report[0]["stale"], true);

    let missing = lifeboat(&repo)
        .args(["stale", "--max-age", "1h", "--expect", "auth", "--expect", "billing"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let text = String::from_utf8_lossy(&missing.stdout);
    assert!(text.contains("STALE  auth") && text.contains("no snapshot at all"), "{text}");

    // A usage error is clap's: exit code 2, the bad value named, and a pointer to --help.
    let bad = lifeboat(&repo).args(["stale", "--max-age", "soon"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let bad = String::from_utf8_lossy(&bad.stderr);
    assert!(bad.contains("not a duration") && bad.contains("--help"), "{bad}");
}

#[test]
fn tiers_from_a_policy_file() {
    let (dir, repo) = repo_with_backups(5); // the first is tier=pro, the other four tier=free
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[default]\nlast = 10\n\n[tags.\"tier=free\"]\nlast = 1\n\n[tags.\"tier=pro\"]\nlast = 3\n",
    )
    .unwrap();
    let plan: serde_json::Value = serde_json::from_str(&ok(lifeboat(&repo)
        .args(["forget", "--json", "--policy"])
        .arg(&policy)))
    .unwrap();
    let groups = plan.as_array().unwrap();
    assert_eq!(groups.len(), 2, "one group per tier: {plan}");
    let left = snapshots(&repo);
    assert_eq!(left.len(), 2, "the newest free one and the pro one stay");
    assert_eq!(left.iter().filter(|s| s["tags"]["tier"] == "pro").count(), 1);

    std::fs::write(&policy, "[tags.\"tier=free\"]\nlats = 1\n").unwrap();
    let err = fails(lifeboat(&repo).args(["forget", "--policy"]).arg(&policy));
    assert!(err.contains("not a valid policy file") && err.contains("lats"), "{err}");
    std::fs::write(&policy, "[default]\nlast = 2\n[names.billing]\n").unwrap();
    let err = fails(lifeboat(&repo).args(["forget", "--policy"]).arg(&policy));
    assert!(err.contains("keep nothing") && err.contains("name billing"), "{err}");
    assert_eq!(snapshots(&repo).len(), 2, "a refused forget removed snapshots");
}
