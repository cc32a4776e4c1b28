//! `lifeboat backup <kind> ...`

use std::process::ExitCode;

use lifeboat_core::Tags;
use lifeboat_ops::{Target, source_for};
use lifeboat_store::{BackupOptions, Repository, StoredSnapshot};
use serde::Serialize;

use crate::cli::{BackupArgs, BackupTarget};
use crate::output::{SnapshotRow, human_bytes, print_json};
use crate::progress::CliProgress;

pub async fn run(url: &str, target: BackupTarget) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let (target, common, changed_only) = match target {
        BackupTarget::Sqlite { path, common } => (Target::Sqlite { path }, common, false),
        BackupTarget::Postgres { url, connections, common } => {
            (Target::Postgres { url, connections: connections.map(usize::from) }, common, false)
        }
        BackupTarget::Dir { path, excludes, common } => {
            (Target::Dir { path, excludes }, common, false)
        }
        BackupTarget::Container { container, changed_only, common } => {
            (Target::Container { name: container }, common, changed_only)
        }
        BackupTarget::Containers { label, changed_only, tags, json } => {
            return every_container(&repo, &label, changed_only, tags, json).await;
        }
    };
    let BackupArgs { name, tags, json } = common;
    let options = BackupOptions {
        name,
        tags: tags.into_iter().collect::<Tags>(),
        changed_only,
        ..Default::default()
    };
    let snap = backup_one(&repo, &target, &options).await?;
    if json {
        print_json(&SnapshotRow::new(&snap))?;
    } else {
        println!("{}", saved_line(&snap));
    }
    Ok(ExitCode::SUCCESS)
}

async fn backup_one(
    repo: &Repository,
    target: &Target,
    options: &BackupOptions,
) -> anyhow::Result<StoredSnapshot> {
    let source = source_for(target)?;
    let mut options = options.clone();
    if let (Target::Container { name: reference }, None) = (target, &options.name) {
        // Taken by id, a container's snapshots are still named after the container; when
        // the engine cannot say, the capture reports why.
        let container = lifeboat_container::ContainerBackup::new(reference.clone());
        options.name = container.container_name().await.ok();
    }
    Ok(repo.backup(source.as_ref(), &options, &CliProgress::new()).await?)
}

fn saved_line(snap: &StoredSnapshot) -> String {
    let m = snap.manifest();
    if m.unchanged {
        let parent = m.parent.map(|p| p.short()).unwrap_or_default();
        return format!(
            "snapshot {} saved: {} {:?} unchanged since snapshot {parent}, nothing new stored",
            snap.id(),
            m.kind,
            m.name
        );
    }
    format!(
        "snapshot {} saved: {} {:?}, {} captured, {} new in the repository, {:.1} s",
        snap.id(),
        m.kind,
        m.name,
        human_bytes(m.size),
        human_bytes(m.stored),
        m.duration_ms as f64 / 1000.0
    )
}

/// One container's outcome in `backup containers`.
#[derive(Serialize)]
struct ContainerResult<'a> {
    container: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot: Option<SnapshotRow<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `backup containers --label KEY=VALUE`: every match, past failures; fails at the end when
/// any failed.
async fn every_container(
    repo: &Repository,
    label: &str,
    changed_only: bool,
    tags: Vec<(String, String)>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let names = lifeboat_container::containers_with_label(label).await?;
    if names.is_empty() {
        return Err(lifeboat_core::Error::InvalidInput {
            what: format!("no container carries the label {label}"),
            hint: "check the label with `docker ps -a --filter label=KEY=VALUE`".into(),
        }
        .into());
    }
    let tags: Tags = tags.into_iter().collect();
    let mut outcomes = Vec::with_capacity(names.len());
    for name in names {
        let options = BackupOptions {
            name: Some(name.clone()),
            tags: tags.clone(),
            changed_only,
            ..Default::default()
        };
        let outcome = backup_one(repo, &Target::Container { name: name.clone() }, &options).await;
        if !json {
            match &outcome {
                Ok(snap) => println!("{name}: {}", saved_line(snap)),
                Err(e) => println!("{name}: FAILED: {e}"),
            }
        }
        outcomes.push((name, outcome));
    }
    let failed = outcomes.iter().filter(|(_, o)| o.is_err()).count();
    if json {
        let rows: Vec<ContainerResult> = outcomes
            .iter()
            .map(|(name, outcome)| ContainerResult {
                container: name.clone(),
                ok: outcome.is_ok(),
                snapshot: outcome.as_ref().ok().map(SnapshotRow::new),
                error: outcome.as_ref().err().map(|e| format!("{e:#}")),
            })
            .collect();
        print_json(&rows)?;
    } else {
        println!("{} containers, {failed} failed", outcomes.len());
    }
    if failed > 0 {
        return Err(lifeboat_core::Error::InvalidInput {
            what: format!("{failed} of {} container backups failed", outcomes.len()),
            hint: "see each container's error above; the others were saved".into(),
        }
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
