//! `lifeboat snapshots`

use std::process::ExitCode;

use crate::output::{SnapshotRow, human_bytes, print_json};

pub async fn run(url: &str, name: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let snaps: Vec<_> = repo
        .snapshots()
        .await?
        .into_iter()
        .filter(|s| name.is_none_or(|n| s.manifest().name == n))
        .collect();
    if json {
        print_json(&snaps.iter().map(SnapshotRow::new).collect::<Vec<_>>())?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<10} {:<9} {:<20} {:<20} {:>10} {:>10}  tags",
        "id", "kind", "name", "time (UTC)", "size", "stored"
    );
    for s in &snaps {
        let m = s.manifest();
        let tags: Vec<String> = m
            .tags
            .iter()
            .map(|(k, v)| if v.is_empty() { k.clone() } else { format!("{k}={v}") })
            .collect();
        println!(
            "{:<10} {:<9} {:<20} {:<20} {:>10} {:>10}  {}",
            s.id().short(),
            m.kind.as_str(),
            m.name,
            m.time.format("%Y-%m-%d %H:%M:%S"),
            human_bytes(m.size),
            human_bytes(m.stored),
            tags.join(",")
        );
    }
    println!("{} snapshots", snaps.len());
    Ok(ExitCode::SUCCESS)
}
