//! The folder [`Backend`]: `lifeboat backup dir PATH --exclude GLOB`, restores to a path.

use std::path::Path;

use async_trait::async_trait;
use lifeboat_core::backend::{Entry, OptionSpec, Options, TargetCommand, TargetSpec, strip_scheme};
use lifeboat_core::drill::ScratchDrill;
use lifeboat_core::{Backend, Backup, Error, Kind, RestoreOptions, RestorePlan, Result, Snapshot};
use tokio_util::io::SyncIoBridge;

use crate::{DirBackup, DirDrill, DirRestorePlan};

/// Folders: files, folders, symlinks, hard links, permissions and mtimes.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirBackend;

const EXCLUDE: &str = "exclude";
const INCLUDE: &str = "include";

#[async_trait]
impl Backend for DirBackend {
    fn kind(&self) -> Kind {
        Kind::DIR
    }

    fn about(&self) -> &'static str {
        "folders: files, folders, symlinks, hard links, permissions, mtimes"
    }

    fn commands(&self) -> Vec<TargetCommand> {
        vec![TargetCommand {
            name: "dir",
            about: "A folder: files, folders, symlinks, hard links, permissions, mtimes.",
            target: Some("PATH"),
            target_help: "The folder.",
            options: vec![OptionSpec::many(
                EXCLUDE,
                "GLOB",
                "Leave out paths matching this glob, relative to the folder (repeatable).",
            )],
        }]
    }

    fn check(&self, spec: &TargetSpec) -> Result<()> {
        if spec.target.is_empty() {
            return Err(Error::InvalidInput {
                what: "a folder target needs the folder's path".into(),
                hint: "give the path of the folder".into(),
            });
        }
        Ok(())
    }

    fn backup(&self, spec: &TargetSpec) -> Result<Box<dyn Backup>> {
        self.check(spec)?;
        let excludes = spec.options.values(EXCLUDE).iter().cloned();
        Ok(Box::new(excludes.fold(DirBackup::new(&spec.target), DirBackup::exclude)))
    }

    fn restore_options(&self) -> Vec<OptionSpec> {
        vec![OptionSpec::many(
            INCLUDE,
            "GLOB",
            "Folders: restore only paths matching this glob (repeatable).",
        )]
    }

    async fn plan_restore(
        &self,
        snapshot: &dyn Snapshot,
        to: &str,
        options: &RestoreOptions,
        selection: &Options,
    ) -> Result<Box<dyn RestorePlan>> {
        let path = Path::new(strip_scheme(&Kind::DIR, to));
        let includes = selection.values(INCLUDE);
        Ok(Box::new(DirRestorePlan::new(snapshot, path, options, includes)?))
    }

    fn drill(&self, _options: &Options) -> Result<Box<dyn ScratchDrill>> {
        Ok(Box::new(DirDrill))
    }

    async fn entries(&self, snapshot: &dyn Snapshot, prefix: Option<&str>) -> Result<Vec<Entry>> {
        let reader = SyncIoBridge::new(snapshot.open().await?);
        let prefix = prefix.map(str::to_string);
        let listed =
            tokio::task::spawn_blocking(move || crate::list_entries(reader, prefix.as_deref()))
                .await
                .map_err(|e| Error::from_stream("listing the snapshot", std::io::Error::other(e)))?
                .map_err(|e| Error::from_stream("reading the snapshot", e))?;
        Ok(listed
            .into_iter()
            .map(|e| Entry {
                path: e.path.display().to_string(),
                kind: e.kind.to_string(),
                size: e.size,
                mode: e.mode,
                mtime: e.mtime,
                link: e.link.map(|l| l.display().to_string()),
            })
            .collect())
    }
}
