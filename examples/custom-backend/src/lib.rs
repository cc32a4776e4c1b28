//! A lifeboat backend for Redis, written with lifeboat's public API only: what a platform
//! team writes to back up a kind of target lifeboat does not ship.
//!
//! - **Backup:** `redis-cli --rdb` takes a point-in-time RDB of a running server (the
//!   replication protocol's full sync), checked with `redis-check-rdb`; the key count is
//!   recorded in the snapshot's metadata.
//! - **Restore:** to a Redis data folder (`--to /var/lib/redis` or `redis-data:/var/lib/redis`):
//!   the RDB is written beside `dump.rdb`, checked, and swapped in, after a safety snapshot
//!   of the `dump.rdb` it replaces. Start `redis-server --dir FOLDER` on it.
//! - **Drill:** the RDB is loaded by a scratch `redis-server` on a free loopback port, which
//!   must answer with the recorded number of keys.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use lifeboat::backend::{Options, TargetCommand, TargetSpec};
use lifeboat::drill::{Expectations, ScratchDrill, ScratchOutcome, scratch_dir};
use lifeboat::{
    Backend, Backup, ByteStream, Capture, Check, Error, Kind, PlanStep, RestoreContext,
    RestoreOptions, RestorePlan, RestoreReport, Result, Snapshot, Tags,
};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The kind of snapshots this backend makes.
pub const REDIS: Kind = Kind::new_static("redis");

/// The file a Redis server loads from its data folder.
pub const DUMP: &str = "dump.rdb";

/// Redis servers, captured as RDB files.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisBackend;

#[async_trait]
impl Backend for RedisBackend {
    fn kind(&self) -> Kind {
        REDIS
    }

    fn about(&self) -> &'static str {
        "Redis servers, as point-in-time RDB files"
    }

    fn commands(&self) -> Vec<TargetCommand> {
        vec![TargetCommand {
            name: "redis",
            about: "A running Redis server, as a point-in-time RDB (redis-cli --rdb).",
            target: Some("URL"),
            target_help: "redis://[user:password@]host:port",
            options: Vec::new(),
        }]
    }

    fn check(&self, spec: &TargetSpec) -> Result<()> {
        match spec.target.strip_prefix("redis://") {
            Some(rest) if !rest.is_empty() => Ok(()),
            _ => Err(Error::InvalidInput {
                what: format!("{:?} is not a redis:// URL", spec.target),
                hint: "give redis://host:port".into(),
            }),
        }
    }

    fn backup(&self, spec: &TargetSpec) -> Result<Box<dyn Backup>> {
        Ok(Box::new(RedisBackup::new(spec)?))
    }

    fn claims(&self, to: &str) -> bool {
        to.starts_with("redis-data:")
    }

    async fn plan_restore(
        &self,
        snapshot: &dyn Snapshot,
        to: &str,
        options: &RestoreOptions,
        _selection: &Options,
    ) -> Result<Box<dyn RestorePlan>> {
        let folder = PathBuf::from(to.strip_prefix("redis-data:").unwrap_or(to));
        let dump = folder.join(DUMP);
        if !folder.is_dir() {
            return Err(Error::InvalidInput {
                what: format!("{} is not a folder", folder.display()),
                hint: "restore a Redis snapshot to the server's data folder (its `dir`)".into(),
            });
        }
        if dump.exists() && !options.force {
            return Err(Error::TargetExists { target: dump.display().to_string() });
        }
        Ok(Box::new(RedisRestorePlan { snapshot: snapshot.id().to_hex(), folder, dump }))
    }

    fn drill(&self, _options: &Options) -> Result<Box<dyn ScratchDrill>> {
        Ok(Box::new(RedisDrill))
    }
}

/// One capture of one server.
struct RedisBackup {
    url: String,
}

impl RedisBackup {
    fn new(spec: &TargetSpec) -> Result<Self> {
        RedisBackend.check(spec)?;
        Ok(RedisBackup { url: spec.target.clone() })
    }
}

#[async_trait]
impl Backup for RedisBackup {
    fn kind(&self) -> Kind {
        REDIS
    }

    /// `redis-HOST-PORT`.
    fn default_name(&self) -> String {
        let rest = self.url.trim_start_matches("redis://");
        let host_port = rest.rsplit('@').next().unwrap_or(rest).trim_end_matches('/');
        format!("redis-{}", host_port.replace([':', '/'], "-"))
    }

