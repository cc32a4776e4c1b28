//! Running a job: backup, retention, verification, heartbeat, run log and alerts; and the
//! drills and verifications the API and the drill schedule ask for.

use std::sync::Arc;

use lifeboat_core::drill::drill;
use lifeboat_core::retention::PolicySet;
use lifeboat_core::{NoProgress, Verifier, VerifyReport};
use lifeboat_store::{BackupOptions, MemberOutcome, RepositoryVerifier, StoredSnapshot};
use tracing::{info, warn};

use crate::alerts::{Alert, Event};
use crate::catalog::{Operation, Outcome};
use crate::config::{Job, VerifyLevel};
use crate::error::DaemonError;
use crate::heartbeat;
use crate::state::{Alarm, Daemon, JobState, lock};

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No job has this name.
    #[error("no job named {0:?}")]
    UnknownJob(String),
    /// The job is running; the id is that run's.
    #[error("job {job:?} is already running (run {run})")]
    AlreadyRunning {
        /// The job.
        job: String,
        /// The run in progress.
        run: i64,
    },
    /// The service is shutting down.
    #[error("lifeboatd is shutting down")]
    ShuttingDown,
    /// The run could not be recorded.
    #[error(transparent)]
    Catalog(#[from] DaemonError),
}

/// Starts a backup of `name` in the background; returns its run id. Refuses when one is
/// already running, so a job never runs twice at once.
///
/// # Errors
/// [`StartError`].
pub fn start_backup(d: &Arc<Daemon>, name: &str, trigger: &str) -> Result<i64, StartError> {
    let state = d.jobs.get(name).cloned().ok_or_else(|| StartError::UnknownJob(name.into()))?;
    if d.shutting_down() {
        return Err(StartError::ShuttingDown);
    }
    let run = {
        let mut running = lock(&state.running);
        if let Some(run) = *running {
            return Err(StartError::AlreadyRunning { job: name.into(), run });
        }
        let run = d.catalog.start(name, Operation::Backup, trigger)?;
        *running = Some(run);
        run
    };
    info!(job = name, run, trigger, "backup started");
    let (d2, state2) = (Arc::clone(d), Arc::clone(&state));
    let name2 = name.to_string();
    let spawned = d.spawn_run(async move {
        // Frees the job however its task ends: finished, panicked or aborted.
        let _slot = ClearRunning(&state2);
        crate::supervise::watch_run(&d2, &name2, "backup", run, backup_run(&d2, &state2, run))
            .await;
    });
    if spawned.is_none() {
        *lock(&state.running) = None;
        let outcome = Outcome {
            error: Some(crate::catalog::INTERRUPTED.into()),
            reason: Some("interrupted"),
            ..Outcome::default()
        };
        let _ = d.catalog.finish(run, &outcome);
        return Err(StartError::ShuttingDown);
    }
    Ok(run)
}

/// Clears a job's `running` mark when dropped.
struct ClearRunning<'a>(&'a JobState);

impl Drop for ClearRunning<'_> {
    fn drop(&mut self) {
        *lock(&self.0.running) = None;
    }
}

/// A failed step: which alert it raises and why.
struct Failure {
    event: Event,
    message: String,
    snapshot: Option<String>,
    /// The run's failure reason (see [`Outcome::reason`]).
    reason: &'static str,
}

/// What a successful backup run made.
struct Captured {
    /// The snapshot (the last member's, for a selection).
    snap: StoredSnapshot,
    /// Notes for the run log.
    notes: Vec<String>,
    /// How long the verifications after it took, when the job verifies.
    verify: Option<std::time::Duration>,
}

