//! The timetable: one task per job starts its backups on time (never two at once: a slot
//! that finds the previous run still going is skipped), one per drill schedule, and one
//! that watches staleness and raises `stale` and `recovered` alerts.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tracing::{info, warn};

use crate::alerts::{Alert, Event};
use crate::catalog::Operation;
use crate::runner::{StartError, drill_run, start_backup};
use crate::schedule::{first_due, jitter_delay};
use crate::state::{Alarm, Daemon, JobState, lock};

/// Starts every scheduling task; one that panics is started again (see [`crate::supervise`]).
pub fn start(d: &Arc<Daemon>) {
    crate::replica::start(d);
    for (name, state) in &d.jobs {
        // A replica job's replicator takes its base snapshots itself.
        if state.job().replica.is_none() {
            let (d2, name2, state2) = (Arc::clone(d), name.clone(), Arc::clone(state));
            crate::supervise::spawn_loop(d, name, "scheduler", move || {
                backup_loop(Arc::clone(&d2), name2.clone(), Arc::clone(&state2))
            });
        }
        // Always started: a drill schedule may come with a configuration reload.
        let (d2, state2) = (Arc::clone(d), Arc::clone(state));
        crate::supervise::spawn_loop(d, name, "drill scheduler", move || {
            drill_loop(Arc::clone(&d2), Arc::clone(&state2))
        });
    }
    let d2 = Arc::clone(d);
    crate::supervise::spawn_loop(d, crate::supervise::SERVICE, "staleness check", move || {
        stale_loop(Arc::clone(&d2))
    });
    if let Some(every) = crate::notify::watchdog_interval() {
        let d2 = Arc::clone(d);
        crate::supervise::spawn_loop(d, crate::supervise::SERVICE, "systemd watchdog", move || {
            watchdog_loop(Arc::clone(&d2), every)
        });
    }
}

/// Pings systemd's watchdog while the scheduler's runtime runs its timers and the run catalog
/// answers; when either hangs the pings stop and systemd restarts the service. Goes on
/// through a shutdown, which `TimeoutStopSec` bounds instead.
async fn watchdog_loop(d: Arc<Daemon>, every: Duration) {
    loop {
        match d.catalog.last_started("", Operation::Backup) {
            Ok(_) => {
                crate::notify::notify("WATCHDOG=1");
            }
            Err(e) => warn!("run catalog not answering, systemd watchdog not pinged: {e}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Sleeps until `until` (UTC); returns false when a shutdown or a settings change came first.
async fn sleep_until(
    d: &Daemon,
    state: &JobState,
    until: chrono::DateTime<Utc>,
    extra: Duration,
) -> bool {
    let wait = (until - Utc::now()).to_std().unwrap_or_default() + extra;
    let mut shutdown = d.shutdown.subscribe();
    tokio::select! {
        () = tokio::time::sleep(wait) => !d.shutting_down(),
        _ = shutdown.wait_for(|s| *s) => false,
        () = state.changed.notified() => false,
    }
}

async fn backup_loop(d: Arc<Daemon>, name: String, state: Arc<JobState>) {
    let last = d.catalog.last_started(&name, Operation::Backup).unwrap_or_else(|e| {
        warn!(job = %name, "cannot read the last run: {e}");
        None
    });
    let mut due = first_due(&state.job().schedule, last, Utc::now());
    let mut trigger = if due.is_some_and(|t| t <= Utc::now()) { "catch-up" } else { "schedule" };
    if trigger == "catch-up" {
        info!(job = %name, "a run was missed while lifeboatd was down: running once now");
    }
    loop {
        let job = state.job();
        let Some(at) = due else {
            *lock(&state.next_run) = None;
            info!(job = %name, "schedule never fires again");
            if !sleep_until(&d, &state, Utc::now() + chrono::Duration::days(3650), Duration::ZERO)
                .await
                && d.shutting_down()
            {
                return;
            }
            due = job.schedule.next_after(Utc::now());
            continue;
        };
        let jitter = if trigger == "catch-up" { Duration::ZERO } else { jitter_delay(job.jitter) };
        *lock(&state.next_run) = chrono::Duration::from_std(jitter)
            .ok()
            .and_then(|j| at.checked_add_signed(j))
            .or(Some(at));
        if !sleep_until(&d, &state, at, jitter).await {
            if d.shutting_down() {
                return;
            }
            // Settings changed: recompute from now with the new schedule.
            due = state.job().schedule.next_after(Utc::now());
            trigger = "schedule";
            continue;
        }
        match start_backup(&d, &name, trigger) {
            Ok(_) => {}
            Err(StartError::AlreadyRunning { run, .. }) => {
                warn!(job = %name, run, "previous run still going: this slot is skipped");
            }
            Err(StartError::ShuttingDown) => return,
            Err(e) => warn!(job = %name, "backup not started: {e}"),
        }
        // Continue from now: slots that passed while this one waited are not run again.
        due = job.schedule.next_after(Utc::now().max(at));
        trigger = "schedule";
    }
}

async fn drill_loop(d: Arc<Daemon>, state: Arc<JobState>) {
    loop {
        let job = state.job();
        let last = d.catalog.last_started(&job.name, Operation::Drill).ok().flatten();
        // No drill schedule (or one that never fires again): wait for a settings change.
        let due = job.drill.as_ref().and_then(|schedule| first_due(schedule, last, Utc::now()));
        *lock(&state.next_drill) = due;
        let at = due.unwrap_or_else(|| Utc::now() + chrono::Duration::days(3650));
        if !sleep_until(&d, &state, at, Duration::ZERO).await {
            if d.shutting_down() {
                return;
            }
            continue;
        }
        // Among the service's tasks, so a graceful shutdown waits for the drill too.
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let d2 = Arc::clone(&d);
        let spawned = d.spawn_run(async move {
            drill_run(&d2, &job, "schedule").await;
            drop(done);
        });
        if spawned.is_none() {
            return;
        }
        let _ = finished.await;
    }
}

async fn stale_loop(d: Arc<Daemon>) {
    let mut shutdown = d.shutdown.subscribe();
    loop {
        let view = d.refresh_view().await;
        let now = Utc::now();
        for (name, state) in &d.jobs {
            let job = state.job();
            let snapshot = view.newest(name).map(|s| s.id().to_hex());
            match d.stale_reason(&job, &view, now) {
                Some(reason) if !lock(&state.alarms).stale => {
                    let msg = format!("job {name} is stale: {reason}");
                    d.raise(state, Alarm::Stale, Alert::new(Event::Stale, name, msg, snapshot));
                }
                Some(_) => {}
                None => {
                    d.clear(state, &[Alarm::Stale], |_| {
                        let msg = format!("job {name} is fresh again");
                        Alert::new(Event::Recovered, name, msg, snapshot)
                    });
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(d.config().stale_check) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}