    fn target(&self) -> String {
        // The URL without a password.
        match self.url.split_once('@') {
            Some((_, host)) => format!("redis://…@{host}"),
            None => self.url.clone(),
        }
    }

    async fn capture(&self) -> Result<Capture> {
        let scratch = scratch_dir()?;
        let rdb = scratch.path().join(DUMP);
        run("redis-cli", &["-u", &self.url, "--rdb", &path_text(&rdb)]).await?;
        let keys = keys_in(&rdb).await?;
        let file = tokio::fs::File::open(&rdb).await.map_err(|e| Error::io("opening", &rdb, e))?;
        let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        let stream: ByteStream = Box::pin(file);
        let metadata = serde_json::json!({ "keys": keys, "rdb_bytes": size });
        // The scratch folder goes once the stream has been read.
        let cleanup = Box::pin(async move {
            drop(scratch);
            Ok(None)
        });
        Ok(Capture::new(stream, metadata).with_size_hint(size).on_finish(cleanup))
    }
}

/// Writes the RDB beside `dump.rdb`, checks it, saves the old one, swaps.
struct RedisRestorePlan {
    snapshot: String,
    folder: PathBuf,
    dump: PathBuf,
}

#[async_trait]
impl RestorePlan for RedisRestorePlan {
    fn steps(&self) -> Vec<PlanStep> {
        let temp = self.folder.join(format!(".{DUMP}.lifeboat"));
        let mut steps = vec![
            PlanStep::new("write", format!("snapshot {} to {}", self.snapshot, temp.display())),
            PlanStep::new("check", "redis-check-rdb reads every key; the count must match"),
        ];
        if self.dump.exists() {
            steps.push(PlanStep::new(
                "safety snapshot",
                format!("{} into the repository", self.dump.display()),
            ));
        }
        steps.push(PlanStep::new("swap", format!("rename onto {}", self.dump.display())));
        steps
    }

    async fn execute(&self, ctx: &RestoreContext<'_>) -> Result<RestoreReport> {
        let temp = self.folder.join(format!(".{DUMP}.lifeboat"));
        let result = self.restore(ctx, &temp).await;
        let _ = tokio::fs::remove_file(&temp).await;
        result
    }
}

impl RedisRestorePlan {
    async fn restore(&self, ctx: &RestoreContext<'_>, temp: &Path) -> Result<RestoreReport> {
        let bytes = write_stream(ctx.snapshot, temp).await?;
        let check = matching_keys(ctx.snapshot, temp).await?;
        if !check.ok {
            return Err(Error::VerificationFailed {
                subject: format!("the restored {}", temp.display()),
                failures: vec![check.detail],
            });
        }
        let mut safety_snapshot = None;
        if self.dump.exists() {
            // Named after the data folder it protects.
            let old = DumpFile { path: self.dump.clone() };
            let name = match self.folder.file_name() {
                Some(name) => format!("redis-data-{}", name.to_string_lossy()),
                None => "redis-data".to_string(),
            };
            safety_snapshot = Some(ctx.save_safety(&old, &name, Tags::new()).await?);
        }
        tokio::fs::rename(temp, &self.dump)
            .await
            .map_err(|e| Error::io("renaming onto", &self.dump, e))?;
        Ok(RestoreReport {
            target: self.dump.display().to_string(),
            snapshot: ctx.snapshot.id(),
            safety_snapshot,
            bytes,
            checks: vec![check],
        })
    }
}

/// A `dump.rdb` on disk, as a capture, for the safety snapshot before a restore.
struct DumpFile {
    path: PathBuf,
}

#[async_trait]
impl Backup for DumpFile {
    fn kind(&self) -> Kind {
        REDIS
    }

    fn default_name(&self) -> String {
        "redis-dump".into()
    }

    fn target(&self) -> String {
        self.path.display().to_string()
    }

    async fn capture(&self) -> Result<Capture> {
        let keys = keys_in(&self.path).await?;
        let file = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| Error::io("opening", &self.path, e))?;
        let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        let metadata = serde_json::json!({ "keys": keys, "rdb_bytes": size });
        Ok(Capture::new(Box::pin(file), metadata).with_size_hint(size))
    }
}

/// Loads the RDB into a scratch server on a free loopback port and counts its keys.
struct RedisDrill;

#[async_trait]
impl ScratchDrill for RedisDrill {
    fn kind(&self) -> Kind {
        REDIS
    }