async fn backup_run(d: &Arc<Daemon>, state: &JobState, run: i64) {
    let job = state.job();
    let _slot = d.slot(&job.name, "backup").await;
    let limit = d.config().run_timeout;
    let result = crate::supervise::bounded(d, &job.name, "backup", limit, backup_steps(d, &job))
        .await
        .unwrap_or_else(|why| {
            Err(Failure {
                event: Event::BackupFailed,
                message: format!("backup of job {} failed: {why}", job.name),
                snapshot: None,
                reason: why.reason,
            })
        });
    let outcome = match &result {
        Ok(Captured { snap, notes, verify }) => {
            let m = snap.manifest();
            info!(job = %job.name, run, snapshot = %snap.id().short(), "backup completed");
            Outcome {
                snapshot: Some(snap.id().to_hex()),
                size: Some(m.size),
                stored: Some(m.stored),
                detail: (!notes.is_empty()).then(|| notes.join("; ")),
                verify_ms: verify.map(|t| t.as_millis().min(u128::from(u64::MAX)) as u64),
                ..Outcome::default()
            }
        }
        Err(f) => Outcome {
            snapshot: f.snapshot.clone(),
            error: Some(f.message.clone()),
            reason: Some(f.reason),
            ..Outcome::default()
        },
    };
    if let Err(e) = d.catalog.finish(run, &outcome) {
        warn!(job = %job.name, run, "cannot record the run: {e}");
    }
    let view = d.refresh_view().await;
    match result {
        Ok(Captured { snap, .. }) => {
            // The new snapshot also ends a stale streak (the staleness check would only see
            // it later and send a second `recovered`), and a passed verification a failed one.
            let mut cleared = vec![Alarm::Failing];
            if d.stale_reason(&job, &view, chrono::Utc::now()).is_none() {
                cleared.push(Alarm::Stale);
            }
            if job.verify.is_some() {
                cleared.push(Alarm::Verify);
            }
            d.clear(state, &cleared, |raised| {
                let what = if raised.contains(&Alarm::Failing) {
                    "backs up again"
                } else if raised.contains(&Alarm::Stale) {
                    "is fresh again"
                } else {
                    "verifies again"
                };
                let msg = format!("job {} {what}: snapshot {}", job.name, snap.id().short());
                Alert::new(Event::Recovered, &job.name, msg, Some(snap.id().to_hex()))
            });
        }
        // One alert per failing streak, not one per slot; `recovered` ends the streak.
        Err(f) => {
            d.raise(state, Alarm::Failing, Alert::new(f.event, &job.name, f.message, f.snapshot));
        }
    }
}

/// Backs up every member of the job's target (one, or each container a label selects, as
/// snapshot `JOB/MEMBER`), going on past a member's failure; fails at the end naming every
/// member that failed.
async fn capture(d: &Daemon, job: &Job) -> Result<Vec<StoredSnapshot>, String> {
    let options = BackupOptions {
        name: Some(job.name.clone()),
        tags: job.tags.clone(),
        ..BackupOptions::default()
    };
    let outcomes = d
        .repo
        .backup_target(&d.registry, &job.spec, &options, &NoProgress, &mut |_| {})
        .await
        .map_err(|e| e.to_string())?;
    let total = outcomes.len();
    let (mut snaps, mut failures) = (Vec::new(), Vec::new());
    for MemberOutcome { member, result } in outcomes {
        match (result, member.member) {
            (Ok(snap), _) => snaps.push(snap),
            // One target: its error as it is.
            (Err(e), None) if total == 1 => return Err(e.to_string()),
            (Err(e), which) => {
                failures.push(format!("{}: {e}", which.unwrap_or(member.default_name)));
            }
        }
    }
    if failures.is_empty() {
        Ok(snaps)
    } else {
        Err(format!("{} of {total} targets failed: {}", failures.len(), failures.join("; ")))
    }
}

