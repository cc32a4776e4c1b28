//! One file per command; each parses nothing and composes library calls.

use std::process::ExitCode;

use clap::ArgMatches;
use lifeboat_core::Registry;

use crate::cli::{Cli, Command};

mod backup;
mod cat;
mod cleanup;
mod config_show;
mod drill;
mod export;
mod forget;
mod init;
mod key;
mod kinds;
mod ls;
mod man;
mod prune;
mod repair;
pub(crate) mod replicate;
mod restore;
mod snapshots;
mod stale;
mod stats;
mod unlock;
mod verify;
mod wal;

/// Runs the parsed command line; `matches` holds what the backends added to it.
pub async fn run(cli: Cli, matches: &ArgMatches, registry: &Registry) -> anyhow::Result<ExitCode> {
    let repo = cli.repo;
    crate::password::set(crate::password::Sources {
        file: cli.password_file,
        command: cli.password_command,
        key_file: cli.key_file,
    });
    let (_, sub) = matches.subcommand().unwrap_or(("", matches));
    // The drill options of every backend, as `drill` and `verify --restore` were given them.
    let drill_options = || crate::backends::options(sub, &registry.drill_options());
    match cli.command {
        Command::Init { no_encryption, encrypt: _, chunk_ids } => {
            init::run(&repo, no_encryption, chunk_ids).await
        }
        Command::Key(command) => key::run(&repo, command).await,
        Command::Backup(_) => match sub.subcommand() {
            Some((command, args)) => backup::run(&repo, registry, command, args).await,
            None => Err(lifeboat_core::Error::InvalidInput {
                what: "backup needs a kind of target".into(),
                hint: format!("run `lifeboat backup --help`: {}", registry.kinds_text()),
            }
            .into()),
        },
        Command::Snapshots { name, host, json } => {
            snapshots::run(&repo, name.as_deref(), host.as_deref(), json).await
        }
        Command::Restore(args) => {
            let selection = crate::backends::options(sub, &registry.restore_options());
            restore::run(&repo, registry, args, &selection).await
        }
        Command::Drill { names, all, snapshot, within, expect, report, heartbeat, json } => {
            let request = drill::Request {
                names,
                options: drill_options(),
                all,
                snapshot,
                within,
                expect,
                report,
                heartbeat,
                json,
            };
            drill::run(&repo, registry, request).await
        }
        Command::Ls { snapshot, path, name, json } => {
            ls::run(&repo, registry, &snapshot, name.as_deref(), path.as_deref(), json).await
        }
        Command::Verify { snapshot, all, read_data, restore, name, json } => {
            let selector = if all { None } else { snapshot };
            let request = verify::Request {
                selector: selector.as_deref(),
                name: name.as_deref(),
                read_data,
                restore: restore.then(drill_options),
                json,
            };
            verify::run(&repo, registry, request).await
        }
        Command::Export {
            snapshot,
            name,
            predicate,
            tables,
            format,
            out,
            json,
            postgres_server,
        } => {
            let request = export::Request {
                snapshot,
                name,
                predicate,
                tables,
                format,
                out,
                json,
                server: postgres_server,
            };
            export::run(&repo, registry, request).await
        }
        Command::Config(crate::cli::ConfigCommand::Show { json }) => {
            let show = sub.subcommand().map_or(sub, |(_, m)| m);
            config_show::run(show, crate::CONFIG_FILE.get().and_then(Option::as_ref), json)
        }
        Command::Completions { shell, binary } => {
            let mut command = match binary.as_str() {
                "lifeboatd" => crate::daemon_command(),
                _ => crate::command(registry),
            };
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut command, binary, &mut out);
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out } => man::run(registry, &out),
        Command::Cat { snapshot, name, out } => {
            cat::run(&repo, &snapshot, name.as_deref(), out.as_deref()).await
        }
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
            policy: policy_file,
            dry_run,
            prune,
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
            let policies = forget::policies(policy_file.as_deref(), policy)?;
            let code = forget::run(&repo, name.as_deref(), &policies, dry_run, json).await?;
            if prune && !dry_run {
                return prune::run(&repo, &lifeboat_store::PruneOptions::default(), json).await;
            }
            Ok(code)
        }
        Command::Prune { grace, repack_below, dry_run, json } => {
            let options = lifeboat_store::PruneOptions { grace, repack_below, dry_run };
            prune::run(&repo, &options, json).await
        }
        Command::Unlock => unlock::run(&repo).await,
        Command::Repair(crate::cli::RepairTarget::Index { dry_run, json }) => {
            repair::index(&repo, dry_run, json).await
        }
        Command::Cleanup { force, json } => cleanup::run(registry, force, json).await,
        Command::Kinds { json } => kinds::run(registry, json),
        Command::Stats { json } => stats::run(&repo, json).await,
        Command::Stale { max_age, expected, json } => {
            stale::run(&repo, max_age, &expected, json).await
        }
        Command::Replicate {
            kind,
            target,
            name,
            interval,
            snapshot_every,
            poll,
            keep_commits,
            keep_minutes,
            spans,
            json,
        } => {
            let compaction = lifeboat_core::replica::Compaction {
                spans,
                keep_commits,
                keep_level1: keep_minutes,
            };
            let args = replicate::Args {
                kind,
                target,
                name,
                interval,
                snapshot_every,
                poll,
                compaction,
                json,
            };
            replicate::run(&repo, registry, args).await
        }
        Command::WalPush { path, name } => wal::push(&repo, &path, &name).await,
        Command::WalFetch { file, dest, name, prefetch, prefetch_worker } => {
            let request = wal::FetchRequest {
                repo_url: &repo,
                file: &file,
                dest: &dest,
                name: &name,
                prefetch: usize::from(prefetch),
            };
            Ok(wal::fetch(request, prefetch_worker).await)
        }
    }
}

