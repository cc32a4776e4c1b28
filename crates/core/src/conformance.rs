//! The backend conformance suite: checks every backend runs in its own tests, against the
//! real thing it backs up. Backends differ only in what their [`Harness`] provides, never
//! in which checks run.
//!
//! Enabled by the `conformance` feature.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use async_trait::async_trait;

use crate::{
    Backup, MemorySafetyNet, MemorySnapshot, NoProgress, PRE_RESTORE_TAG, RestoreContext,
    RestoreOptions, RestorePlan, Result, Snapshot, Tags, Verifier,
};

/// What a backend's tests provide to the suite.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A real target with some content, and a source that captures it.
    async fn source(&self) -> Box<dyn Backup>;
    /// Changes the target's content (rows, files).
    async fn change(&self, source: &dyn Backup);
    /// A restore target that does not exist yet.
    fn fresh_target(&self) -> String;
    /// The target `source` captures, as a restore target.
    fn live_target(&self, source: &dyn Backup) -> String;
    /// The backend's restore plan.
    fn plan(
        &self,
        snapshot: &dyn Snapshot,
        target: &str,
        options: &RestoreOptions,
    ) -> Result<Box<dyn RestorePlan>>;
    /// The logical content of a target, comparable across restores (rows, file digests).
    async fn content(&self, target: &str) -> String;
    /// The backend's deep verifier (restore into scratch plus the backend's own checks).
    fn verifier(&self) -> Box<dyn Verifier>;
    /// Damages a captured stream so the backend's own checks must notice.
    fn damage(&self, bytes: &mut Vec<u8>);
}

async fn restore(
    h: &dyn Harness,
    snap: &dyn Snapshot,
    target: &str,
    force: bool,
) -> Result<(crate::RestoreReport, MemorySafetyNet)> {
    let plan = h.plan(snap, target, &RestoreOptions { force, ..Default::default() })?;
    let net = MemorySafetyNet::default();
    let ctx = RestoreContext { snapshot: snap, safety_net: &net, progress: &NoProgress };
    let report = plan.execute(&ctx).await?;
    Ok((report, net))
}

/// Backup then restore to a new target gives the same content.
pub async fn backup_then_restore_gives_same_content(h: &dyn Harness) {
    let source = h.source().await;
    let live = h.live_target(source.as_ref());
    let snap = MemorySnapshot::capture(source.as_ref(), Tags::new()).await.unwrap();
    let target = h.fresh_target();
    let (report, net) = restore(h, &snap, &target, false).await.unwrap();
    assert!(report.checks.iter().all(|c| c.ok), "{:?}", report.checks);
    assert!(
        report.safety_snapshot.is_none() && net.saved().is_empty(),
        "a new target needs no safety snapshot"
    );
    assert_eq!(h.content(&target).await, h.content(&live).await);
}

/// Restoring onto an existing target without `force` refuses and changes nothing.
pub async fn restore_without_force_refuses_existing_target(h: &dyn Harness) {
    let source = h.source().await;
    let live = h.live_target(source.as_ref());
    let snap = MemorySnapshot::capture(source.as_ref(), Tags::new()).await.unwrap();
    h.change(source.as_ref()).await;
    let before = h.content(&live).await;
    let refused = h.plan(&snap, &live, &RestoreOptions::default());
    assert!(
        matches!(refused, Err(crate::Error::TargetExists { .. })),
        "restore over a live target without force was planned"
    );
    assert_eq!(h.content(&live).await, before);
}

/// With `force`, a safety snapshot of what was there is taken first, then the target holds
/// the snapshot's content; the safety snapshot restores what was there.
pub async fn restore_with_force_takes_a_safety_snapshot(h: &dyn Harness) {
    let source = h.source().await;
    let live = h.live_target(source.as_ref());
    let snap = MemorySnapshot::capture(source.as_ref(), Tags::new()).await.unwrap();
    let original = h.content(&live).await;
    h.change(source.as_ref()).await;
    let changed = h.content(&live).await;
    assert_ne!(original, changed, "the harness's change() changed nothing");

    let plan = h.plan(&snap, &live, &RestoreOptions { force: true, ..Default::default() }).unwrap();
    assert!(!plan.steps().is_empty());
    assert_eq!(h.content(&live).await, changed, "planning had side effects");
    let (report, net) = restore(h, &snap, &live, true).await.unwrap();
    assert_eq!(h.content(&live).await, original);
    let saved = net.saved();
    assert_eq!(saved.len(), 1, "exactly one safety snapshot");
    assert!(saved[0].manifest().tags.contains_key(PRE_RESTORE_TAG));
    assert_eq!(report.safety_snapshot, Some(saved[0].id()));

    let rescue = h.fresh_target();
    restore(h, &saved[0], &rescue, false).await.unwrap();
    assert_eq!(
        h.content(&rescue).await,
        changed,
        "the safety snapshot does not hold what was there"
    );
}

/// The deep verifier passes a good snapshot and fails a damaged one; a restore of the
/// damaged one fails and leaves no target behind.
pub async fn verify_catches_damage(h: &dyn Harness) {
    let source = h.source().await;
    let snap = MemorySnapshot::capture(source.as_ref(), Tags::new()).await.unwrap();
    let good = h.verifier().verify(&snap).await.unwrap();
    assert!(good.ok(), "{:?}", good.failures());

    let mut bad = snap.clone();
    h.damage(bad.bytes_mut());
    let report = h.verifier().verify(&bad).await.unwrap();
    assert!(!report.ok(), "damage went unnoticed");
    let target = h.fresh_target();
    assert!(restore(h, &bad, &target, false).await.is_err(), "a damaged snapshot restored");
    assert_eq!(
        h.content(&target).await,
        h.content(&h.fresh_target()).await,
        "a failed restore left a target"
    );
}

/// Runs every check in the suite.
pub async fn run_all(h: &dyn Harness) {
    backup_then_restore_gives_same_content(h).await;
    restore_without_force_refuses_existing_target(h).await;
    restore_with_force_takes_a_safety_snapshot(h).await;
    verify_catches_damage(h).await;
}
