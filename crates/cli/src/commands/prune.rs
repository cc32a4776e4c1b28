//! `lifeboat prune`

use std::process::ExitCode;

use lifeboat_store::PruneOptions;

use crate::output::{count, human_bytes, print_json};

pub async fn run(url: &str, options: &PruneOptions, json: bool) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let report = repo.prune(options).await?;
    if json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let would = if options.dry_run { " (dry run: nothing changed)" } else { "" };
    println!(
        "{}, {}: {} marked as garbage ({}), {} repacked{would}",
        count(report.snapshots, "snapshot"),
        count(report.packs, "pack"),
        report.marked,
        human_bytes(report.marked_bytes),
        report.repacked
    );
    println!(
        "{} deleted, {} freed, {} revived by newer snapshots",
        count(report.deleted, "pack"),
        human_bytes(report.freed_bytes),
        report.revived
    );
    if report.staging_removed > 0 {
        println!(
            "{} staging files of interrupted writes removed ({})",
            report.staging_removed,
            human_bytes(report.staging_bytes)
        );
    }
    if report.index_files_merged > 0 {
        println!("{} index files merged into one{would}", report.index_files_merged);
    }
    for wait in &report.waiting {
        println!("waiting: {wait}");
    }
    Ok(ExitCode::SUCCESS)
}
