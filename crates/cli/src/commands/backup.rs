//! `lifeboat backup KIND TARGET …`: the subcommands come from the backends.

use std::process::ExitCode;

use clap::{ArgMatches, FromArgMatches};
use lifeboat_core::backend::TargetSpec;
use lifeboat_core::{Registry, Tags};
use lifeboat_store::{BackupOptions, MemberOutcome, StoredSnapshot};

use crate::backends::{TARGET, options};
use crate::cli::BackupArgs;
use crate::output::{SnapshotRow, count, human_bytes, print_json};
use crate::progress::CliProgress;

pub async fn run(
    url: &str,
    registry: &Registry,
    command: &str,
    args: &ArgMatches,
) -> anyhow::Result<ExitCode> {
    let Some((backend, command)) = registry.command(command) else {
        return Err(lifeboat_core::Error::InvalidInput {
            what: format!("no backend offers `backup {command}`"),
            hint: "run `lifeboat backup --help` for the kinds this build has".into(),
        }
        .into());
    };
    let BackupArgs { name, tags, json } = BackupArgs::from_arg_matches(args)?;
    let spec = TargetSpec {
        kind: backend.kind(),
        // A command that selects by option (`containers --label`) has no positional target.
        target: args.try_get_one::<String>(TARGET).ok().flatten().cloned().unwrap_or_default(),
        options: options(args, &command.options),
    };
    registry.check(&spec)?;
    let repo = super::open_repo_deferred(url).await?;
    let options =
        BackupOptions { name, tags: tags.into_iter().collect::<Tags>(), ..Default::default() };
    let progress = CliProgress::new();
    // A selection prints each member as it ends; one target prints once, below.
    let mut print = |outcome: &MemberOutcome| {
        if outcome.member.member.is_some() && !json {
            let member = outcome.member.member.as_deref().unwrap_or(&spec.target);
            match &outcome.result {
                Ok(snap) => println!("{member}: {}", saved_line(snap)),
                Err(e) => println!("{member}: FAILED: {e}"),
            }
        }
    };
    let mut outcomes = repo.backup_target(registry, &spec, &options, &progress, &mut print).await?;
    if outcomes.len() == 1 && outcomes[0].member.member.is_none() {
        let snap = outcomes.remove(0).result?;
        if json {
            print_json(&SnapshotRow::new(&snap))?;
        } else {
            println!("{}", saved_line(&snap));
        }
        return Ok(ExitCode::SUCCESS);
    }
    report(&spec, &outcomes, json)
}

/// Every member's result of a selection; fails at the end when any failed.
fn report(spec: &TargetSpec, outcomes: &[MemberOutcome], json: bool) -> anyhow::Result<ExitCode> {
    let kind = spec.kind.as_str();
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    if json {
        // Each row names its member under `member` and under its kind (`"container": …`).
        let rows: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|o| {
                let member = o.member.member.clone().unwrap_or_else(|| spec.target.clone());
                let mut row = serde_json::Map::new();
                row.insert("member".into(), member.clone().into());
                row.insert(kind.into(), member.into());
                row.insert("ok".into(), o.result.is_ok().into());
                match &o.result {
                    Ok(snap) => {
                        row.insert("snapshot".into(), serde_json::to_value(SnapshotRow::new(snap))?)
                    }
                    Err(e) => row.insert("error".into(), format!("{e}").into()),
                };
                Ok(serde_json::Value::Object(row))
            })
            .collect::<Result<_, serde_json::Error>>()?;
        print_json(&rows)?;
    } else {
        println!("{}, {failed} failed", count(outcomes.len(), kind));
    }
    if failed > 0 {
        return Err(lifeboat_core::Error::InvalidInput {
            what: format!("{failed} of {} {kind} backups failed", outcomes.len()),
            hint: "see each one's error above; the others were saved".into(),
        }
        .into());
    }
    Ok(ExitCode::SUCCESS)
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
