//! One file per command; each parses nothing and composes library calls.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

mod backup;
mod cat;
mod init;
mod restore;
mod snapshots;
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
    }
}
