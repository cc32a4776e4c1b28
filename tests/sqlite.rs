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
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));

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
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
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
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));

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
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
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
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
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

/// Builds at `path` a different database whose commits are all still in its `-wal`, then
/// removes the database file and keeps the `-wal`: what "rm app.db" leaves while an
/// application that had it open was killed.
fn leave_a_foreign_wal(path: &std::path::Path) {
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
    let kept = path.with_extension("kept-wal");
    {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE events(id INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL);
             CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT UNIQUE, email TEXT);
             INSERT INTO users(name, email) VALUES ('mallory', 'm@example.com');",
        )
        .unwrap();
        std::fs::copy(&wal, &kept).unwrap();
    }
    std::fs::remove_file(path).unwrap();
    let _ = std::fs::remove_file(format!("{}-shm", path.display()));
    std::fs::rename(&kept, &wal).unwrap();
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
}

#[test]
fn a_journal_left_beside_a_new_target_is_moved_aside_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("auth.db");
    let repo = dir.path().join("repo").display().to_string();
    make_sqlite_db(&db, 1);
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    let backed_up = table_counts(&db);

    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let target = out.join("auth.db");
    leave_a_foreign_wal(&target);
    std::fs::write(out.join("auth.db-journal"), b"not ours").unwrap();

    let report: serde_json::Value = serde_json::from_str(&ok(lifeboat(&repo)
        .args(["restore", "latest", "--json", "--to"])
        .arg(&target)))
    .unwrap();
    assert_eq!(table_counts(&target), backed_up, "a leftover -wal was replayed over the restore");
    assert_eq!(sqlite3_integrity_check(&target), "ok");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[0], "auth.db");
    assert!(names[1].starts_with("auth.db-journal.lifeboat-aside-"), "{names:?}");
    assert!(names[2].starts_with("auth.db-wal.lifeboat-aside-"), "{names:?}");
    // The report says which files were moved aside.
    let notes: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "note")
        .map(|c| c["detail"].as_str().unwrap())
        .collect();
    assert_eq!(notes.len(), 2, "{report}");
    assert!(notes.iter().any(|n| n.contains("auth.db-wal")), "{notes:?}");
}

#[test]
fn a_safety_snapshot_is_named_after_the_target_it_protects() {
    let dir = tempfile::tempdir().unwrap();
    let prod = dir.path().join("prod.db");
    let staging = dir.path().join("staging.db");
    let repo = dir.path().join("repo").display().to_string();
    make_sqlite_db(&prod, 1);
    make_sqlite_db(&staging, 1);
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&prod));
    let prod_id = snapshots(&repo)[0]["id"].as_str().unwrap().to_string();
    let staging_counts = table_counts(&staging);

    ok(lifeboat(&repo).args(["restore", &prod_id, "--force", "--to"]).arg(&staging));
    let snaps = snapshots(&repo);
    let safety = snaps.iter().find(|s| s["tags"].get("pre-restore").is_some()).unwrap();
    assert_eq!(safety["name"], "staging", "the safety copy of staging.db took another name");
    assert_eq!(safety["tags"]["pre-restore"], prod_id.as_str());
    let rescued = dir.path().join("rescued.db");
    ok(lifeboat(&repo).args(["restore", safety["id"].as_str().unwrap(), "--to"]).arg(&rescued));
    assert_eq!(table_counts(&rescued), staging_counts);
}

/// Overwrites three pages in the body of the file with garbage, leaving the header intact:
/// SQLite then says "database disk image is malformed" when it reads them.
fn damage_pages(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let page = 4096;
    let pages = bytes.len() / page;
    for p in [pages / 3, pages / 2, 2 * pages / 3] {
        bytes[p * page..(p + 1) * page].fill(0xA5);
    }
    std::fs::write(path, bytes).unwrap();
    assert_ne!(sqlite3_integrity_check(path), "ok", "the damage went unnoticed");
}

fn path_with(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}{suffix}", path.display()))
}

