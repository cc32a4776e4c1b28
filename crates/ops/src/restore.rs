//! The restore plan for a snapshot of any kind.

use std::path::Path;
use std::time::Duration;

use lifeboat_container::ContainerRestorePlan;
use lifeboat_core::{Kind, RestoreOptions, RestorePlan, Snapshot};
use lifeboat_dir::DirRestorePlan;
use lifeboat_postgres::{MissingRoles, PostgresRestorePlan};
use lifeboat_sqlite::SqliteRestorePlan;

/// What part of a snapshot to restore (all of it by default).
pub struct Selection<'a> {
    /// Folder paths to restore (globs).
    pub includes: &'a [String],
    /// The one PostgreSQL table to restore.
    pub table: Option<String>,
    /// PostgreSQL: the schema only.
    pub schema_only: bool,
    /// PostgreSQL: create no roles the target lacks; leave out owners and grants instead.
    pub skip_missing_roles: bool,
    /// Containers: how long the restored container must keep running before the old one
    /// is removed (the backend's default when `None`).
    pub settle: Option<Duration>,
}

/// The restore plan for a snapshot of any kind. `to` is a path, `dir:PATH` for folders, a
/// `postgres://` URL, or `container:NAME`.
///
/// # Errors
/// A target of another kind, a selection the kind does not support, and the backend's
/// own checks of the target.
pub async fn plan_for(
    snapshot: &dyn Snapshot,
    to: &str,
    options: &RestoreOptions,
    selection: Selection<'_>,
) -> lifeboat_core::Result<Box<dyn RestorePlan>> {
    let kind = snapshot.manifest().kind;
    let includes = selection.includes;
    if (selection.table.is_some() || selection.schema_only || selection.skip_missing_roles)
        && kind != Kind::Postgres
    {
        return Err(lifeboat_core::Error::Unsupported {
            operation: "restore --table/--schema-only/--skip-missing-roles".into(),
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
        let roles = match selection.skip_missing_roles {
            true => MissingRoles::Skip,
            false => MissingRoles::Create,
        };
        let plan = PostgresRestorePlan::prepare(snapshot, to, options).await?;
        return Ok(Box::new(
            plan.with_selection(selection.table, selection.schema_only).with_missing_roles(roles),
        ));
    }
    if kind == Kind::Container || to.starts_with("container:") {
        let Some(name) = to.strip_prefix("container:").filter(|_| kind == Kind::Container) else {
            return Err(lifeboat_core::Error::InvalidInput {
                what: format!(
                    "snapshot {} is a {kind} snapshot; it cannot be restored to {to}",
                    snapshot.id().short()
                ),
                hint: if kind == Kind::Container {
                    "restore a container snapshot to container:NAME".into()
                } else {
                    format!("restore it to a {kind} target")
                },
            });
        };
        if !includes.is_empty() {
            return Err(lifeboat_core::Error::Unsupported {
                operation: "restore --include".into(),
                kind,
            });
        }
        let plan = ContainerRestorePlan::prepare(snapshot, name, options).await?;
        return Ok(Box::new(match selection.settle {
            Some(settle) => plan.with_settle(settle),
            None => plan,
        }));
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
