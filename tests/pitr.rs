//! PostgreSQL point-in-time recovery end to end: a throwaway cluster archives its WAL with
//! the built binary (`archive_command = lifeboat wal-push`), a base backup goes into the same
//! repository, and restores into new data directories recover to a time, to the backup's
//! end, to the newest WAL, and along a second timeline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use util::*;

/// The repository, the password and a copy of the binary, where the `postgres` user (which
/// runs the server and its archive_command) can reach them.
struct Setup {
    tmp: tempfile::TempDir,
    bin: PathBuf,
    repo: String,
    password: PathBuf,
    as_postgres: bool,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::Builder::new().prefix("lifeboat-pitr-").tempdir().unwrap();
        let bin = tmp.path().join("lifeboat");
        std::fs::copy(env!("CARGO_BIN_EXE_lifeboat"), &bin).unwrap();
        let password = tmp.path().join("password");
        std::fs::write(&password, "pitr test password").unwrap();
        let as_postgres = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(tmp.path())
                .status()
                .unwrap();
            assert!(status.success(), "could not hand the test folder to the postgres user");
        }
        let repo = tmp.path().join("repo").display().to_string();
        let setup = Setup { tmp, bin, repo, password, as_postgres };
        ok(&mut setup.lifeboat(&["init"]));
        setup
    }

    /// The built lifeboat with this repository and password, as the server's user.
    fn lifeboat(&self, args: &[&str]) -> Command {
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&self.bin);
            c
        } else {
            Command::new(&self.bin)
        };
        cmd.arg("--repo").arg(&self.repo).arg("--password-file").arg(&self.password);
        cmd.args(args).env("LIFEBOAT_LOG", "warn").env_remove("LIFEBOAT_REPO");
        for var in ["LIFEBOAT_PASSWORD", "LIFEBOAT_PASSWORD_FILE", "LIFEBOAT_KEY_FILE"] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn archive_command(&self, series: &str) -> String {
        format!(
            "{} --repo {} --password-file {} wal-push %p --name {series}",
            self.bin.display(),
            self.repo,
            self.password.display()
        )
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `drill --name main --json`, expecting at least 4 rows in `t` and one whose note is
    /// `note`; asserts that it passed and returns its report.
    fn drill_main(&self, note: &str) -> String {
        let expect = self.path("expect.toml");
        let toml = format!(
            "[main]\nmin_rows = {{ t = 4 }}\nquery = \"SELECT 1 FROM t WHERE note = '{note}'\"\n"
        );
        std::fs::write(&expect, toml).unwrap();
        let heartbeat = self.path("heartbeat.json");
        let drilled = ok(&mut self.lifeboat(&[
            "drill",
            "--name",
            "main",
            "--expect",
            expect.to_str().unwrap(),
            "--heartbeat",
            heartbeat.to_str().unwrap(),
            "--json",
        ]));
        let results: serde_json::Value = serde_json::from_str(&drilled).unwrap();
        assert_eq!(results[0]["passed"], true, "the drill expecting {note:?}: {drilled}");
        drilled
    }

    /// `wal-fetch FILE DEST --name SERIES`, as the server's `restore_command` runs it.
    fn wal_fetch(&self, file: &str, dest: &Path, series: &str) -> Command {
        self.lifeboat(&["wal-fetch", file, dest.to_str().unwrap(), "--name", series])
    }
}

/// A restored cluster, stopped when dropped.
struct Restored<'a> {
    pg: &'a PgCluster,
    dir: PathBuf,
    port: u16,
}

impl Restored<'_> {
    fn psql(&self, sql: &str) -> String {
        let url = format!("postgres://postgres:{PG_PASSWORD}@127.0.0.1:{}/postgres", self.port);
        let out = Command::new(self.pg.bin("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", &url, "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn notes(&self) -> Vec<String> {
        self.psql("SELECT note FROM t ORDER BY id").lines().map(str::to_string).collect()
    }
}

impl Drop for Restored<'_> {
    fn drop(&mut self) {
        let _ = self
            .pg
            .command(&self.pg.bin("pg_ctl"))
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// Switches to a new WAL segment and waits until the server has archived it.
fn archive_now(pg: &PgCluster) {
    let segment = pg.psql("postgres", "SELECT pg_walfile_name(pg_switch_wal())");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (archived, failed) = {
            let row = pg.psql(
                "postgres",
                "SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver",
            );
            let (a, f) = row.split_once('|').unwrap();
            (a.to_string(), f.to_string())
        };
        if archived.as_str() >= segment.as_str() {
            assert_eq!(failed, "0", "archive_command failed; see the server log");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{segment} was not archived in 60 s (last {archived}, failed {failed})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn restore<'a>(setup: &Setup, pg: &'a PgCluster, dir: &str, extra: &[&str]) -> Restored<'a> {
    let dir = setup.path(dir);
    let port = free_port();
    let mut args = vec!["restore", "latest", "--name", "main"];
    let to = format!("pgdata:{}", dir.display());
    let port_text = port.to_string();
    args.extend(["--to", &to, "--start", "--port", &port_text]);
    args.extend(extra);
    ok(&mut setup.lifeboat(&args));
    Restored { pg, dir, port }
}

/// strace's lines with a call another thread interrupted (`… <unfinished ...>`, later
/// `PID <... call resumed>…`) put back together, in the order the calls ended.
fn join_resumed(trace: &str) -> Vec<String> {
    let mut pending: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    let mut lines = Vec::new();
    for line in trace.lines() {
        let pid = line.split_whitespace().next().unwrap_or_default();
        if let Some(start) = line.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, start);
        } else if let Some((_, rest)) = line.split_once(" resumed>") {
            let start = pending.remove(pid).unwrap_or_default();
            lines.push(format!("{start}{rest}"));
        } else {
            lines.push(line.to_string());
        }
    }
    lines
}

