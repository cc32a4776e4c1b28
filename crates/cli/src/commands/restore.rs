//! `lifeboat restore SNAPSHOT --to TARGET`

use std::path::Path;
use std::process::ExitCode;

use lifeboat_core::{Kind, RestoreContext, RestoreOptions, RestorePlan, Snapshot};
use lifeboat_dir::DirRestorePlan;
use lifeboat_postgres::PostgresRestorePlan;
use lifeboat_sqlite::SqliteRestorePlan;

use crate::output::{human_bytes, print_json};
use crate::progress::CliProgress;

/// What part of a snapshot to restore (all of it by default).
pub struct Selection<'a> {
    /// Folder paths to restore (globs).
    pub includes: &'a [String],
    /// The one PostgreSQL table to restore.
    pub table: Option<String>,
    /// PostgreSQL: the schema only.
    pub schema_only: bool,
}

/// The restore plan for a snapshot of any kind. `to` is a path, `dir:PATH` for folders, or a
/// `postgres://` URL.
pub async fn plan_for(
    snapshot: &dyn Snapshot,
    to: &str,
    options: &RestoreOptions,
    selection: Selection<'_>,
) -> lifeboat_core::Result<Box<dyn RestorePlan>> {
    let kind = snapshot.manifest().kind;
    let includes = selection.includes;
    if (selection.table.is_some() || selection.schema_only) && kind != Kind::Postgres {
        return Err(lifeboat_core::Error::Unsupported {
            operation: "restore --table/--schema-only".into(),
            kind,
        });
    }
    if kind == Kind::Postgres || to.starts_with("postgres://") || to.starts_with("postgresql://") {
        if kind != Kind::Postgres {
            return Err(lifeboat_core::Error::InvalidInput {
                what: format!(
                    "snapshot {} is a {kind} snapshot; it cannot be restored to a PostgreSQL database",
                    snapshot.id().short()
                ),
                hint: format!("restore it to a {kind} target"),
            });
        }
        let plan = PostgresRestorePlan::prepare(snapshot, to, options).await?;
        return Ok(Box::new(plan.with_selection(selection.table, selection.schema_only)));
    }
    let (scheme, path) = match to.split_once(':') {
        Some((scheme, path)) if ["dir", "sqlite"].contains(&scheme) => {
            (Some(scheme), Path::new(path))
        }
        _ => (None, Path::new(to)),
    };
    if scheme.is_some_and(|s| s != kind.as_str()) {
        return Err(lifeboat_core::Error::InvalidInput {
            what: format!(
                "snapshot {} is a {kind} snapshot; it cannot be restored to {to}",
                snapshot.id().short()
            ),
            hint: format!("restore it to a {kind} target"),
        });
    }
    if !includes.is_empty() && kind != Kind::Dir {
        return Err(lifeboat_core::Error::Unsupported {
            operation: "restore --include".into(),
            kind,
        });
    }
    match kind {
        Kind::Sqlite => Ok(Box::new(SqliteRestorePlan::new(snapshot, path, options)?)),
        Kind::Dir => Ok(Box::new(DirRestorePlan::new(snapshot, path, options, includes)?)),
        kind => Err(lifeboat_core::Error::Unsupported { operation: "restore".into(), kind }),
    }
}

/// What the command line asked for.
pub struct Request<'a> {
    pub selector: &'a str,
    pub name: Option<&'a str>,
    pub to: &'a str,
    pub includes: &'a [String],
    pub force: bool,
    pub create: bool,
    pub table: Option<String>,
    pub schema_only: bool,
    pub dry_run: bool,
    pub json: bool,
}

pub async fn run(url: &str, request: Request<'_>) -> anyhow::Result<ExitCode> {
    let Request { selector, name, to, includes, force, create, table, schema_only, dry_run, json } =
        request;
    let repo = super::open_repo(url).await?;
    let snap = repo.find(selector, name).await?;
    let selection = Selection { includes, table, schema_only };
    let plan = plan_for(&snap, to, &RestoreOptions { force, create }, selection).await?;
    if dry_run {
        if json {
            print_json(&plan.steps())?;
        } else {
            println!(
                "restore plan for snapshot {} -> {to} (dry run, nothing changed):",
                snap.id().short()
            );
            for (i, step) in plan.steps().iter().enumerate() {
                println!("  {}. {step}", i + 1);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let progress = CliProgress::new();
    let ctx = RestoreContext { snapshot: &snap, safety_net: &repo, progress: &progress };
    let report = plan.execute(&ctx).await?;
    if json {
        print_json(&report)?;
    } else {
        if let Some(safety) = report.safety_snapshot {
            println!("safety snapshot {safety} holds what was at {} before", report.target);
        }
        println!(
            "restored snapshot {} to {} ({}), {} checks passed",
            snap.id().short(),
            report.target,
            human_bytes(report.bytes),
            report.checks.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
