//! `wal-push` and `wal-fetch`: PostgreSQL's `archive_command` and `restore_command`.
//!
//! Both run once per file, as the server asks. `wal-fetch` of a segment the prefetch folder
//! lacks fetches it and the segments after it at once (`--prefetch`), hands the server the
//! one it asked for and keeps the others in `lifeboat-prefetch/` beside DEST, each written
//! whole and renamed into place only once checked; the next calls take them from there
//! without opening the repository. The folder is removed when a fetch finds nothing (the end
//! of recovery).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use futures::StreamExt;
use lifeboat_core::wal::Segment;
use tracing::debug;

use super::open_repo_deferred;

/// The exit code that makes PostgreSQL stop recovery instead of ending it at this file:
/// a file that exists but cannot be read must not look like the end of the log.
const STOP_RECOVERY: u8 = 255;

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
    let repo = open_repo_deferred(repo_url).await?;
    match repo.wal_push(name, file, content.into()).await? {
        lifeboat_store::WalPushed::Stored { stored } => {
            debug!(file, stored, "archived");
        }
        lifeboat_store::WalPushed::AlreadyArchived => debug!(file, "already archived"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes archived `file` of series `name` to `dest`; see the module's doc for exit codes.
pub async fn fetch(
    repo_url: &str,
    file: &str,
    dest: &Path,
    name: &str,
    prefetch: usize,
) -> ExitCode {
    match fetch_inner(repo_url, file, dest, name, prefetch).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            crate::output::fail(&e);
            ExitCode::from(STOP_RECOVERY)
        }
    }
}

async fn fetch_inner(
    repo_url: &str,
    file: &str,
    dest: &Path,
    name: &str,
    prefetch: usize,
) -> anyhow::Result<bool> {
    lifeboat_store::check_wal_file_name(file)?;
    let spool = dest.parent().unwrap_or(Path::new(".")).join("lifeboat-prefetch");
    let spooled = spool.join(file);
    if tokio::fs::rename(&spooled, dest).await.is_ok() {
        debug!(file, "from the prefetch folder");
        return Ok(true);
    }
    let mut names = vec![file.to_string()];
    if let Some(segment) = Segment::parse(file) {
        names.extend(segment.following(prefetch.saturating_sub(1), Segment::DEFAULT_SIZE));
    }
    let repo = open_repo_deferred(repo_url).await?;
    let mut fetched = futures::stream::iter(names.into_iter().map(|wanted| {
        let repo = repo.clone();
        async move {
            let content = repo.wal_fetch(name, &wanted).await;
            (wanted, content)
        }
    }))
    .buffered(prefetch.max(1));
    let mut found = false;
    while let Some((wanted, content)) = fetched.next().await {
        if wanted == file {
            match content? {
                Some(content) => {
                    write_whole(dest, &content).await?;
                    found = true;
                }
                None => {
                    // The end of the archive: recovery ends here, and so does the prefetch.
                    let _ = tokio::fs::remove_dir_all(&spool).await;
                    return Ok(false);
                }
            }
            continue;
        }
        // A prefetched segment that is missing or unreadable is left to its own call.
        match content {
            Ok(Some(content)) => {
                tokio::fs::create_dir_all(&spool)
                    .await
                    .with_context(|| format!("creating {}", spool.display()))?;
                write_whole(&spool.join(&wanted), &content).await?;
            }
            Ok(None) => break,
            Err(e) => {
                debug!(file = wanted, error = %e, "prefetch failed");
                break;
            }
        }
    }
    Ok(found)
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
