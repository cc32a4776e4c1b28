//! `lifeboat forget --keep-... [--policy FILE]`

use std::path::Path;
use std::process::ExitCode;

use lifeboat_core::retention::{PolicySet, RetentionPolicy};
use lifeboat_store::retention::{forget, removals};

use crate::output::print_json;

/// The policies to apply: the file's, with `flags` as the default when it keeps anything.
pub fn policies(file: Option<&Path>, flags: RetentionPolicy) -> anyhow::Result<PolicySet> {
    let mut set = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| lifeboat_core::Error::io("reading", path, e))?;
            toml::from_str::<PolicySet>(&text).map_err(|e| lifeboat_core::Error::InvalidInput {
                what: format!("{} is not a valid policy file: {e}", path.display()),
                hint: "see docs/operations.md for the format ([default], [names.NAME], [tags.\"k=v\"])".into(),
            })?
        }
        None => PolicySet::default(),
    };
    if !flags.is_empty() || file.is_none() {
        set.default = flags;
    }
    let empty = set.empty_policies();
    // An empty policy would remove every ordinary snapshot it applies to.
    if empty.iter().any(|l| l == "default") && file.is_none() {
        return Err(lifeboat_core::Error::InvalidInput {
            what: "no --keep-* option given: forget would remove every snapshot".into(),
            hint: "say what to keep, e.g. --keep-daily 7 --keep-weekly 4, and try --dry-run first"
                .into(),
        }
        .into());
    }
    if !empty.is_empty() && file.is_some() {
        return Err(lifeboat_core::Error::InvalidInput {
            what: format!("these policies keep nothing and would remove every snapshot they apply to: {}", empty.join(", ")),
            hint: "give each policy at least one rule (last, daily, within, ...), or --keep-* flags for the default".into(),
        }
        .into());
    }
    Ok(set)
}

pub async fn run(
    url: &str,
    name: Option<&str>,
    policies: &PolicySet,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo_deferred(url).await?;
    let report = forget(&repo, name, policies, dry_run).await?;
    let remove = removals(&report);
    if json {
        print_json(&report)?;
    } else {
        for group in &report {
            println!("{} on {} ({} policy):", group.name, group.host, group.policy);
            for d in &group.decisions {
                let verdict = if d.keep {
                    "keep  "
                } else if dry_run {
                    "would remove"
                } else {
                    "remove"
                };
                println!(
                    "  {verdict} {} {}  {}",
                    d.id.short(),
                    d.time.format("%Y-%m-%d %H:%M:%S"),
                    d.reasons.join(", ")
                );
            }
        }
        let verb = if dry_run { "would be removed (dry run)" } else { "removed" };
        println!(
            "{} {verb}; the data only they used is freed by a prune (`lifeboat prune`, or \
             forget --prune) once it has been unused for the grace period (--grace, 1h by default)",
            crate::output::count(remove.len(), "snapshot")
        );
    }
    Ok(ExitCode::SUCCESS)
}
