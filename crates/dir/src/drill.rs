//! Folders' part in restore drills: restore into a scratch folder, check entries and counts,
//! then that the expected files exist.

use async_trait::async_trait;
use lifeboat_core::drill::{
    Expectations, ScratchDrill, ScratchOutcome, clean_scratch_dirs, scratch_dir,
};
use lifeboat_core::{
    Check, Kind, MemorySafetyNet, NoProgress, RestoreContext, RestoreOptions, RestorePlan, Result,
    Snapshot,
};

use crate::restore::DirRestorePlan;

/// Drills folder snapshots.
#[derive(Debug, Default, Clone, Copy)]
pub struct DirDrill;

#[async_trait]
impl ScratchDrill for DirDrill {
    fn kind(&self) -> Kind {
        Kind::DIR
    }

    async fn restore_and_check(
        &self,
        snapshot: &dyn Snapshot,
        expect: &Expectations,
    ) -> Result<ScratchOutcome> {
        let scratch = scratch_dir()?;
        let target = scratch.path().join("restored");
        let mut outcome = ScratchOutcome::default();
        let plan = match DirRestorePlan::new(snapshot, &target, &RestoreOptions::default(), &[]) {
            // A copy thrown away after its checks needs no fsync.
            Ok(plan) => plan.scratch(),
            Err(e) => {
                outcome.checks.push(Check::fail("plan", e.to_string()));
                return Ok(outcome);
            }
        };
        let net = MemorySafetyNet::default();
        let ctx = RestoreContext { snapshot, safety_net: &net, progress: &NoProgress };
        match plan.execute(&ctx).await {
            Ok(report) => {
                outcome.bytes = report.bytes;
                outcome.checks.push(Check::pass(
                    "restore",
                    format!("{} bytes into a scratch folder", report.bytes),
                ));
                outcome.checks.extend(report.checks);
            }
            Err(e) => {
                outcome.checks.push(Check::fail("restore", e.to_string()));
                return Ok(outcome);
            }
        }
        for file in &expect.files {
            let exists = target.join(file).symlink_metadata().is_ok();
            outcome.checks.push(Check::new(
                format!("file {file} exists"),
                exists,
                if exists { "present" } else { "missing" },
            ));
        }
        outcome.checks.extend(expect.database_checks_for(Kind::DIR));
        Ok(outcome)
    }

    fn clean_leftovers(&self) -> usize {
        clean_scratch_dirs(&std::env::temp_dir())
    }
}