/// The snapshot `selector` names (an id, a prefix, or `latest` of `name`), with the command
/// line's words in the hint when `latest` is ambiguous without `--name`.
pub async fn find(
    repo: &lifeboat_store::Repository,
    selector: &str,
    name: Option<&str>,
) -> anyhow::Result<lifeboat_store::StoredSnapshot> {
    match repo.find(selector, name).await {
        Err(lifeboat_store::StoreError::Core(lifeboat_core::Error::InvalidInput {
            what, ..
        })) if selector == "latest" && name.is_none() => {
            let hint = "pass --name NAME to say which one, or give a snapshot id".to_string();
            Err(lifeboat_core::Error::InvalidInput { what, hint }.into())
        }
        other => Ok(other?),
    }
}

/// Opens the repository at `url`; `LIFEBOAT_LEASE_TTL` (e.g. `30s`) shortens leases, so a
/// crashed process frees the repository sooner; `LIFEBOAT_READ_CONCURRENCY` sets how many
/// range requests restores and verifies keep in flight.
///
/// The snapshots are listed while the key is derived: nearly every command goes on to list
/// or find one.
pub async fn open_repo(url: &str) -> anyhow::Result<lifeboat_store::Repository> {
    open_repo_with(url, IndexLoad::AtOpen, true).await
}

/// As [`open_repo`], without reading the index: for commands that list manifests, or that
/// read the index themselves when they need it (a backup does, after taking its lease).
pub async fn open_repo_deferred(url: &str) -> anyhow::Result<lifeboat_store::Repository> {
    open_repo_with(url, IndexLoad::Deferred, true).await
}

/// As [`open_repo_deferred`], without listing snapshots: for `wal-push` and `wal-fetch`,
/// which the server runs once per WAL file and which never list.
pub async fn open_repo_for_wal(url: &str) -> anyhow::Result<lifeboat_store::Repository> {
    open_repo_with(url, IndexLoad::Deferred, false).await
}

/// When a command's handle reads the repository's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndexLoad {
    AtOpen,
    Deferred,
}

