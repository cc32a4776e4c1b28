//! `lifeboat cleanup [--force]`: what interrupted work left outside the repository (for
//! containers: restore journals, staging and parked containers, unused images), listed, and
//! put right with `--force`. Each backend says what it left.

use std::process::ExitCode;

use lifeboat_core::Registry;
use lifeboat_core::backend::Leftover;

use crate::output::print_json;

pub async fn run(registry: &Registry, force: bool, json: bool) -> anyhow::Result<ExitCode> {
    let mut leftovers: Vec<Leftover> = Vec::new();
    for backend in registry.backends() {
        leftovers.extend(backend.leftovers(force).await?);
    }
    let failed = leftovers.iter().filter(|l| l.error.is_some()).count();
    if json {
        print_json(&leftovers)?;
    } else {
        for l in &leftovers {
            let state = match (&l.error, l.done) {
                (Some(e), _) => format!(" (failed: {e})"),
                (None, true) => " (done)".to_string(),
                (None, false) => String::new(),
            };
            println!("{}: {}: {}{state}", l.kind, l.name, l.action);
        }
        if leftovers.is_empty() {
            println!("nothing left behind by interrupted restores");
        } else if !force {
            println!("{} leftovers; `lifeboat cleanup --force` does the above", leftovers.len());
        }
    }
    if failed > 0 {
        return Err(lifeboat_core::Error::InvalidInput {
            what: format!("{failed} leftovers could not be cleaned"),
            hint: "each one's error is above; run `lifeboat cleanup --force` again once it is fixed"
                .into(),
        }
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
