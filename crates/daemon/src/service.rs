//! Starting and stopping the service.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use lifeboat_core::Registry;
use lifeboat_store::{Repository, StoreError};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::alerts::Alerts;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::DaemonError;
use crate::state::{Daemon, JobState, RepoView, lock};

/// The run catalog's file inside the state folder.
pub const CATALOG_FILE: &str = "lifeboatd.db";

/// Runs the service until SIGTERM or ctrl-c, then stops it gracefully. `registry` holds the
/// backends its jobs, drills and restores use (the one `config` was parsed with).
///
/// # Errors
/// When it cannot start: state folder, catalog, repository, listening address.
pub async fn run(config: Config, registry: Registry) -> Result<(), DaemonError> {
    let (d, listener) = start(config, registry).await?;
    let d2 = Arc::clone(&d);
    crate::supervise::spawn_loop(&d, crate::supervise::SERVICE, "reload", move || {
        reload_on_sighup(Arc::clone(&d2))
    });
    // The last resort behind "SIGTERM always ends the process": a task stuck in blocking
    // code ignores being aborted, so past the grace and the wait for a swap, exit anyway.
    let limit = d.config().shutdown_grace + Duration::from_secs(90);
    let stop = async move {
        shutdown_signal().await;
        let _ = std::thread::Builder::new().name("shutdown-deadline".into()).spawn(move || {
            std::thread::sleep(limit);
            error!("shutdown still not done after {limit:?}: exiting now");
            std::process::exit(1);
        });
    };
    serve(d, listener, stop).await
}

/// Raises the soft limit of open files to the hard limit: every API connection, pack and
/// database file is a descriptor, and the usual soft limit of 1024 is soon reached.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // None is unlimited; a soft limit already there, or an unlimited hard one (which the
    // kernel would refuse as a soft limit), is left alone.
    let (Some(current), Some(maximum)) = (limit.current, limit.maximum) else { return };
    if current >= maximum {
        return;
    }
    let raised = rustix::process::Rlimit { current: Some(maximum), maximum: Some(maximum) };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => info!(from = current, to = maximum, "raised the open files limit"),
        Err(e) => warn!("cannot raise the open files limit: {e}"),
    }
}

/// Prepares everything and binds the address, without serving yet.
///
/// # Errors
/// As [`run`].
pub async fn start(
    config: Config,
    registry: Registry,
) -> Result<(Arc<Daemon>, tokio::net::TcpListener), DaemonError> {
    let listen = config.listen;
    let d = open(config, registry).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| DaemonError::Listen { addr: listen, source })?;
    Ok((d, listener))
}

/// Prepares everything but the HTTP API: the state folder, the run catalog, the repository
/// (created when missing and `create_repository` allows), each job's state. Then
/// [`serve`] runs the whole service, or [`run_scheduler`] only the scheduler.
///
/// # Errors
/// When the state folder, the catalog or the repository cannot be opened.
pub async fn open(config: Config, registry: Registry) -> Result<Arc<Daemon>, DaemonError> {
    raise_open_files_limit();
    std::fs::create_dir_all(&config.state_dir).map_err(|source| DaemonError::Io {
        action: "creating",
        path: config.state_dir.clone(),
        source,
    })?;
    let catalog_path = config.state_dir.join(CATALOG_FILE);
    info!(
        state_dir = %config.state_dir.display(),
        catalog = %catalog_path.display(),
        heartbeats = %config.heartbeat_dir.display(),
        "state folder in use"
    );
    let (catalog, interrupted) = Catalog::open(&catalog_path)?;
    if interrupted > 0 {
        warn!(
            "{interrupted} runs were in progress when lifeboatd last stopped: marked failed (interrupted)"
        );
    }
    let repo = open_repository(&config).await?;
    let jobs = config
        .jobs
        .iter()
        .map(|job| (job.name.clone(), Arc::new(JobState::new(job.clone()))))
        .collect::<BTreeMap<_, _>>();
    let alerts = Alerts::start(config.webhooks.clone(), config.webhook_attempts);
    let (shutdown, _) = watch::channel(false);
    let max_running = config.max_running;
    let d = Arc::new(Daemon {
        settings: RwLock::new(Arc::new(config)),
        repo,
        registry,
        catalog,
        alerts,
        jobs,
        started: Utc::now(),
        view: RwLock::new(Arc::new(RepoView::default())),
        tasks: Mutex::new(JoinSet::new()),
        shutdown,
        slots: tokio::sync::Semaphore::new(max_running),
        panics: AtomicU64::new(0),
    });
    // A job whose last backup or drill failed starts with its alarm raised, so its next
    // success sends `recovered`.
    for (name, state) in &d.jobs {
        let failed = |operation| {
            d.catalog
                .last_finished(name, operation)
                .ok()
                .flatten()
                .is_some_and(|r| r.status == crate::catalog::FAILED)
        };
        let mut alarms = lock(&state.alarms);
        alarms.failing = failed(crate::catalog::Operation::Backup);
        alarms.drill = failed(crate::catalog::Operation::Drill);
    }
    crate::settings::restore_stored(&d);
    d.refresh_view().await;
    Ok(d)
}