/// `cmd` under `strace -f`, its syncs and renames written to `trace`.
fn under_strace(cmd: &Command, trace: &Path) -> Command {
    let strace = find_program("strace")
        .expect("this test needs strace (apt-get install strace) to watch the restore's syncs");
    let mut traced = Command::new(strace);
    traced
        .args([
            "-f",
            "-y",
            "-s",
            "4096",
            "-e",
            "trace=fsync,fdatasync,syncfs,rename,renameat,renameat2",
        ])
        .arg("-o")
        .arg(trace)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => traced.env(key, value),
            None => traced.env_remove(key),
        };
    }
    traced
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

#[test]
fn point_in_time_recovery_to_a_time_the_backup_end_the_newest_wal_and_a_second_timeline() {
    let setup = Setup::new();
    let archive = setup.archive_command("main");
    let pg = PgCluster::start_with(&[("archive_mode", "on"), ("archive_command", &archive)]);
    pg.psql("postgres", "CREATE TABLE t (id serial PRIMARY KEY, note text NOT NULL)");
    pg.psql("postgres", "INSERT INTO t(note) VALUES ('before')");

    // Read from the data directory (this test runs on the database host, as root); the
    // second base backup below goes over the replication protocol, so every restore and
    // drill of this test reads one of each.
    let url = pg.url("postgres");
    ok(&mut setup.lifeboat(&[
        "backup",
        "postgres-cluster",
        &url,
        "--name",
        "main",
        "--via",
        "files",
    ]));
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&mut setup.lifeboat(&["snapshots", "--json"]))).unwrap();
    let meta = &listed[0]["metadata"];
    assert_eq!(listed[0]["kind"], "postgres-cluster");
    assert_eq!(meta["via"], "files", "{meta}");
    assert_eq!(meta["timeline"], 1, "{meta}");
    assert!(meta["start_lsn"].as_str().unwrap().contains('/'), "{meta}");
    assert!(!meta["system_identifier"].as_str().unwrap().is_empty(), "{meta}");

    pg.psql("postgres", "INSERT INTO t(note) VALUES ('marker')");
    let marker_time = pg.psql("postgres", "SELECT clock_timestamp()");
    std::thread::sleep(Duration::from_millis(1200));
    pg.psql("postgres", "INSERT INTO t(note) VALUES ('later')");
    archive_now(&pg);
    // The cluster's RPO is the age of its newest archived WAL, not of its base backup.
    let stale = ok(&mut setup.lifeboat(&["stale", "--max-age", "1h", "--json"]));
    assert!(stale.contains("newest archived WAL"), "{stale}");
    // stats shows the archive beside the base backups.
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&mut setup.lifeboat(&["stats", "--json"]))).unwrap();
    let wal = &stats["wal_archives"]["main"];
    assert!(wal["segments"].as_u64().unwrap() >= 2, "{stats}");
    assert!(wal["files"].as_u64().unwrap() >= wal["segments"].as_u64().unwrap(), "{stats}");
    assert!(wal["newest_archived"].is_string(), "{stats}");
    let first = wal["first"].as_str().unwrap().to_string();
    let text = ok(&mut setup.lifeboat(&["stats"]));
    assert!(text.contains("WAL archive of main") && text.contains(&first), "{text}");

    // The dry run prints the steps, the restore_command among them, and changes nothing.
    let dry = ok(&mut setup.lifeboat(&[
        "restore",
        "latest",
        "--name",
        "main",
        "--to",
        &format!("pgdata:{}", setup.path("dry").display()),
        "--target-time",
        &marker_time,
        "--dry-run",
    ]));
    assert!(dry.contains("wal-fetch %f %p --name main"), "{dry}");
    assert!(!setup.path("dry").exists());

    let at_time = restore(&setup, &pg, "at-time", &["--target-time", &marker_time]);
    assert_eq!(at_time.notes(), ["before", "marker"], "recovered to the marker's time");
    assert_eq!(at_time.psql("SELECT pg_is_in_recovery()"), "f", "accepts writes");
    at_time.psql("INSERT INTO t(note) VALUES ('written after the restore')");

    // What a restore killed with -9 left beside the target (a dead process's temporary
    // copy) goes with the next restore there.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let left = setup.path(&format!(".immediate.lifeboat-restore-{dead_pid}-x1y2z3"));
    std::fs::create_dir_all(left.join("base")).unwrap();
    std::fs::write(left.join("base/1"), b"half a cluster").unwrap();
    if setup.as_postgres {
        Command::new("chown").args(["-R", "postgres:postgres"]).arg(&left).status().unwrap();
    }
    let immediate = restore(&setup, &pg, "immediate", &["--immediate"]);
    assert!(!left.exists(), "the interrupted restore's copy was removed");
    assert_eq!(immediate.notes(), ["before"], "only what the base backup holds");
    drop(immediate);

    let newest = restore(&setup, &pg, "newest", &[]);
    assert_eq!(newest.notes(), ["before", "marker", "later"], "every archived change");
    drop(newest);

    // A first PITR that archives its new timeline into the same series, then a second PITR
    // from the same base backup along that timeline.
    // This restore runs under strace: the data directory reaches the disk (one syncfs)
    // before it is renamed into place, and its folder is synced after.
    let branch_dir = setup.path("branch");
    let to = format!("pgdata:{}", branch_dir.display());
    let trace = setup.path("restore-trace.txt");
    let restore_cmd = setup.lifeboat(&[
        "restore",
        "latest",
        "--name",
        "main",
        "--to",
        &to,
        "--target-time",
        &marker_time,
    ]);
    ok(&mut under_strace(&restore_cmd, &trace));
    let trace = std::fs::read_to_string(&trace).unwrap();
    let joined = join_resumed(&trace);
    let lines: Vec<&str> =
        joined.iter().map(String::as_str).filter(|l| l.trim_end().ends_with("= 0")).collect();
    let swap = lines
        .iter()
        .position(|l| l.contains("rename") && l.contains(&format!("\"{}\"", branch_dir.display())))
        .unwrap_or_else(|| panic!("no rename onto {}:\n{trace}", branch_dir.display()));
    assert!(
        lines[..swap].iter().any(|l| l.contains("syncfs(")),
        "the restored data directory was not synced before the swap:\n{trace}"
    );
    let parent = format!("<{}>", setup.tmp.path().canonicalize().unwrap().display());
    assert!(
        lines[swap..].iter().any(|l| l.contains("fsync(") && l.contains(&parent)),
        "the folder was not synced after the swap:\n{trace}"
    );
    let auto = branch_dir.join("postgresql.auto.conf");
    let mut conf = std::fs::read_to_string(&auto).unwrap();
    conf.push_str(&format!("archive_mode = on\narchive_command = '{archive}'\n"));
    std::fs::write(&auto, conf).unwrap();
    let port = free_port();
    let out = run(pg.command(&pg.bin("pg_ctl")).arg("-D").arg(&branch_dir).args([
        "-o",
        &format!("-p {port} -c unix_socket_directories=''"),
        "-l",
        &setup.path("branch.log").display().to_string(),
        "-w",
        "start",
    ]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let branch = Restored { pg: &pg, dir: branch_dir.clone(), port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while branch.psql("SELECT pg_is_in_recovery()") != "f" {
        assert!(Instant::now() < deadline, "the branch did not finish recovery");
        std::thread::sleep(Duration::from_millis(100));
    }
    branch.psql("CHECKPOINT");
    let timeline = branch.psql("SELECT timeline_id FROM pg_control_checkpoint()");
    assert!(timeline.parse::<u32>().unwrap() >= 2, "the branch is on a new timeline: {timeline}");
    branch.psql("INSERT INTO t(note) VALUES ('on the branch')");
    let branch_time = branch.psql("SELECT clock_timestamp()");
    std::thread::sleep(Duration::from_millis(1200));
    branch.psql("INSERT INTO t(note) VALUES ('later on the branch')");
    let segment = branch.psql("SELECT pg_walfile_name(pg_switch_wal())");
    let deadline = Instant::now() + Duration::from_secs(60);
    while branch.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < segment {
        assert!(Instant::now() < deadline, "the branch did not archive {segment}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(branch);

    let second = restore(&setup, &pg, "second", &["--target-time", &branch_time]);
    assert_eq!(
        second.notes(),
        ["before", "marker", "on the branch"],
        "recovered along the branch's timeline to its time"
    );
    drop(second);
    drop(at_time);

    // verify follows the archive from the backup's end along the newest timeline.
    let verified =
        ok(&mut setup.lifeboat(&["verify", "latest", "--name", "main", "--read-data", "--json"]));
    assert!(verified.contains("no gap") && verified.contains("every byte read back"), "{verified}");
    // A segment missing in the middle is named, and verify fails.
    let needed = verified
        .split("segments from ")
        .nth(1)
        .and_then(|rest| rest.get(..24))
        .map(str::to_string)
        .unwrap();
    let entry = find_entry(Path::new(&setup.repo), &needed);
    let aside = setup.path("aside");
    std::fs::rename(&entry, &aside).unwrap();
    let gap = run(&mut setup.lifeboat(&["verify", "latest", "--name", "main"]));
    let text =
        String::from_utf8_lossy(&gap.stdout).to_string() + &String::from_utf8_lossy(&gap.stderr);
    assert!(!gap.status.success(), "{text}");
    assert!(text.contains(&needed), "the missing segment is named: {text}");
    std::fs::rename(&aside, &entry).unwrap();

    // A drill restores the base backup into scratch, recovers to the newest WAL (along the
    // branch), starts it, checks the expectations and removes it.
    let drilled = setup.drill_main("later on the branch");
    assert!(
        drilled.contains("accepts writes") && drilled.contains("at least 4 rows in t"),
        "{drilled}"
    );
    let scratch: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name().to_string_lossy().starts_with("lifeboat-drill-")
                && e.path().join("PG_VERSION").exists()
        })
        .collect();
    assert!(scratch.is_empty(), "the drill left its cluster: {scratch:?}");

    // A second base backup; forgetting the first drops the WAL only it needed.
    ok(&mut setup.lifeboat(&[
        "backup",
        "postgres-cluster",
        &pg.url("postgres"),
        "--name",
        "main",
        "--via",
        "replication",
    ]));
    archive_now(&pg);
    ok(&mut setup.lifeboat(&["forget", "--name", "main", "--keep-last", "1"]));
    let fetched = setup.path("old-segment");
    let out = run(&mut setup.wal_fetch(&needed, &fetched, "main"));
    assert_eq!(out.status.code(), Some(1), "{needed} went with the first base backup");
    find_entry(Path::new(&setup.repo), "00000002.history"); // history files stay
    let verified = ok(&mut setup.lifeboat(&["verify", "--all", "--json"]));
    assert!(verified.contains("no gap"), "the kept base backup still has its WAL: {verified}");
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&mut setup.lifeboat(&["snapshots", "--json"]))).unwrap();
    assert_eq!(listed[0]["metadata"]["via"], "replication", "{listed:?}");

    // The second base backup was taken on timeline 1 after the branch left it: its restore
    // stays on timeline 1 (PostgreSQL's `latest` would pick the branch and refuse to start).
    pg.psql("postgres", "INSERT INTO t(note) VALUES ('after the second backup')");
    archive_now(&pg);
    let last = restore(&setup, &pg, "after-second", &[]);
    assert_eq!(last.notes(), ["before", "marker", "later", "after the second backup"]);
    drop(last);
    // So does its drill, which PostgreSQL's `latest` would also send along the branch.
    setup.drill_main("after the second backup");

    // A flipped byte in every pack: the restore fails naming what is damaged, and leaves
    // neither a data directory nor its temporary copy.
    for pack in files_under(&Path::new(&setup.repo).join("data")) {
        let mut bytes = std::fs::read(&pack).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&pack, bytes).unwrap();
    }
    let damaged = setup.path("damaged");
    let err = fails(&mut setup.lifeboat(&[
        "restore",
        "latest",
        "--name",
        "main",
        "--to",
        &format!("pgdata:{}", damaged.display()),
    ]));
    assert!(err.contains("data/"), "the damaged pack is named: {err}");
    assert!(!damaged.exists(), "a failed restore left a data directory");
    let leftovers: Vec<_> = std::fs::read_dir(setup.tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("lifeboat-restore"))
        .collect();
    assert!(leftovers.is_empty(), "the failed restore left {leftovers:?}");
}

