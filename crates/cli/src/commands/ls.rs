//! `lifeboat ls SNAPSHOT [PATH]`

use std::process::ExitCode;

use lifeboat_core::Registry;

use crate::output::print_json;

pub async fn run(
    url: &str,
    registry: &Registry,
    selector: &str,
    name: Option<&str>,
    prefix: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let snap = super::find(&repo, selector, name).await?;
    let entries = registry.entries(&snap, prefix).await?;
    if json {
        print_json(&entries)?;
        return Ok(ExitCode::SUCCESS);
    }
    for e in &entries {
        let mtime = chrono::DateTime::from_timestamp(e.mtime as i64, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        let link = e.link.as_ref().map(|l| format!(" -> {l}")).unwrap_or_default();
        println!("{:<8} {:o} {:>12} {mtime} {}{link}", e.kind, e.mode, e.size, e.path);
    }
    Ok(ExitCode::SUCCESS)
}
