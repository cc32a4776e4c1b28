//! `lifeboat stale --max-age 24h`: for cron and monitors.
//!
//! Exit codes are for monitors: 0 all fresh, 1 some name stale, 2 freshness could not be
//! checked (the repository could not be opened or listed). A monitor must never read "could
//! not look" as "stale" or as "fine".

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use crate::output::print_json;

/// Exit code when freshness could not be checked.
const COULD_NOT_CHECK: u8 = 2;

pub async fn run(
    url: &str,
    max_age: Duration,
    expected: &[String],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (repo, snaps) = match list(url).await {
        Ok(listed) => listed,
        Err(e) => {
            crate::output::fail(&e);
            return Ok(ExitCode::from(COULD_NOT_CHECK));
        }
    };
    // The names checked: the expected ones and every name that has backups (a name with
    // only safety snapshots is a restore target, not something backed up).
    let limits: BTreeMap<String, Duration> = expected
        .iter()
        .cloned()
        .chain(
            snaps.iter().filter(|s| !s.manifest().is_safety()).map(|s| s.manifest().name.clone()),
        )
        .map(|name| (name, max_age))
        .collect();
    // A cluster with base backups is as fresh as its newest archived WAL.
    let wal = match repo.wal_newest_by_name(&snaps).await {
        Ok(wal) => wal,
        Err(e) => {
            crate::output::fail(&e.into());
            return Ok(ExitCode::from(COULD_NOT_CHECK));
        }
    };
    let report =
        lifeboat_store::freshness::freshness_with_wal(&snaps, &wal, &limits, chrono::Utc::now());
    let stale = report.iter().filter(|f| f.stale).count();
    if json {
        print_json(&report)?;
    } else {
        for f in &report {
            println!("{:<6} {:<20} {}", if f.stale { "STALE" } else { "ok" }, f.name, f.reason);
        }
        println!("{stale} of {} stale", crate::output::count(report.len(), "name"));
    }
    Ok(if stale > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

async fn list(
    url: &str,
) -> anyhow::Result<(lifeboat_store::Repository, Vec<lifeboat_store::StoredSnapshot>)> {
    let repo = super::open_repo_deferred(url).await?;
    let snaps = repo.snapshots().await?;
    Ok((repo, snaps))
}
