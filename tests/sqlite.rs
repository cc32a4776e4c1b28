//! SQLite end to end: online backup under a writer, restore, safety snapshots, crashes, and
//! scattered updates stored as deltas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use util::*;

#[test]
fn backup_under_a_writer_restores_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let repo = dir.path().join("repo").display().to_string();
    make_sqlite_db(&db, 100);
    assert!(std::fs::metadata(&db).unwrap().len() >= 100 << 20, "fixture smaller than 100 MiB");
    ok(lifeboat(&repo).arg("init"));

    // A writer commits small transactions for as long as the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, stop, commits) = (db.clone(), stop.clone(), commits.clone());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            while !stop.load(Ordering::Relaxed) {
                insert_events(&conn, 20);
                commits.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while commits.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = commits.load(Ordering::Relaxed);
    let started = Instant::now();
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db).args(["--tag", "env=test"]));
    let backup_time = started.elapsed();
    let during = commits.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        during > 0,
        "the writer never committed during the {backup_time:?} backup: it was blocked"
    );

    let snaps = snapshots(&repo);
    assert_eq!(snaps.len(), 1);
    let snap = &snaps[0];
    assert_eq!(snap["kind"], "sqlite");
    assert_eq!(snap["name"], "app");
    assert_eq!(snap["tags"]["env"], "test");
    assert!(snap["stored"].as_u64().unwrap() > 0);
    chrono_like(snap["time"].as_str().unwrap());
    let manifest_counts: std::collections::BTreeMap<String, u64> =
        serde_json::from_value(snap["metadata"]["tables"].clone()).unwrap();

    let restored = dir.path().join("restored.db");
    ok(lifeboat(&repo).args(["restore", "latest", "--to"]).arg(&restored));
    assert_eq!(sqlite3_integrity_check(&restored), "ok");
    assert_eq!(
        table_counts(&restored),
        manifest_counts,
        "restored counts differ from the manifest"
    );
    let restored_bytes = std::fs::read(&restored).unwrap();
    assert_eq!(
        hex_sha256(&restored_bytes),
        snap["sha256"].as_str().unwrap(),
        "the restored file is not the captured stream"
    );
    // `cat` emits the same plain SQLite file.
    let cat = lifeboat(&repo).args(["cat", snap["id"].as_str().unwrap()]).output().unwrap();
    assert!(cat.status.success());
    assert!(cat.stdout == restored_bytes);

    ok(lifeboat(&repo).args(["verify", "--all", "--read-data", "--restore"]));
}

fn chrono_like(s: &str) {
    assert!(
        s.len() >= 20 && s.as_bytes()[4] == b'-' && s.contains('T') && s.ends_with('Z'),
        "not RFC 3339: {s}"
    );
}

fn hex_sha256(data: &[u8]) -> String {
    lifeboat_core_digest(data)
}

fn lifeboat_core_digest(data: &[u8]) -> String {
    // The sha256sum tool is the independent reference.
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils) is needed");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

#[test]
fn restore_over_existing_needs_force_and_takes_a_safety_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("billing.db");
    let repo = dir.path().join("repo").display().to_string();
    make_sqlite_db(&db, 2);
    ok(lifeboat(&repo).arg("init"));
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    let backed_up = table_counts(&db);

    // The live database moves on after the backup.
    let conn = rusqlite::Connection::open(&db).unwrap();
    insert_events(&conn, 100);
    let live_counts = table_counts(&db);
    drop(conn);
    let live_bytes = std::fs::read(&db).unwrap();

    let err = fails(lifeboat(&repo).args(["restore", "latest", "--to"]).arg(&db));
    assert!(err.contains("already exists") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), live_bytes, "a refused restore changed the target");
    assert_eq!(snapshots(&repo).len(), 1, "a refused restore wrote a snapshot");

    // --dry-run prints the plan and changes nothing.
    let plan =
        ok(lifeboat(&repo).args(["restore", "latest", "--force", "--dry-run", "--to"]).arg(&db));
    assert!(plan.contains("safety snapshot") && plan.contains("integrity_check"), "{plan}");
    assert_eq!(std::fs::read(&db).unwrap(), live_bytes);

    // An application connection stays open across the restore and sees the restored data.
    let app = rusqlite::Connection::open(&db).unwrap();
    assert_eq!(count(&app, "events"), live_counts["events"]);
    let id = snapshots(&repo)[0]["id"].as_str().unwrap().to_string();
    ok(lifeboat(&repo).args(["restore", &id[..12], "--force", "--to"]).arg(&db));
    assert_eq!(count(&app, "events"), backed_up["events"], "an open connection sees stale data");
    drop(app);
    assert_eq!(table_counts(&db), backed_up);
    assert_eq!(sqlite3_integrity_check(&db), "ok");

    let snaps = snapshots(&repo);
    assert_eq!(snaps.len(), 2);
    let safety = snaps
        .iter()
        .find(|s| s["tags"].get("pre-restore").is_some())
        .expect("no pre-restore snapshot");
    assert_eq!(safety["tags"]["pre-restore"], id.as_str());
    assert_eq!(safety["name"], "billing");
    // The safety snapshot holds the live data as it was, and restores.
    let rescued = dir.path().join("rescued.db");
    ok(lifeboat(&repo).args(["restore", safety["id"].as_str().unwrap(), "--to"]).arg(&rescued));
    assert_eq!(table_counts(&rescued), live_counts);
}

