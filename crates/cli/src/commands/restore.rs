//! `lifeboat restore SNAPSHOT --to TARGET`

use std::process::ExitCode;

use lifeboat_core::backend::Options;
use lifeboat_core::{Registry, RestoreContext, RestoreOptions};

use crate::cli::RestoreArgs;
use crate::output::{human_bytes, print_json};
use crate::progress::CliProgress;

pub async fn run(
    url: &str,
    registry: &Registry,
    args: RestoreArgs,
    selection: &Options,
) -> anyhow::Result<ExitCode> {
    let RestoreArgs { snapshot, to, name, force, create, dry_run, json } = args;
    let repo = super::open_repo(url).await?;
    let snap = super::find(&repo, &snapshot, name.as_deref()).await?;
    let options =
        RestoreOptions { force, create, archive_fetch: super::archive_fetch(url, &repo)? };
    let selection = with_timeline(&repo, &snap, selection).await;
    let plan = registry.plan_restore(&snap, &to, &options, &selection).await?;
    if dry_run {
        if json {
            print_json(&plan.steps())?;
        } else {
            println!(
                "restore plan for snapshot {} -> {to} (dry run, nothing changed):",
                snap.id().short()
            );
            for (i, step) in plan.steps().iter().enumerate() {
                println!("  {}. {step}", i + 1);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let progress = CliProgress::new();
    let ctx = RestoreContext { snapshot: &snap, safety_net: &repo, progress: &progress };
    let report = plan.execute(&ctx).await?;
    if json {
        print_json(&report)?;
    } else {
        if let Some(safety) = report.safety_snapshot {
            println!("safety snapshot {safety} holds what was at {} before", report.target);
        }
        // What the restore did beyond its plan (journal files moved aside, a raw safety copy).
        for note in report.checks.iter().filter(|c| c.name == "note") {
            println!("note: {}", note.detail);
        }
        println!(
            "restored snapshot {} to {} ({}), {} checks passed",
            snap.id().short(),
            report.target,
            human_bytes(report.bytes),
            report.checks.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A snapshot that recovers from the WAL archive recovers along the newest timeline that
/// branched from it after its end (PostgreSQL's `latest` would also take a timeline that
/// branched before, and refuse to start); unless the command line named one.
async fn with_timeline(
    repo: &lifeboat_store::Repository,
    snap: &lifeboat_store::StoredSnapshot,
    selection: &Options,
) -> Options {
    let mut selection = selection.clone();
    const TIMELINE: &str = lifeboat_core::backend::OptionSpec::TARGET_TIMELINE;
    let m = snap.manifest();
    if selection.value(TIMELINE).is_none()
        && let Some(start) = lifeboat_store::WalStart::from_metadata(&m.metadata)
        && let Ok(needs) = repo.wal_needs(&m.name, &start).await
        && let Some(timeline) = needs.timelines.last()
    {
        selection.push(TIMELINE, timeline.to_string());
    }
    selection
}
