//! The SQLite [`Backend`]: `lifeboat backup sqlite PATH`, restores to a path.

use std::path::Path;

use async_trait::async_trait;
use lifeboat_core::backend::{Options, TargetCommand, TargetSpec, strip_scheme};
use lifeboat_core::drill::ScratchDrill;
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
}
