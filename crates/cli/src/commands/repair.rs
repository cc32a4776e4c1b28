//! `lifeboat repair index [--dry-run] [--json]`

use std::process::ExitCode;

use crate::output::print_json;

pub async fn index(url: &str, dry_run: bool, json: bool) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let report = repo.repair_index(dry_run).await?;
    if json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (would, done) =
        if dry_run { (" (dry run: nothing changed)", "to rebuild") } else { ("", "rebuilt") };
    for d in &report.damaged_indexes {
        println!("damaged index {done}: {} ({})", d.key, d.reason);
    }
    for d in &report.damaged_packs {
        println!("damaged pack, not indexed: {} ({})", d.key, d.reason);
    }
    println!(
        "{} sound index files kept; {} packs outside them read, {} indexed ({} chunks){would}",
        report.sound_indexes, report.packs_read, report.packs_indexed, report.chunks_indexed
    );
    if let Some(key) = &report.new_index {
        println!("wrote {key}");
    }
    if report.clean() {
        println!("nothing to repair");
    }
    Ok(ExitCode::SUCCESS)
}