async fn open_repo_with(
    url: &str,
    index: IndexLoad,
    list_early: bool,
) -> anyhow::Result<lifeboat_store::Repository> {
    let mut found = lifeboat_store::Repository::discover(url).await?;
    if index == IndexLoad::Deferred {
        found = found.defer_index();
    }
    if list_early {
        found = found.list_early();
    }
    // The password is asked for only when the repository turns out to be encrypted: a
    // plaintext one never runs --password-command nor prompts.
    let password = if found.is_encrypted() {
        match crate::password::current()?.map_or_else(crate::password::prompt, |p| Ok(Some(p)))? {
            Some(password) => Some(password),
            None => return Err(lifeboat_store::StoreError::KeyRequired { url: url.into() }.into()),
        }
    } else {
        None
    };
    let repo = found.open(password.as_ref()).await?;
    // A password says the user expects an encrypted repository. A plaintext one then is
    // either a mistake or a config switched to `none` by someone who can write to the store
    // (the config is not authenticated): either way, nothing is written in the clear.
    if !repo.is_encrypted() && crate::password::given() {
        return Err(lifeboat_core::Error::InvalidInput {
            what: format!(
                "the repository at {url} is not encrypted, yet a password was given: nothing \
                 is read or written in the clear"
            ),
            hint: "if it was created encrypted, its config was changed: do not use it and \
                   check who can write to the store; if it is meant to be plaintext, unset \
                   LIFEBOAT_PASSWORD and drop --password-file/--password-command"
                .into(),
        }
        .into());
    }
    if let Ok(ttl) = std::env::var("LIFEBOAT_LEASE_TTL") {
        let ttl = lifeboat_core::parse_duration(&ttl).map_err(|what| {
            lifeboat_core::Error::InvalidInput {
                what: format!("LIFEBOAT_LEASE_TTL: {what}"),
                hint: "set it to a duration such as 30s or 2m, or unset it".into(),
            }
        })?;
        repo.set_lease_ttl(ttl);
    }
    if let Ok(value) = std::env::var("LIFEBOAT_READ_CONCURRENCY") {
        let concurrency = value.trim().parse::<usize>().ok().filter(|n| (1..=1024).contains(n));
        let Some(concurrency) = concurrency else {
            return Err(lifeboat_core::Error::InvalidInput {
                what: format!(
                    "LIFEBOAT_READ_CONCURRENCY: {value:?} is not a number from 1 to 1024"
                ),
                hint:
                    "set it to how many range requests may be in flight, or unset it to follow the measured round trip"
                        .into(),
            }
            .into());
        };
        repo.set_read_options(lifeboat_store::ReadOptions { concurrency, ..repo.read_options() });
    }
    Ok(repo)
}

/// The command that fetches a file of this repository's WAL archive, as a server's
/// `restore_command` runs it: this program, the repository as an absolute URL, and the same
/// key source. `None` when the key came from `LIFEBOAT_PASSWORD` or a prompt, which a
/// command line cannot carry; restores that need the archive then say so.
pub(crate) fn archive_fetch(
    url: &str,
    repo: &lifeboat_store::Repository,
) -> anyhow::Result<Option<String>> {
    let Some(flags) = crate::password::flags_for_child(repo.is_encrypted()) else {
        return Ok(None);
    };
    let exe = std::env::current_exe()?;
    let url = match repo.local_folder() {
        Some(folder) => std::path::absolute(folder.as_path())?.display().to_string(),
        None => url.to_string(),
    };
    Ok(Some(lifeboat_core::wal::fetch_command(&exe, &url, &flags)))
}

/// Adds the `archive-fetch` drill option (this lifeboat, this repository, this key) when
/// the command line did not give one, for drills that recover from the WAL archive.
pub(crate) fn with_archive_fetch(
    options: &mut lifeboat_core::backend::Options,
    url: &str,
    repo: &lifeboat_store::Repository,
) -> anyhow::Result<()> {
    let name = lifeboat_core::backend::OptionSpec::ARCHIVE_FETCH;
    if options.value(name).is_none()
        && let Some(command) = archive_fetch(url, repo)?
    {
        options.push(name, command);
    }
    Ok(())
}
