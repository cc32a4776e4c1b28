//! `lifeboat verify [SNAPSHOT|--all] [--read-data] [--restore]`

use std::process::ExitCode;

use lifeboat_core::{Kind, Verifier, VerifyReport};
use lifeboat_sqlite::SqliteVerifier;
use lifeboat_store::RepositoryVerifier;

use crate::output::print_json;

pub async fn run(
    url: &str,
    selector: Option<&str>,
    name: Option<&str>,
    read_data: bool,
    restore: bool,
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
    let mut reports: Vec<VerifyReport> = Vec::new();
    for snap in &snaps {
        let mut report = verifier.verify(snap).await?;
        if restore && report.ok() {
            let deep = match snap.manifest().kind {
                Kind::Sqlite => SqliteVerifier.verify(snap).await?,
                Kind::Dir => lifeboat_dir::DirVerifier.verify(snap).await?,
                kind => {
                    return Err(lifeboat_core::Error::Unsupported {
                        operation: "verify --restore".into(),
                        kind,
                    }
                    .into());
                }
            };
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
