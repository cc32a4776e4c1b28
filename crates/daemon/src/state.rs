//! What the running service knows: configuration, repository, run catalog, alert queue, each
//! job's live state, and a cached view of the repository for health and metrics.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use lifeboat_core::Registry;
use lifeboat_store::format::DATA_PREFIX;
use lifeboat_store::{Repository, StoredSnapshot};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, SemaphorePermit, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::alerts::{Alert, Alerts};
use crate::catalog::{Catalog, FAILED, Run};
use crate::config::{Config, Job};

/// Reads a lock even when a panicking holder poisoned it: the data is plain state.
pub(crate) fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Which alerts are raised for a job, so each is sent once and followed by `recovered`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alarms {
    /// Its last backup failed.
    pub failing: bool,
    /// Its newest snapshot is older than its RPO.
    pub stale: bool,
    /// Its last drill failed.
    pub drill: bool,
    /// The last verification through the API of one of its snapshots failed.
    pub verify: bool,
}

/// One of a job's alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    /// The last backup failed.
    Failing,
    /// The newest snapshot is older than the RPO.
    Stale,
    /// The last drill failed.
    Drill,
    /// The last verification through the API failed.
    Verify,
}

impl Alarms {
    fn flag(&mut self, alarm: Alarm) -> &mut bool {
        match alarm {
            Alarm::Failing => &mut self.failing,
            Alarm::Stale => &mut self.stale,
            Alarm::Drill => &mut self.drill,
            Alarm::Verify => &mut self.verify,
        }
    }

    /// Whether any alarm is raised.
    pub fn any(&self) -> bool {
        self.failing || self.stale || self.drill || self.verify
    }
}

/// One job's live state.
#[derive(Debug)]
pub struct JobState {
    /// The job's settings (schedule and retention change through `PUT /api/config`).
    pub job: RwLock<Job>,
    /// The run in progress, if any: never two at once.
    pub running: Mutex<Option<i64>>,
    /// Wakes the job's scheduler when its settings change.
    pub changed: Notify,
    /// Raised alerts.
    pub alarms: Mutex<Alarms>,
    /// When the scheduler will next start a backup, as it computed it (jitter included).
    pub next_run: Mutex<Option<DateTime<Utc>>>,
    /// When the scheduler will next start a drill.
    pub next_drill: Mutex<Option<DateTime<Utc>>>,
    /// A `sqlite-replica` job's replicator, as it last reported.
    pub replica: Mutex<crate::replica::ReplicaHealth>,
}

impl JobState {
    /// A job's state before its first run.
    pub fn new(job: Job) -> Self {
        JobState {
            job: RwLock::new(job),
            running: Mutex::new(None),
            changed: Notify::new(),
            alarms: Mutex::new(Alarms::default()),
            next_run: Mutex::new(None),
            next_drill: Mutex::new(None),
            replica: Mutex::new(crate::replica::ReplicaHealth::default()),
        }
    }

    /// A copy of the current settings.
    pub fn job(&self) -> Job {
        read(&self.job)
    }

    /// When the next backup is due: as the scheduler planned it, else (no scheduler running,
    /// or not yet) by the schedule from `now`.
    pub fn next_run(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        lock(&self.next_run).or_else(|| self.job().schedule.next_after(now))
    }

    /// When the next drill is due, as [`JobState::next_run`]; `None` without a drill schedule.
    pub fn next_drill(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let job = self.job();
        let drill = job.drill.as_ref()?;
        lock(&self.next_drill).or_else(|| drill.next_after(now))
    }
}

/// The repository as last listed.
#[derive(Debug, Clone, Default)]
pub struct RepoView {
    /// Every snapshot, oldest first.
    pub snapshots: Vec<StoredSnapshot>,
    /// Bytes in pack objects.
    pub pack_bytes: u64,
    /// When it was listed.
    pub listed: Option<DateTime<Utc>>,
    /// Why the last listing failed, if it did.
    pub error: Option<String>,
    /// When the newest WAL file was archived, per name with base backups: such a name is as
    /// fresh as its archive.
    pub wal_newest: BTreeMap<String, DateTime<Utc>>,
}

impl RepoView {
    /// The newest backup of job `name`. Safety snapshots taken before restores never count:
    /// they would make a job that stopped backing up look fresh.
    pub fn newest(&self, name: &str) -> Option<&StoredSnapshot> {
        self.snapshots
            .iter()
            .rfind(|s| !s.manifest().is_safety() && belongs_to(&s.manifest().name, name))
    }
}

