//! `lifeboat stale --max-age 24h`: for cron and monitors.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use crate::output::print_json;

pub async fn run(
    url: &str,
    max_age: Duration,
    expected: &[String],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let snaps = repo.snapshots().await?;
    let limits: BTreeMap<String, Duration> = expected
        .iter()
        .cloned()
        .chain(snaps.iter().map(|s| s.manifest().name.clone()))
        .map(|name| (name, max_age))
        .collect();
    let report = lifeboat_ops::freshness(&snaps, &limits, chrono::Utc::now());
    let stale = report.iter().filter(|f| f.stale).count();
    if json {
        print_json(&report)?;
    } else {
        for f in &report {
            println!("{:<6} {:<20} {}", if f.stale { "STALE" } else { "ok" }, f.name, f.reason);
        }
        println!("{stale} of {} names stale", report.len());
    }
    Ok(if stale > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
