//! `lifeboat backup <kind> ...`

use std::process::ExitCode;

use lifeboat_core::Tags;
use lifeboat_ops::{Target, source_for};
use lifeboat_store::BackupOptions;

use crate::cli::{BackupArgs, BackupTarget};
use crate::output::{SnapshotRow, human_bytes, print_json};
use crate::progress::CliProgress;

pub async fn run(url: &str, target: BackupTarget) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let (target, common) = match target {
        BackupTarget::Sqlite { path, common } => (Target::Sqlite { path }, common),
        BackupTarget::Postgres { url, common } => (Target::Postgres { url }, common),
        BackupTarget::Dir { path, excludes, common } => (Target::Dir { path, excludes }, common),
    };
    let source = source_for(&target)?;
    let BackupArgs { name, tags, json } = common;
    let options =
        BackupOptions { name, tags: tags.into_iter().collect::<Tags>(), ..Default::default() };
    let snap = repo.backup(source.as_ref(), &options, &CliProgress::new()).await?;
    if json {
        print_json(&SnapshotRow::new(&snap))?;
    } else {
        let m = snap.manifest();
        println!(
            "snapshot {} saved: {} {:?}, {} captured, {} new in the repository, {:.1} s",
            snap.id(),
            m.kind,
            m.name,
            human_bytes(m.size),
            human_bytes(m.stored),
            m.duration_ms as f64 / 1000.0
        );
    }
    Ok(ExitCode::SUCCESS)
}
