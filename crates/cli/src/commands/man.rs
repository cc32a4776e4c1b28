//! `lifeboat man --out DIR`: roff man pages of every command of this build (its backends'
//! included) and of lifeboatd.

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use lifeboat_core::{Error, Registry};

/// Writes `lifeboat.1`, `lifeboat-COMMAND.1` (and deeper, `lifeboat-backup-sqlite.1`) and
/// `lifeboatd.1` into `out`, and names each on stdout.
pub fn run(registry: &Registry, out: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(out).map_err(|e| Error::io("creating the folder", out, e))?;
    let mut command = crate::backends::command(registry);
    command.build();
    let mut written = Vec::new();
    page(&command, "lifeboat", out, &mut written)?;
    let mut daemon = crate::DaemonArgs::command();
    daemon.build();
    page(&daemon, "lifeboatd", out, &mut written)?;
    for file in written {
        println!("{}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The page of `command`, named `name`, then those of its subcommands.
fn page(
    command: &clap::Command,
    name: &str,
    out: &Path,
    written: &mut Vec<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let command = command.clone().name(name.to_string());
    let mut roff = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut roff)?;
    let file = out.join(format!("{name}.1"));
    std::fs::write(&file, roff).map_err(|e| Error::io("writing", &file, e))?;
    written.push(file);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        page(sub, &format!("{name}-{}", sub.get_name()), out, written)?;
    }
    Ok(())
}
