//! `lifeboat restore SNAPSHOT --to TARGET`

use std::process::ExitCode;

use lifeboat_core::backend::{OptionSpec, Options};
use lifeboat_core::replica::PointTarget;
use lifeboat_core::{
    MergeMode, Registry, RestoreContext, RestoreOptions, RowSelection, RowsReport,
};

use crate::cli::RestoreArgs;
use crate::output::{human_bytes, print_json};
use crate::progress::CliProgress;

pub async fn run(
    url: &str,
    registry: &Registry,
    args: RestoreArgs,
    selection: &Options,
) -> anyhow::Result<ExitCode> {
    let RestoreArgs { snapshot, to, name, force, create, predicate, mode, at, txid, dry_run, json } =
        args;
    let repo = super::open_repo(url).await?;
    let snap = super::find(&repo, &snapshot, name.as_deref()).await?;
    let point = match (at.as_deref(), txid) {
        (Some(time), _) => Some(PointTarget::Time(parse_time(time)?)),
        (None, Some(txid)) => Some(PointTarget::Txid(txid)),
        (None, None) => None,
    };
    // A replica's `latest` is its newest shipped commit, not its newest base snapshot.
    let is_base = snap.manifest().metadata.get("replica").is_some();
    if point.is_some() || (snapshot == "latest" && is_base) {
        if !is_base {
            return Err(lifeboat_core::Error::InvalidInput {
                what: format!(
                    "snapshot {} ({:?}) is not a replica's, so it has no commits to pick with --at or --txid",
                    snap.id().short(),
                    snap.manifest().name
                ),
                hint: "--at and --txid restore from `lifeboat replicate`'s replicas; `lifeboat snapshots` lists them"
                    .into(),
            }
            .into());
        }
        let point = point.unwrap_or(PointTarget::Latest);
        return restore_point(&repo, registry, &snap, point, &to, force, dry_run, json).await;
    }
    if let Some(predicate) = predicate {
        let mode: MergeMode =
            mode.as_deref().unwrap_or("insert").parse().map_err(anyhow::Error::msg)?;
        let tables = selection.values(OptionSpec::TABLE).to_vec();
        if let Some(other) = selection.names().find(|n| *n != OptionSpec::TABLE) {
            return Err(lifeboat_core::Error::InvalidInput {
                what: format!("--{other} does not go with --where"),
                hint: "--where takes --table, --mode, --force, --dry-run and --json".into(),
            }
            .into());
        }
        let selection = RowSelection { predicate, tables, mode };
        return restore_rows(&repo, registry, &snap, &to, selection, force, dry_run, json).await;
    }
    let options =
        RestoreOptions { force, create, archive_fetch: super::archive_fetch(url, &repo)? };
    let selection = with_timeline(&repo, &snap, selection).await;
    let plan = registry.plan_restore(&snap, &to, &options, &selection).await?;
    if dry_run {
        if json {
            print_json(&plan.steps())?;
        } else {
            let heading = format!(
                "restore plan for snapshot {} -> {to} (dry run, nothing changed):",
                snap.id().short()
            );
            print_steps(&heading, &plan.steps());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let progress = CliProgress::new();
    let ctx = RestoreContext { snapshot: &snap, safety_net: &repo, progress: &progress };
    let report = plan.execute(&ctx).await?;
    if json {
        print_json(&report)?;
    } else {
        print_report(&format!("snapshot {}", snap.id().short()), &report);
    }
    Ok(ExitCode::SUCCESS)
}

/// A snapshot that recovers from the WAL archive recovers along the newest timeline that
/// branched from it after its end (PostgreSQL's `latest` would also take a timeline that
/// branched before, and refuse to start); unless the command line named one.
async fn with_timeline(
    repo: &lifeboat_store::Repository,
    snap: &lifeboat_store::StoredSnapshot,
    selection: &Options,
) -> Options {
    let mut selection = selection.clone();
    const TIMELINE: &str = lifeboat_core::backend::OptionSpec::TARGET_TIMELINE;
    let m = snap.manifest();
    if selection.value(TIMELINE).is_none()
        && let Some(start) = lifeboat_store::WalStart::from_metadata(&m.metadata)
        && let Ok(needs) = repo.wal_needs(&m.name, &start).await
        && let Some(timeline) = needs.timelines.last()
    {
        selection.push(TIMELINE, timeline.to_string());
    }
    selection
}

/// An RFC 3339 time (`2026-12-03T12:00:00.250Z`).
fn parse_time(text: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&chrono::Utc)).map_err(|e| {
        lifeboat_core::Error::InvalidInput {
            what: format!("--at {text:?} is not a time ({e})"),
            hint: "give it in RFC 3339, with a zone: 2026-12-03T12:00:00.250Z or 2026-12-03T13:00:00+01:00"
                .into(),
        }
        .into()
    })
}

