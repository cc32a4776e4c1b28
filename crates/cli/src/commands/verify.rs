//! `lifeboat verify [SNAPSHOT|--all] [--read-data] [--restore]`

use std::collections::HashSet;
use std::process::ExitCode;

use lifeboat_core::backend::Options;
use lifeboat_core::drill::Expectations;
use lifeboat_core::{Digest, Registry, Verifier, VerifyReport};
use lifeboat_store::RepositoryVerifier;

use crate::output::print_json;

/// What the command line asked for.
pub struct Request<'a> {
    /// Snapshot id, prefix or `latest`; every snapshot when `None`.
    pub selector: Option<&'a str>,
    /// With `latest`, or alone: the name.
    pub name: Option<&'a str>,
    /// Read every byte back.
    pub read_data: bool,
    /// Restore into scratch targets too, with these drill options.
    pub restore: Option<Options>,
    /// Print JSON.
    pub json: bool,
}

pub async fn run(url: &str, registry: &Registry, request: Request<'_>) -> anyhow::Result<ExitCode> {
    let Request { selector, name, read_data, mut restore, json } = request;
    let repo = super::open_repo(url).await?;
    if let Some(options) = restore.as_mut() {
        super::with_archive_fetch(options, url, &repo)?;
    }
    let snaps = match selector {
        Some(sel) => vec![super::find(&repo, sel, name).await?],
        None => repo
            .snapshots()
            .await?
            .into_iter()
            .filter(|s| name.is_none_or(|n| s.manifest().name == n))
            .collect(),
    };
    let verifier = RepositoryVerifier::new(repo.clone(), read_data);
    // The index against the packs' trailers: every indexed pack when verifying them all,
    // the packs of the chosen snapshot otherwise.
    let packs: Option<HashSet<Digest>> = selector.map(|_| {
        snaps
            .iter()
            .flat_map(|s| s.manifest().chunks.iter())
            .filter_map(|c| repo.locate(c))
            .flat_map(|l| {
                std::iter::once(l.pack).chain(l.base.and_then(|b| repo.locate(&b)).map(|b| b.pack))
            })
            .collect()
    });
    // The index check waits on round trips, reading data on the CPU: the first snapshot is
    // checked while the index is. Reports still print in order.
    let (index, mut first) = match snaps.first() {
        Some(first) => {
            let (index, first) =
                tokio::join!(verifier.check_index(packs.as_ref()), verifier.verify(first));
            (index?, Some(first?))
        }
        None => (verifier.check_index(packs.as_ref()).await?, None),
    };
    if !json {
        println!("{} {}", index.subject, if index.ok() { "ok" } else { "FAILED" });
        for check in index.checks.iter().filter(|c| !c.ok) {
            println!("  {}: {}", check.name, check.detail);
        }
    }
    let mut reports: Vec<VerifyReport> = Vec::new();
    for snap in &snaps {
        let mut report = match first.take() {
            Some(report) => report,
            None => verifier.verify(snap).await?,
        };
        if let Some(options) = restore.as_ref().filter(|_| report.ok()) {
            // The same scratch restore and checks a drill runs, without expectations.
            match registry.drill(&snap.manifest().kind, options) {
                Ok(backend) => match backend.not_drillable(snap) {
                    // Nothing restorable to check; its stream was verified above.
                    Some(reason) => report.checks.push(lifeboat_core::Check::pass(
                        "restore",
                        format!("skipped: not drillable: {reason}"),
                    )),
                    None => {
                        let deep =
                            backend.restore_and_check(snap, &Expectations::default()).await?;
                        report.checks.extend(deep.checks);
                    }
                },
                // The others are still verified; this one is reported as not restorable here.
                Err(e @ lifeboat_core::Error::UnknownKind { .. }) => {
                    report.checks.push(lifeboat_core::Check::fail("restore", e.to_string()));
                }
                Err(e) => return Err(e.into()),
            }
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
    let checked = reports.len();
    if !json {
        let what = match (read_data, restore.is_some()) {
            (true, true) => "structure, data and a restore",
            (false, true) => "structure and a restore",
            (true, false) => "structure and data",
            (false, false) => "structure",
        };
        println!("{} checked ({what}), {failed} failed", crate::output::count(checked, "snapshot"));
    }
    let index_ok = index.ok();
    reports.push(index);
    if json {
        print_json(&reports)?;
    }
    if failed > 0 || !index_ok {
        let failures = reports
            .iter()
            .filter(|r| !r.ok())
            .map(|r| format!("{}: {}", r.subject, r.failures().join("; ")))
            .collect();
        let subject = if index_ok {
            format!("{failed} of {}", crate::output::count(checked, "snapshot"))
        } else {
            format!(
                "the repository index and {failed} of {}",
                crate::output::count(checked, "snapshot")
            )
        };
        return Err(lifeboat_core::Error::VerificationFailed { subject, failures }.into());
    }
    Ok(ExitCode::SUCCESS)
}
