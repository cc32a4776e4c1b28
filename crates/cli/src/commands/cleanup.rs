//! `lifeboat cleanup [--force]`: what interrupted container restores and drills left on the engine
//! (their journals, staging and parked containers, unused images), listed, and put right
//! with `--force`.

use std::process::ExitCode;

use crate::output::print_json;

pub async fn run(force: bool, json: bool) -> anyhow::Result<ExitCode> {
    let leftovers = if force {
        lifeboat_container::clean_leftovers().await?
    } else {
        lifeboat_container::leftovers().await?
    };
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
            println!("nothing left behind by container restores or drills");
        } else if !force {
            println!("{} leftovers; `lifeboat cleanup --force` does the above", leftovers.len());
        }
    }
    if failed > 0 {
        return Err(lifeboat_core::Error::InvalidInput {
            what: format!("{failed} leftovers could not be cleaned"),
            hint: "each one's error is above; `docker ps -a` and `docker volume ls` show them"
                .into(),
        }
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
