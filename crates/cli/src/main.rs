//! `lifeboat`: back up, verify and restore SQLite databases into a deduplicated repository.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod interrupt;
mod logging;
mod output;
mod progress;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    output::init_logging(args.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return output::fail(&e.into()),
    };
    runtime.spawn(interrupt::exit_on_interrupt());
    let code = match runtime.block_on(commands::run(args)) {
        Ok(code) => code,
        Err(e) => output::fail(&e),
    };
    // A command that ended while an interrupt waited for its swap still reports the interrupt.
    interrupt::requested_exit().unwrap_or(code)
}