async fn backup_steps(d: &Daemon, job: &Job) -> Result<Captured, Failure> {
    let fail = |e: &dyn std::fmt::Display| Failure {
        event: Event::BackupFailed,
        message: format!("backup of job {} failed: {e}", job.name),
        snapshot: None,
        reason: "error",
    };
    let snaps = capture(d, job).await.map_err(|e| fail(&e))?;
    let mut notes = Vec::new();
    if snaps.len() > 1 {
        notes.push(format!("{} targets backed up", snaps.len()));
    }
    if snaps.iter().any(|s| s.manifest().unchanged) {
        let unchanged = snaps.iter().filter(|s| s.manifest().unchanged).count();
        notes.push(format!("{unchanged} unchanged, nothing stored for them"));
    }
    let mut verify = None;
    for snap in &snaps {
        if let Some(took) = check_snapshot(d, job, snap, &mut notes).await? {
            verify = Some(verify.unwrap_or_default() + took);
        }
    }
    let Some(snap) = snaps.into_iter().next_back() else {
        return Err(fail(&"nothing was backed up"));
    };
    if let Err(e) = heartbeat::beat(
        &d.config().heartbeat_dir,
        &job.name,
        snap.manifest().time,
        &snap.id().to_hex(),
    ) {
        warn!(job = %job.name, "heartbeat not written: {e}");
        notes.push(format!("heartbeat not written: {e}"));
    }
    Ok(Captured { snap, notes, verify })
}

/// Retention for the snapshot's name, then verification when the job asks for it; returns
/// how long the verification took.
async fn check_snapshot(
    d: &Daemon,
    job: &Job,
    snap: &StoredSnapshot,
    notes: &mut Vec<String>,
) -> Result<Option<std::time::Duration>, Failure> {
    let name = snap.manifest().name.clone();
    if let Some(keep) = &job.keep {
        let policies = PolicySet { default: keep.clone(), ..PolicySet::default() };
        match lifeboat_store::retention::forget(&d.repo, Some(&name), &policies, false).await {
            Ok(groups) => {
                let removed = lifeboat_store::retention::removals(&groups).len();
                if removed > 0 {
                    notes.push(format!("retention removed {removed} snapshots"));
                }
            }
            Err(e) => {
                warn!(job = %job.name, "retention failed: {e}");
                notes.push(format!("retention failed: {e}"));
            }
        }
    }
    let Some(level) = job.verify else { return Ok(None) };
    {
        let started = std::time::Instant::now();
        let report = verify_snapshot(d, snap, level == VerifyLevel::ReadData).await;
        let took = started.elapsed();
        let report = report.map_err(|e| Failure {
            event: Event::VerifyFailed,
            message: format!(
                "verification of job {} snapshot {} could not run: {e}",
                job.name,
                snap.id().short()
            ),
            snapshot: Some(snap.id().to_hex()),
            reason: "error",
        })?;
        if !report.ok() {
            return Err(Failure {
                event: Event::VerifyFailed,
                message: format!(
                    "verification of job {} snapshot {} failed: {}",
                    job.name,
                    snap.id().short(),
                    report.failures().join("; ")
                ),
                snapshot: Some(snap.id().to_hex()),
                reason: "verification",
            });
        }
        let note = format!(
            "verified ({})",
            if level == VerifyLevel::ReadData { "read-data" } else { "structure" }
        );
        if !notes.contains(&note) {
            notes.push(note);
        }
        Ok(Some(took))
    }
}

/// Verifies one snapshot: structure, or every byte with `read_data`.
///
/// # Errors
/// When the check cannot run at all (the repository is unreachable).
pub async fn verify_snapshot(
    d: &Daemon,
    snap: &StoredSnapshot,
    read_data: bool,
) -> Result<VerifyReport, DaemonError> {
    let verifier = RepositoryVerifier::new(d.repo.clone(), read_data);
    Ok(verifier.verify(snap).await?)
}

