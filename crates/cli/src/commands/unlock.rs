//! `lifeboat unlock`

use std::process::ExitCode;

pub async fn run(url: &str) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo_deferred(url).await?;
    let removed = repo.unlock().await?;
    for lease in &removed {
        println!(
            "removed the lease of {} on {} (pid {}, expires {})",
            lease.operation,
            lease.host,
            lease.pid,
            lease.expires.to_rfc3339()
        );
    }
    println!("{} leases removed", removed.len());
    Ok(ExitCode::SUCCESS)
}