/// Every file under `dir`, at any depth.
/// A role that may not read the data directory (no superuser, only REPLICATION): `auto`
/// backs up over the replication protocol, `--via files` refuses saying why; the backup read
/// from the files restores to the same rows as the one read over replication.
#[test]
fn base_backups_read_the_files_on_the_host_and_fall_back_to_replication() {
    let setup = Setup::new();
    let pg = PgCluster::start();
    pg.psql("postgres", "CREATE TABLE t (id serial PRIMARY KEY, note text NOT NULL)");
    pg.psql("postgres", "INSERT INTO t(note) SELECT 'row ' || g FROM generate_series(1, 5000) g");
    pg.psql("postgres", "CREATE ROLE copier LOGIN REPLICATION PASSWORD 'copier-secret'");
    let port =
        pg.url("postgres").rsplit(':').next().unwrap().split('/').next().unwrap().to_string();
    let copier = format!("postgres://copier:copier-secret@127.0.0.1:{port}/postgres");

    let err = fails(&mut setup.lifeboat(&[
        "backup",
        "postgres-cluster",
        &copier,
        "--name",
        "main",
        "--via",
        "files",
    ]));
    assert!(err.contains("data directory") && err.contains("data_directory"), "{err}");
    assert!(err.contains("--via replication"), "the hint names the other way: {err}");
    let err =
        fails(&mut setup.lifeboat(&["backup", "postgres-cluster", &copier, "--via", "by pigeon"]));
    assert!(err.contains("by pigeon"), "{err}");
    let listed = ok(&mut setup.lifeboat(&["snapshots", "--json"]));
    assert_eq!(listed.trim(), "[]", "a refused backup saved nothing");

    // kill -9 at different moments of a backup read from the files (of a cluster made big
    // enough to take a while): whatever it saved is whole, the server's backup and
    // temporary slot end with its session, and the next backups (below) start as usual.
    pg.psql(
        "postgres",
        "CREATE TABLE bulk AS SELECT g, md5(g::text) AS h FROM generate_series(1, 1500000) g",
    );
    for delay in [30u64, 150, 400] {
        let mut child = setup
            .lifeboat(&["backup", "postgres-cluster", &pg.url("postgres"), "--name", "killed"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        // runuser forwards the signal to the backup it started.
        let _ = Command::new("pkill").args(["-KILL", "-f", "backup postgres-cluster"]).status();
        let _ = child.kill();
        let _ = child.wait();
        ok(&mut setup.lifeboat(&["verify", "--all", "--read-data"]));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = pg.psql(
                "postgres",
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'lifeboat_%'",
            );
            if left == "0" {
                break;
            }
            assert!(Instant::now() < deadline, "a killed backup left its slot: {left}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let killed: Vec<serde_json::Value> = serde_json::from_str(&ok(&mut setup.lifeboat(&[
        "snapshots",
        "--name",
        "killed",
        "--json",
    ])))
    .unwrap();
    assert!(killed.len() < 3, "no kill landed before its backup ended: {}", killed.len());
    pg.psql("postgres", "DROP TABLE bulk");

    ok(&mut setup.lifeboat(&["backup", "postgres-cluster", &copier, "--name", "main"]));
    ok(&mut setup.lifeboat(&["backup", "postgres-cluster", &pg.url("postgres"), "--name", "main"]));
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&mut setup.lifeboat(&["snapshots", "--name", "main", "--json"])))
            .unwrap();
    let via: Vec<&str> =
        listed.iter().map(|s| s["metadata"]["via"].as_str().unwrap_or_default()).collect();
    assert_eq!(via, ["replication", "files"], "auto as the copier, then as the superuser");
    // The same files, read the other way, deduplicate against the first backup: what the
    // second stores is mostly its own WAL segment (bench/pitr.sh measures it at scale).
    let stored: Vec<u64> = listed.iter().map(|s| s["stored"].as_u64().unwrap()).collect();
    assert!(stored[1] < stored[0], "the file-read backup deduplicated: {stored:?}");

    for (n, snap) in listed.iter().enumerate() {
        let dir = setup.path(&format!("restored-{n}"));
        let id = snap["id"].as_str().unwrap();
        let port = free_port();
        let to = format!("pgdata:{}", dir.display());
        ok(&mut setup.lifeboat(&[
            "restore",
            id,
            "--to",
            &to,
            "--immediate",
            "--start",
            "--port",
            &port.to_string(),
        ]));
        let restored = Restored { pg: &pg, dir, port };
        assert_eq!(restored.psql("SELECT count(*), max(note) FROM t"), "5000|row 999");
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The store file of archived `file` in a local repository (its series folder is a hash).
fn find_entry(repo: &Path, file: &str) -> PathBuf {
    for series in std::fs::read_dir(repo.join("wal")).unwrap() {
        let path = series.unwrap().path().join(file);
        if path.exists() {
            return path;
        }
    }
    panic!("{file} is not archived in {}", repo.display());
}

#[test]
fn the_archive_refuses_other_bytes_under_a_name_and_a_killed_push_leaves_nothing() {
    let setup = Setup::new();
    let segment = setup.path("000000010000000000000001");
    std::fs::write(&segment, pseudo_random(16 << 20, 1)).unwrap();
    let push = |path: &Path| setup.lifeboat(&["wal-push", path.to_str().unwrap(), "--name", "db"]);
    ok(&mut push(&segment));
    ok(&mut push(&segment)); // the same file again: PostgreSQL's retry
    let other = setup.path("other").join("000000010000000000000001");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::write(&other, pseudo_random(16 << 20, 2)).unwrap();
    if setup.as_postgres {
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(setup.path("other"))
            .status()
            .unwrap();
    }
    let refused = fails(&mut push(&other));
    assert!(
        refused.contains("other content") && refused.contains("000000010000000000000001"),
        "{refused}"
    );

    // What is archived is what the first push stored, byte for byte.
    let dest = setup.path("fetched");
    ok(&mut setup.wal_fetch("000000010000000000000001", &dest, "db"));
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&segment).unwrap());
    // A file that is not archived: exit code 1 and nothing printed (recovery ends there).
    let out = run(&mut setup.wal_fetch("000000010000000000000009", &dest, "db"));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));

    // An archived file that cannot be read is not the end of the archive: exit code 255,
    // which makes PostgreSQL stop recovery instead of promoting early, and a message.
    let entry = find_entry(Path::new(&setup.repo), "000000010000000000000001");
    let intact = std::fs::read(&entry).unwrap();
    let mut damaged = intact.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x20;
    std::fs::write(&entry, &damaged).unwrap();
    let out = run(&mut setup.wal_fetch("000000010000000000000001", &setup.path("damaged"), "db"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert!(stderr.contains("error: ") && stderr.contains("hint: "), "{stderr}");
    assert!(!setup.path("damaged").exists(), "nothing handed to the server");
    std::fs::write(&entry, &intact).unwrap();

    // A write-only key (a database host's) pushes, and tells a retry from other bytes;
    // only a full key reads what it pushed.
    let key = setup.path("write-only.key");
    ok(&mut setup.lifeboat(&["key", "add", "--write-only", "--out", key.to_str().unwrap()]));
    let write_only = |args: &[&str]| {
        let mut cmd = setup.lifeboat(args);
        cmd.arg("--key-file").arg(&key);
        cmd
    };
    let host_file = setup.path("000000010000000000000002");
    std::fs::write(&host_file, pseudo_random(1 << 20, 3)).unwrap();
    if setup.as_postgres {
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(setup.tmp.path())
            .status()
            .unwrap();
    }
    let host_push = ["wal-push", host_file.to_str().unwrap(), "--name", "db"];
    ok(&mut write_only(&host_push));
    ok(&mut write_only(&host_push));
    let refused = fails(&mut write_only(&["wal-push", other.to_str().unwrap(), "--name", "db"]));
    assert!(refused.contains("other content"), "{refused}");
    let host_fetched = setup.path("host-fetched");
    let denied = fails(&mut write_only(&[
        "wal-fetch",
        "000000010000000000000002",
        host_fetched.to_str().unwrap(),
        "--name",
        "db",
    ]));
    assert!(denied.contains("write-only"), "{denied}");
    ok(&mut setup.wal_fetch("000000010000000000000002", &host_fetched, "db"));
    assert_eq!(std::fs::read(&host_fetched).unwrap(), std::fs::read(&host_file).unwrap());

    // kill -9 at different moments of a push: never a visible partial file, and the retry
    // archives it.
    for (i, delay) in [40u64, 120, 250, 400].into_iter().enumerate() {
        let name = format!("0000000100000000000000{:02X}", 0x10 + i);
        let path = setup.path(&name);
        std::fs::write(&path, pseudo_random(16 << 20, 10 + i as u64)).unwrap();
        if setup.as_postgres {
            Command::new("chown").args(["postgres:postgres"]).arg(&path).status().unwrap();
        }
        let mut child = push(&path).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        // runuser forwards the signal to the push it started.
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &format!("wal-push {}", path.display())])
            .status();
        let _ = child.kill();
        let _ = child.wait();
        let fetched = setup.path(&format!("fetched-{i}"));
        let out = run(&mut setup.wal_fetch(&name, &fetched, "db"));
        match out.status.code() {
            Some(1) => assert!(!fetched.exists(), "nothing written for a file not archived"),
            Some(0) => assert_eq!(std::fs::read(&fetched).unwrap(), std::fs::read(&path).unwrap()),
            other => panic!(
                "wal-fetch after a killed push: {other:?} {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
        ok(&mut push(&path));
        let again = setup.path(&format!("again-{i}"));
        ok(&mut setup.wal_fetch(&name, &again, "db"));
        assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&path).unwrap());
    }
}