/// Verifies a snapshot for the API, recording the run and alerting on failure.
///
/// # Errors
/// When the check cannot run at all.
pub async fn verify_run(
    d: &Daemon,
    snap: &StoredSnapshot,
    read_data: bool,
) -> Result<(i64, VerifyReport), DaemonError> {
    let name = snap.manifest().name.clone();
    let run = d.catalog.start(&name, Operation::Verify, "api")?;
    let result = verify_snapshot(d, snap, read_data).await;
    let (error, reason) = match &result {
        Ok(r) if r.ok() => (None, None),
        Ok(r) => (Some(r.failures().join("; ")), Some("verification")),
        Err(e) => (Some(e.to_string()), Some("error")),
    };
    let outcome = Outcome {
        snapshot: Some(snap.id().to_hex()),
        error: error.clone(),
        reason,
        ..Outcome::default()
    };
    d.catalog.finish(run, &outcome)?;
    // The snapshot's job, when it belongs to one, carries the alarm; others only alert.
    let state = d.jobs.iter().find(|(job, _)| crate::state::belongs_to(&name, job));
    let job = state.map_or(name.as_str(), |(job, _)| job.as_str());
    match (error, state) {
        (Some(error), state) => {
            let msg =
                format!("verification of snapshot {} ({name}) failed: {error}", snap.id().short());
            let alert = Alert::new(Event::VerifyFailed, job, msg, Some(snap.id().to_hex()));
            match state {
                Some((_, state)) => {
                    d.raise(state, Alarm::Verify, alert);
                }
                None => d.alerts.send(alert),
            }
        }
        (None, Some((_, state))) => {
            d.clear(state, &[Alarm::Verify], |_| {
                let msg = format!("job {job}: snapshot {} verifies again", snap.id().short());
                Alert::new(Event::Recovered, job, msg, Some(snap.id().to_hex()))
            });
        }
        (None, None) => {}
    }
    Ok((run, result?))
}

/// Drills the newest snapshot of `job`: restores it into a scratch target, runs its checks
/// and objectives, records the run and alerts on failure.
pub async fn drill_run(d: &Daemon, job: &Job, trigger: &str) {
    let _slot = d.slot(&job.name, "drill").await;
    let run = match d.catalog.start(&job.name, Operation::Drill, trigger) {
        Ok(run) => run,
        Err(e) => {
            warn!(job = %job.name, "drill not started: {e}");
            return;
        }
    };
    crate::supervise::watch_run(d, &job.name, "drill", run, drill_steps(d, job, run)).await;
}

/// The drill options, with `archive-fetch` filled in when the file did not give it and a
/// `lifeboat` binary sits beside this one: drills of PostgreSQL base backups then recover
/// from the WAL archive to its newest file, as `lifeboat drill` does (without it, to the
/// base backup's end). The key comes from `password_file` or `password_command`.
fn with_archive_fetch(config: &crate::config::Config) -> lifeboat_core::backend::Options {
    use lifeboat_core::backend::OptionSpec;
    let mut options = config.drill_options.clone();
    if options.value(OptionSpec::ARCHIVE_FETCH).is_some() {
        return options;
    }
    let Some(lifeboat) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("lifeboat")))
        .filter(|path| path.is_file())
    else {
        return options;
    };
    let flags = match &config.password {
        Some(crate::config::PasswordSource::File(path)) => vec![
            "--password-file".to_string(),
            std::path::absolute(path).unwrap_or_else(|_| path.clone()).display().to_string(),
        ],
        Some(crate::config::PasswordSource::Command(command)) => {
            vec!["--password-command".to_string(), command.clone()]
        }
        None => Vec::new(),
    };
    let url = if config.repository.contains("://") {
        config.repository.clone()
    } else {
        let path = std::path::Path::new(&config.repository);
        std::path::absolute(path)
            .map_or_else(|_| config.repository.clone(), |p| p.display().to_string())
    };
    options.push(
        OptionSpec::ARCHIVE_FETCH,
        lifeboat_core::wal::fetch_command(&lifeboat, &url, &flags),
    );
    options
}

