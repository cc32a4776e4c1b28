//! `sqlite-replica` jobs: replication that runs for as long as the service does, through
//! the same code as `lifeboat replicate` ([`lifeboat_store::Repository::replicate_under_lease`]).
//! A replicator that fails raises the job's `failing` alarm and is started again, waiting
//! 1 s, doubling to 5 min; its status is in `/health` and the metrics. Its lock holder is a
//! child process (`lifeboatd __replica-helper sqlite …`) that outlives lifeboatd for a while,
//! so a restart resumes without a gap when the service manager leaves it running (systemd:
//! a drop-in with `KillMode=process`; the shipped unit stops it, and the next start takes a
//! new base snapshot when the `-wal` was restarted meanwhile).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_core::Kind;
use lifeboat_core::replica::{HELPER_ARG, ReplicaStatus, ReplicateRequest, Stop};
use serde::Serialize;
use tracing::{info, warn};

use crate::alerts::{Alert, Event};
use crate::state::{Alarm, Daemon, JobState, lock};

/// The longest wait before a failed replicator is started again.
const MOST_BACKOFF: Duration = Duration::from_secs(300);

/// What `/health` and the metrics show of a replica job.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplicaHealth {
    /// Whether its replicator runs now.
    pub running: bool,
    /// What the replicator reported last (this run, or the last one).
    pub status: Option<ReplicaStatus>,
    /// Why the last run stopped, when it failed.
    pub error: Option<String>,
    /// When that was.
    pub failed_at: Option<DateTime<Utc>>,
}

/// Starts the replicator of every `sqlite-replica` job.
pub fn start(d: &Arc<Daemon>) {
    for (name, state) in &d.jobs {
        if state.job().replica.is_none() {
            continue;
        }
        let (d2, state2) = (Arc::clone(d), Arc::clone(state));
        crate::supervise::spawn_loop(d, name, "replicator", move || {
            replicate_loop(Arc::clone(&d2), Arc::clone(&state2))
        });
    }
}

/// The command that runs the replica's lock holder: this program, which hands
/// `__replica-helper` to the backend before anything else.
fn helper_command() -> Vec<String> {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "lifeboatd".into());
    vec![exe, HELPER_ARG.into(), Kind::SQLITE.to_string()]
}

async fn replicate_loop(d: Arc<Daemon>, state: Arc<JobState>) {
    let mut backoff = Duration::from_secs(1);
    while !d.shutting_down() {
        let job = state.job();
        let Some(settings) = job.replica.clone() else { return };
        let Some(backend) = d.registry.find(&Kind::SQLITE) else { return };
        let request = ReplicateRequest {
            target: job.spec.target.clone(),
            name: job.name.clone(),
            interval: settings.interval,
            poll: Duration::from_millis(10),
            snapshot_every: settings.snapshot_every,
            helper: helper_command(),
            compaction: settings.compaction,
        };
        let mut shutdown = d.shutdown.subscribe();
        let stop: Stop = Box::pin(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        });
        let first = std::sync::atomic::AtomicBool::new(true);
        let report = |status: &ReplicaStatus| {
            let mut health = lock(&state.replica);
            health.running = true;
            let based = health.status.as_ref().map(|s| s.snapshots) != Some(status.snapshots);
            health.status = Some(status.clone());
            drop(health);
            if based {
                // A new base snapshot: the listing behind /health and the metrics shows it.
                let d = Arc::clone(&d);
                tokio::spawn(async move { d.refresh_view().await });
            }
            if first.swap(false, std::sync::atomic::Ordering::Relaxed) {
                d.clear(&state, &[Alarm::Failing], |_| {
                    let msg = format!("job {} replicates again", job.name);
                    Alert::new(Event::Recovered, &job.name, msg, None)
                });
            }
        };
        let operation = format!("lifeboatd job {}: replicate sqlite {}", job.name, job.spec.target);
        info!(job = %job.name, target = %job.spec.target, "replicating");
        let result =
            d.repo.replicate_under_lease(backend, &request, &operation, stop, &report).await;
        match result {
            Ok(status) => {
                let mut health = lock(&state.replica);
                health.running = false;
                health.status = Some(status);
                health.error = None;
                backoff = Duration::from_secs(1);
            }
            Err(e) => {
                let message = format!("replication of job {} failed: {e}", job.name);
                warn!(job = %job.name, error = %e, retry_in = ?backoff, "replication failed; starting it again");
                {
                    let mut health = lock(&state.replica);
                    health.running = false;
                    health.error = Some(e.to_string());
                    health.failed_at = Some(Utc::now());
                }
                d.raise(
                    &state,
                    Alarm::Failing,
                    Alert::new(Event::BackupFailed, &job.name, message, None),
                );
                let mut shutdown = d.shutdown.subscribe();
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(MOST_BACKOFF);
            }
        }
    }
}
