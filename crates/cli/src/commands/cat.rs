//! `lifeboat cat SNAPSHOT [--out FILE]`
//!
//! Nothing reaches the output before the whole stream has been checked: a snapshot is
//! verified chunk by chunk and, at its end, by its SHA-256 and length, so a reader learns it
//! was damaged only at the end. Written straight through, `cat latest > auth.db` would then
//! leave a plausible-looking partial database behind a failed command.
//!
//! - `--out FILE`: the stream goes into a temporary file beside FILE (named with our process
//!   id, so the next run removes it if this one is killed), which is synced and renamed onto
//!   FILE only after the end of the stream proved it right. One read.
//! - stdout: the snapshot is read through once to verify it, then again into stdout. A second
//!   read (cheap from a local repository, a second download from a bucket) was chosen over
//!   spooling into a temporary file, which would put a full plaintext copy on local disk and
//!   need its size in free space. Should the second read fail all the same (the store changed
//!   in between), a regular file on stdout is cut back to where it started.

use std::os::fd::AsFd;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use lifeboat_core::Snapshot;
use tokio::io::AsyncWriteExt;

pub async fn run(
    url: &str,
    selector: &str,
    name: Option<&str>,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let snap = super::find(&repo, selector, name).await?;
    match out {
        Some(path) => to_file(&snap, path).await?,
        None => to_stdout(&snap).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn to_file(snap: &dyn Snapshot, path: &Path) -> anyhow::Result<()> {
    let dir = lifeboat_core::existing_parent(path)?;
    lifeboat_core::remove_leftovers(path);
    let temp = tempfile::Builder::new()
        .prefix(&lifeboat_core::temp_prefix(path))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let mut file = tokio::fs::File::from_std(temp.reopen()?);
    let mut reader = big_reads(snap.open().await?);
    tokio::io::copy_buf(&mut reader, &mut file).await.map_err(read_error)?;
    file.sync_all().await.with_context(|| format!("syncing {}", temp.path().display()))?;
    drop(file);
    temp.persist(path)
        .with_context(|| format!("moving the verified copy to {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(lifeboat_core::parent_folder(path)) {
        let _ = d.sync_all();
    }
    Ok(())
}

async fn to_stdout(snap: &dyn Snapshot) -> anyhow::Result<()> {
    let mut check = big_reads(snap.open().await?);
    tokio::io::copy_buf(&mut check, &mut tokio::io::sink()).await.map_err(read_error)?;

    // Where a regular file on stdout starts, to cut it back there if the second read fails.
    let regular = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::fs::File::from)
        .filter(|f| f.metadata().map(|m| m.is_file()).unwrap_or(false));
    let start = regular.as_ref().and_then(|mut f| std::io::Seek::stream_position(&mut f).ok());

    let mut reader = big_reads(snap.open().await?);
    let mut stdout = tokio::io::stdout();
    let copied = async {
        tokio::io::copy_buf(&mut reader, &mut stdout).await?;
        stdout.flush().await
    };
    match copied.await {
        // A reader that stops early (`| head`) is not an error of ours.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => {
            if let (Some(file), Some(start)) = (regular, start) {
                let _ = file.set_len(start);
            }
            Err(read_error(e))
        }
        Ok(()) => Ok(()),
    }
}

/// The snapshot's stream read in 1 MiB pieces: each write to a tokio file or stdout is a
/// trip to a blocking thread, which at `tokio::io::copy`'s 8 KiB made a 1.5 GiB `cat` spend
/// more time switching threads than copying.
fn big_reads(stream: lifeboat_core::ByteStream) -> tokio::io::BufReader<lifeboat_core::ByteStream> {
    tokio::io::BufReader::with_capacity(1 << 20, stream)
}

/// A failed read of the snapshot, with the store's error kept when it is one.
fn read_error(e: std::io::Error) -> anyhow::Error {
    lifeboat_core::Error::from_stream("reading the snapshot", e).into()
}
