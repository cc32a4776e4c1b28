//! `lifeboatd`: scheduled backups, an HTTP API, health, stale alerts and metrics.
//! Parses the command line, loads the configuration and runs the service from
//! `lifeboat-daemon`; an error is one line plus a hint and a non-zero exit.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use lifeboat_cli::DaemonArgs;
use lifeboat_cli::logging;
use lifeboat_daemon::config::{Config, ProcessEnv, config_path};

fn main() -> ExitCode {
    let registry = lifeboat::backends();
    // The lock holder a sqlite-replica job's replicator started.
    if let Some(code) = lifeboat_cli::replica_helper(&registry) {
        return code;
    }
    let args = DaemonArgs::parse();
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