#[test]
fn restore_force_replaces_a_damaged_database_keeping_its_raw_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("auth.db");
    let repo = dir.path().join("repo").display().to_string();
    make_sqlite_db(&db, 2);
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    let backed_up = table_counts(&db);
    let good = snapshots(&repo)[0]["id"].as_str().unwrap().to_string();
    damage_pages(&db);
    let damaged = std::fs::read(&db).unwrap();

    let out = ok(lifeboat(&repo)
        .args(["restore", "latest", "--name", "auth", "--force", "--to"])
        .arg(&db));
    assert!(out.contains("damaged") && out.contains("unverified"), "the output hides it: {out}");
    assert_eq!(sqlite3_integrity_check(&db), "ok");
    assert_eq!(table_counts(&db), backed_up);

    let snaps = snapshots(&repo);
    let safety = snaps.iter().find(|s| s["tags"].get("pre-restore").is_some()).unwrap();
    assert_eq!(safety["tags"]["pre-restore"], good.as_str());
    assert!(safety["tags"].get("unverified").is_some(), "not marked unverified: {safety}");
    let listing = ok(lifeboat(&repo).arg("snapshots"));
    assert!(listing.contains("unverified="), "`snapshots` does not show it: {listing}");
    let cat = lifeboat(&repo).args(["cat", safety["id"].as_str().unwrap()]).output().unwrap();
    assert!(cat.status.success());
    assert!(cat.stdout == damaged, "the safety copy is not the damaged file's bytes");
    // Restoring the raw copy says what it is instead of failing somewhere inside.
    let err = fails(
        lifeboat(&repo)
            .args(["restore", safety["id"].as_str().unwrap(), "--to"])
            .arg(dir.path().join("again.db")),
    );
    assert!(err.contains("raw copy"), "{err}");
    // Its bytes come back through `cat --out`, verified first.
    let salvaged = dir.path().join("salvaged.bin");
    ok(lifeboat(&repo).args(["cat", safety["id"].as_str().unwrap(), "--out"]).arg(&salvaged));
    assert!(std::fs::read(&salvaged).unwrap() == damaged, "cat --out wrote other bytes");
    // A drill of it, and `verify --restore` of every snapshot, skip it with the reason:
    // nothing restorable failed.
    let id = safety["id"].as_str().unwrap();
    let report = dir.path().join("drill.md");
    let drilled: Vec<serde_json::Value> = serde_json::from_str(&ok(lifeboat(&repo)
        .args(["drill", "--snapshot", id, "--json", "--report"])
        .arg(&report)
        .arg("--heartbeat")
        .arg(dir.path().join("beat.json"))))
    .unwrap();
    assert_eq!(drilled[0]["passed"], false, "{drilled:?}");
    let skipped = drilled[0]["skipped"].as_str().unwrap_or_default();
    assert!(skipped.contains("not drillable") && skipped.contains("raw"), "{drilled:?}");
    assert!(std::fs::read_to_string(&report).unwrap().contains("SKIP"), "the report hides it");
    let verified = ok(lifeboat(&repo).args(["verify", "--all", "--restore", "--json"]));
    assert!(verified.contains("skipped: not drillable"), "{verified}");
}

#[test]
fn restore_force_replaces_a_database_whose_header_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("auth.db");
    let repo = dir.path().join("repo").display().to_string();
    make_sqlite_db(&db, 1);
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    let backed_up = table_counts(&db);
    // An impossible page size: SQLite cannot read the file at all ("not a database"), so the
    // backup API cannot write into it either.
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[16..18].copy_from_slice(&[0x00, 0x03]);
    std::fs::write(&db, &bytes).unwrap();
    let wal = b"frames of the damaged database".to_vec();
    std::fs::write(path_with(&db, "-wal"), &wal).unwrap();

    let out = ok(lifeboat(&repo).args(["restore", "latest", "--force", "--to"]).arg(&db));
    assert!(out.contains("renamed over it"), "the output hides the file replacement: {out}");
    assert_eq!(sqlite3_integrity_check(&db), "ok");
    assert_eq!(table_counts(&db), backed_up);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n == "auth.db-wal" || n.starts_with(".auth.db")),
        "the damaged file's -wal or a temporary file is still beside it: {names:?}"
    );

    let snaps = snapshots(&repo);
    let safety = snaps.iter().find(|s| s["tags"].get("pre-restore").is_some()).unwrap();
    assert!(safety["tags"].get("unverified").is_some(), "{safety}");
    let cat = lifeboat(&repo).args(["cat", safety["id"].as_str().unwrap()]).output().unwrap();
    assert!(cat.status.success());
    let mut raw = bytes.clone();
    raw.extend_from_slice(&wal);
    assert!(cat.stdout == raw, "the safety copy is not the file and its -wal");
}

