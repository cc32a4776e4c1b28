//! `lifeboat stale --max-age 24h`: for cron and monitors.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_core::format_duration;
use serde::Serialize;

use crate::output::print_json;

#[derive(Serialize)]
struct Freshness {
    name: String,
    newest: Option<DateTime<Utc>>,
    age_seconds: Option<u64>,
    stale: bool,
    reason: String,
}

pub async fn run(
    url: &str,
    max_age: Duration,
    expected: &[String],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let mut newest: BTreeMap<String, DateTime<Utc>> =
        expected.iter().map(|n| (n.clone(), DateTime::<Utc>::MIN_UTC)).collect();
    for s in repo.snapshots().await? {
        let m = s.manifest();
        let entry = newest.entry(m.name.clone()).or_insert(m.time);
        *entry = (*entry).max(m.time);
    }
    let now = Utc::now();
    let report: Vec<Freshness> = newest
        .into_iter()
        .map(|(name, time)| {
            if time == DateTime::<Utc>::MIN_UTC {
                return Freshness {
                    name,
                    newest: None,
                    age_seconds: None,
                    stale: true,
                    reason: "no snapshot at all".into(),
                };
            }
            let age = now.signed_duration_since(time).to_std().unwrap_or_default();
            let stale = age > max_age;
            let reason = format!(
                "newest is {} old (limit {})",
                format_duration(Duration::from_secs(age.as_secs())),
                format_duration(max_age)
            );
            Freshness { name, newest: Some(time), age_seconds: Some(age.as_secs()), stale, reason }
        })
        .collect();
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