/// Opens the repository, with the configured password (read now, never logged) when there
/// is one; creates it (encrypted when there is a password) when missing and allowed.
async fn open_repository(config: &Config) -> Result<Repository, DaemonError> {
    let shown = crate::config::redact(&config.repository);
    let password = config.password.as_ref().map(crate::config::PasswordSource::read).transpose()?;
    let repo = match Repository::open_with(&config.repository, password.as_ref()).await {
        Err(StoreError::NotInitialised { .. }) if config.create_repository => {
            let encrypted = password.is_some();
            info!(repository = %shown, encrypted, "no repository there yet: creating it");
            Repository::open_or_init_with(&config.repository, password.as_ref()).await
        }
        other => other,
    };
    let repo = match repo {
        Err(StoreError::KeyRequired { .. }) => {
            return Err(DaemonError::PasswordRequired { repository: shown });
        }
        other => other?,
    };
    // As the CLI: a password means an encrypted repository is expected, and a plaintext one
    // is a mistake or a config switched to `none` by someone who can write to the store.
    if password.is_some() && !repo.is_encrypted() {
        return Err(DaemonError::NotEncrypted { repository: shown });
    }
    Ok(repo)
}

/// Runs the scheduler without the HTTP API until `stop` completes: scheduled backups with
/// their retention and verification, drills, staleness alerts, heartbeats and webhooks, as
/// [`serve`] does, for a service of its own that embeds them. Then it stops as [`serve`]
/// does: running backups and drills get `shutdown_grace` to finish, then are aborted.
///
/// ```no_run
/// # async fn demo() -> Result<(), lifeboat_daemon::DaemonError> {
/// use lifeboat_daemon::config::{Config, ProcessEnv};
/// use lifeboat_daemon::service;
///
/// let registry = lifeboat_core::Registry::new(); // with your backends registered
/// let text = r#"
/// repository = "/var/lib/lifeboat/repo"
/// [[jobs]]
/// name = "auth"
/// kind = "sqlite"
/// target = "/data/auth.db"
/// schedule = "0 0 3 * * *"
/// keep = { daily = 14 }
/// "#;
/// let path = std::path::Path::new("nightly.toml");
/// let config = Config::parse_scheduler(text, path, &ProcessEnv, &registry)?;
/// let daemon = service::open(config, registry).await?;
/// service::run_scheduler(daemon, service::shutdown_signal()).await
/// # }
/// ```
///
/// # Errors
/// None today; kept for errors of running.
pub async fn run_scheduler(
    d: Arc<Daemon>,
    stop: impl std::future::Future<Output = ()> + Send,
) -> Result<(), DaemonError> {
    info!(jobs = d.jobs.len(), "lifeboat scheduler running");
    crate::scheduler::start(&d);
    stop.await;
    info!("shutdown requested");
    d.shutdown.send_replace(true);
    finish_runs(&d).await;
    info!("lifeboat scheduler stopped");
    Ok(())
}

/// Serves the API and runs the scheduler until `stop` completes, then shuts down: no new
/// runs, running backups and drills get `shutdown_grace` to finish, then are aborted. An aborted backup
/// never wrote its manifest (the manifest is written last), so nothing half-made is visible;
/// its run is recorded as interrupted. HTTP connections get the same grace, so the whole
/// shutdown takes at most `shutdown_grace` (plus the seconds a restore's swap in progress
/// needs to finish).
///
/// # Errors
/// None today; kept for errors of serving.
pub async fn serve(
    d: Arc<Daemon>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let addr = listener.local_addr().unwrap_or(d.config().listen);
    info!(%addr, jobs = d.jobs.len(), "lifeboatd listening");
    // Ready before the scheduler's first watchdog ping: the address is bound already.
    crate::notify::notify("READY=1");
    crate::scheduler::start(&d);
    let shutdown = d.shutdown.clone();
    let stopped = shutdown.subscribe();
    tokio::spawn(async move {
        stop.await;
        crate::notify::notify("STOPPING=1");
        info!("shutdown requested");
        shutdown.send_replace(true);
    });
    let app = crate::api::router(Arc::clone(&d));
    let grace = d.config().shutdown_grace;
    // Connections and runs get the grace at the same time, not one after the other.
    let mut stopping = d.shutdown.subscribe();
    let runs = async {
        let _ = stopping.wait_for(|s| *s).await;
        finish_runs(&d).await;
    };
    tokio::join!(crate::http::serve(Arc::clone(&d), listener, app, stopped, grace), runs);
    info!("lifeboatd stopped");
    Ok(())
}

