//! SQLite replication end to end: a writer process commits continuously while `lifeboat
//! replicate` ships its commits; the replicator is killed and started again; restores to
//! points in time and to transaction ids must equal the database as it was at that commit.
//!
//! The writer is a Python process (its own SQLite library, its own locks) whose commit `n`
//! does a fixed thing, so the database at commit `n` is rebuilt by replaying commits 1..n:
//! a restore that lost, doubled or mixed up a commit equals no replay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use util::*;

/// Commit `n` of the writer, and the replay of commits 1..n into a new file.
const WRITER: &str = r#"
import sqlite3, sys, time, os
SCHEMA = "CREATE TABLE t(n INTEGER PRIMARY KEY, v TEXT, at REAL); CREATE TABLE big(n INTEGER PRIMARY KEY, b BLOB);"
def apply(db, n, at):
    db.execute("INSERT INTO t(n, v, at) VALUES (?, ?, ?)", (n, "v%d" % n, at))
    if n % 3 == 0:
        db.execute("UPDATE t SET v = v || 'u' WHERE n = ?", (n - 2,))
    if n % 5 == 0:
        db.execute("DELETE FROM t WHERE n = ?", (n - 4,))
    if n % 50 == 0:
        db.execute("INSERT INTO big(n, b) VALUES (?, ?)", (n, bytes([n % 251]) * 20000))
    if n % 170 == 0:
        db.execute("DELETE FROM big WHERE n < ?", (n - 300,))
mode, path = sys.argv[1], sys.argv[2]
db = sqlite3.connect(path, isolation_level=None, timeout=30)
if mode == "init":
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA)
elif mode == "replay":
    times = dict(sqlite3.connect(sys.argv[4]).execute("SELECT n, at FROM t"))
    db.executescript(SCHEMA)
    db.execute("BEGIN")
    for n in range(1, int(sys.argv[3]) + 1):
        apply(db, n, times.get(n))
    db.execute("COMMIT")
elif mode == "write":
    # Its checkpoints run on a connection of their own: after such a truncating checkpoint
    # the next commit starts the -wal with new random salts.
    ck = sqlite3.connect(path, isolation_level=None, timeout=30)
    stop, truncated, n = sys.argv[3], 0, 0
    while not os.path.exists(stop):
        n += 1
        db.execute("BEGIN IMMEDIATE")
        apply(db, n, time.time())
        db.execute("COMMIT")
        if n % 400 == 0:
            busy = ck.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            truncated += busy == 0
        time.sleep(0.002)
    print(n, truncated)
"#;