/// The running service.
pub struct Daemon {
    /// The configuration as loaded or last reloaded (jobs' live settings are in
    /// [`Daemon::jobs`]); [`Daemon::config`] reads it.
    pub settings: RwLock<Arc<Config>>,
    /// The repository.
    pub repo: Repository,
    /// The backends jobs, drills and restores use, by kind.
    pub registry: Registry,
    /// The run log.
    pub catalog: Catalog,
    /// The alert queue.
    pub alerts: Alerts,
    /// Jobs by name.
    pub jobs: BTreeMap<String, Arc<JobState>>,
    /// When the service started.
    pub started: DateTime<Utc>,
    /// The cached repository listing.
    pub view: RwLock<Arc<RepoView>>,
    /// Runs in progress, for shutdown.
    pub tasks: Mutex<JoinSet<()>>,
    /// Set once a shutdown begins.
    pub shutdown: watch::Sender<bool>,
    /// One permit per backup or drill that may run at once (`max_running`).
    pub slots: Semaphore,
    /// Panics caught in the service's tasks since it started.
    pub panics: AtomicU64,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").field("config", &self.config()).finish_non_exhaustive()
    }
}

/// One job in `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct JobHealth {
    /// ok, failed, stale or pending (no backup yet, within its RPO).
    pub status: &'static str,
    /// Whether a backup is running now.
    pub running: bool,
    /// The newest snapshot of the job in the repository.
    pub newest_snapshot: Option<String>,
    /// When it was taken.
    pub newest_time: Option<DateTime<Utc>>,
    /// Its age.
    pub age_seconds: Option<u64>,
    /// The RPO it is held to.
    pub rpo_seconds: u64,
    /// Why it is stale, when it is.
    pub stale_reason: Option<String>,
    /// The last finished backup run.
    pub last_run: Option<Run>,
    /// When the next scheduled backup starts.
    pub next_run: Option<DateTime<Utc>>,
    /// When the next scheduled drill starts (jobs with a `drill` schedule).
    pub next_drill: Option<DateTime<Utc>>,
    /// A `sqlite-replica` job's replicator: running, its last status, its last failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<crate::replica::ReplicaHealth>,
}

/// `/health` with a token; without one only its `status` is shown.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// ok, or degraded when any job is stale or its last backup failed.
    pub status: &'static str,
    /// Per job.
    pub backups: BTreeMap<String, JobHealth>,
    /// Repository reachable at the last listing.
    pub repository: &'static str,
    /// Service version.
    pub version: &'static str,
}

impl Daemon {
    /// Raises `alarm` on the job and sends `alert` when it was not raised yet: one alert per
    /// streak, however many runs fail in it. Returns whether it was sent.
    pub fn raise(&self, state: &JobState, alarm: Alarm, alert: Alert) -> bool {
        let was = std::mem::replace(lock(&state.alarms).flag(alarm), true);
        if was {
            warn!(job = %alert.job, "still {:?}: {}", alarm, alert.message);
        } else {
            self.alerts.send(alert);
        }
        !was
    }

    /// Clears `alarms` on the job. When one of them was raised and no alarm of the job is
    /// left, `recovered` (given the alarms that were raised) makes the alert, sent once: a
    /// backup that ends a failing and a stale streak together is one recovery, not two.
    /// Returns whether it was sent.
    pub fn clear(
        &self,
        state: &JobState,
        alarms: &[Alarm],
        recovered: impl FnOnce(&[Alarm]) -> Alert,
    ) -> bool {
        let (cleared, left) = {
            let mut raised = lock(&state.alarms);
            let cleared: Vec<Alarm> = alarms
                .iter()
                .copied()
                .filter(|alarm| std::mem::replace(raised.flag(*alarm), false))
                .collect();
            (cleared, raised.any())
        };
        let send = !cleared.is_empty() && !left;
        if send {
            self.alerts.send(recovered(&cleared));
        }
        send
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        read(&self.settings)
    }

