//! `lifeboat kinds`: the backends this build has, from the registry.

use std::process::ExitCode;

use lifeboat_core::Registry;
use lifeboat_core::backend::{OptionSpec, OptionValue};
use serde::Serialize;

use crate::backends::usage;
use crate::output::print_json;

/// One backend as listed.
#[derive(Serialize)]
struct KindRow {
    kind: String,
    about: &'static str,
    commands: Vec<CommandRow>,
    restore_options: Vec<String>,
    drill_options: Vec<String>,
}

/// One `backup` subcommand.
#[derive(Serialize)]
struct CommandRow {
    command: String,
    options: Vec<String>,
}

pub fn run(registry: &Registry, json: bool) -> anyhow::Result<ExitCode> {
    let rows: Vec<KindRow> = registry
        .backends()
        .map(|b| KindRow {
            kind: b.kind().to_string(),
            about: b.about(),
            commands: b
                .commands()
                .into_iter()
                .map(|c| {
                    let target = c.target.map(|t| format!(" {t}")).unwrap_or_default();
                    CommandRow {
                        command: format!("backup {}{target}", c.name),
                        options: flags(&c.options),
                    }
                })
                .collect(),
            restore_options: flags(&b.restore_options()),
            drill_options: flags(&b.drill_options()),
        })
        .collect();
    if json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    for row in &rows {
        println!("{}: {}", row.kind, row.about);
        for command in &row.commands {
            println!("  {} {}", command.command, command.options.join(" "));
        }
        if !row.restore_options.is_empty() {
            println!("  restore: {}", row.restore_options.join(" "));
        }
        if !row.drill_options.is_empty() {
            println!("  drill: {}", row.drill_options.join(" "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn flags(specs: &[OptionSpec]) -> Vec<String> {
    specs
        .iter()
        .map(|s| match (s.value, s.required) {
            (_, true) => usage(s),
            (OptionValue::Many(_), false) => format!("[{}]...", usage(s)),
            (_, false) => format!("[{}]", usage(s)),
        })
        .collect()
}
