//! `lifeboat stats`

use std::collections::BTreeMap;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use lifeboat_store::format::DATA_PREFIX;
use serde::Serialize;

use crate::output::{human_bytes, print_json};

#[derive(Serialize, Default)]
struct NameStats {
    snapshots: usize,
    oldest: Option<DateTime<Utc>>,
    newest: Option<DateTime<Utc>>,
    /// Bytes captured, summed over every snapshot.
    total_size: u64,
    /// New bytes each snapshot added to the repository, summed.
    stored: u64,
    /// total_size / stored: how much deduplication and compression save.
    dedup_ratio: f64,
    /// Size of the newest capture.
    newest_size: u64,
}

#[derive(Serialize)]
struct Stats {
    names: BTreeMap<String, NameStats>,
    snapshots: usize,
    pack_bytes: u64,
    packs: usize,
    chunks_indexed: usize,
}

pub async fn run(url: &str, json: bool) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let snaps = repo.snapshots().await?;
    let mut names: BTreeMap<String, NameStats> = BTreeMap::new();
    for s in &snaps {
        let m = s.manifest();
        let n = names.entry(m.name.clone()).or_default();
        n.snapshots += 1;
        n.oldest = Some(n.oldest.map_or(m.time, |t| t.min(m.time)));
        if n.newest.is_none_or(|t| m.time >= t) {
            n.newest = Some(m.time);
            n.newest_size = m.size;
        }
        n.total_size += m.size;
        n.stored += m.stored;
    }
    for n in names.values_mut() {
        n.dedup_ratio = if n.stored == 0 { 0.0 } else { n.total_size as f64 / n.stored as f64 };
    }
    let (pack_bytes, packs) = repo.usage(DATA_PREFIX).await?;
    let stats = Stats {
        names,
        snapshots: snaps.len(),
        pack_bytes,
        packs,
        chunks_indexed: repo.index().len(),
    };
    if json {
        print_json(&stats)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:>5} {:<17} {:<17} {:>10} {:>10} {:>7}",
        "name", "count", "oldest (UTC)", "newest (UTC)", "captured", "stored", "ratio"
    );
    for (name, n) in &stats.names {
        let fmt = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default()
        };
        println!(
            "{name:<20} {:>5} {:<17} {:<17} {:>10} {:>10} {:>6.1}x",
            n.snapshots,
            fmt(n.oldest),
            fmt(n.newest),
            human_bytes(n.total_size),
            human_bytes(n.stored),
            n.dedup_ratio
        );
    }
    println!(
        "{} snapshots, {} packs holding {} ({} chunks)",
        stats.snapshots,
        stats.packs,
        human_bytes(stats.pack_bytes),
        stats.chunks_indexed
    );
    Ok(ExitCode::SUCCESS)
}
