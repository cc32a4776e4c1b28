//! The command line's backend-given parts: `backup` subcommands, restore and drill options,
//! all made from the registry's [`OptionSpec`]s, and read back into [`Options`].

use clap::{Arg, ArgAction, ArgMatches, Args, Command, CommandFactory};
use lifeboat_core::Registry;
use lifeboat_core::backend::{OptionSpec, OptionValue, Options, TargetCommand};

use crate::cli::{BackupArgs, Cli};

/// The id of a backup subcommand's positional target.
pub const TARGET: &str = "target";

/// The whole command line: the fixed commands with what `registry`'s backends add.
pub fn command(registry: &Registry) -> Command {
    let restore = registry.restore_options();
    let drill = registry.drill_options();
    Cli::command()
        .mut_subcommand("backup", |c| {
            registry
                .backends()
                .flat_map(|b| b.commands())
                .fold(c.subcommand_required(true), |c, t| c.subcommand(backup_command(&t)))
        })
        .mut_subcommand("restore", |c| with_options(c, &restore))
        .mut_subcommand("drill", |c| with_options(c, &drill))
        .mut_subcommand("verify", |c| with_options(c, &drill))
}

fn backup_command(target: &TargetCommand) -> Command {
    let mut command = Command::new(target.name);
    if let Some(meta) = target.target {
        command = command.arg(
            Arg::new(TARGET).value_name(meta).required(true).help(sentence(target.target_help)),
        );
    }
    // The common arguments' struct brings its own about; the backend's replaces it.
    BackupArgs::augment_args(with_options(command, &target.options)).about(sentence(target.about))
}

/// Help text as clap prints its own: no closing full stop.
fn sentence(text: &'static str) -> &'static str {
    text.strip_suffix('.').unwrap_or(text)
}

fn with_options(command: Command, specs: &[OptionSpec]) -> Command {
    specs.iter().fold(command, |c, spec| c.arg(arg(spec)))
}

fn arg(spec: &OptionSpec) -> Arg {
    let arg = Arg::new(spec.name).long(spec.name).help(sentence(spec.help)).required(spec.required);
    let arg = match spec.value {
        OptionValue::Flag => arg.action(ArgAction::SetTrue),
        OptionValue::One(meta) => arg.value_name(meta).action(ArgAction::Set),
        OptionValue::Many(meta) => arg.value_name(meta).action(ArgAction::Append),
    };
    match spec.env {
        Some(var) => arg.env(var),
        None => arg,
    }
}

/// The values of `specs` that `matches` holds.
pub fn options(matches: &ArgMatches, specs: &[OptionSpec]) -> Options {
    let mut options = Options::default();
    for spec in specs {
        match spec.value {
            OptionValue::Flag => {
                if matches.get_flag(spec.name) {
                    options.push(spec.name, "true");
                }
            }
            OptionValue::One(_) | OptionValue::Many(_) => {
                for value in matches.get_many::<String>(spec.name).into_iter().flatten() {
                    options.push(spec.name, value.clone());
                }
            }
        }
    }
    options
}

/// How the command line gives `option`, for hints: `--postgres-server URL (or
/// LIFEBOAT_DRILL_POSTGRES)`.
pub fn flag_text(registry: &Registry, option: &str) -> String {
    let spec = registry
        .backends()
        .flat_map(|b| {
            b.drill_options()
                .into_iter()
                .chain(b.restore_options())
                .chain(b.commands().into_iter().flat_map(|c| c.options))
        })
        .find(|s| s.name == option);
    match spec {
        Some(spec) => {
            let env = spec.env.map(|v| format!(" (or {v})")).unwrap_or_default();
            format!("{}{env}", usage(&spec))
        }
        None => format!("--{option}"),
    }
}

/// An option as the command line writes it: `--connections N`, `--changed-only`.
pub fn usage(spec: &OptionSpec) -> String {
    match spec.value {
        OptionValue::Flag => format!("--{}", spec.name),
        OptionValue::One(meta) | OptionValue::Many(meta) => format!("--{} {meta}", spec.name),
    }
}
