//! # lifeboat-cli
//!
//! The `lifeboat` command line as a library, so a team builds its own `lifeboat` with its
//! own backends and every standard command:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let registry = lifeboat::backends(); // add your own with registry.register(…)
//!     lifeboat_cli::run(registry)
//! }
//! ```

use std::process::ExitCode;
use std::sync::OnceLock;

use clap::FromArgMatches;
use lifeboat_core::Registry;

mod backends;
mod cli;
mod commands;
mod config;
mod interrupt;
#[doc(hidden)]
pub mod logging;
mod output;
mod password;
mod progress;

/// `--version` of both binaries: the package version and the commit built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("LIFEBOAT_COMMIT"), ")");

/// `lifeboatd`'s command line (here so `lifeboat man` writes its page too).
#[derive(Debug, clap::Parser)]
#[command(name = "lifeboatd", version = VERSION, about = DAEMON_ABOUT)]
pub struct DaemonArgs {
    /// The configuration file (TOML); LIFEBOAT_CONFIG when not given.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Check the configuration and exit.
    #[arg(long)]
    pub check: bool,
    /// How log lines are written to stderr: text (coloured only on a terminal without
    /// NO_COLOR) or json, one object per line.
    #[arg(long, env = "LIFEBOAT_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: logging::LogFormat,
}

/// lifeboatd's one-line description, for `--help` and its man page.
const DAEMON_ABOUT: &str =
    "The lifeboat service: scheduled backups and drills, health, alerts, metrics and an HTTP API";

/// The configuration file this run read: where, why there, and what it says.
static CONFIG_FILE: OnceLock<Option<(std::path::PathBuf, &'static str, config::FileConfig)>> =
    OnceLock::new();

/// `lifeboat`'s whole command line with `registry`'s backends, as [`run`] parses it (its
/// `backup` kinds, restore and drill options included).
pub fn command(registry: &Registry) -> clap::Command {
    secrets_from_files(backends::command(registry))
}

/// Lets every option read from a variable `NAME` also read the file `NAME_FILE` names, when
/// `NAME` is not set (secrets handed over as files); the value is never shown in help.
fn secrets_from_files(command: clap::Command) -> clap::Command {
    let from_files: Vec<(clap::Id, String)> = command
        .get_arguments()
        .filter_map(|a| {
            let var = a.get_env()?.to_str()?;
            if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
                return None;
            }
            let value = lifeboat_core::secret::from_env(var).ok()??;
            Some((a.get_id().clone(), value))
        })
        .collect();
    let mut command = command;
    for (id, value) in from_files {
        command = command.mut_arg(id, |a| a.default_value(value).hide_default_value(true));
    }
    let names: Vec<String> = command.get_subcommands().map(|c| c.get_name().to_string()).collect();
    for name in names {
        command = command.mut_subcommand(name, secrets_from_files);
    }
    command
}

/// `lifeboatd`'s command line.
pub fn daemon_command() -> clap::Command {
    <DaemonArgs as clap::CommandFactory>::command()
}

/// The registry of this run, for hints that name its options.
static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// The registry of this run (empty before [`run`] sets it).
fn registry() -> &'static Registry {
    REGISTRY.get_or_init(Registry::new)
}

/// Runs a backend's replica helper when this process was started as one (`PROGRAM
/// __replica-helper KIND ARGS…`, by a replicator of `lifeboat replicate` or of lifeboatd's
/// `sqlite-replica` jobs) and returns its exit code; `None` otherwise.
pub fn replica_helper(registry: &Registry) -> Option<ExitCode> {
    commands::replicate::helper(registry)
}

/// Parses the process's command line against `registry`'s backends, runs the command, and
/// returns the exit code (errors are printed as one line plus a hint).
pub fn run(registry: Registry) -> ExitCode {
    // A helper process a replicator started: no command line parsing, no repository.
    if let Some(code) = replica_helper(&registry) {
        return code;
    }
    let mut command = command(&registry);
    let loaded = match config::path() {
        Some((path, why)) => match config::load(&path) {
            Ok(file) => Some((path, why, file)),
            Err(e) => return output::fail(&e.into()),
        },
        None => None,
    };
    if let Some((_, _, file)) = &loaded {
        // The file's password setting stands back when one is given another way.
        let given_otherwise = ["PASSWORD", "PASSWORD_FILE", "PASSWORD_COMMAND", "KEY_FILE"]
            .iter()
            .any(|v| std::env::var_os(format!("LIFEBOAT_{v}")).is_some_and(|x| !x.is_empty()))
            || std::env::args().any(|a| {
                ["--password-file", "--password-command", "--key-file"]
                    .iter()
                    .any(|flag| a == *flag || a.starts_with(&format!("{flag}=")))
            });
        for (id, value) in file.defaults() {
            if given_otherwise && id != "repo" && id != "log_format" {
                continue;
            }
            command = command.mut_arg(id, |a| a.default_value(value));
        }
    }
    let _ = CONFIG_FILE.set(loaded);
    let matches = command.get_matches();
    let args = match cli::Cli::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    output::init_logging(args.verbose, &registry.quiet_logs(), args.log_format);
    progress::set_quiet(args.quiet);
    // The file's S3 settings, read (its secret file too) only for an s3:// repository.
    if let Some(Some((_, _, file))) = CONFIG_FILE.get()
        && args.repo.starts_with("s3://")
    {
        match file.s3_defaults() {
            Ok(Some(s3)) => lifeboat_store::use_s3_defaults(s3),
            Ok(None) => {}
            Err(e) => return output::fail(&e.into()),
        }
    }
    let registry = REGISTRY.get_or_init(|| registry);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return output::fail(&e.into()),
    };
    runtime.spawn(interrupt::exit_on_interrupt());
    let code = match runtime.block_on(commands::run(args, &matches, registry)) {
        Ok(code) => code,
        Err(e) => output::fail(&e),
    };
    // A command that ended while an interrupt waited for its swap still reports the interrupt.
    interrupt::requested_exit().unwrap_or(code)
}
