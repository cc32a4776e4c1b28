//! `lifeboat verify [SNAPSHOT|--all] [--read-data] [--restore]`

use std::process::ExitCode;

use lifeboat_core::drill::Expectations;
use lifeboat_core::{Verifier, VerifyReport};
use lifeboat_store::RepositoryVerifier;

use crate::output::print_json;

pub async fn run(
    url: &str,
    selector: Option<&str>,
    name: Option<&str>,
    read_data: bool,
    restore: bool,
    postgres_server: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    let snaps = match selector {
        Some(sel) => vec![repo.find(sel, name).await?],
        None => repo
            .snapshots()
            .await?
            .into_iter()
            .filter(|s| name.is_none_or(|n| s.manifest().name == n))
            .collect(),
    };
    let verifier = RepositoryVerifier::new(repo.clone(), read_data);
    let backends = lifeboat_ops::drill_backends(postgres_server);
    let mut reports: Vec<VerifyReport> = Vec::new();
    for snap in &snaps {
        let mut report = verifier.verify(snap).await?;
        if restore && report.ok() {
            // The same scratch restore and checks a drill runs, without expectations.
            let backend = lifeboat_ops::backend_for(&backends, snap)?;
            let deep = backend.restore_and_check(snap, &Expectations::default()).await?;
            report.checks.extend(deep.checks);
        }
        if !json {
            let status = if report.ok() { "ok" } else { "FAILED" };
            println!("{} {:?} {status}", snap.id().short(), snap.manifest().name);
            for check in report.checks.iter().filter(|c| !c.ok) {
                println!("  {}: {}", check.name, check.detail);
            }
        }
        reports.push(report);
    }
    let failed = reports.iter().filter(|r| !r.ok()).count();
    if json {
        print_json(&reports)?;
    } else {
        let what = if read_data { "structure and data" } else { "structure" };
        println!("{} snapshots checked ({what}), {failed} failed", reports.len());
    }
    if failed > 0 {
        let failures = reports
            .iter()
            .filter(|r| !r.ok())
            .map(|r| format!("{}: {}", r.subject, r.failures().join("; ")))
            .collect();
        let subject = format!("{failed} of {} snapshots", reports.len());
        return Err(lifeboat_core::Error::VerificationFailed { subject, failures }.into());
    }
    Ok(ExitCode::SUCCESS)
}
