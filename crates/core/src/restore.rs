//! The `RestorePlan` role: ordered, printable steps that put a snapshot onto a target.
//!
//! Building a plan has no side effects, so `--dry-run` can print it; executing it does the
//! work. Plans that replace something take a safety snapshot first through a [`SafetyNet`],
//! which the repository provides (backends never depend on the store).

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;

use crate::{Backup, Check, Progress, Result, Snapshot, SnapshotId, Tags};

/// Tag set on the safety snapshot taken before a restore replaces a target.
pub const PRE_RESTORE_TAG: &str = "pre-restore";

/// The folder a restore target lives in (`.` for a bare file name). Restores write their
/// temporary copy there, so the final move into place is a rename on one file system.
pub fn parent_folder(target: &std::path::Path) -> &std::path::Path {
    target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."))
}

/// [`parent_folder`], which must exist.
///
/// # Errors
/// [`crate::Error::InvalidInput`] naming the missing folder.
pub fn existing_parent(target: &std::path::Path) -> Result<&std::path::Path> {
    let parent = parent_folder(target);
    if parent.is_dir() {
        Ok(parent)
    } else {
        Err(crate::Error::InvalidInput {
            what: format!("the folder {} for the restore target does not exist", parent.display()),
            hint: "create it first, or restore into an existing folder".into(),
        })
    }
}

/// Choices that apply to every kind of restore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Replace an existing target (after taking a safety snapshot of it).
    pub force: bool,
    /// Create a target that must be created explicitly (a PostgreSQL database).
    pub create: bool,
}

/// One step of a restore, as printed by `--dry-run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanStep {
    /// Short imperative title ("write to a temporary file").
    pub title: String,
    /// What exactly happens (paths, names).
    pub detail: String,
}

impl PlanStep {
    /// A step with a title and detail.
    pub fn new(title: impl Into<String>, detail: impl Into<String>) -> Self {
        PlanStep { title: title.into(), detail: detail.into() }
    }
}

impl fmt::Display for PlanStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.title, self.detail)
    }
}

/// Stores a safety capture of a target before a restore replaces it.
#[async_trait]
pub trait SafetyNet: Send + Sync {
    /// Captures `source` into the repository under `name` with `tags`; returns its id.
    ///
    /// # Errors
    /// When the capture or the store fails; the restore must then stop.
    async fn save(&self, source: &dyn Backup, name: &str, tags: Tags) -> Result<SnapshotId>;
}

/// What a plan needs while it runs.
pub struct RestoreContext<'a> {
    /// The snapshot being restored.
    pub snapshot: &'a dyn Snapshot,
    /// Where safety snapshots go.
    pub safety_net: &'a dyn SafetyNet,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
}

/// What a finished restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// Where the snapshot was restored.
    pub target: String,
    /// The snapshot that was restored.
    pub snapshot: SnapshotId,
    /// The safety snapshot of what was there before, if anything was.
    pub safety_snapshot: Option<SnapshotId>,
    /// Bytes written.
    pub bytes: u64,
    /// Checks run on the restored target.
    pub checks: Vec<Check>,
}

/// Ordered steps that put one snapshot onto one target.
#[async_trait]
pub trait RestorePlan: Send + Sync {
    /// The steps, in order, for printing.
    fn steps(&self) -> Vec<PlanStep>;

    /// Runs the steps. On failure the target is left as it was before (the plan rolls back
    /// what it did) and the error says which step failed.
    ///
    /// # Errors
    /// The failing step's error.
    async fn execute(&self, ctx: &RestoreContext<'_>) -> Result<RestoreReport>;
}