    async fn restore_and_check(
        &self,
        snapshot: &dyn Snapshot,
        _expect: &Expectations,
    ) -> Result<ScratchOutcome> {
        let scratch = scratch_dir()?;
        let rdb = scratch.path().join(DUMP);
        let bytes = match write_stream(snapshot, &rdb).await {
            Ok(bytes) => bytes,
            Err(e) => {
                return Ok(ScratchOutcome {
                    checks: vec![Check::fail("restore", e.to_string())],
                    bytes: 0,
                });
            }
        };
        let mut checks = vec![matching_keys(snapshot, &rdb).await?];
        checks.push(serve_and_count(scratch.path(), expected_keys(snapshot)).await);
        Ok(ScratchOutcome { checks, bytes })
    }

    fn clean_leftovers(&self) -> usize {
        0
    }
}

/// Starts `redis-server` on `folder`'s dump, asks DBSIZE, shuts it down.
async fn serve_and_count(folder: &Path, expected: Option<u64>) -> Check {
    let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port().to_string(),
        Err(e) => return Check::fail("scratch server", format!("no free port: {e}")),
    };
    let server = Command::new("redis-server")
        .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--dir", &path_text(folder), "--dbfilename", DUMP])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut server = match server {
        Ok(child) => child,
        Err(e) => return Check::fail("scratch server", format!("redis-server did not start: {e}")),
    };
    let mut answer = None;
    for _ in 0..100 {
        if let Ok(out) = run("redis-cli", &["-p", &port, "DBSIZE"]).await
            && let Ok(n) = out.trim().parse::<u64>()
        {
            answer = Some(n);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = run("redis-cli", &["-p", &port, "SHUTDOWN", "NOSAVE"]).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), server.wait()).await;
    let _ = server.kill().await;
    match (answer, expected) {
        (None, _) => Check::fail("scratch server", "redis-server did not answer within 5 s"),
        (Some(n), Some(want)) if n != want => {
            Check::fail("keys served", format!("the server holds {n} keys, the snapshot {want}"))
        }
        (Some(n), _) => {
            Check::pass("keys served", format!("a scratch redis-server loaded {n} keys"))
        }
    }
}

/// Whether `redis-check-rdb` reads `rdb` and finds the snapshot's number of keys.
async fn matching_keys(snapshot: &dyn Snapshot, rdb: &Path) -> Result<Check> {
    let found = match keys_in(rdb).await {
        Ok(n) => n,
        Err(e) => return Ok(Check::fail("redis-check-rdb", e.to_string())),
    };
    Ok(match expected_keys(snapshot) {
        Some(want) if want != found => Check::fail(
            "redis-check-rdb",
            format!("{found} keys read, the snapshot recorded {want}"),
        ),
        _ => Check::pass("redis-check-rdb", format!("{found} keys read")),
    })
}

fn expected_keys(snapshot: &dyn Snapshot) -> Option<u64> {
    snapshot.manifest().metadata.get("keys").and_then(|k| k.as_u64())
}

/// The number of keys `redis-check-rdb` reads from `rdb`.
async fn keys_in(rdb: &Path) -> Result<u64> {
    let report = run("redis-check-rdb", &[&path_text(rdb)]).await?;
    report
        .lines()
        .find_map(|line| line.split("[info] ").nth(1)?.strip_suffix(" keys read")?.parse().ok())
        .ok_or_else(|| backend(format!("redis-check-rdb found no key count in {}", rdb.display())))
}

/// Writes the snapshot's (checked) stream to `path`, synced; returns the bytes written.
async fn write_stream(snapshot: &dyn Snapshot, path: &Path) -> Result<u64> {
    let mut reader = snapshot.open().await?;
    let mut file =
        tokio::fs::File::create(path).await.map_err(|e| Error::io("creating", path, e))?;
    let bytes = tokio::io::copy(&mut reader, &mut file)
        .await
        .map_err(|e| Error::from_stream("writing the RDB", e))?;
    file.flush().await.map_err(|e| Error::io("writing", path, e))?;
    file.sync_all().await.map_err(|e| Error::io("syncing", path, e))?;
    Ok(bytes)
}

/// Runs a Redis tool; its stdout, or an error with its stderr.
async fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| backend(format!("{program} could not run: {e} (is Redis installed?)")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = stderr.lines().chain(stdout.lines()).last().unwrap_or_default();
        return Err(backend(format!("{program} failed ({}): {said}", out.status)));
    }
    Ok(stdout)
}

fn backend(message: String) -> Error {
    Error::Backend { kind: REDIS, message }
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}
