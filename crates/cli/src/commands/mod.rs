//! One file per command; each parses nothing and composes library calls.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

mod backup;
mod cat;
mod forget;
mod init;
mod restore;
mod snapshots;
mod stale;
mod stats;
mod verify;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let repo = cli.repo;
    match cli.command {
        Command::Init => init::run(&repo).await,
        Command::Backup(target) => backup::run(&repo, target).await,
        Command::Snapshots { name, json } => snapshots::run(&repo, name.as_deref(), json).await,
        Command::Restore { snapshot, to, name, force, dry_run, json } => {
            restore::run(&repo, &snapshot, name.as_deref(), &to, force, dry_run, json).await
        }
        Command::Verify { snapshot, all, read_data, restore, name, json } => {
            let selector = if all { None } else { snapshot };
            verify::run(&repo, selector.as_deref(), name.as_deref(), read_data, restore, json).await
        }
        Command::Cat { snapshot, name } => cat::run(&repo, &snapshot, name.as_deref()).await,
        Command::Forget {
            name,
            keep_last,
            keep_hourly,
            keep_daily,
            keep_weekly,
            keep_monthly,
            keep_yearly,
            keep_within,
            keep_tags,
            keep_pre_restore_days,
            dry_run,
            json,
        } => {
            let policy = lifeboat_core::retention::RetentionPolicy {
                last: keep_last,
                hourly: keep_hourly,
                daily: keep_daily,
                weekly: keep_weekly,
                monthly: keep_monthly,
                yearly: keep_yearly,
                within: keep_within,
                tags: keep_tags,
                pre_restore_days: keep_pre_restore_days,
            };
            forget::run(&repo, name.as_deref(), &policy, dry_run, json).await
        }
        Command::Stats { json } => stats::run(&repo, json).await,
        Command::Stale { max_age, expected, json } => {
            stale::run(&repo, max_age, &expected, json).await
        }
    }
}
