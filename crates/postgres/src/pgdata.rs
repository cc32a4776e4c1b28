//! Restoring a base backup into a data directory (`--to pgdata:DIR`), recovering from the
//! WAL archive to a point: a time, an LSN, a transaction, a named restore point, the backup's
//! own end (`--immediate`) or the newest archived WAL (no target).
//!
//! The steps: check DIR (absent or empty; with force, a stopped cluster there is moved aside,
//! never deleted), write the base backup into a temporary folder beside it, check it against
//! the server's `backup_manifest` with `pg_verifybackup`, write the recovery settings
//! (`restore_command` calling lifeboat's `wal-fetch` with this repository, the target,
//! `recovery.signal`), rename it onto DIR; with `start`, start the server on a port and wait
//! until recovery has ended and it accepts writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use lifeboat_core::drill::process_alive;
use lifeboat_core::{
    Check, Error, PlanStep, RestoreContext, RestorePlan, RestoreReport, Result, Snapshot,
    aside_name, existing_parent, remove_leftovers, shell_quote, temp_prefix,
};
use tokio::process::Command;
use tracing::{debug, info};

use crate::cluster::ClusterMetadata;
use crate::connect::server_tool;
use crate::error::PgError;

/// How many timelines above the backup's a restore looks for in the archive at most.
const MAX_TIMELINE_PROBES: u32 = 4096;

/// Where recovery stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// The newest archived WAL.
    Latest,
    /// The end of the base backup itself.
    Immediate,
    /// A time, in any form `recovery_target_time` takes.
    Time(String),
    /// An LSN (`0/3000060`).
    Lsn(String),
    /// A transaction id.
    Xid(String),
    /// A restore point made with `pg_create_restore_point`.
    Name(String),
}

impl RecoveryTarget {
    /// The settings that say it, for `postgresql.auto.conf`.
    fn settings(&self) -> Vec<(&'static str, String)> {
        match self {
            RecoveryTarget::Latest => Vec::new(),
            RecoveryTarget::Immediate => vec![("recovery_target", "immediate".into())],
            RecoveryTarget::Time(t) => vec![("recovery_target_time", t.clone())],
            RecoveryTarget::Lsn(l) => vec![("recovery_target_lsn", l.clone())],
            RecoveryTarget::Xid(x) => vec![("recovery_target_xid", x.clone())],
            RecoveryTarget::Name(n) => vec![("recovery_target_name", n.clone())],
        }
    }

    fn describe(&self) -> String {
        match self {
            RecoveryTarget::Latest => "the newest archived WAL".into(),
            RecoveryTarget::Immediate => "the end of the base backup".into(),
            RecoveryTarget::Time(t) => format!("time {t}"),
            RecoveryTarget::Lsn(l) => format!("LSN {l}"),
            RecoveryTarget::Xid(x) => format!("transaction {x}"),
            RecoveryTarget::Name(n) => format!("restore point {n}"),
        }
    }
}

/// The plan that writes a base backup into a data directory and sets up its recovery.
#[derive(Debug, Clone)]
pub struct PgdataRestorePlan {
    dir: PathBuf,
    series: String,
    metadata: ClusterMetadata,
    target: RecoveryTarget,
    fetch_command: Option<String>,
    force: bool,
    start_port: Option<u16>,
    scratch: bool,
    timeline: Option<String>,
}