    /// Spawns a backup or drill among the service's tasks (a graceful shutdown waits for
    /// them), after dropping the tasks that have finished so the set holds only live ones.
    /// `None` when a shutdown has begun.
    pub fn spawn_run(
        &self,
        run: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Option<tokio::task::AbortHandle> {
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        if self.shutting_down() {
            return None;
        }
        Some(tasks.spawn(run))
    }

    /// Waits for a free slot for a backup or drill of `job` (`what`); the slot is free again
    /// when the permit drops. `None` only if the slots were closed, which never happens.
    pub async fn slot(&self, job: &str, what: &str) -> Option<SemaphorePermit<'_>> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Some(permit);
        }
        info!(job, what, max_running = self.config().max_running, "waiting for a free slot");
        self.slots.acquire().await.ok()
    }

    /// The cached repository view.
    pub fn view(&self) -> Arc<RepoView> {
        read(&self.view)
    }

    /// Lists the repository again.
    pub async fn refresh_view(&self) -> Arc<RepoView> {
        let listed = async {
            let snapshots = self.repo.snapshots().await?;
            let (pack_bytes, _) = self.repo.usage(DATA_PREFIX).await?;
            Ok::<_, lifeboat_store::StoreError>((snapshots, pack_bytes))
        }
        .await;
        let view = match listed {
            Ok((snapshots, pack_bytes)) => {
                let wal_newest = self.wal_newest(&snapshots).await;
                RepoView {
                    snapshots,
                    pack_bytes,
                    listed: Some(Utc::now()),
                    error: None,
                    wal_newest,
                }
            }
            Err(e) => {
                warn!("cannot list the repository: {e}");
                let old = self.view();
                RepoView { error: Some(e.to_string()), ..(*old).clone() }
            }
        };
        let view = Arc::new(view);
        match self.view.write() {
            Ok(mut g) => *g = Arc::clone(&view),
            Err(p) => *p.into_inner() = Arc::clone(&view),
        }
        view
    }

    /// When each name with base backups last archived a WAL file; when an archive cannot
    /// be listed, none (base backups alone then count, and may raise a stale alert).
    async fn wal_newest(&self, snapshots: &[StoredSnapshot]) -> BTreeMap<String, DateTime<Utc>> {
        self.repo.wal_newest_by_name(snapshots).await.unwrap_or_else(|e| {
            warn!("cannot list the WAL archive: {e}");
            BTreeMap::new()
        })
    }

    /// Whether a shutdown has begun.
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The freshness of `job` as of `now`: its reason when stale.
    pub fn stale_reason(&self, job: &Job, view: &RepoView, now: DateTime<Utc>) -> Option<String> {
        let rpo = job.rpo(now);
        let limits = BTreeMap::from([(job.name.clone(), rpo)]);
        let newest: Vec<StoredSnapshot> = view.newest(&job.name).cloned().into_iter().collect();
        let f =
            lifeboat_store::freshness::freshness_with_wal(&newest, &view.wal_newest, &limits, now)
                .pop()?;
        // A job that has not had the time to make its first snapshot is pending, not stale.
        let young = (now - self.started).to_std().unwrap_or_default() <= rpo;
        (f.stale && !(f.newest.is_none() && young)).then_some(f.reason)
    }

    /// The health of every job.
    pub fn health(&self) -> Health {
        let view = self.view();
        let now = Utc::now();
        let mut backups = BTreeMap::new();
        for (name, state) in &self.jobs {
            let job = state.job();
            let newest = view.newest(name);
            let last_run = self.catalog.last_backup(name).ok().flatten();
            let stale_reason = self.stale_reason(&job, &view, now);
            let replica = job.replica.as_ref().map(|_| lock(&state.replica).clone());
            let failed = last_run.as_ref().is_some_and(|r| r.status == FAILED)
                || replica.as_ref().is_some_and(|r| !r.running && r.error.is_some());
            let status = if failed {
                "failed"
            } else if stale_reason.is_some() {
                "stale"
            } else if newest.is_none()
                && replica
                    .as_ref()
                    .is_none_or(|r| r.status.as_ref().is_none_or(|s| s.snapshots == 0))
            {
                "pending"
            } else {
                "ok"
            };
            backups.insert(
                name.clone(),
                JobHealth {
                    status,
                    running: lock(&state.running).is_some(),
                    newest_snapshot: newest.map(|s| s.id().to_hex()),
                    newest_time: newest.map(|s| s.manifest().time),
                    age_seconds: newest
                        .map(|s| (now - s.manifest().time).num_seconds().max(0) as u64),
                    rpo_seconds: job.rpo(now).as_secs(),
                    stale_reason,
                    last_run,
                    next_run: state.next_run(now),
                    next_drill: state.next_drill(now),
                    replica,
                },
            );
        }
        let degraded = backups.values().any(|b| b.status == "failed" || b.status == "stale");
        Health {
            status: if degraded { "degraded" } else { "ok" },
            backups,
            repository: if view.error.is_some() { "unreachable" } else { "ok" },
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// Whether snapshot `name` belongs to job `job`: its own name, or `JOB/MEMBER` for the
/// members of a selection (the containers a label selector matched).
pub fn belongs_to(name: &str, job: &str) -> bool {
    name == job || name.strip_prefix(job).is_some_and(|rest| rest.starts_with('/'))
}
