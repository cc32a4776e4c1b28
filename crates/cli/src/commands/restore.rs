//! `lifeboat restore SNAPSHOT --to TARGET`

use std::path::Path;
use std::process::ExitCode;

use lifeboat_core::{Kind, RestoreContext, RestoreOptions, RestorePlan, Snapshot};
use lifeboat_sqlite::SqliteRestorePlan;

use crate::output::{human_bytes, print_json};
use crate::progress::CliProgress;

/// The restore plan for a snapshot of any kind.
pub fn plan_for(
    snapshot: &dyn Snapshot,
    target: &Path,
    options: &RestoreOptions,
) -> lifeboat_core::Result<Box<dyn RestorePlan>> {
    match snapshot.manifest().kind {
        Kind::Sqlite => Ok(Box::new(SqliteRestorePlan::new(snapshot, target, options)?)),
        kind => Err(lifeboat_core::Error::Unsupported { operation: "restore".into(), kind }),
    }
}

pub async fn run(
    url: &str,
    selector: &str,
    name: Option<&str>,
    to: &Path,
    force: bool,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let snap = repo.find(selector, name).await?;
    let plan = plan_for(&snap, to, &RestoreOptions { force })?;
    if dry_run {
        if json {
            print_json(&plan.steps())?;
        } else {
            println!(
                "restore plan for snapshot {} -> {} (dry run, nothing changed):",
                snap.id().short(),
                to.display()
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
