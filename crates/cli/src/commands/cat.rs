//! `lifeboat cat SNAPSHOT`

use std::process::ExitCode;

use lifeboat_core::Snapshot;
use tokio::io::AsyncWriteExt;

pub async fn run(url: &str, selector: &str, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let snap = repo.find(selector, name).await?;
    let mut reader = snap.open().await?;
    let mut stdout = tokio::io::stdout();
    // A reader that stops early (`| head`) is not an error of ours.
    let copied = async {
        tokio::io::copy(&mut reader, &mut stdout).await?;
        stdout.flush().await
    };
    match copied.await {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(ExitCode::SUCCESS),
    }
}