async fn finish_runs(d: &Daemon) {
    let mut tasks = std::mem::take(&mut *lock(&d.tasks));
    // Finished runs are still in the set until joined: only the live ones count.
    while tasks.try_join_next().is_some() {}
    if tasks.is_empty() {
        return;
    }
    let grace = d.config().shutdown_grace;
    info!(running = tasks.len(), ?grace, "waiting for running backups and drills");
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(
            "backups or drills still running after the grace period: aborting them (no snapshot becomes visible)"
        );
        // Never in the middle of a swap: let one that runs finish first (they take seconds).
        let _ = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while lifeboat_core::critical::in_progress() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        match d.catalog.interrupt_all() {
            Ok(n) => warn!("{n} runs marked interrupted"),
            Err(e) => warn!("cannot mark runs interrupted: {e}"),
        }
    }
}

/// Reloads the configuration file on every SIGHUP (see [`reload`]).
async fn reload_on_sighup(d: Arc<Daemon>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                warn!("cannot listen for SIGHUP, reloads need a restart: {e}");
                return;
            }
        };
        let mut shutdown = d.shutdown.subscribe();
        loop {
            tokio::select! {
                Some(()) = hup.recv() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            crate::notify::notify("RELOADING=1");
            match reload(&d, &crate::config::ProcessEnv) {
                Ok(notes) => {
                    info!("configuration reloaded from {}", d.config().path.display());
                    for note in notes {
                        warn!("{note}");
                    }
                }
                Err(e) => error!("configuration not reloaded, the running one stays: {e}"),
            }
            crate::notify::notify("READY=1");
        }
    }
    #[cfg(not(unix))]
    let _ = d;
}

/// Reads the configuration file again and, when it is valid, applies it: the jobs' settings,
/// tokens, open endpoints, webhooks, timeouts and limits. What only a restart can change
/// (the address, the repository and its password, the state folder, `max_running`, jobs added or removed)
/// stays as it is; the answer lists it. Settings changed through `PUT /api/config` still
/// apply over the file, as at start.
///
/// # Errors
/// The file cannot be read or has problems (all listed); nothing changes then.
pub fn reload(d: &Daemon, env: &dyn crate::config::Env) -> Result<Vec<String>, DaemonError> {
    let old = d.config();
    let mut new = Config::load(&old.path, env, &d.registry)?;
    let mut notes = Vec::new();
    let mut keep = |what: &str, changed: bool| {
        if changed {
            notes.push(format!("{what}: this takes effect at the next restart"));
        }
    };
    keep("`listen` changed", new.listen != old.listen);
    keep("`repository` changed", new.repository != old.repository);
    keep("`password_file` / `password_command` changed", new.password != old.password);
    keep("`state_dir` changed", new.state_dir != old.state_dir);
    keep("`max_running` changed", new.max_running != old.max_running);
    for job in &new.jobs {
        keep(&format!("job {:?} added", job.name), !d.jobs.contains_key(&job.name));
    }
    for name in d.jobs.keys() {
        keep(&format!("job {name:?} removed"), new.job(name).is_none());
    }
    new.listen = old.listen;
    new.repository.clone_from(&old.repository);
    new.password.clone_from(&old.password);
    new.state_dir.clone_from(&old.state_dir);
    new.max_running = old.max_running;
    for job in &new.jobs {
        if let Some(state) = d.jobs.get(&job.name) {
            match state.job.write() {
                Ok(mut g) => *g = job.clone(),
                Err(p) => *p.into_inner() = job.clone(),
            }
        }
    }
    crate::settings::restore_stored(d);
    d.alerts.set_targets(new.webhooks.clone(), new.webhook_attempts);
    match d.settings.write() {
        Ok(mut g) => *g = Arc::new(new),
        Err(p) => *p.into_inner() = Arc::new(new),
    }
    for state in d.jobs.values() {
        state.changed.notify_waiters();
    }
    Ok(notes)
}

/// Completes on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!("cannot listen for ctrl-c: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