struct Setup {
    dir: tempfile::TempDir,
    repo: String,
    db: PathBuf,
    script: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo").display().to_string();
        let db = dir.path().join("app.db");
        let script = dir.path().join("writer.py");
        std::fs::write(&script, WRITER).unwrap();
        ok(lifeboat(&repo).args(["init", "--no-encryption"]));
        let setup = Setup { dir, repo, db, script };
        setup.python(&["init", setup.db.to_str().unwrap()]);
        setup
    }

    fn python(&self, args: &[&str]) -> String {
        let out =
            Command::new("python3").arg(&self.script).args(args).output().expect(
                "python3 is needed to run the writer process (scripts/test.sh installs it)",
            );
        assert!(out.status.success(), "writer {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn writer(&self) -> (Child, PathBuf) {
        let stop = self.dir.path().join("stop-writer");
        let child = Command::new("python3")
            .arg(&self.script)
            .args(["write", self.db.to_str().unwrap(), stop.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed to run the writer process");
        (child, stop)
    }

    /// Stops the writer; returns how many commits it made and how many of its own TRUNCATE
    /// checkpoints went through.
    fn stop(&self, writer: Child, stop: &Path) -> (i64, u64) {
        std::fs::write(stop, "").unwrap();
        let written = writer.wait_with_output().unwrap();
        let written = String::from_utf8(written.stdout).unwrap();
        let mut counts = written.split_whitespace().map(|w| w.parse::<u64>().unwrap());
        (counts.next().unwrap() as i64, counts.next().unwrap())
    }

    fn replicator(&self) -> Child {
        lifeboat(&self.repo)
            .args(["replicate", "sqlite", self.db.to_str().unwrap(), "--json"])
            .args(["--interval", "200ms", "--snapshot-every", "4s"])
            .env("LIFEBOAT_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Restores to a point; returns the report's point and the restored file.
    fn restore(&self, file: &str, point: &[&str]) -> (serde_json::Value, PathBuf) {
        let to = self.dir.path().join(file);
        let out = ok(lifeboat(&self.repo)
            .args(["restore", "latest", "--name", "app", "--to", to.to_str().unwrap(), "--json"])
            .args(point));
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        (report["point"].clone(), to)
    }

    /// A restore to a point that must fail: returns what it said, after checking it wrote
    /// nothing.
    fn refused(&self, file: &str, point: &[&str]) -> String {
        let to = self.dir.path().join(file);
        let err = fails(
            lifeboat(&self.repo)
                .args(["restore", "latest", "--name", "app", "--to", to.to_str().unwrap()])
                .args(point),
        );
        assert!(!to.exists(), "a refused restore wrote {}", to.display());
        err
    }

    /// The newest commit in a restored file, and that the file is exactly the replay of the
    /// writer's commits up to it.
    fn check_is_a_replay(&self, restored: &Path) -> i64 {
        let n: i64 = rusqlite::Connection::open(restored)
            .unwrap()
            .query_row("SELECT coalesce(max(n), 0) FROM t", [], |r| r.get(0))
            .unwrap();
        let replay = self.dir.path().join(format!("replay-{n}.db"));
        let _ = std::fs::remove_file(&replay);
        self.python(&[
            "replay",
            replay.to_str().unwrap(),
            &n.to_string(),
            restored.to_str().unwrap(),
        ]);
        assert_eq!(
            rows(restored),
            rows(&replay),
            "{} is not the database at commit {n}",
            restored.display()
        );
        n
    }
}

/// Every row of both tables, in key order.
type Rows = (Vec<(i64, String, Option<f64>)>, Vec<(i64, Vec<u8>)>);

fn rows(path: &Path) -> Rows {
    let conn = rusqlite::Connection::open(path).unwrap();
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok", "{} is damaged", path.display());
    let t = conn
        .prepare("SELECT n, v, at FROM t ORDER BY n")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let big = conn
        .prepare("SELECT n, b FROM big ORDER BY n")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (t, big)
}

fn interrupt(child: &Child) {
    let status = Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
}

fn status_of(child: Child) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    eprintln!("replicate's log:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "replicate failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("replicate printed no status ({e}): {}", String::from_utf8_lossy(&out.stderr))
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[test]
fn restores_to_points_equal_the_database_at_those_commits_across_a_killed_replicator() {
    let setup = Setup::new();
    let (writer, stop_writer) = setup.writer();
    let first = setup.replicator();
    std::thread::sleep(Duration::from_secs(3));
    let t1 = now();
    std::thread::sleep(Duration::from_secs(2));

    // Killed outright; the writer goes on (and its checkpoints with it).
    let mut first = first;
    first.kill().unwrap();
    first.wait().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let t_down = now();
    std::thread::sleep(Duration::from_millis(500));
    let second = setup.replicator();
    std::thread::sleep(Duration::from_secs(2));

    // A second replicator of the same database is refused, naming the one that runs.
    let refused =
        fails(lifeboat(&setup.repo).args(["replicate", "sqlite", setup.db.to_str().unwrap()]));
    assert!(refused.contains("already replicated by replicate sqlite"), "{refused}");
    assert!(refused.contains(&format!("pid {}", second.id())), "{refused}");

    std::thread::sleep(Duration::from_secs(3));
    let t2 = now();
    std::thread::sleep(Duration::from_secs(1));
    let (commits, truncated) = setup.stop(writer, &stop_writer);
    assert!(commits > 1000, "the writer committed only {commits} times");
    std::thread::sleep(Duration::from_secs(1));
    interrupt(&second);
    let status = status_of(second);

    // The second run took the history over where the killed one left it.
    assert_eq!(status["resumed"], true, "{status}");
    assert_eq!(status["generations_started"], 0, "a gap was assumed: {status}");
    assert!(
        status["restarts_followed"].as_u64().unwrap() > 0,
        "no -wal restart was followed: {status}"
    );
    assert!(status["snapshots"].as_u64().unwrap() >= 1, "no periodic base snapshot: {status}");
    eprintln!("writer: {commits} commits, {truncated} TRUNCATE checkpoints of its own; {status}");

    // The newest point is the final database.
    let (latest, restored) = setup.restore("latest.db", &[]);
    assert_eq!(setup.check_is_a_replay(&restored), commits, "{latest}");
    assert_eq!(rows(&restored), rows(&setup.db));

    // Times before the kill, while it was down, and after: each restore is one commit's
    // database, committed by the writer before that time.
    let mut reached = Vec::new();
    for (i, time) in [&t1, &t_down, &t2].into_iter().enumerate() {
        let (point, restored) = setup.restore(&format!("at-{i}.db"), &["--at", time]);
        let n = setup.check_is_a_replay(&restored);
        let at: f64 = rusqlite::Connection::open(&restored)
            .unwrap()
            .query_row("SELECT at FROM t WHERE n = ?1", [n], |r| r.get(0))
            .unwrap_or(0.0);
        let limit =
            chrono::DateTime::parse_from_rfc3339(time).unwrap().timestamp_millis() as f64 / 1e3;
        assert!(at <= limit, "commit {n} was made at {at}, after {time}");
        assert!(point["time"].as_str().unwrap() <= time.as_str(), "{point}");
        reached.push((n, point["txid"].as_u64().unwrap()));
    }
    assert!(reached.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1), "{reached:?}");

    // Every transaction id around the kill restores to a replay: nothing lost, nothing twice.
    let (_, down_txid) = reached[1];
    for txid in [down_txid - 40, down_txid - 1, down_txid, down_txid + 1, down_txid + 40] {
        let (point, restored) =
            setup.restore(&format!("txid-{txid}.db"), &["--txid", &txid.to_string()]);
        assert_eq!(point["txid"], txid);
        setup.check_is_a_replay(&restored);
    }

    // A transaction beyond the history is refused with a hint, nothing written.
    let beyond = latest["txid"].as_u64().unwrap() + 1;
    let err = setup.refused("beyond.db", &["--txid", &beyond.to_string()]);
    assert!(err.contains(&format!("no transaction {beyond}")), "{err}");
}

#[test]
fn a_database_not_in_wal_mode_is_refused_with_the_way_to_switch() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let db = dir.path().join("rollback.db");
    rusqlite::Connection::open(&db).unwrap().execute_batch("CREATE TABLE t(x)").unwrap();
    let err = fails(lifeboat(&repo).args(["replicate", "sqlite", db.to_str().unwrap()]));
    assert!(err.contains("journal_mode=WAL"), "{err}");
    assert!(snapshots(&repo).is_empty());
    let missing = dir.path().join("missing.db");
    let err = fails(lifeboat(&repo).args(["replicate", "sqlite", missing.to_str().unwrap()]));
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn stale_holds_a_replica_to_its_replicator_and_verify_checks_its_segments() {
    let setup = Setup::new();
    let replicator = |ttl: &str| {
        lifeboat(&setup.repo)
            .args(["replicate", "sqlite", setup.db.to_str().unwrap()])
            .args(["--interval", "100ms"])
            .env("LIFEBOAT_LEASE_TTL", ttl)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let stale = || {
        let out =
            lifeboat(&setup.repo).args(["stale", "--max-age", "4s", "--json"]).output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), report[0].clone())
    };
    let running = replicator("3s");
    // Commits after its base snapshot, in a few batches: a few segments.
    std::thread::sleep(Duration::from_secs(1));
    let conn = rusqlite::Connection::open(&setup.db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    for n in 1..=50 {
        conn.execute("INSERT INTO t(n, v) VALUES (?1, 'x')", [n]).unwrap();
        if n % 10 == 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    // Idle for longer than the limit: the running replicator's lease keeps it fresh.
    std::thread::sleep(Duration::from_secs(6));
    let (code, fresh) = stale();
    assert_eq!(code, Some(0), "{fresh}");
    assert!(fresh["reason"].as_str().unwrap().contains("replica"), "{fresh}");

    // stats: the replica, its segments and its running replicator.
    let stats: serde_json::Value =
        serde_json::from_str(&ok(lifeboat(&setup.repo).args(["stats", "--json"]))).unwrap();
    let replica = &stats["replicas"]["app"];
    assert!(replica["segments"].as_u64().unwrap() >= 3, "{stats}");
    assert_eq!(replica["generations"], 1, "{stats}");
    assert!(
        replica["replicator"].as_str().unwrap().ends_with(&format!("pid {}", running.id())),
        "{stats}"
    );
    assert!(ok(lifeboat(&setup.repo).arg("stats")).contains("replica app:"));

    // verify: the segments after the base follow one another; every one reads back.
    let verified = ok(lifeboat(&setup.repo).args(["verify", "--all", "--read-data", "--json"]));
    assert!(verified.contains("\"segments\""), "{verified}");
    assert!(verified.contains("no gap, every one read back"), "{verified}");

    // Stopped: the newest shipment ages past the limit.
    interrupt(&running);
    assert!(running.wait_with_output().unwrap().status.success());
    std::thread::sleep(Duration::from_secs(5));
    let (code, old) = stale();
    assert_eq!(code, Some(1), "{old}");
    assert_eq!(old["stale"], true);

    // A segment removed from the store is a gap verify names (merged segments removed too,
    // or they would cover it).
    let series_dirs: Vec<_> =
        std::fs::read_dir(setup.dir.path().join("repo/wal")).unwrap().collect();
    assert_eq!(series_dirs.len(), 1);
    let series = series_dirs.into_iter().next().unwrap().unwrap().path();
    let (mut segments, merged): (Vec<_>, Vec<_>) = std::fs::read_dir(&series)
        .unwrap()
        .map(|e| e.unwrap().path())
        .partition(|p| p.file_name().unwrap().to_string_lossy().starts_with("L0-"));
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    for gone in merged.iter().chain([&segments[1]]) {
        std::fs::remove_file(gone).unwrap();
    }
    let out = lifeboat(&setup.repo).args(["verify", "--all"]).output().unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("lacks transactions"), "{text}");
}

#[test]
fn forget_drops_the_segments_only_forgotten_bases_need_and_restores_still_work() {
    let setup = Setup::new();
    let running = lifeboat(&setup.repo)
        .args(["replicate", "sqlite", setup.db.to_str().unwrap()])
        .args(["--interval", "100ms", "--snapshot-every", "2s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (writer, stop_writer) = setup.writer();
    std::thread::sleep(Duration::from_secs(5));
    setup.stop(writer, &stop_writer);
    std::thread::sleep(Duration::from_millis(500));
    interrupt(&running);
    assert!(running.wait_with_output().unwrap().status.success());
    let bases = snapshots(&setup.repo);
    assert!(bases.len() >= 2, "{bases:?}");
    let segment_files = || {
        let wal = setup.dir.path().join("repo/wal");
        let series = std::fs::read_dir(&wal).unwrap().next().unwrap().unwrap().path();
        std::fs::read_dir(series).unwrap().count()
    };
    let before = segment_files();
    let (_, oldest) = setup.restore("before.db", &["--txid", "2"]);
    setup.check_is_a_replay(&oldest);

    ok(lifeboat(&setup.repo).args(["forget", "--keep-last", "1", "--prune"]));
    let after = segment_files();
    assert!(after < before, "{before} segments before forget, {after} after");
    // The newest state still restores exactly, and verify finds no gap after the kept base.
    let (_, latest) = setup.restore("after.db", &[]);
    assert_eq!(rows(&latest), rows(&setup.db));
    ok(lifeboat(&setup.repo).args(["verify", "--all", "--read-data"]));
    // A point only a forgotten base could reach is refused, naming where the history starts.
    let err = fails(lifeboat(&setup.repo).args([
        "restore",
        "latest",
        "--name",
        "app",
        "--to",
        setup.dir.path().join("gone.db").to_str().unwrap(),
        "--txid",
        "2",
    ]));
    assert!(err.contains("starts after that point"), "{err}");
}

#[test]
fn bad_points_and_a_flipped_byte_in_a_segment_fail_loudly_and_write_nothing() {
    let setup = Setup::new();
    let running = lifeboat(&setup.repo)
        .args(["replicate", "sqlite", setup.db.to_str().unwrap(), "--interval", "100ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let conn = rusqlite::Connection::open(&setup.db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    for n in 1..=20 {
        conn.execute("INSERT INTO t(n, v) VALUES (?1, 'x')", [n]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(800));
    interrupt(&running);
    assert!(running.wait_with_output().unwrap().status.success());
    let to = setup.dir.path().join("restored.db");
    let restore = |extra: &[&str]| {
        let mut cmd = lifeboat(&setup.repo);
        cmd.args(["restore", "latest", "--name", "app", "--to", to.to_str().unwrap()]).args(extra);
        cmd
    };

    // A time that is not one.
    let err = fails(&mut restore(&["--at", "yesterday noon"]));
    assert!(err.contains("is not a time"), "{err}");
    assert!(!to.exists());

    // --at on a snapshot that is not a replica's.
    let other = setup.dir.path().join("other.db");
    rusqlite::Connection::open(&other).unwrap().execute_batch("CREATE TABLE x(y)").unwrap();
    ok(lifeboat(&setup.repo).args(["backup", "sqlite", other.to_str().unwrap()]));
    let err = fails(lifeboat(&setup.repo).args([
        "restore",
        "latest",
        "--name",
        "other",
        "--to",
        to.to_str().unwrap(),
        "--txid",
        "1",
    ]));
    assert!(err.contains("is not a replica's"), "{err}");
    assert!(!to.exists());

    // One flipped byte in a segment's entry: the restore stops, naming it; nothing is written.
    let wal = setup.dir.path().join("repo/wal");
    let series = std::fs::read_dir(&wal).unwrap().next().unwrap().unwrap().path();
    let segment = std::fs::read_dir(&series).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();
    let err = fails(&mut restore(&[]));
    eprintln!("damaged: {err}");
    assert!(
        err.contains(segment.file_name().unwrap().to_str().unwrap()) || err.contains("wal/"),
        "{err}"
    );
    assert!(!to.exists(), "a restore from a damaged segment left {}", to.display());
    let leftovers: Vec<_> = std::fs::read_dir(setup.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("lifeboat"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn compaction_merges_segments_into_levels_and_every_point_it_keeps_is_exact() {
    let setup = Setup::new();
    let (writer, stop_writer) = setup.writer();
    // Levels of 1 s and 4 s; every commit a point for 2 s, every level-1 end for 5 s.
    let start = || {
        lifeboat(&setup.repo)
            .args(["replicate", "sqlite", setup.db.to_str().unwrap(), "--json"])
            .args(["--interval", "200ms", "--snapshot-every", "1h", "--spans", "1s,4s"])
            .args(["--keep-commits", "2s", "--keep-minutes", "5s"])
            .env("LIFEBOAT_LOG", "info,lifeboat_sqlite::replica=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut replicator = start();
    let mut times = Vec::new();
    // Segments the killed run shipped (it prints no status): its log names each one.
    let mut shipped_before_kill = 0;
    for i in 0..16 {
        std::thread::sleep(Duration::from_millis(1000));
        times.push(now());
        if i == 8 {
            // Killed while it merges and drops: what it had merged in memory is lost, what
            // it stored stays; the next run goes on from there.
            // Its log is read on a thread: the lock holder it started keeps the pipe open.
            let log = replicator.stderr.take().unwrap();
            let (lines_tx, lines) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in std::io::BufRead::lines(std::io::BufReader::new(log)) {
                    let Ok(line) = line else { break };
                    if lines_tx.send(line).is_err() {
                        break;
                    }
                }
            });
            replicator.kill().unwrap();
            replicator.wait().unwrap();
            let log: Vec<String> =
                std::iter::from_fn(|| lines.recv_timeout(Duration::from_millis(500)).ok())
                    .collect();
            shipped_before_kill =
                log.iter().filter(|l| l.contains("shipped") && l.contains("segment=L0-")).count()
                    as u64;
            assert!(shipped_before_kill > 0, "{}", log.join("\n"));
            replicator = start();
        }
    }
    let (commits, _) = setup.stop(writer, &stop_writer);
    // Idle for a while: the replicator goes on merging and dropping.
    std::thread::sleep(Duration::from_secs(7));
    interrupt(&replicator);
    let status = status_of(replicator);
    assert_eq!(status["resumed"], true, "{status}");
    assert_eq!(status["generations_started"], 0, "a gap was assumed: {status}");
    // Counts of the second run, and of both runs since the base.
    let shipped_now = status["segments"].as_u64().unwrap();
    let shipped = shipped_before_kill + shipped_now;
    assert!(status["merged"].as_u64().unwrap() >= 3, "too few merges: {status}");
    assert!(status["dropped"].as_u64().unwrap() > shipped_now / 2, "too few dropped: {status}");

    let listed = ok(lifeboat(&setup.repo).arg("snapshots"));
    let line = format!("replica app: transaction {} shipped", status["last_txid"]);
    assert!(listed.contains(&line), "{listed}");
    assert!(listed.contains("no replicator running"), "{listed}");
    let stats: serde_json::Value =
        serde_json::from_str(&ok(lifeboat(&setup.repo).args(["stats", "--json"]))).unwrap();
    let replica = &stats["replicas"]["app"];
    assert!(replica["merged"].as_u64().unwrap() >= 1, "{replica}");
    assert!(replica["segments"].as_u64().unwrap() < shipped, "nothing was dropped: {replica}");
    let verified = ok(lifeboat(&setup.repo).args(["verify", "--all", "--read-data", "--json"]));
    assert!(verified.contains("no gap, every one read back"), "{verified}");

    // The newest point is the final database, read from a few merged segments.
    let (latest, restored) = setup.restore("latest.db", &[]);
    assert_eq!(setup.check_is_a_replay(&restored), commits, "{latest}");
    assert_eq!(rows(&restored), rows(&setup.db));
    let read = latest["segments"].as_u64().unwrap();
    assert!(read * 2 < shipped, "a restore read {read} of {shipped} shipped segments: {latest}");

    // Every time restores to a commit made before it, exactly, no further back than the
    // coarsest level kept there (4 s, plus the interval and the poll).
    let mut reached = Vec::new();
    for (i, time) in times.iter().enumerate() {
        let (point, restored) = setup.restore(&format!("at-{i}.db"), &["--at", time]);
        let n = setup.check_is_a_replay(&restored);
        let commit_time = |db: &Path, n: i64| -> f64 {
            rusqlite::Connection::open(db)
                .unwrap()
                .query_row("SELECT at FROM t WHERE n = ?1", [n], |r| r.get(0))
                .unwrap_or(0.0)
        };
        let limit =
            chrono::DateTime::parse_from_rfc3339(time).unwrap().timestamp_millis() as f64 / 1e3;
        assert!(commit_time(&restored, n) <= limit, "commit {n} was made after {time}");
        // A level-2 segment spans 4 s from its first part's end (1 s), plus the interval.
        // Rows the writer deleted later have no time in the live file: look further.
        let next_time = (n + 1..n + 6)
            .map(|m| commit_time(&setup.db, m))
            .find(|t| *t > 0.0)
            .unwrap_or(f64::MAX);
        assert!(
            next_time > limit - 6.5,
            "restored to commit {n} for {time}, but commits up to {:.1} s later were kept apart: {point}",
            limit - next_time
        );
        reached.push((n, point["txid"].as_u64().unwrap(), point["nearest"].is_string()));
    }
    assert!(reached.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1), "{reached:?}");
    assert!(reached.iter().any(|r| r.2), "no point was restored to a merged end: {reached:?}");

    // A transaction inside a merged span, no longer a point of its own, is refused with the
    // points kept around it; nothing is written.
    let (_, merged_end, _) = *reached.iter().find(|r| r.2 && r.1 > 2).unwrap();
    let inside = merged_end - 1;
    let err = setup.refused("inside.db", &["--txid", &inside.to_string()]);
    assert!(err.contains("no longer a point of its own"), "{err}");
    assert!(err.contains("--keep-commits"), "{err}");

    // A drill of the replica restores a random second of the last stretch and checks it.
    let base_time = snapshots(&setup.repo)[0]["time"].as_str().unwrap().to_string();
    let out = lifeboat(&setup.repo)
        .args(["drill", "--name", "app", "--within", "30s", "--json"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("sqlite replica, transaction"), "{said}");
    let drilled: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let time = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap();
    let point_time = time(drilled[0]["snapshot_time"].as_str().unwrap());
    assert_eq!(drilled[0]["passed"], true, "{drilled}");
    assert!(point_time > time(&base_time), "the base was drilled, not a point: {drilled}");
    assert!(drilled[0]["rpo_seconds"].as_f64().unwrap() < 40.0, "{drilled}");
}

#[test]
fn a_full_disk_holds_shipping_back_and_nothing_is_lost_once_there_is_room() {
    let setup = Setup::new();
    let disk = SmallDisk::mount("16m");
    let repo = disk.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let log_path = setup.dir.path().join("replicate.log");
    let replicator = lifeboat(&repo)
        .args(["replicate", "sqlite", setup.db.to_str().unwrap(), "--json"])
        .args(["--interval", "200ms"])
        .env("LIFEBOAT_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let (writer, stop_writer) = setup.writer();
    std::thread::sleep(Duration::from_secs(2));

    // The disk fills up: shipping fails, the commits wait (the lock holder keeps the -wal).
    let filler = disk.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 << 10];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let started = std::time::Instant::now();
    while !log().contains("shipping failed") {
        assert!(started.elapsed() < Duration::from_secs(30), "shipping never failed:\n{}", log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(log().contains("no space left"), "{}", log());
    std::thread::sleep(Duration::from_secs(2));

    // Room again: it catches up, in the same generation.
    std::fs::remove_file(&filler).unwrap();
    let (commits, _) = setup.stop(writer, &stop_writer);
    let to = setup.dir.path().join("caught-up.db");
    let started = std::time::Instant::now();
    loop {
        let _ = std::fs::remove_file(&to);
        let restored = lifeboat(&repo)
            .args(["restore", "latest", "--name", "app", "--to", to.to_str().unwrap()])
            .output()
            .unwrap();
        if restored.status.success() {
            let n: i64 = rusqlite::Connection::open(&to)
                .unwrap()
                .query_row("SELECT coalesce(max(n), 0) FROM t", [], |r| r.get(0))
                .unwrap();
            if n == commits {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the replica never caught up with commit {commits}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    interrupt(&replicator);
    let out = replicator.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", log());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["generations_started"], 1, "a gap was assumed: {status}");
    // Every commit, once: the newest point is the replay of all of them.
    let restored = setup.dir.path().join("final.db");
    ok(lifeboat(&repo).args(["restore", "latest", "--name", "app", "--to"]).arg(&restored));
    assert_eq!(setup.check_is_a_replay(&restored), commits);
    assert_eq!(rows(&restored), rows(&setup.db));
    ok(lifeboat(&repo).args(["verify", "--all", "--read-data"]));
}

#[test]
fn an_encrypted_repository_replicates_and_restores_the_same() {
    let setup = Setup::new();
    let repo = setup.dir.path().join("sealed").display().to_string();
    let sealed = || {
        let mut cmd = lifeboat(&repo);
        cmd.env("LIFEBOAT_PASSWORD", "replica password");
        cmd
    };
    ok(sealed().arg("init"));
    let (writer, stop_writer) = setup.writer();
    let replicator = sealed()
        .args(["replicate", "sqlite", setup.db.to_str().unwrap(), "--json"])
        .args(["--interval", "200ms", "--spans", "1s,4s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let (commits, _) = setup.stop(writer, &stop_writer);
    std::thread::sleep(Duration::from_secs(1));
    interrupt(&replicator);
    let status = status_of(replicator);
    assert!(status["merged"].as_u64().unwrap() >= 1, "{status}");
    let restored = setup.dir.path().join("sealed.db");
    ok(sealed().args(["restore", "latest", "--name", "app", "--to"]).arg(&restored));
    assert_eq!(setup.check_is_a_replay(&restored), commits);
    ok(sealed().args(["verify", "--all", "--read-data"]));
    // Without the password nothing opens.
    let err = fails(
        lifeboat(&repo)
            .args(["restore", "latest", "--name", "app", "--to"])
            .arg(setup.dir.path().join("nope.db")),
    );
    assert!(err.to_lowercase().contains("password"), "{err}");
}
