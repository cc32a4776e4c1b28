//! `lifeboat snapshots`

use std::process::ExitCode;

use crate::output::{SnapshotRow, human_bytes, print_json};

pub async fn run(
    url: &str,
    name: Option<&str>,
    host: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo_deferred(url).await?;
    let snaps: Vec<_> = repo
        .snapshots()
        .await?
        .into_iter()
        .filter(|s| name.is_none_or(|n| s.manifest().name == n))
        .filter(|s| host.is_none_or(|h| s.manifest().host == h))
        .collect();
    if json {
        print_json(&snaps.iter().map(SnapshotRow::new).collect::<Vec<_>>())?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<10} {:<9} {:<20} {:<16} {:<20} {:>10} {:>10}  {:<12} tags",
        "id", "kind", "name", "host", "time (UTC)", "size", "stored", "sha256"
    );
    let mut safety = 0;
    for s in &snaps {
        let m = s.manifest();
        let tags: Vec<String> = m
            .tags
            .iter()
            .map(|(k, v)| if v.is_empty() { k.clone() } else { format!("{k}={v}") })
            .collect();
        // A safety snapshot says so where a person looks first: its kind column.
        let kind = if m.is_safety() {
            safety += 1;
            format!("{}*", m.kind.as_str())
        } else {
            m.kind.as_str().to_string()
        };
        println!(
            "{:<10} {:<9} {:<20} {:<16} {:<20} {:>10} {:>10}  {:<12} {}",
            s.id().short(),
            kind,
            m.name,
            m.host,
            m.time.format("%Y-%m-%d %H:%M:%S"),
            human_bytes(m.size),
            human_bytes(m.stored),
            &m.sha256.to_hex()[..12],
            tags.join(",")
        );
    }
    println!("{}", crate::output::count(snaps.len(), "snapshot"));
    if safety > 0 {
        println!(
            "* {}: what a restore replaced, restorable by id; never `latest`, never counted as a backup",
            crate::output::count(safety, "safety snapshot")
        );
    }
    // Replicas (their bases are the sqlite snapshots tagged replica-base): how far behind.
    let now = chrono::Utc::now();
    for name in lifeboat_store::replica_names_of(&snaps) {
        let replica = lifeboat_store::stats::replica_stats(&repo, name).await?;
        let shipped = replica.newest_shipped.map_or_else(
            || "nothing shipped yet".to_string(),
            |t| {
                let age = (now - t).to_std().unwrap_or_default();
                format!(
                    "transaction {} shipped {} ago",
                    replica.last_txid.unwrap_or(0),
                    lifeboat_core::format_duration(std::time::Duration::from_secs(age.as_secs()))
                )
            },
        );
        let running = match &replica.replicator {
            Some(who) => format!("replicated now by {who} (an idle database ships nothing)"),
            None => "no replicator running: later commits are not protected".into(),
        };
        println!("replica {name}: {shipped}; {running}");
    }
    Ok(ExitCode::SUCCESS)
}
