//! Backing up a target spec of any kind through a [`Registry`]: one snapshot per member it
//! selects, named by one rule for the CLI and lifeboatd alike.

use lifeboat_core::backend::{Member, OptionSpec, TargetSpec};
use lifeboat_core::{Progress, Registry};

use crate::{BackupOptions, Repository, Result, StoredSnapshot};

/// What happened to one member of a target.
#[derive(Debug)]
pub struct MemberOutcome {
    /// The member.
    pub member: Member,
    /// Its snapshot, or why it failed.
    pub result: Result<StoredSnapshot>,
}

impl Repository {
    /// Backs up every member that `spec` selects, going on past failures. With
    /// `options.name` set, one target is named `NAME` and the members of a selection
    /// `NAME/MEMBER`; without, each gets its backend's default name
    /// ([`Member::snapshot_name`]). `--changed-only` in the spec's options sets
    /// [`BackupOptions::changed_only`]. `on_done` hears of each member as it ends.
    ///
    /// # Errors
    /// When the selection cannot be made (unknown kind, bad options, no member); each
    /// member's own failure is in its [`MemberOutcome`].
    pub async fn backup_target(
        &self,
        registry: &Registry,
        spec: &TargetSpec,
        options: &BackupOptions,
        progress: &dyn Progress,
        on_done: &mut (dyn FnMut(&MemberOutcome) + Send),
    ) -> Result<Vec<MemberOutcome>> {
        let members = registry.members(spec).await?;
        let mut outcomes = Vec::with_capacity(members.len());
        for member in members {
            let result = self.backup_member(registry, &member, options, progress).await;
            let outcome = MemberOutcome { member, result };
            on_done(&outcome);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn backup_member(
        &self,
        registry: &Registry,
        member: &Member,
        options: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<StoredSnapshot> {
        let source = registry.backup(&member.spec)?;
        let options = BackupOptions {
            name: Some(member.snapshot_name(options.name.as_deref())),
            changed_only: options.changed_only
                || member.spec.options.flag(OptionSpec::CHANGED_ONLY.name),
            ..options.clone()
        };
        self.backup(source.as_ref(), &options, progress).await
    }
}