impl PgdataRestorePlan {
    /// Plans restoring `snapshot` into `dir`.
    ///
    /// # Errors
    /// A snapshot without cluster metadata; a `dir` that is not empty (without `force`) or
    /// holds a running server.
    pub fn prepare(
        snapshot: &dyn Snapshot,
        dir: &Path,
        target: RecoveryTarget,
        fetch_command: Option<String>,
        force: bool,
    ) -> Result<Self> {
        let manifest = snapshot.manifest();
        let metadata: ClusterMetadata =
            serde_json::from_value(manifest.metadata.clone()).map_err(|e| Error::InvalidInput {
                what: format!(
                    "snapshot {} has no base backup metadata: {e}",
                    snapshot.id().short()
                ),
                hint: "restore a postgres-cluster snapshot".into(),
            })?;
        existing_parent(dir)?;
        if fetch_command.is_none() && target != RecoveryTarget::Immediate {
            return Err(Error::InvalidInput {
                what: "recovery past the base backup needs a restore_command and none was given"
                    .into(),
                hint: "restore with the lifeboat command line, or give --immediate".into(),
            });
        }
        for (_, value) in target.settings() {
            if value.contains(['\'', '\n', '\\']) {
                return Err(Error::InvalidInput {
                    what: format!("the recovery target {value:?} holds a quote or line end"),
                    hint: "give a time such as 2026-12-04 12:00:00+00, an LSN such as 0/3000060, \
                           a transaction id or a restore point name"
                        .into(),
                });
            }
        }
        let plan = PgdataRestorePlan {
            dir: dir.to_path_buf(),
            series: manifest.name.clone(),
            metadata,
            target,
            fetch_command,
            force,
            start_port: None,
            scratch: false,
            timeline: None,
        };
        plan.check_target()?;
        Ok(plan)
    }

    /// Starts the server on `port` once written, and waits until recovery has ended.
    pub fn start_on(mut self, port: u16) -> Self {
        self.start_port = Some(port);
        self
    }

    /// Recovers along `timeline` (a number, `latest` or `current`) instead of PostgreSQL's
    /// default, the newest timeline in the archive.
    ///
    /// # Errors
    /// Anything else.
    pub fn along_timeline(mut self, timeline: &str) -> Result<Self> {
        let ok = matches!(timeline, "latest" | "current")
            || (!timeline.is_empty() && timeline.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(Error::InvalidInput {
                what: format!("{timeline:?} is not a timeline"),
                hint: "give a timeline number, `latest` or `current`".into(),
            });
        }
        self.timeline = Some(timeline.to_string());
        Ok(self)
    }

    /// For a drill: the restored cluster archives nothing and trusts connections from
    /// 127.0.0.1 (through an hba file of its own), so its checks can connect.
    pub fn scratch(mut self) -> Self {
        self.scratch = true;
        self
    }

    /// The cluster's metadata.
    pub fn metadata(&self) -> &ClusterMetadata {
        &self.metadata
    }

