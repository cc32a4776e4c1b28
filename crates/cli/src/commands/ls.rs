//! `lifeboat ls SNAPSHOT [PATH]`

use std::process::ExitCode;

use lifeboat_core::{Kind, Snapshot};
use tokio_util::io::SyncIoBridge;

use crate::output::print_json;

pub async fn run(
    url: &str,
    selector: &str,
    name: Option<&str>,
    prefix: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let snap = repo.find(selector, name).await?;
    if snap.manifest().kind != Kind::DIR {
        return Err(lifeboat_core::Error::Unsupported {
            operation: "ls".into(),
            kind: snap.manifest().kind,
        }
        .into());
    }
    let reader = SyncIoBridge::new(snap.open().await?);
    let prefix = prefix.map(str::to_string);
    let entries =
        tokio::task::spawn_blocking(move || lifeboat_dir::list_entries(reader, prefix.as_deref()))
            .await?
            .map_err(|e| lifeboat_core::Error::from_stream("reading the snapshot", e))?;
    if json {
        print_json(&entries)?;
        return Ok(ExitCode::SUCCESS);
    }
    for e in &entries {
        let mtime = chrono::DateTime::from_timestamp(e.mtime as i64, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        let link = e.link.as_ref().map(|l| format!(" -> {}", l.display())).unwrap_or_default();
        println!("{:<8} {:o} {:>12} {mtime} {}{link}", e.kind, e.mode, e.size, e.path.display());
    }
    Ok(ExitCode::SUCCESS)
}
