//! `wal-push` and `wal-fetch`: PostgreSQL's `archive_command` and `restore_command`.
//!
//! Both run once per file, as the server asks. Recovery asks for segments one after another
//! and waits for each, so `wal-fetch` keeps a queue ahead of it: a call that finds its
//! segment in `lifeboat-prefetch/` beside DEST takes it from there without opening the
//! repository; one that does not fetches just that segment. Either way it records what was
//! asked for and makes sure one background prefetcher runs (`--prefetch` segments deep,
//! a detached copy of the same command). The prefetcher opens the repository once and keeps
//! the segments after the last one asked for in the folder, each written whole and renamed
//! into place only once checked. It ends, and removes the folder, when recovery is over
//! (the data directory holds neither `recovery.signal` nor `standby.signal`), when the
//! folder is removed (a segment was not in the archive: the end of recovery), or after
//! [`IDLE`] with nothing asked.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use lifeboat_core::wal::Segment;
use tracing::debug;

use super::open_repo_for_wal;

/// The exit code that makes PostgreSQL stop recovery instead of ending it at this file:
/// a file that exists but cannot be read must not look like the end of the log.
const STOP_RECOVERY: u8 = 255;

/// How long the prefetcher waits for another request before it ends.
const IDLE: Duration = Duration::from_secs(30);

/// How often the prefetcher looks for a new request.
const POLL: Duration = Duration::from_millis(10);

/// How long a segment found missing is not asked for again (it may be archived later, while
/// a standby follows the archive).
const RECHECK_MISSING: Duration = Duration::from_secs(1);

/// The hidden flag that turns `wal-fetch` into the background prefetcher.
pub const WORKER_FLAG: &str = "--prefetch-worker";

/// Archives the file at `path` under its file name in series `name`.
pub async fn push(repo_url: &str, path: &Path, name: &str) -> anyhow::Result<ExitCode> {
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .with_context(|| format!("{} has no file name to archive it under", path.display()))?;
    lifeboat_store::check_wal_file_name(file)?;
    let content = tokio::fs::read(path)
        .await
        .with_context(|| format!("reading the WAL file {}", path.display()))?;
    let repo = open_repo_for_wal(repo_url).await?;
    match repo.wal_push(name, file, content.into()).await? {
        lifeboat_store::WalPushed::Stored { stored } => {
            debug!(file, stored, "archived");
        }
        lifeboat_store::WalPushed::AlreadyArchived => debug!(file, "already archived"),
    }
    Ok(ExitCode::SUCCESS)
}

/// What `wal-fetch` was asked to do.
#[derive(Debug, Clone)]
pub struct FetchRequest<'a> {
    /// The repository's URL.
    pub repo_url: &'a str,
    /// The file's name (`%f`).
    pub file: &'a str,
    /// Where to write it (`%p`).
    pub dest: &'a Path,
    /// The WAL series.
    pub name: &'a str,
    /// How many segments the prefetcher keeps ahead; 1 means none.
    pub prefetch: usize,
}

/// Writes archived `file` of series `name` to `dest`; see the module's doc for exit codes.
/// As the prefetcher (`worker`), fills the prefetch folder until recovery is over.
pub async fn fetch(request: FetchRequest<'_>, worker: bool) -> ExitCode {
    if worker {
        if let Err(e) = prefetch(&request).await {
            debug!(error = %e, "the prefetcher ended");
        }
        return ExitCode::SUCCESS;
    }
    match fetch_one(&request).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            crate::output::fail(&e);
            ExitCode::from(STOP_RECOVERY)
        }
    }
}

async fn fetch_one(request: &FetchRequest<'_>) -> anyhow::Result<bool> {
    let FetchRequest { repo_url, file, dest, name, prefetch } = *request;
    lifeboat_store::check_wal_file_name(file)?;
    let spool = Spool::beside(dest);
    let queued = prefetch > 1 && Segment::parse(file).is_some() && spool.in_recovery();
    if queued {
        // Best effort: without the note the prefetcher only fetches less ahead.
        if let Err(e) = spool.ask(file) {
            debug!(error = %e, "cannot note the request in the prefetch folder");
        }
    }
    if spool.take(file, dest).await {
        debug!(file, "from the prefetch folder");
        if queued {
            spool.start_prefetcher();
        }
        return Ok(true);
    }
    let repo = open_repo_for_wal(repo_url).await?;
    match repo.wal_fetch(name, file).await? {
        Some(content) => {
            write_whole(dest, &content).await?;
            if queued {
                spool.start_prefetcher();
            }
            Ok(true)
        }
        None => {
            if Segment::parse(file).is_some() {
                // The end of the archive: recovery ends here, and so does the prefetch.
                spool.remove().await;
            }
            Ok(false)
        }
    }
}