    /// Whether DIR may be written: absent, empty, or (with force) a stopped cluster.
    fn check_target(&self) -> Result<Occupied> {
        let dir = &self.dir;
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries.count(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Occupied::Absent),
            Err(e) => {
                return Err(Error::InvalidInput {
                    what: format!("{} cannot be read: {e}", dir.display()),
                    hint: "give a data directory this user can write, or a new path".into(),
                });
            }
        };
        if entries == 0 {
            return Ok(Occupied::Empty);
        }
        if let Some(pid) = running_server(dir) {
            return Err(Error::InvalidInput {
                what: format!("a PostgreSQL server (pid {pid}) is running on {}", dir.display()),
                hint: "stop it first (pg_ctl stop); it is moved aside, never deleted".into(),
            });
        }
        if !self.force {
            return Err(Error::TargetExists { target: dir.display().to_string() });
        }
        Ok(Occupied::Full)
    }

    fn restore_command(&self) -> Option<String> {
        // PostgreSQL reads `%` in restore_command: a literal one is `%%`.
        let series = shell_quote(&self.series).replace('%', "%%");
        self.fetch_command
            .as_ref()
            .map(|c| format!("{} %f %p --name {series}", c.replace('%', "%%")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occupied {
    Absent,
    Empty,
    Full,
}

/// The pid in `DIR/postmaster.pid` when that process is alive.
fn running_server(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("postmaster.pid")).ok()?;
    let pid: u32 = text.lines().next()?.trim().parse().ok()?;
    process_alive(pid).then_some(pid)
}

/// `s` as a value in `postgresql.conf` (single quotes doubled).
fn conf_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[async_trait]
impl RestorePlan for PgdataRestorePlan {
    fn steps(&self) -> Vec<PlanStep> {
        let dir = self.dir.display();
        let mut steps = vec![PlanStep::new(
            "check",
            format!(
                "{dir} is absent or empty (with force, a stopped cluster there is moved aside)"
            ),
        )];
        steps.push(PlanStep::new(
            "write",
            format!(
                "the base backup (PostgreSQL {}, timeline {}, WAL {} to {}) into a temporary folder beside {dir}",
                self.metadata.server_version,
                self.metadata.timeline,
                self.metadata.start_lsn,
                self.metadata.stop_lsn
            ),
        ));
        steps.push(PlanStep::new(
            "verify",
            "every file against the server's backup_manifest (pg_verifybackup)",
        ));
        let mut recovery = format!("recover to {}", self.target.describe());
        if let Some(timeline) = &self.timeline {
            recovery.push_str(&format!(" along timeline {timeline}"));
        }
        if let Some(command) = self.restore_command() {
            recovery.push_str(&format!("; restore_command = {command}"));
        }
        steps.push(PlanStep::new("recovery", format!("{recovery}; recovery.signal")));
        steps.push(PlanStep::new("swap", format!("rename the folder onto {dir}")));
        if let Some(port) = self.start_port {
            steps.push(PlanStep::new(
                "start",
                format!("pg_ctl start on port {port}; wait until recovery has ended and the server accepts writes"),
            ));
        }
        steps
    }

    async fn execute(&self, ctx: &RestoreContext<'_>) -> Result<RestoreReport> {
        // A restore killed before (its process gone) left a temporary copy beside DIR, or a
        // cluster moved aside with DIR not yet in its place: removed, or put back.
        for leftover in remove_leftovers(&self.dir) {
            info!(path = %leftover.display(), "removed what an interrupted restore left");
        }
        let occupied = self.check_target()?;
        let parent = existing_parent(&self.dir)?;
        let temp = tempfile::Builder::new()
            .prefix(&temp_prefix(&self.dir))
            .tempdir_in(parent)
            .map_err(|e| Error::io("creating a folder beside", &self.dir, e))?;
        let began = std::time::Instant::now();
        let stream = ctx.snapshot.open_whole().await?;
        let into = temp.path().to_path_buf();
        let bytes = unpack(stream, into).await?;
        debug!(bytes, secs = began.elapsed().as_secs_f64(), "base backup unpacked");
        set_private(temp.path())?;
        // Durable before it replaces anything: the file system's writeback runs while
        // pg_verifybackup reads the files back.
        let synced = tokio::task::spawn_blocking({
            let root = temp.path().to_path_buf();
            move || lifeboat_core::sync_tree(&root).map_err(|e| Error::io("syncing", &root, e))
        });
        let verified = self.verify_backup(temp.path()).await;
        let synced = synced.await.map_err(|e| Error::InvalidInput {
            what: format!("the sync task failed: {e}"),
            hint: "run the restore again".into(),
        })?;
        let mut checks = vec![verified?];
        synced?;
        debug!(secs = began.elapsed().as_secs_f64(), "base backup checked and synced");
        // Written after the check, which refuses files the manifest does not list; each is
        // synced itself.
        let timeline = self.recovery_timeline().await;
        self.write_recovery(temp.path(), timeline.as_deref())?;
        // The swap: an existing cluster is moved aside, never deleted.
        let kept = temp.keep();
        match occupied {
            Occupied::Absent => {}
            Occupied::Empty => std::fs::remove_dir(&self.dir)
                .map_err(|e| Error::io("removing the empty folder", &self.dir, e))?,
            Occupied::Full => {
                let aside = parent.join(format!("{}-{}", aside_name(&self.dir), now_stamp()));
                std::fs::rename(&self.dir, &aside)
                    .map_err(|e| Error::io("moving aside", &self.dir, e))?;
                checks.push(Check::pass("moved aside", aside.display().to_string()));
            }
        }
        if let Err(e) = std::fs::rename(&kept, &self.dir) {
            let _ = std::fs::remove_dir_all(&kept);
            return Err(Error::io("renaming the restored folder onto", &self.dir, e));
        }
        lifeboat_core::sync_parent_folder(&self.dir)
            .map_err(|e| Error::io("syncing the folder of", &self.dir, e))?;
        info!(dir = %self.dir.display(), "base backup written");
        if let Some(port) = self.start_port {
            checks.extend(self.start(port).await?);
        }
        Ok(RestoreReport {
            target: format!("pgdata:{}", self.dir.display()),
            snapshot: ctx.snapshot.id(),
            safety_snapshot: None,
            bytes,
            checks,
        })
    }
}

impl PgdataRestorePlan {
    /// The timeline recovery follows: the one given ([`Self::along_timeline`]), else the one
    /// PostgreSQL's `latest` should mean for this backup, the newest that branched from the
    /// backup's timeline after its end, or the backup's own
    /// ([`lifeboat_core::wal::recovery_timeline`]). Those history files are read through the
    /// fetch command, probing upwards from the backup's timeline as PostgreSQL does. `None`
    /// (PostgreSQL's default) without a fetch command, or when the archive cannot be read:
    /// recovery then reports what it finds.
    async fn recovery_timeline(&self) -> Option<String> {
        if self.timeline.is_some() || self.target == RecoveryTarget::Immediate {
            return self.timeline.clone();
        }
        let fetch = self.fetch_command.as_ref()?;
        let stop_lsn = lifeboat_core::wal::parse_lsn(&self.metadata.stop_lsn)?;
        let scratch = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => {
                tracing::warn!(error = %e, "no scratch folder to read history files into");
                return None;
            }
        };
        let mut histories = std::collections::BTreeMap::new();
        // Timelines are numbered one after another: the first missing ends the probe.
        let own = self.metadata.timeline;
        for timeline in own.saturating_add(1)..=own.saturating_add(MAX_TIMELINE_PROBES) {
            let file = format!("{timeline:08X}.history");
            let dest = scratch.path().join(&file);
            let command = format!(
                "{fetch} {file} {} --name {}",
                shell_quote(&dest.display().to_string()),
                shell_quote(&self.series)
            );
            let status = Command::new("sh").arg("-c").arg(&command).status().await;
            match status {
                Ok(status) if status.success() => {}
                Ok(status) if status.code() == Some(1) => break,
                Ok(status) => {
                    tracing::warn!(file, %status, "reading a history file from the archive failed");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(file, error = %e, "could not run the archive's fetch command");
                    return None;
                }
            }
            let text = std::fs::read_to_string(&dest).unwrap_or_default();
            histories.insert(timeline, lifeboat_core::wal::parse_history(&text));
        }
        let chosen = lifeboat_core::wal::recovery_timeline(own, stop_lsn, &histories);
        info!(timeline = chosen, archived = histories.len(), "recovery follows this timeline");
        Some(chosen.to_string())
    }

    async fn verify_backup(&self, dir: &Path) -> Result<Check> {
        if !dir.join("backup_manifest").exists() {
            return Ok(Check::fail(
                "backup_manifest",
                "the base backup has no backup_manifest (PostgreSQL before 13?): files not checked",
            ));
        }
        let tool = server_tool("pg_verifybackup", self.metadata.server_major)?;
        let out = Command::new(&tool).arg("--quiet").arg(dir).output().await.map_err(|e| {
            PgError::Tool {
                tool: "pg_verifybackup",
                status: "not started".into(),
                stderr: format!("{}: {e}", tool.display()),
            }
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(PgError::Tool {
                tool: "pg_verifybackup",
                status: out.status.to_string(),
                stderr: stderr.lines().take(5).collect::<Vec<_>>().join(" | "),
            }
            .into());
        }
        Ok(Check::pass("pg_verifybackup", "every file and the backup's WAL match backup_manifest"))
    }

    fn write_recovery(&self, dir: &Path, timeline: Option<&str>) -> Result<()> {
        let mut text = format!(
            "\n# lifeboat restore of {} (timeline {}, {} to {}): recover to {}\n",
            self.series,
            self.metadata.timeline,
            self.metadata.start_lsn,
            self.metadata.stop_lsn,
            self.target.describe()
        );
        if let Some(command) = self.restore_command() {
            text.push_str(&format!("restore_command = {}\n", conf_quote(&command)));
        }
        for (key, value) in self.target.settings() {
            text.push_str(&format!("{key} = {}\n", conf_quote(&value)));
        }
        if let Some(timeline) = timeline {
            text.push_str(&format!("recovery_target_timeline = {}\n", conf_quote(timeline)));
        }
        text.push_str("recovery_target_action = 'promote'\n");
        if self.scratch {
            // A drill's cluster must not push its new timeline into the archive.
            text.push_str("archive_mode = off\n");
            let hba = dir.join("lifeboat_drill_hba.conf");
            write_synced(&hba, b"host all all 127.0.0.1/32 trust\n")?;
            text.push_str(&format!(
                "hba_file = {}\n",
                conf_quote(&self.dir.join("lifeboat_drill_hba.conf").display().to_string())
            ));
            text.push_str("listen_addresses = '127.0.0.1'\n");
        }
        let auto = dir.join("postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
        conf.push_str(&text);
        write_synced(&auto, conf.as_bytes())?;
        write_synced(&dir.join("recovery.signal"), b"")?;
        Ok(())
    }

    /// Starts the server and waits until recovery has ended and it accepts writes.
    async fn start(&self, port: u16) -> Result<Vec<Check>> {
        let pg_ctl = server_tool("pg_ctl", self.metadata.server_major)?;
        let log = self.dir.join("lifeboat-start.log");
        let options = format!("-p {port} -c unix_socket_directories=''");
        let out = Command::new(&pg_ctl)
            .arg("-D")
            .arg(&self.dir)
            .args(["-o", &options, "-l"])
            .arg(&log)
            .args(["-w", "-t", "3600", "start"])
            .output()
            .await
            .map_err(|e| PgError::Tool {
                tool: "pg_ctl",
                status: "not started".into(),
                stderr: format!("{}: {e}", pg_ctl.display()),
            })?;
        let log_tail = || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(5)..].join(" | ")
        };
        if !out.status.success() {
            return Err(PgError::Tool {
                tool: "pg_ctl start",
                status: out.status.to_string(),
                stderr: log_tail(),
            }
            .into());
        }
        // Recovery has ended when the server removed recovery.signal; it must still run.
        let signal = self.dir.join("recovery.signal");
        loop {
            if running_server(&self.dir).is_none() {
                return Err(PgError::Tool {
                    tool: "postgres",
                    status: "stopped during recovery".into(),
                    stderr: log_tail(),
                }
                .into());
            }
            // What `pg_ctl promote -w` waits for: the control file says "in production".
            if !signal.exists()
                && in_production(&self.metadata, &self.dir).await
                && accepts_connections(&self.metadata, port).await
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let mut checks = vec![Check::pass("started", format!("port {port}, recovery ended"))];
        if let Some(line) = text.lines().find(|l| l.contains("recovery stopping")) {
            checks.push(Check::pass("recovery target", line.trim().to_string()));
        }
        if let Some(line) = text.lines().find(|l| l.contains("selected new timeline ID")) {
            checks.push(Check::pass("timeline", line.trim().to_string()));
        }
        Ok(checks)
    }
}

/// Whether the cluster's control file says it is in production: recovery has ended.
async fn in_production(metadata: &ClusterMetadata, dir: &Path) -> bool {
    let Ok(tool) = server_tool("pg_controldata", metadata.server_major) else { return false };
    let Ok(out) = Command::new(tool).arg(dir).env("LC_ALL", "C").output().await else {
        return false;
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("Database cluster state:") && l.ends_with("in production"))
}

/// Whether the server on `port` answers (`pg_isready`).
async fn accepts_connections(metadata: &ClusterMetadata, port: u16) -> bool {
    let Ok(tool) = server_tool("pg_isready", metadata.server_major) else { return false };
    Command::new(tool)
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Unpacks the tar stream into `dir`, reading it to its end so the stream's own check (its
/// size and SHA-256) runs; returns the bytes read. Regular files are copied in large writes
/// (the tar crate's own copy writes 8 KiB at a time: a quarter of a million writes for a
/// 2 GB cluster); every other entry is left to the tar crate, which refuses paths that leave
/// `dir`.
async fn unpack(stream: lifeboat_core::ByteStream, dir: PathBuf) -> Result<u64> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || -> Result<u64> {
        let reader = tokio_util::io::SyncIoBridge::new_with_handle(stream, handle);
        let mut counted =
            std::io::BufReader::with_capacity(COPY_BUFFER, Counted { inner: reader, bytes: 0 });
        let unpacked = unpack_entries(&mut counted, &dir);
        unpacked.map_err(|e| Error::from_stream("unpacking the base backup", e))?;
        std::io::copy(&mut counted, &mut std::io::sink())
            .map_err(|e| Error::from_stream("reading the snapshot to its end", e))?;
        Ok(counted.get_ref().bytes)
    })
    .await
    .map_err(|e| Error::InvalidInput {
        what: format!("the unpacking task failed: {e}"),
        hint: "run the restore again".into(),
    })?
}

/// The size of the writes that unpack a file.
const COPY_BUFFER: usize = 1 << 20;

fn unpack_entries(reader: &mut impl std::io::Read, dir: &Path) -> std::io::Result<()> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(false);
    let mut buffer = vec![0u8; COPY_BUFFER];
    let mut checked = std::collections::HashSet::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let plain_path =
            entry.path()?.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if entry.header().entry_type() != tar::EntryType::Regular || !plain_path {
            entry.unpack_in(dir)?;
            continue;
        }
        let relative = entry.path()?.into_owned();
        let path = dir.join(&relative);
        if let Some(folder) = relative.parent() {
            real_folders(dir, folder, &mut checked)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)?;
        loop {
            let n = entry.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            file.write_all(&buffer[..n])?;
        }
        let mode = entry.header().mode()? & 0o7777;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        let mtime = std::time::UNIX_EPOCH + Duration::from_secs(entry.header().mtime()?);
        file.set_modified(mtime)?;
    }
    Ok(())
}

