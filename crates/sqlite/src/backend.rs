//! The SQLite [`Backend`]: `lifeboat backup sqlite PATH`, restores to a path.

use std::path::Path;

use async_trait::async_trait;
use lifeboat_core::backend::{Options, TargetCommand, TargetSpec, strip_scheme};
use lifeboat_core::drill::ScratchDrill;
use lifeboat_core::replica::{
    PointTarget, ReachedPoint, ReplicaStatus, ReplicaStore, ReplicateRequest, Stop,
};
use lifeboat_core::{
    Backend, Backup, Error, ExportReport, ExportRequest, Kind, Progress, RestoreContext,
    RestoreOptions, RestorePlan, Result, RowSelection, RowsReport, Snapshot,
};

use crate::{SqliteBackup, SqliteDrill, SqliteRestorePlan};

/// SQLite database files, captured online.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteBackend;

#[async_trait]
impl Backend for SqliteBackend {
    fn kind(&self) -> Kind {
        Kind::SQLITE
    }

    fn about(&self) -> &'static str {
        "SQLite database files, captured online while writers keep going"
    }

    fn commands(&self) -> Vec<TargetCommand> {
        vec![TargetCommand {
            name: "sqlite",
            about: "A SQLite database file (captured online; writers keep going).",
            target: Some("PATH"),
            target_help: "The database file.",
            options: Vec::new(),
        }]
    }

    fn check(&self, spec: &TargetSpec) -> Result<()> {
        if spec.target.is_empty() {
            return Err(Error::InvalidInput {
                what: "a SQLite target needs the database file's path".into(),
                hint: "give the path of the database file".into(),
            });
        }
        Ok(())
    }

    fn backup(&self, spec: &TargetSpec) -> Result<Box<dyn Backup>> {
        self.check(spec)?;
        Ok(Box::new(SqliteBackup::new(&spec.target)))
    }

    async fn plan_restore(
        &self,
        snapshot: &dyn Snapshot,
        to: &str,
        options: &RestoreOptions,
        _selection: &Options,
    ) -> Result<Box<dyn RestorePlan>> {
        let path = Path::new(strip_scheme(&Kind::SQLITE, to));
        Ok(Box::new(SqliteRestorePlan::new(snapshot, path, options)?))
    }

    async fn restore_rows(
        &self,
        ctx: &RestoreContext<'_>,
        to: &str,
        selection: &RowSelection,
        dry_run: bool,
    ) -> Result<RowsReport> {
        let path = Path::new(strip_scheme(&Kind::SQLITE, to));
        crate::restore_rows(ctx, path, selection, dry_run).await
    }

    async fn export(
        &self,
        snapshot: &dyn Snapshot,
        request: &ExportRequest,
        progress: &dyn Progress,
    ) -> Result<ExportReport> {
        crate::export(snapshot, request, progress).await
    }

    fn drill(&self, _options: &Options) -> Result<Box<dyn ScratchDrill>> {
        Ok(Box::new(SqliteDrill))
    }

    async fn replicate(
        &self,
        request: &ReplicateRequest,
        store: &dyn ReplicaStore,
        stop: Stop,
        report: &(dyn for<'s> Fn(&'s ReplicaStatus) + Send + Sync),
    ) -> Result<ReplicaStatus> {
        let path = Path::new(strip_scheme(&Kind::SQLITE, &request.target));
        let options = crate::replica::ReplicateOptions::new(request.clone());
        let mut replicator = crate::replica::Replicator::start(path, options, store).await?;
        replicator.run(stop, |r| report(&r.status_now())).await
    }

    fn replica_helper(&self, args: &[String]) -> Option<Result<()>> {
        match args {
            [word, path] if word == crate::replica::HOLD_WORD => Some(
                crate::replica::run_holder(Path::new(path), crate::replica::ORPHAN_HOLD)
                    .map_err(Into::into),
            ),
            _ => None,
        }
    }

    async fn replica_point(
        &self,
        store: &dyn ReplicaStore,
        name: &str,
        target: PointTarget,
    ) -> Result<(Box<dyn Snapshot>, ReachedPoint)> {
        let (snapshot, reached) = crate::replica::point_in_time(store, name, target).await?;
        Ok((Box::new(snapshot), reached))
    }
}
