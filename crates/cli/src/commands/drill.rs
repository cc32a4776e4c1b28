//! `lifeboat drill`

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use lifeboat_core::Registry;
use lifeboat_core::backend::Options;
use lifeboat_core::drill::{DrillResult, Expectations, drill, markdown_report};
use lifeboat_store::StoredSnapshot;

use crate::output::print_json;

/// What the command line asked for.
pub struct Request {
    pub names: Vec<String>,
    /// The backends' drill options (a server for scratch databases).
    pub options: Options,
    pub all: bool,
    pub snapshot: Option<String>,
    /// For replicas: drill a random second of this last stretch.
    pub within: std::time::Duration,
    pub expect: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub heartbeat: Option<PathBuf>,
    pub json: bool,
}

fn invalid(what: String, hint: &str) -> anyhow::Error {
    lifeboat_core::Error::InvalidInput { what, hint: hint.into() }.into()
}

pub async fn run(url: &str, registry: &Registry, request: Request) -> anyhow::Result<ExitCode> {
    let expectations: BTreeMap<String, Expectations> = match &request.expect {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| lifeboat_core::Error::io("reading", path, e))?;
            toml::from_str(&text).map_err(|e| {
                invalid(
                    format!("{} is not a valid expectations file: {e}", path.display()),
                    "see docs/operations.md, \"Restore drills\"",
                )
            })?
        }
        None => BTreeMap::new(),
    };
    let repo = super::open_repo(url).await?;
    let mut request = request;
    super::with_archive_fetch(&mut request.options, url, &repo)?;
    // Every backend that can drill with the options given cleans what killed drills left.
    let cleaned: usize = registry
        .backends()
        .filter_map(|b| b.drill(&request.options).ok())
        .map(|drill| drill.clean_leftovers())
        .sum();
    if cleaned > 0 {
        eprintln!("removed {cleaned} scratch targets left by interrupted drills");
    }

    let targets: Vec<StoredSnapshot> = if let Some(selector) = &request.snapshot {
        vec![super::find(&repo, selector, None).await?]
    } else {
        let snaps = repo.snapshots().await?;
        let mut latest: BTreeMap<String, StoredSnapshot> = BTreeMap::new();
        // Drills prove backups restorable: a safety snapshot is drilled only when asked for
        // by id.
        for s in snaps.into_iter().filter(|s| !s.manifest().is_safety()) {
            latest.insert(s.manifest().name.clone(), s);
        }
        if request.all {
            latest.into_values().collect()
        } else if request.names.is_empty() {
            return Err(invalid(
                "name what to drill".into(),
                "use --name NAME (repeatable), --all or --snapshot ID",
            ));
        } else {
            let mut chosen = Vec::new();
            for name in &request.names {
                chosen.push(latest.remove(name).ok_or_else(|| {
                    lifeboat_core::Error::SnapshotNotFound { id: format!("latest of {name:?}") }
                })?);
            }
            chosen
        }
    };

    let mut results: Vec<DrillResult> = Vec::new();
    let mut undrillable = 0;
    for snap in &targets {
        let kind = &snap.manifest().kind;
        let backend = match registry.drill(kind, &request.options) {
            Ok(backend) => backend,
            // With --all, the names this build can drill are still drilled.
            Err(e @ lifeboat_core::Error::UnknownKind { .. }) if request.all => {
                eprintln!("not drilled: {}: {e}", snap.manifest().name);
                undrillable += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let expect = expectations.get(&snap.manifest().name).cloned().unwrap_or_default();
        // A replica's name: a random recent second of it, not its newest base.
        let point = match (&request.snapshot, registry.find(kind)) {
            (None, Some(full)) => {
                repo.recent_point(full, &snap.manifest().name, request.within).await?
            }
            _ => None,
        };
        match point {
            Some((point, reached)) => {
                eprintln!(
                    "drilling {} ({kind} replica, transaction {} seen committed {})",
                    snap.manifest().name,
                    reached.txid,
                    reached.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                );
                results.push(drill(backend.as_ref(), point.as_ref(), &expect).await?);
            }
            None => {
                eprintln!(
                    "drilling {} ({kind}, snapshot {})",
                    snap.manifest().name,
                    snap.id().short()
                );
                results.push(drill(backend.as_ref(), snap, &expect).await?);
            }
        }
    }

    let host = lifeboat_store::host_name();
    if let Some(path) = &request.report {
        std::fs::write(path, markdown_report(&results, &host))
            .map_err(|e| lifeboat_core::Error::io("writing", path, e))?;
    }
    if let Some(path) = &request.heartbeat {
        write_heartbeat(path, &results)?;
    }
    if request.json {
        print_json(&results)?;
    } else {
        for r in &results {
            if let Some(reason) = &r.skipped {
                println!("SKIP {} {}: {reason}", r.kind, r.name);
                continue;
            }
            println!(
                "{} {} {}: restored and checked in {:.1} s, snapshot {:.0} s old, {} checks",
                r.verdict(),
                r.kind,
                r.name,
                r.rto_seconds,
                r.rpo_seconds,
                r.checks.len()
            );
            for c in r.checks.iter().filter(|c| !c.ok) {
                println!("  {}: {}", c.name, c.detail);
            }
        }
    }
    let failed = results.iter().filter(|r| r.failed()).count() + undrillable;
    Ok(if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Merges each passed drill's time into the heartbeat file (name -> last success).
fn write_heartbeat(path: &std::path::Path, results: &[DrillResult]) -> anyhow::Result<()> {
    let passed = results.iter().filter(|r| r.passed).map(|r| (r.name.clone(), r.finished));
    Ok(lifeboat_core::heartbeat::merge(path, passed)?)
}
