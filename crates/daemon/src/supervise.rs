//! Keeping the service alive and honest when one of its tasks goes wrong.
//!
//! lifeboatd replaces cron, heartbeat files and webhook scripts: when it stops working,
//! nothing else notices. So no task may take its job (or the scheduler) down with it:
//! - every backup and drill has a deadline (`run_timeout`); past it the run is stopped and
//!   fails like any other;
//! - a panic is caught, logged, counted (`lifeboat_panics_total`) and alerted
//!   (`task.panicked`); the run it was part of fails;
//! - a watchdog around each run's task fails a run that ended without a result, and the
//!   job's slot is cleared whatever happened (see `runner::start_backup`);
//! - a scheduling loop that panicked starts again.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use tracing::{error, warn};

use crate::alerts::{Alert, Event};
use crate::catalog::{IN_PROGRESS, Outcome};
use crate::state::Daemon;

/// The job name alerts carry for tasks that belong to no job (staleness checks).
pub const SERVICE: &str = "lifeboatd";

/// The text a panic was raised with.
fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Runs `work`, catching a panic: the panic is logged, counted and alerted, and comes back as
/// its message.
pub async fn catch<T>(
    d: &Daemon,
    job: &str,
    task: &str,
    work: impl Future<Output = T>,
) -> Result<T, String> {
    AssertUnwindSafe(work).catch_unwind().await.map_err(|payload| {
        let text = message(payload.as_ref());
        d.panics.fetch_add(1, Ordering::Relaxed);
        error!(job, task, "task panicked (a lifeboatd bug): {text}");
        let msg =
            format!("lifeboatd's {task} task for {job} panicked (a bug; please report it): {text}");
        d.alerts.send(Alert::new(Event::TaskPanicked, job, msg, None));
        text
    })
}

/// Why a bounded run gave no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// `timeout` or `panic`, the run's failure reason.
    pub reason: &'static str,
    /// For the run's error and its alert.
    pub message: String,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Runs the work of a backup or drill with the deadline `limit`, catching a panic; the error
/// says why no result came, for the run's error and its alert.
pub async fn bounded<T>(
    d: &Daemon,
    job: &str,
    task: &str,
    limit: Duration,
    work: impl Future<Output = T>,
) -> Result<T, Stopped> {
    match catch(d, job, task, tokio::time::timeout(limit, work)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => {
            warn!(job, task, ?limit, "run past its deadline (run_timeout): stopped");
            Err(Stopped {
                reason: "timeout",
                message: format!(
                    "still running after {}, its deadline (run_timeout): stopped",
                    lifeboat_core::format_duration(limit)
                ),
            })
        }
        Err(panic) => Err(Stopped {
            reason: "panic",
            message: format!("lifeboatd panicked during the run (a bug): {panic}"),
        }),
    }
}

/// The watchdog of one run: runs its task and, when the task ended without recording a
/// result (it panicked past [`bounded`]), fails the run so it never stays `in_progress`.
pub async fn watch_run(
    d: &Daemon,
    job: &str,
    task: &str,
    run: i64,
    work: impl Future<Output = ()>,
) {
    if let Err(panic) = catch(d, job, task, work).await {
        let open = d.catalog.get(run).ok().flatten().is_some_and(|r| r.status == IN_PROGRESS);
        if open {
            let outcome = Outcome {
                error: Some(format!("the run ended without a result: lifeboatd panicked: {panic}")),
                reason: Some("panic"),
                ..Outcome::default()
            };
            if let Err(e) = d.catalog.finish(run, &outcome) {
                warn!(job, run, "cannot record the run: {e}");
            }
        }
    }
}

/// Spawns a loop of the scheduler that must never stop: when it panics it is started again
/// after a pause; when it returns (shutdown) it stays ended.
pub fn spawn_loop<F, Fut>(d: &Arc<Daemon>, job: &str, task: &'static str, make: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (d, job) = (Arc::clone(d), job.to_string());
    tokio::spawn(async move {
        while catch(&d, &job, task, make()).await.is_err() {
            if d.shutting_down() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            warn!(job, task, "started again after a panic");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_read_from_either_payload() {
        let s: Box<dyn Any + Send> = Box::new("static");
        assert_eq!(message(s.as_ref()), "static");
        let s: Box<dyn Any + Send> = Box::new(String::from("owned"));
        assert_eq!(message(s.as_ref()), "owned");
        let s: Box<dyn Any + Send> = Box::new(7_u8);
        assert_eq!(message(s.as_ref()), "a panic without a message");
    }
}
