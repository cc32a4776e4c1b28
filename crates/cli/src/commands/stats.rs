//! `lifeboat stats`

use std::process::ExitCode;

use chrono::{DateTime, Utc};

use crate::output::{count, human_bytes, print_json};

pub async fn run(url: &str, json: bool) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let stats = lifeboat_store::stats::stats(&repo).await?;
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
    let safety = if stats.safety_snapshots > 0 {
        format!(" (and {})", count(stats.safety_snapshots, "safety snapshot"))
    } else {
        String::new()
    };
    println!(
        "{}{safety}, {} holding {} ({})",
        count(stats.snapshots, "backup"),
        count(stats.packs, "pack"),
        human_bytes(stats.pack_bytes),
        count(stats.chunks_indexed, "chunk")
    );
    for (name, wal) in &stats.wal_archives {
        let newest = wal
            .newest_archived
            .map(|t| format!(", newest archived {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default();
        let span = match (&wal.first, &wal.last) {
            (Some(first), Some(last)) => format!(" ({first} to {last})"),
            _ => String::new(),
        };
        println!(
            "WAL archive of {name}: {}{span}, {}{newest}",
            count(wal.files, "file"),
            count(wal.segments, "segment")
        );
    }
    for (name, replica) in &stats.replicas {
        let newest = replica
            .newest_shipped
            .map(|t| format!(", newest shipped {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default();
        let running = match &replica.replicator {
            Some(who) => format!("replicated now by {who}"),
            None => "no replicator running".into(),
        };
        println!(
            "replica {name}: {} ({} merged) in {} up to transaction {}{newest}; {running}",
            count(replica.segments, "segment"),
            replica.merged,
            count(replica.generations, "generation"),
            replica.last_txid.map_or_else(|| "-".to_string(), |t| t.to_string()),
        );
    }
    if stats.staging_files > 0 {
        println!(
            "{} staging files of interrupted writes ({}); prune removes them once stale",
            stats.staging_files,
            human_bytes(stats.staging_bytes)
        );
    }
    if stats.damaged_indexes > 0 {
        println!(
            "{} damaged index files set aside; `lifeboat repair index` rebuilds them",
            stats.damaged_indexes
        );
    }
    Ok(ExitCode::SUCCESS)
}