#[test]
fn a_killed_backup_leaves_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    let repo_dir = dir.path().join("repo");
    let repo = repo_dir.display().to_string();
    make_sqlite_db(&db, 120);
    ok(lifeboat(&repo).arg("init"));

    let mut child = lifeboat(&repo)
        .args(["backup", "sqlite"])
        .arg(&db)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as the first pack is on disk: mid-way through the upload.
    let deadline = Instant::now() + Duration::from_secs(120);
    let data = repo_dir.join("data");
    loop {
        let packs = tree(&data).len();
        if packs > 0 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "no pack appeared within 120 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(snapshots(&repo).is_empty(), "a killed backup left a visible snapshot");
    assert!(tree(&repo_dir.join("snapshots")).is_empty());

    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    assert_eq!(snapshots(&repo).len(), 1);
    let out = ok(lifeboat(&repo).args(["verify", "--all", "--read-data"]));
    assert!(out.contains("0 failed"), "{out}");
}

#[test]
fn restore_leaves_no_stray_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wal.db");
    let repo = dir.path().join("repo").display().to_string();
    make_sqlite_db(&db, 1);
    ok(lifeboat(&repo).arg("init"));
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // What a restore killed half-way left: its process is gone, so the next one removes it.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(out.join(format!(".restored.db.lifeboat-restore-{pid}-k1ll3d")), b"half")
        .unwrap();
    ok(lifeboat(&repo).args(["restore", "latest", "--to"]).arg(out.join("restored.db")));
    ok(lifeboat(&repo).args(["restore", "latest", "--force", "--to"]).arg(out.join("restored.db")));
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["restored.db".to_string()], "stray files beside the target");
}

#[test]
fn scattered_updates_are_stored_as_small_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let repo = dir.path().join("repo").display().to_string();
    make_sqlite_db(&db, 16);
    ok(lifeboat(&repo).arg("init"));
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));

    // 1% of the rows, spread over the whole table: nearly every chunk changes a little.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let changed = conn
        .execute(
            "UPDATE events SET kind = upper(kind) WHERE id % 100 = 37 AND kind <> upper(kind)",
            [],
        )
        .unwrap();
    assert!(changed > 200, "only {changed} rows updated");
    drop(conn);
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));

    let snaps = snapshots(&repo);
    let stored = |s: &serde_json::Value| s["stored"].as_u64().unwrap();
    let (first, second) = (&snaps[0], &snaps[1]);
    assert!(
        stored(second) * 20 < stored(first),
        "{changed} scattered updates stored {} bytes against {} for the whole database: \
         changed chunks were stored whole, not as deltas of the previous snapshot's",
        stored(second),
        stored(first)
    );

    // The snapshot made of deltas restores to the database as it is now, every byte checked.
    let restored = dir.path().join("restored.db");
    ok(lifeboat(&repo).args(["restore", "latest", "--to"]).arg(&restored));
    assert_eq!(sqlite3_integrity_check(&restored), "ok");
    let upper: i64 = rusqlite::Connection::open(&restored)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM events WHERE id % 100 = 37 AND kind = upper(kind)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(upper, changed as i64, "the restored database lacks the updates");
    let cat = lifeboat(&repo).args(["cat", second["id"].as_str().unwrap()]).output().unwrap();
    assert!(cat.status.success());
    assert_eq!(hex_sha256(&cat.stdout), second["sha256"].as_str().unwrap());
    ok(lifeboat(&repo).args(["verify", "--all", "--read-data"]));
}