async fn drill_steps(d: &Daemon, job: &Job, run: i64) {
    let view = d.refresh_view().await;
    let config = d.config();
    let work = async {
        let snap = view.newest(&job.name).cloned().ok_or_else(|| {
            lifeboat_core::Error::SnapshotNotFound { id: format!("latest of {:?}", job.name) }
        })?;
        let options = with_archive_fetch(&config);
        let kind = snap.manifest().kind.clone();
        let scratch = d.registry.drill(&kind, &options)?;
        // A replica job drills a random second of the stretch where every commit is kept.
        if let (Some(replica), Some(backend)) = (&job.replica, d.registry.find(&kind))
            && let Some((point, reached)) = d
                .repo
                .recent_point(backend, &job.name, replica.compaction.keep_commits)
                .await
                .map_err(lifeboat_core::Error::from)?
        {
            info!(job = %job.name, txid = reached.txid, time = %reached.time, "drilling a point of the replica");
            return drill(scratch.as_ref(), point.as_ref(), &job.expect).await;
        }
        let result = drill(scratch.as_ref(), &snap, &job.expect).await?;
        Ok::<_, lifeboat_core::Error>(result)
    };
    let result = crate::supervise::bounded(d, &job.name, "drill", config.run_timeout, work)
        .await
        .and_then(|r| {
            r.map_err(|e| crate::supervise::Stopped {
                reason: "error",
                message: drill_error(d, &e),
            })
        });
    let (outcome, failure) = match result {
        Ok(r) if !r.failed() => (
            Outcome {
                snapshot: Some(r.snapshot.clone()),
                size: Some(r.bytes),
                rto_ms: r
                    .skipped
                    .is_none()
                    .then(|| (r.rto_seconds * 1000.0).round().max(0.0) as u64),
                detail: Some(match &r.skipped {
                    Some(reason) => format!("skipped: {reason}"),
                    None => format!("RTO {:.1} s, RPO {:.0} s", r.rto_seconds, r.rpo_seconds),
                }),
                ..Outcome::default()
            },
            None,
        ),
        Ok(r) => {
            let failed: Vec<String> = r
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            let error = failed.join("; ");
            (
                Outcome {
                    snapshot: Some(r.snapshot.clone()),
                    error: Some(error.clone()),
                    reason: Some("check"),
                    rto_ms: Some((r.rto_seconds * 1000.0).round().max(0.0) as u64),
                    ..Outcome::default()
                },
                Some((error, Some(r.snapshot))),
            )
        }
        Err(e) => (
            Outcome {
                error: Some(e.message.clone()),
                reason: Some(e.reason),
                ..Outcome::default()
            },
            Some((e.message, None)),
        ),
    };
    if let Err(e) = d.catalog.finish(run, &outcome) {
        warn!(job = %job.name, run, "cannot record the drill: {e}");
    }
    let outcome_snapshot = outcome.snapshot.clone();
    let Some(state) = d.jobs.get(&job.name) else { return };
    if let Some((error, snapshot)) = failure {
        let msg = format!("drill of job {} failed: {error}", job.name);
        d.raise(state, Alarm::Drill, Alert::new(Event::DrillFailed, &job.name, msg, snapshot));
    } else {
        info!(job = %job.name, run, "drill passed");
        d.clear(state, &[Alarm::Drill], |_| {
            let msg = format!("job {}: drills pass again", job.name);
            Alert::new(Event::Recovered, &job.name, msg, outcome_snapshot)
        });
    }
}

/// A drill's error for the run log; an option the drill lacks is named as the configuration
/// gives it.
fn drill_error(d: &Daemon, e: &lifeboat_core::Error) -> String {
    let lifeboat_core::Error::MissingOption { option, .. } = e else { return e.to_string() };
    let Some(spec) = d.registry.drill_options().into_iter().find(|s| s.name == option) else {
        return e.to_string();
    };
    let env = spec.env.map(|var| format!(" or {var}")).unwrap_or_default();
    format!("{e} (set `{}` in the configuration{env})", spec.config_key())
}