/// `restore_command` as recovery calls it: one segment after another, each call a new
/// process. The first call starts one background prefetcher, which keeps the segments after
/// the last one asked for in `pg_wal/lifeboat-prefetch`; later calls are served from there;
/// a segment missing from the archive ends the queue; the prefetcher ends, and removes the
/// folder, once recovery is over.
#[test]
fn wal_fetch_keeps_a_prefetch_queue_ahead_of_recovery_and_ends_with_it() {
    let setup = Setup::new();
    let segments: Vec<String> = (1..=6).map(|n| format!("0000000100000000000000{n:02X}")).collect();
    let incoming = setup.path("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    for (i, name) in segments.iter().enumerate() {
        std::fs::write(incoming.join(name), pseudo_random(1 << 20, 10 + i as u64)).unwrap();
    }
    // A data directory in recovery, as PostgreSQL lays it out.
    let data = setup.path("data");
    let pg_wal = data.join("pg_wal");
    std::fs::create_dir_all(&pg_wal).unwrap();
    std::fs::write(data.join("recovery.signal"), "").unwrap();
    if setup.as_postgres {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&incoming)
            .arg(&data)
            .status()
            .unwrap();
        assert!(status.success());
    }
    for name in &segments {
        let path = incoming.join(name);
        ok(&mut setup.lifeboat(&["wal-push", path.to_str().unwrap(), "--name", "db"]));
    }
    let dest = pg_wal.join("RECOVERYXLOG");
    let fetch = |file: &str| run(&mut setup.wal_fetch(file, &dest, "db"));
    let spool = pg_wal.join("lifeboat-prefetch");
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "waited 30 s for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let prefetchers = || {
        let out = Command::new("pgrep")
            .args(["-f", &format!("{} .*--prefetch-worker", setup.repo)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };

    // The first call fetches its own segment and starts the prefetcher, which fills the
    // queue with every archived segment after it (fewer than --prefetch).
    let out = fetch(&segments[0]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(incoming.join(&segments[0])).unwrap());
    wait_for("the queue to hold segments 2 to 6", &|| {
        segments[1..].iter().all(|s| spool.join(s).exists())
    });
    assert_eq!(prefetchers(), 1, "one prefetcher serves the folder");
    for name in &segments[1..] {
        let queued = std::fs::read(spool.join(name)).unwrap();
        assert_eq!(queued, std::fs::read(incoming.join(name)).unwrap(), "{name} queued whole");
    }

    // Later calls are served from the queue (the file leaves it), in order, whole.
    for name in &segments[1..4] {
        let out = fetch(name);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!spool.join(name).exists(), "{name} was taken from the queue");
        assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(incoming.join(name)).unwrap());
    }
    assert_eq!(prefetchers(), 1, "calls served from the queue start no second prefetcher");

    // A damaged queue entry is never handed over: the prefetcher writes whole files only,
    // and what a dead writer left half-written is removed.
    let stray = spool.join(format!("{}.lifeboat-999999999", segments[5]));
    std::fs::write(&stray, b"half").unwrap();
    wait_for("the dead writer's temporary file to go", &|| !stray.exists());

    // Recovery is over when PostgreSQL removes recovery.signal: the prefetcher ends and
    // takes the queue with it.
    std::fs::remove_file(data.join("recovery.signal")).unwrap();
    wait_for("the prefetcher to end", &|| prefetchers() == 0);
    assert!(!spool.exists(), "the queue is removed at the end of recovery");

    // Outside recovery (no signal file) a call fetches its own segment and starts nothing;
    // a segment not in the archive exits 1, quietly.
    let out = fetch(&segments[4]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(incoming.join(&segments[4])).unwrap());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(prefetchers(), 0);
    assert!(!spool.exists());
    let out = fetch("000000010000000000000009");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// lifeboatd's drills of base backups recover from the WAL archive, as `lifeboat drill`