/// Makes `folder` (relative, plain components) under `dir`, each level a real folder: one
/// that is a symbolic link (a forged snapshot's earlier entry) is refused, so no file is
/// written through it. `checked` remembers the folders already seen.
fn real_folders(
    dir: &Path,
    folder: &Path,
    checked: &mut std::collections::HashSet<PathBuf>,
) -> std::io::Result<()> {
    let mut at = dir.to_path_buf();
    for part in folder.components() {
        at.push(part);
        if checked.contains(&at) {
            continue;
        }
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) if meta.is_symlink() => {
                return Err(std::io::Error::other(format!(
                    "the snapshot puts files beneath {}, a symbolic link: refused",
                    at.display()
                )));
            }
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "the snapshot puts files beneath {}, which is not a folder",
                    at.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&at)?,
            Err(e) => return Err(e),
        }
        checked.insert(at.clone());
    }
    Ok(())
}

struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// PostgreSQL refuses a data directory others can read.
fn set_private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("setting the mode of", dir, e))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(|e| Error::io("writing", path, e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| Error::io("writing", path, e))
}

fn now_stamp() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_secs()).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::conf_quote;
    use lifeboat_core::shell_quote;

    /// A snapshot whose tar holds a symbolic link and then a file beneath it (a forged or
    /// damaged one: a base backup never does) must not write through the link.
    #[test]
    fn a_file_beneath_a_symbolic_link_is_refused_not_written_through_it() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_mode(0o777);
        tar.append_link(&mut link, "base", outside.path()).unwrap();
        let mut file = tar::Header::new_gnu();
        file.set_entry_type(tar::EntryType::Regular);
        file.set_size(5);
        file.set_mode(0o600);
        tar.append_data(&mut file, "base/evil", &b"owned"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        let err = super::unpack_entries(&mut &bytes[..], dir.path()).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(!outside.path().join("evil").exists(), "written through the link");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/usr/bin/lifeboat"), "/usr/bin/lifeboat");
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
        assert_eq!(conf_quote("it's"), "'it''s'");
    }
}
