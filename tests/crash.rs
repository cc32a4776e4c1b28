//! `kill -9` at random moments of `backup`, `prune` and `restore --force`, on a local folder
//! repository and on the S3 server. After every kill: `verify --read-data` passes, every
//! restore target is exactly the old or the new content (checksums of a SQLite database and
//! of a folder), and the next successful run of the same command leaves no temporary file.
//!
//! The delays come from a seeded generator; the seed is printed, and
//! `LIFEBOAT_CRASH_SEED=<seed>` replays a run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_core::Digest;
use util::*;

/// Killed runs per repository (each followed by a check and a successful run).
const ROUNDS: usize = 10;

/// xorshift64*: enough randomness for delays, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A delay in [0, up_to).
    fn delay(&mut self, up_to: Duration) -> Duration {
        let micros = up_to.as_micros().max(1) as u64;
        Duration::from_micros(self.next() % micros)
    }
}

fn seed() -> u64 {
    match std::env::var("LIFEBOAT_CRASH_SEED") {
        Ok(s) => s.parse().expect("LIFEBOAT_CRASH_SEED must be a number"),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            u64::from(nanos) | 1
        }
    }
}

/// One of the commands the loop kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    BackupSqlite,
    BackupDir,
    Prune,
    RestoreSqlite,
    RestoreDir,
    RepairIndex,
}

const OPS: [Op; 6] = [
    Op::BackupSqlite,
    Op::BackupDir,
    Op::Prune,
    Op::RestoreSqlite,
    Op::RestoreDir,
    Op::RepairIndex,
];