/// does: the `lifeboat` binary beside lifeboatd, this repository and its password file make
/// the drill's `restore_command` without a line of configuration. A row written after the
/// base backup is in the drilled cluster only when its WAL was replayed.
#[test]
fn lifeboatd_drills_recover_base_backups_from_the_wal_archive() {
    let setup = Setup::new();
    let lifeboatd = setup.path("lifeboatd");
    std::fs::copy(env!("CARGO_BIN_EXE_lifeboatd"), &lifeboatd).unwrap();
    let archive = setup.archive_command("main");
    let pg = PgCluster::start_with(&[("archive_mode", "on"), ("archive_command", &archive)]);
    pg.psql("postgres", "CREATE TABLE t (id serial PRIMARY KEY, note text NOT NULL)");
    pg.psql("postgres", "INSERT INTO t(note) VALUES ('before')");
    ok(&mut setup.lifeboat(&["backup", "postgres-cluster", &pg.url("postgres"), "--name", "main"]));
    pg.psql("postgres", "INSERT INTO t(note) VALUES ('after the base backup')");
    archive_now(&pg);

    let port = free_port();
    let token = "pitr-drill-token-0123456789";
    let state = setup.path("state");
    let tmp = setup.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let config = setup.path("lifeboatd.toml");
    std::fs::write(
        &config,
        format!(
            "repository = \"{repo}\"\npassword_file = \"{password}\"\nlisten = \"127.0.0.1:{port}\"\ntokens = [\"{token}\"]\nstate_dir = \"{state}\"\n\n[[jobs]]\nname = \"main\"\nkind = \"postgres-cluster\"\ntarget = \"{url}\"\nschedule = \"0 0 1 1 *\"\ndrill = \"every 1s\"\nrpo = \"6s\"\nexpect = {{ min_rows = {{ t = 2 }} }}\n",
            repo = setup.repo,
            password = setup.password.display(),
            state = state.display(),
            url = pg.url("postgres"),
        ),
    )
    .unwrap();
    if setup.as_postgres {
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(setup.tmp.path())
            .status()
            .unwrap();
    }
    let mut service = if setup.as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&lifeboatd);
        c
    } else {
        Command::new(&lifeboatd)
    };
    let log = std::fs::File::create(setup.path("lifeboatd.log")).unwrap();
    let child = service
        .arg("--config")
        .arg(&config)
        .env("TMPDIR", &tmp)
        .env("LIFEBOAT_LOG", "info")
        .env_remove("LIFEBOAT_TOKENS")
        .env_remove("LIFEBOAT_REPO")
        .env_remove("LIFEBOAT_WEBHOOKS")
        .env_remove("NOTIFY_SOCKET")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("kill").arg(self.0.id().to_string()).status();
            let _ = self.0.wait();
        }
    }
    let _service = Stop(child);
    let log = || std::fs::read_to_string(setup.path("lifeboatd.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(180);
    let run = loop {
        assert!(Instant::now() < deadline, "no drill ended in 180 s; log:\n{}", log());
        std::thread::sleep(Duration::from_millis(500));
        let Some(body) = http_get(port, "/api/runs?job=main&operation=drill", token) else {
            continue;
        };
        let runs: serde_json::Value = serde_json::from_str(&body).unwrap();
        let ended = runs
            .as_array()
            .or_else(|| runs["runs"].as_array())
            .and_then(|r| r.iter().find(|r| r["status"] != "in_progress").cloned());
        if let Some(run) = ended {
            break run;
        }
    };
    assert_eq!(
        run["status"],
        "completed",
        "the drill recovered the archived row: {run}\n{}",
        log()
    );

    // The job's RPO (6 s) is measured by its newest archived WAL, not its base backup: once
    // the base backup is older than that, a freshly archived segment keeps the job fresh,
    // and the metric says when it was archived; without more WAL it goes stale, saying why.
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&mut setup.lifeboat(&["snapshots", "--json"]))).unwrap();
    let backed_up: chrono::DateTime<chrono::Utc> =
        listed[0]["time"].as_str().unwrap().parse().unwrap();
    let old_enough = backed_up + chrono::Duration::seconds(7);
    while chrono::Utc::now() < old_enough {
        std::thread::sleep(Duration::from_millis(200));
    }
    pg.psql("postgres", "INSERT INTO t(note) VALUES ('keeps the job fresh')");
    archive_now(&pg);
    let stale_job = |body: &str| -> serde_json::Value {
        let answer: serde_json::Value = serde_json::from_str(body).unwrap();
        answer["jobs"].as_array().unwrap().iter().find(|j| j["job"] == "main").cloned().unwrap()
    };
    let fresh = stale_job(&http_get(port, "/api/alerts/stale", token).unwrap());
    assert_eq!(fresh["stale"], false, "fresh by its WAL: {fresh}");
    let metrics = http_get(port, "/metrics", token).unwrap();
    let archived: f64 = metrics
        .lines()
        .find(|l| l.starts_with("lifeboat_wal_last_archived_timestamp") && l.contains("\"main\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no WAL metric for main:\n{metrics}"));
    assert!(
        archived >= old_enough.timestamp() as f64 - 1.0,
        "the metric is the newest archived WAL ({archived}), newer than the base backup ({backed_up})"
    );
    std::thread::sleep(Duration::from_secs(7));
    let stale = stale_job(&http_get(port, "/api/alerts/stale", token).unwrap());
    assert_eq!(stale["stale"], true, "no WAL for longer than the RPO: {stale}");
    assert!(stale["reason"].as_str().unwrap().contains("newest archived WAL"), "{stale}");
}

/// GET `path` with the bearer `token`: the body of a 200 answer, `None` otherwise (not
/// listening yet, or another status).
fn http_get(port: u16, path: &str, token: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                break;
            }
            out.push_str(after.get(..n)?);
            rest = after.get(n + 2..)?;
        }
        return Some(out);
    }
    Some(body.to_string())
}