/// Flips a byte inside the last blob of the newest pack (just before the pack's trailer), so
/// that a read of the snapshot fails only after the chunks before it.
fn damage_the_last_chunk(repo_dir: &std::path::Path) {
    let packs = tree(&repo_dir.join("data"));
    let newest = packs
        .keys()
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .expect("no pack in the repository");
    let mut bytes = std::fs::read(newest).unwrap();
    let n = bytes.len();
    let trailer = u32::from_le_bytes(bytes[n - 12..n - 8].try_into().unwrap()) as usize;
    bytes[n - 12 - trailer - 5] ^= 0x40;
    std::fs::write(newest, bytes).unwrap();
}

#[test]
fn cat_writes_nothing_it_has_not_verified() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("auth.db");
    let repo_dir = dir.path().join("repo");
    let repo = repo_dir.display().to_string();
    make_sqlite_db(&db, 6);
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    let snap = snapshots(&repo)[0].clone();
    let id = snap["id"].as_str().unwrap();

    // Intact: `--out` and stdout give the captured stream.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    ok(lifeboat(&repo).args(["cat", id, "--out"]).arg(out.join("auth.db")));
    assert_eq!(hex_sha256(&std::fs::read(out.join("auth.db")).unwrap()), snap["sha256"]);
    std::fs::remove_file(out.join("auth.db")).unwrap();

    damage_the_last_chunk(&repo_dir);
    // `cat latest > auth.db`: a non-zero exit and nothing that looks like a database.
    let redirected = out.join("redirected.db");
    let file = std::fs::File::create(&redirected).unwrap();
    let status = lifeboat(&repo)
        .args(["cat", "latest", "--name", "auth"])
        .stdout(file)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "cat of a damaged snapshot succeeded");
    assert_eq!(
        std::fs::metadata(&redirected).unwrap().len(),
        0,
        "a damaged snapshot's first chunks reached stdout"
    );
    std::fs::remove_file(&redirected).unwrap();

    let err = fails(lifeboat(&repo).args(["cat", id, "--out"]).arg(out.join("auth.db")));
    assert!(err.contains("corrupt") || err.contains("damaged") || err.contains("SHA"), "{err}");
    assert!(tree(&out).is_empty(), "a failed cat --out left files: {:?}", tree(&out));
}

#[test]
fn forced_restores_under_an_open_connection_keep_the_wal_small() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let repo = dir.path().join("repo").display().to_string();
    make_sqlite_db(&db, 4);
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    let backed_up = table_counts(&db);
    let size = std::fs::metadata(&db).unwrap().len();

    // The application keeps its connection: the -wal is never deleted while it is open.
    let app = rusqlite::Connection::open(&db).unwrap();
    assert_eq!(count(&app, "events"), backed_up["events"]);
    let wal = path_with(&db, "-wal");
    let mut sizes = Vec::new();
    for _ in 0..5 {
        ok(lifeboat(&repo).args(["restore", "latest", "--force", "--to"]).arg(&db));
        assert_eq!(count(&app, "events"), backed_up["events"]);
        sizes.push(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    let largest = sizes.iter().copied().max().unwrap();
    assert!(
        largest < size / 4,
        "the -wal of a {size}-byte database grew to {sizes:?} over 5 forced restores"
    );
    drop(app);
    assert_eq!(sqlite3_integrity_check(&db), "ok");
    assert_eq!(table_counts(&db), backed_up);
}

#[test]
fn a_restored_file_gets_the_mode_the_source_had() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let repo = dir.path().join("repo").display().to_string();
    make_sqlite_db(&db, 1);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    assert_eq!(snapshots(&repo)[0]["metadata"]["mode"], 0o640);

    let restored = dir.path().join("restored.db");
    ok(lifeboat(&repo).args(["restore", "latest", "--to"]).arg(&restored));
    let mode = std::fs::metadata(&restored).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640, "restored with mode {mode:o}");
}

#[test]
fn a_killed_capture_leaves_no_copy_behind_after_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("journal.db");
    let repo = dir.path().join("repo").display().to_string();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    make_sqlite_db(&db, 40);
    // Rollback-journal mode: captured through a temporary copy of the whole database.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mode: String = conn.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "delete");
    drop(conn);
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));

    let mut child = lifeboat(&repo)
        .args(["backup", "sqlite"])
        .arg(&db)
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while tree(&tmp).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the capture finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "no temporary copy appeared within 120 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!tree(&tmp).is_empty(), "the killed capture left nothing to clean");

    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db).env("TMPDIR", &tmp));
    assert!(tree(&tmp).is_empty(), "left in the temp folder: {:?}", tree(&tmp));
}