/// A repository with a database, a folder, two kept snapshots of each, and one restore
/// target of each kind.
struct World {
    dir: tempfile::TempDir,
    repo: String,
    env: Vec<(&'static str, String)>,
    db: PathBuf,
    folder: PathBuf,
    db_target: PathBuf,
    dir_target: PathBuf,
    /// The two kept snapshots of the database and of the folder, with the checksum of what
    /// restoring each gives.
    db_snaps: [(String, String); 2],
    dir_snaps: [(String, String); 2],
    /// Which of the two each target holds now.
    db_now: usize,
    dir_now: usize,
    /// How long each command took when it last ran to the end: kills land within that.
    took: BTreeMap<Op, Duration>,
    /// Things found that belong to other parts of the code (printed at the end).
    findings: Vec<String>,
}

impl World {
    fn cmd(&self) -> Command {
        let mut cmd = lifeboat(&self.repo);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn new(repo: impl FnOnce(&Path) -> String, env: Vec<(&'static str, String)>) -> World {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        let db = dir.path().join("src/app.db");
        let folder = dir.path().join("src/site");
        std::fs::create_dir_all(folder.join("assets/img")).unwrap();
        make_sqlite_db(&db, 3);
        for i in 0..120u64 {
            let sub = if i.is_multiple_of(3) { "assets/img" } else { "assets" };
            std::fs::write(folder.join(format!("{sub}/f{i:03}.bin")), pseudo_random(16 << 10, i))
                .unwrap();
        }
        std::fs::write(folder.join("index.html"), "<h1>v0</h1>").unwrap();
        std::os::unix::fs::symlink("index.html", folder.join("home.html")).unwrap();
        for t in ["targets/db", "targets/dir"] {
            std::fs::create_dir_all(dir.path().join(t)).unwrap();
        }
        let mut w = World {
            db_target: dir.path().join("targets/db/app.db"),
            dir_target: dir.path().join("targets/dir/site"),
            dir,
            repo,
            env,
            db,
            folder,
            db_snaps: Default::default(),
            dir_snaps: Default::default(),
            db_now: 0,
            dir_now: 0,
            took: BTreeMap::new(),
            findings: Vec::new(),
        };
        ok(w.cmd().args(["init", "--no-encryption"]));
        for i in 0..2 {
            w.change_sources(i as u64);
            let db_id = w.backup_id(&["backup", "sqlite", "--tag", "keep=crash"], &w.db);
            let dir_id = w.backup_id(&["backup", "dir", "--tag", "keep=crash"], &w.folder);
            let scratch = w.dir.path().join(format!("scratch{i}"));
            std::fs::create_dir_all(&scratch).unwrap();
            let (db_copy, dir_copy) = (scratch.join("app.db"), scratch.join("site"));
            ok(w.cmd().args(["restore", &db_id, "--to"]).arg(&db_copy));
            ok(w.cmd()
                .args(["restore", &dir_id, "--to"])
                .arg(format!("dir:{}", dir_copy.display())));
            w.db_snaps[i] = (db_id, file_sum(&db_copy));
            w.dir_snaps[i] = (dir_id, folder_sum(&dir_copy));
        }
        assert_ne!(w.db_snaps[0].1, w.db_snaps[1].1);
        assert_ne!(w.dir_snaps[0].1, w.dir_snaps[1].1);
        // The targets start as snapshot 0; every restore round puts the other one on them.
        ok(w.cmd().args(["restore", &w.db_snaps[0].0, "--to"]).arg(&w.db_target));
        ok(w.cmd()
            .args(["restore", &w.dir_snaps[0].0, "--to"])
            .arg(format!("dir:{}", w.dir_target.display())));
        // Timings for the first kills.
        for op in OPS {
            let started = Instant::now();
            w.run_to_end(op);
            w.took.insert(op, started.elapsed());
        }
        w
    }

    fn backup_id(&self, args: &[&str], path: &Path) -> String {
        let out = ok(self.cmd().args(args).arg("--json").arg(path));
        let snap: serde_json::Value = serde_json::from_str(&out).unwrap();
        snap["id"].as_str().unwrap().to_string()
    }

    /// New rows and rewritten files, so the next backup has new data to store.
    fn change_sources(&self, round: u64) {
        let conn = rusqlite::Connection::open(&self.db).unwrap();
        insert_events(&conn, 400);
        drop(conn);
        for i in 0..8u64 {
            let n = (round * 8 + i) % 120;
            let sub = if n.is_multiple_of(3) { "assets/img" } else { "assets" };
            std::fs::write(
                self.folder.join(format!("{sub}/f{n:03}.bin")),
                pseudo_random(16 << 10, 1000 + round * 8 + i),
            )
            .unwrap();
        }
        std::fs::write(self.folder.join("index.html"), format!("<h1>v{round}</h1>")).unwrap();
    }

    /// The command line of `op`; for restores, the snapshot that is not on the target now.
    fn command(&self, op: Op) -> Command {
        let mut cmd = self.cmd();
        match op {
            Op::BackupSqlite => cmd.args(["backup", "sqlite"]).arg(&self.db),
            Op::BackupDir => cmd.args(["backup", "dir"]).arg(&self.folder),
            Op::Prune => cmd.args(["prune", "--grace", "0s"]),
            Op::RepairIndex => cmd.args(["repair", "index"]),
            Op::RestoreSqlite => cmd
                .args(["restore", &self.db_snaps[1 - self.db_now].0, "--force", "--to"])
                .arg(&self.db_target),
            Op::RestoreDir => cmd
                .args(["restore", &self.dir_snaps[1 - self.dir_now].0, "--force", "--to"])
                .arg(format!("dir:{}", self.dir_target.display())),
        };
        cmd
    }

    /// Runs `op` to its end (it must succeed), then checks nothing temporary is left.
    fn run_to_end(&mut self, op: Op) {
        if op == Op::Prune {
            // Something for prune to delete: snapshots beyond the two newest per name.
            ok(self.cmd().args(["forget", "--keep-last", "2", "--keep-tag", "keep=crash"]));
        }
        let out = self.command(op).output().unwrap();
        if !out.status.success() && matches!(op, Op::Prune | Op::RepairIndex) {
            let stderr = String::from_utf8_lossy(&out.stderr);
            self.findings
                .push(format!("{op:?} after a killed maintenance run failed: {}", stderr.trim()));
            // The dead prune's or repair's lease: `unlock` is the documented way out.
            ok(self.cmd().arg("unlock"));
            ok(&mut self.command(op));
        } else {
            assert!(
                out.status.success(),
                "{op:?} failed after a kill:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        match op {
            Op::RestoreSqlite => self.db_now = 1 - self.db_now,
            Op::RestoreDir => self.dir_now = 1 - self.dir_now,
            _ => {}
        }
        self.check_targets("after a successful run", None);
        for target in [&self.db_target, &self.dir_target] {
            let beside = names_in(target.parent().unwrap());
            let expected = vec![target.file_name().unwrap().to_string_lossy().into_owned()];
            assert_eq!(beside, expected, "{op:?} left files beside {}", target.display());
        }
        let stray: Vec<String> = names_in(self.db.parent().unwrap())
            .into_iter()
            .filter(|n| n.contains("lifeboat"))
            .collect();
        assert!(stray.is_empty(), "{op:?} left files beside its sources: {stray:?}");
        if !self.repo.starts_with("s3://") {
            let staged = staged_uploads(Path::new(&self.repo));
            if !staged.is_empty() {
                self.findings.push(format!(
                    "{op:?}: {} partial uploads left in the folder repository, e.g. {}",
                    staged.len(),
                    staged[0].display()
                ));
            }
        }
    }

    /// Each target holds exactly one of its two snapshots: the one it held before, or
    /// (when `restoring` names it) the one being restored.
    fn check_targets(&mut self, when: &str, restoring: Option<Op>) {
        let db = file_sum(&self.db_target);
        let mut allowed = vec![&self.db_snaps[self.db_now].1];
        if restoring == Some(Op::RestoreSqlite) {
            allowed.push(&self.db_snaps[1 - self.db_now].1);
        }
        assert!(allowed.contains(&&db), "{when}: the database target is neither old nor new");
        let dir = folder_sum(&self.dir_target);
        let mut allowed = vec![&self.dir_snaps[self.dir_now].1];
        if restoring == Some(Op::RestoreDir) {
            allowed.push(&self.dir_snaps[1 - self.dir_now].1);
        }
        assert!(allowed.contains(&&dir), "{when}: the folder target is neither old nor new");
        for journal in ["-wal", "-journal", "-shm"] {
            let beside = PathBuf::from(format!("{}{journal}", self.db_target.display()));
            if beside.exists() {
                // Counted in the checksum above; the next run must remove it (checked there).
                self.findings.push(format!(
                    "{when}: {} ({} bytes) beside the database target",
                    beside.display(),
                    beside.metadata().map(|m| m.len()).unwrap_or(0)
                ));
            }
        }
    }

    /// One round: start `op`, kill it after a random delay, check, then run it to the end.
    fn round(&mut self, op: Op, rng: &mut Rng, round: usize) {
        if matches!(op, Op::BackupSqlite | Op::BackupDir) {
            self.change_sources(10 + round as u64);
        }
        if op == Op::Prune {
            ok(self.cmd().args(["forget", "--keep-last", "2", "--keep-tag", "keep=crash"]));
        }
        let delay = rng.delay(self.took[&op]);
        let mut child =
            self.command(op).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        child.wait().unwrap();
        println!(
            "  round {round}: {op:?} killed after {delay:?}{}",
            if finished { " (had finished)" } else { "" }
        );
        if finished {
            // It won the race: the target now holds the other snapshot.
            match op {
                Op::RestoreSqlite => self.db_now = 1 - self.db_now,
                Op::RestoreDir => self.dir_now = 1 - self.dir_now,
                _ => {}
            }
        } else {
            // The kill may have landed after the swap: the target holds either version.
            self.check_targets(&format!("round {round}, after killing {op:?}"), Some(op));
            match op {
                Op::RestoreSqlite if file_sum(&self.db_target) != self.db_snaps[self.db_now].1 => {
                    self.db_now = 1 - self.db_now;
                }
                Op::RestoreDir
                    if folder_sum(&self.dir_target) != self.dir_snaps[self.dir_now].1 =>
                {
                    self.dir_now = 1 - self.dir_now;
                }
                _ => {}
            }
        }
        let verify = self.cmd().args(["verify", "--read-data"]).output().unwrap();
        assert!(
            verify.status.success(),
            "round {round}: verify --read-data failed after killing {op:?} after {delay:?}:\n{}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        let started = Instant::now();
        self.run_to_end(op);
        self.took.insert(op, started.elapsed());
    }
}

/// Names in a folder, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// object_store's folder backend writes `<key>#<n>` and renames it into place.
fn staged_uploads(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap().to_string_lossy().contains('#') {
                out.push(p);
            }
        }
    }
    out
}

/// SHA-256 over the database's schema, user_version and every row of every table, as an
/// application opening it would see them: a copy of the file with any -wal or -journal beside
/// it is opened normally (so SQLite applies them), leaving the target untouched. Bytes of the
/// file are not compared: two restores of one snapshot need not be byte-identical.
fn file_sum(path: &Path) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("copy.db");
    std::fs::copy(path, &copy).unwrap();
    for side in ["-wal", "-journal"] {
        let beside = PathBuf::from(format!("{}{side}", path.display()));
        if beside.exists() {
            std::fs::copy(&beside, format!("{}{side}", copy.display())).unwrap();
        }
    }
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let mut text = String::new();
    let schema: Vec<(String, String)> = conn
        .prepare("SELECT name, coalesce(sql, '') FROM sqlite_schema ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    text.push_str(&format!("user_version {version}\n"));
    for (name, sql) in &schema {
        text.push_str(&format!("{name}: {sql}\n"));
        if !sql.starts_with("CREATE TABLE") {
            continue;
        }
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{name}\" ORDER BY rowid")).unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..columns {
                let value: rusqlite::types::Value = row.get(i).unwrap();
                text.push_str(&format!("{value:?}|"));
            }
            text.push('\n');
        }
    }
    Digest::of(text.as_bytes()).to_hex()
}