/// `restore --at/--txid` (or `latest` of a replica): a replica's base with its later
/// commits laid over it, restored as any snapshot is.
#[allow(clippy::too_many_arguments)]
async fn restore_point(
    repo: &lifeboat_store::Repository,
    registry: &Registry,
    snap: &lifeboat_store::StoredSnapshot,
    point: PointTarget,
    to: &str,
    force: bool,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let manifest = snap.manifest();
    let backend = registry.get(&manifest.kind, "restore to a point")?;
    let (built, reached) = backend.replica_point(repo, &manifest.name, point).await?;
    let options = RestoreOptions { force, create: false, archive_fetch: None };
    let plan = registry.plan_restore(built.as_ref(), to, &options, &Options::default()).await?;
    let mut about = format!(
        "replica {:?} at transaction {} (seen committed {}): base snapshot {} + {} transactions from {} segments",
        reached.name,
        reached.txid,
        reached.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        reached.base.short(),
        reached.transactions,
        reached.segments
    );
    if let Some(nearest) = &reached.nearest {
        about.push_str(&format!(" (not the time asked for: {nearest})"));
    }
    if dry_run {
        if json {
            print_json(&serde_json::json!({ "point": reached, "steps": plan.steps() }))?;
        } else {
            print_steps(
                &format!("restore plan for {about} -> {to} (dry run, nothing changed):"),
                &plan.steps(),
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let progress = CliProgress::new();
    let ctx = RestoreContext { snapshot: built.as_ref(), safety_net: repo, progress: &progress };
    let report = plan.execute(&ctx).await?;
    if json {
        print_json(&serde_json::json!({ "point": reached, "report": report }))?;
    } else {
        print_report(&about, &report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The plan's steps under `heading` (a dry run).
fn print_steps(heading: &str, steps: &[lifeboat_core::PlanStep]) {
    println!("{heading}");
    for (i, step) in steps.iter().enumerate() {
        println!("  {}. {step}", i + 1);
    }
}

/// What a restore of `what` did: its safety snapshot, what it did beyond its plan (journal
/// files moved aside, a raw safety copy), and the result.
fn print_report(what: &str, report: &lifeboat_core::RestoreReport) {
    if let Some(safety) = report.safety_snapshot {
        println!("safety snapshot {safety} holds what was at {} before", report.target);
    }
    for note in report.checks.iter().filter(|c| c.name == "note") {
        println!("note: {}", note.detail);
    }
    println!(
        "restored {what} to {} ({}), {} checks passed",
        report.target,
        human_bytes(report.bytes),
        report.checks.len()
    );
}

/// `restore --where`: some rows merged into the live database.
#[allow(clippy::too_many_arguments)]
async fn restore_rows(
    repo: &lifeboat_store::Repository,
    registry: &Registry,
    snap: &lifeboat_store::StoredSnapshot,
    to: &str,
    selection: RowSelection,
    force: bool,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if selection.mode != MergeMode::Insert && !force && !dry_run {
        return Err(lifeboat_core::Error::InvalidInput {
            what: format!(
                "--mode {} changes{} rows of the live database {to}",
                selection.mode,
                if selection.mode == MergeMode::Replace { " and deletes" } else { "" }
            ),
            hint: "add --force to confirm (a safety snapshot of it is taken first), or --dry-run to see the counts"
                .into(),
        }
        .into());
    }
    let progress = CliProgress::new();
    let ctx = RestoreContext { snapshot: snap, safety_net: repo, progress: &progress };
    let report = registry.restore_rows(&ctx, to, &selection, dry_run).await?;
    if json {
        print_json(&report)?;
    } else {
        print_rows_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_rows_report(report: &RowsReport) {
    let done = if report.dry_run { "would do (dry run, nothing changed)" } else { "did" };
    println!(
        "rows of snapshot {} where {} -> {}, mode {}: what it {done}",
        report.snapshot.short(),
        report.predicate,
        report.target,
        report.mode
    );
    let width = report.tables.iter().map(|t| t.table.len()).max().unwrap_or(0).max(5);
    println!("  {:<width$} {:>8} {:>8} {:>8} {:>8}", "table", "add", "change", "delete", "keep");
    for t in report.tables.iter().chain(std::iter::once(&report.total())) {
        println!(
            "  {:<width$} {:>8} {:>8} {:>8} {:>8}",
            t.table, t.add, t.change, t.delete, t.keep
        );
    }
    let total = report.total();
    if total.held_elsewhere > 0 {
        for t in report.tables.iter().filter(|t| t.held_elsewhere > 0) {
            println!(
                "note: {} rows of {} were not brought back: rows outside the selection now hold their keys",
                t.held_elsewhere, t.table
            );
        }
    }
    match report.safety_snapshot {
        Some(safety) if report.safety_rows_only => println!(
            "safety snapshot {safety} holds the rows this could change, as they were \
             (undo: lifeboat restore {} --to {} --where {} --mode replace --force)",
            safety.short(),
            lifeboat_core::shell_quote(&report.target),
            lifeboat_core::shell_quote(&report.predicate)
        ),
        Some(safety) => {
            println!("safety snapshot {safety} holds what was at {} before", report.target)
        }
        None => {}
    }
}