/// The background prefetcher: keeps the `prefetch` segments after the last one asked for in
/// the folder, until recovery is over, the folder goes, or nothing is asked for [`IDLE`].
async fn prefetch(request: &FetchRequest<'_>) -> anyhow::Result<()> {
    let FetchRequest { repo_url, dest, name, prefetch: depth, .. } = *request;
    let spool = Spool::beside(dest);
    let Some(_lock) = spool.lock()? else {
        return Ok(()); // another prefetcher serves this folder
    };
    let repo = open_repo_for_wal(repo_url).await?;
    let mut asked: Option<String> = None;
    let mut asked_at = Instant::now();
    let mut missing: Option<(String, Instant)> = None;
    loop {
        if !spool.dir.is_dir() {
            return Ok(());
        }
        if !spool.in_recovery() || asked_at.elapsed() > IDLE {
            spool.remove().await;
            return Ok(());
        }
        let now_asked = spool.asked();
        if now_asked != asked {
            asked = now_asked;
            asked_at = Instant::now();
        }
        let Some(segment) = asked.as_deref().and_then(Segment::parse) else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        let window = segment.following(depth.saturating_sub(1), Segment::DEFAULT_SIZE);
        spool.keep_only(&window, asked.as_deref());
        if missing.as_ref().is_some_and(|(_, at)| at.elapsed() > RECHECK_MISSING) {
            missing = None;
        }
        let todo: Vec<String> = window
            .into_iter()
            .take_while(|n| missing.as_ref().is_none_or(|(m, _)| n < m))
            .filter(|n| !spool.path(n).exists())
            .collect();
        if todo.is_empty() {
            tokio::time::sleep(POLL).await;
            continue;
        }
        let mut fetched = futures::stream::iter(todo.into_iter().map(|wanted| {
            let repo = repo.clone();
            async move {
                let content = repo.wal_fetch(name, &wanted).await;
                (wanted, content)
            }
        }))
        .buffered(depth.max(1));
        while let Some((wanted, content)) = fetched.next().await {
            // Recovery may have ended while these were fetched: write nothing more into the
            // data directory of a server that is running on its own; the loop's top removes
            // the folder.
            if !spool.in_recovery() {
                break;
            }
            match content {
                Ok(Some(content)) => write_whole(&spool.path(&wanted), &content).await?,
                Ok(None) => {
                    missing = Some((wanted, Instant::now()));
                    break;
                }
                Err(e) => {
                    // Left to the server's own call, which reports it.
                    debug!(file = wanted, error = %e, "prefetch failed");
                    missing = Some((wanted, Instant::now()));
                    break;
                }
            }
        }
    }
}

/// The prefetch folder beside a `restore_command`'s DEST (`pg_wal/lifeboat-prefetch`).
struct Spool {
    dir: PathBuf,
    /// The data directory, when DEST is in its `pg_wal`.
    data_dir: Option<PathBuf>,
}

impl Spool {
    fn beside(dest: &Path) -> Spool {
        let wal_dir = dest.parent().unwrap_or(Path::new("."));
        let data_dir = wal_dir.parent().map(Path::to_path_buf);
        Spool { dir: wal_dir.join("lifeboat-prefetch"), data_dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Whether the server is still recovering: its data directory holds `recovery.signal`
    /// or `standby.signal` (PostgreSQL removes them when it promotes).
    fn in_recovery(&self) -> bool {
        self.data_dir.as_ref().is_some_and(|d| {
            d.join("recovery.signal").exists() || d.join("standby.signal").exists()
        })
    }

    /// Moves a prefetched `file` onto `dest`; false when it is not there.
    async fn take(&self, file: &str, dest: &Path) -> bool {
        tokio::fs::rename(self.path(file), dest).await.is_ok()
    }

    /// Notes `file` as the last one asked for.
    fn ask(&self, file: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let temp = self.dir.join(format!(".asked.{}", std::process::id()));
        std::fs::write(&temp, file)?;
        std::fs::rename(&temp, self.dir.join(".asked"))
    }

    /// The last file asked for.
    fn asked(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join(".asked")).ok().map(|s| s.trim().to_string())
    }

    /// The prefetcher's lock, or `None` when another process holds it.
    fn lock(&self) -> std::io::Result<Option<std::fs::File>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(".prefetcher.lock"))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Starts the prefetcher unless one runs: a detached copy of this command with
    /// [`WORKER_FLAG`]. Best effort: without it, each call fetches its own segment.
    fn start_prefetcher(&self) {
        match self.lock() {
            Ok(Some(lock)) => drop(lock),
            Ok(None) => return,
            Err(e) => {
                debug!(error = %e, "cannot take the prefetcher's lock");
                return;
            }
        }
        let started = std::env::current_exe().and_then(|exe| {
            use std::os::unix::process::CommandExt;
            let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
            args.push(WORKER_FLAG.into());
            std::process::Command::new(exe)
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .process_group(0)
                .spawn()
        });
        if let Err(e) = started {
            debug!(error = %e, "cannot start the prefetcher");
        }
    }

    /// Removes prefetched segments outside `window` (and other than `asked`) and temporary
    /// files of writers that are gone.
    fn keep_only(&self, window: &[String], asked: Option<&str>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let segment = Segment::parse(name).is_some();
            let stale_temp = name.contains(".lifeboat-")
                && name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()).is_some_and(|pid| {
                    pid != std::process::id() && !lifeboat_core::host::process_alive(pid)
                });
            if (segment && Some(name) != asked && !window.iter().any(|w| w == name)) || stale_temp {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Removes the folder and what is in it.
    async fn remove(&self) {
        let _ = tokio::fs::remove_dir_all(&self.dir).await;
    }
}

/// Writes `content` to a temporary file beside `path`, syncs it and renames it onto `path`.
async fn write_whole(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let temp = PathBuf::from(format!("{}.lifeboat-{}", path.display(), std::process::id()));
    let written = async {
        let mut file = tokio::fs::File::create(&temp).await?;
        tokio::io::AsyncWriteExt::write_all(&mut file, content).await?;
        file.sync_all().await?;
        tokio::fs::rename(&temp, path).await
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    written.with_context(|| format!("writing {}", path.display()))
}