/// SHA-256 over every path below `root` with its kind, mode, content or link target.
fn folder_sum(root: &Path) -> String {
    let mut lines = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let what = if md.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else {
                Digest::of(&std::fs::read(&p).unwrap()).to_hex()
            };
            lines.push(format!("{rel} {:o} {what}", md.mode() & 0o7777));
        }
    }
    lines.sort();
    Digest::of(lines.join("\n").as_bytes()).to_hex()
}

fn crash_loop(name: &str, world: &mut World, rng: &mut Rng) {
    println!("{name}: {ROUNDS} rounds");
    for round in 0..ROUNDS {
        let op = OPS[(rng.next() % OPS.len() as u64) as usize];
        world.round(op, rng, round);
    }
    for finding in &world.findings {
        println!("{name}: FINDING: {finding}");
    }
}

#[test]
fn kill_9_at_random_moments_loses_nothing() {
    let seed = seed();
    println!("seed {seed} (LIFEBOAT_CRASH_SEED={seed} replays this run)");
    let mut rng = Rng(seed);

    let mut local = World::new(|d| d.join("repo").display().to_string(), Vec::new());
    crash_loop("folder repository", &mut local, &mut rng);

    let server = S3Server::start();
    let url = server.url("crash");
    let mut s3 = World::new(|_| url.clone(), server.env());
    crash_loop("S3 repository", &mut s3, &mut rng);
}
