//! `lifeboat backup <kind> ...`

use std::process::ExitCode;

use lifeboat_core::{Backup, Tags};
use lifeboat_dir::DirBackup;
use lifeboat_postgres::PostgresBackup;
use lifeboat_sqlite::SqliteBackup;
use lifeboat_store::BackupOptions;

use crate::cli::BackupTarget;
use crate::output::{SnapshotRow, human_bytes, print_json};
use crate::progress::CliProgress;

pub async fn run(url: &str, target: BackupTarget) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let (source, name, tags, json): (Box<dyn Backup>, _, _, _) = match target {
        BackupTarget::Sqlite { path, name, tags, json } => {
            (Box::new(SqliteBackup::new(path)), name, tags, json)
        }
        BackupTarget::Postgres { url, name, tags, json } => {
            (Box::new(PostgresBackup::new(url)), name, tags, json)
        }
        BackupTarget::Dir { path, name, excludes, tags, json } => {
            let source = excludes.into_iter().fold(DirBackup::new(path), DirBackup::exclude);
            (Box::new(source), name, tags, json)
        }
    };
    let options = BackupOptions { name, tags: tags.into_iter().collect::<Tags>(), host: None };
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
