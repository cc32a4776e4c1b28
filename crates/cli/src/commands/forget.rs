//! `lifeboat forget --keep-...`

use std::collections::BTreeMap;
use std::process::ExitCode;

use lifeboat_core::retention::{Candidate, Decision, RetentionPolicy, apply};
use lifeboat_store::StoredSnapshot;
use serde::Serialize;

use crate::output::print_json;

/// The verdicts for one name.
#[derive(Serialize)]
struct Group {
    name: String,
    host: String,
    decisions: Vec<Decision>,
}

pub async fn run(
    url: &str,
    name: Option<&str>,
    policy: &RetentionPolicy,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if policy.is_empty() {
        return Err(lifeboat_core::Error::InvalidInput {
            what: "no --keep-* option given: forget would remove every snapshot".into(),
            hint: "say what to keep, e.g. --keep-daily 7 --keep-weekly 4, and try --dry-run first"
                .into(),
        }
        .into());
    }
    let repo = super::open_repo(url).await?;
    let mut groups: BTreeMap<(String, String), Vec<StoredSnapshot>> = BTreeMap::new();
    for snap in repo.snapshots().await? {
        if name.is_none_or(|n| snap.manifest().name == n) {
            let key = (snap.manifest().name.clone(), snap.manifest().host.clone());
            groups.entry(key).or_default().push(snap);
        }
    }
    let now = chrono::Utc::now();
    let mut report = Vec::new();
    for ((name, host), snaps) in groups {
        let candidates: Vec<Candidate> = snaps
            .iter()
            .map(|s| Candidate {
                id: s.id(),
                time: s.manifest().time,
                tags: s.manifest().tags.clone(),
            })
            .collect();
        report.push(Group { name, host, decisions: apply(policy, &candidates, now) });
    }
    let remove: Vec<_> =
        report.iter().flat_map(|g| g.decisions.iter()).filter(|d| !d.keep).map(|d| d.id).collect();
    if !dry_run {
        repo.forget(&remove).await?;
    }
    if json {
        print_json(&report)?;
    } else {
        for group in &report {
            println!("{} on {}:", group.name, group.host);
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
        println!("{} snapshots {verb}; their data goes with the next prune", remove.len());
    }
    Ok(ExitCode::SUCCESS)
}
