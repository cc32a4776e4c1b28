//! `lifeboatd`: scheduled backups, an HTTP API, health, stale alerts and metrics.
//! Parses the command line, loads the configuration and runs the service from
//! `lifeboat-daemon`; an error is one line plus a hint and a non-zero exit.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lifeboat_cli::logging::{self, LogFormat};
use lifeboat_daemon::config::{Config, ProcessEnv, config_path};

/// Runs lifeboat's backups on schedule and serves the lifeboat HTTP API.
#[derive(Debug, Parser)]
#[command(name = "lifeboatd", version, about)]
struct Args {
    /// The configuration file (TOML); LIFEBOAT_CONFIG when not given.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
    /// How log lines are written to stderr: text (coloured only on a terminal without
    /// NO_COLOR) or json, one object per line.
    #[arg(long, env = "LIFEBOAT_LOG_FORMAT", value_enum, default_value_t)]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let registry = lifeboat::backends();
    logging::init("info", &registry.quiet_logs(), args.log_format);
    let result = config_path(args.config, &ProcessEnv)
        .and_then(|path| Config::load(&path, &ProcessEnv, &registry))
        .map_err(anyhow::Error::from)
        .and_then(|config| {
            if args.check {
                println!(
                    "{}: {} jobs, configuration valid",
                    config.path.display(),
                    config.jobs.len()
                );
                return Ok(());
            }
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let result = runtime.block_on(lifeboat_daemon::service::run(config, registry));
            // Dropping the runtime would wait for blocking work that was aborted, possibly
            // forever; the shutdown already had its grace period.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            Ok(result?)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!: it panics when stderr is gone.
            let mut stderr = std::io::stderr();
            let _ = writeln!(stderr, "error: {e}");
            if let Some(hint) =
                e.downcast_ref::<lifeboat_daemon::DaemonError>().and_then(|e| e.hint())
            {
                let _ = writeln!(stderr, "hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
