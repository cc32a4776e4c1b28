//! Starting and stopping the service.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use lifeboat_store::{Repository, StoreError};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::alerts::Alerts;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::DaemonError;
use crate::state::{Alarms, Daemon, JobState, RepoView, lock};

/// The run catalog's file inside the state folder.
pub const CATALOG_FILE: &str = "lifeboatd.db";

/// Runs the service until SIGTERM or ctrl-c, then stops it gracefully.
///
/// # Errors
/// When it cannot start: state folder, catalog, repository, listening address.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let (d, listener) = start(config).await?;
    serve(d, listener, shutdown_signal()).await
}

/// Prepares everything and binds the address, without serving yet.
///
/// # Errors
/// As [`run`].
pub async fn start(config: Config) -> Result<(Arc<Daemon>, tokio::net::TcpListener), DaemonError> {
    std::fs::create_dir_all(&config.state_dir).map_err(|source| DaemonError::Io {
        action: "creating",
        path: config.state_dir.clone(),
        source,
    })?;
    let (catalog, interrupted) = Catalog::open(&config.state_dir.join(CATALOG_FILE))?;
    if interrupted > 0 {
        warn!(
            "{interrupted} runs were in progress when lifeboatd last stopped: marked failed (interrupted)"
        );
    }
    let repo = match Repository::open(&config.repository).await {
        Err(StoreError::NotInitialised { .. }) if config.create_repository => {
            info!(repository = %crate::config::redact(&config.repository), "no repository there yet: creating it");
            Repository::init(&config.repository).await?
        }
        other => other?,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| DaemonError::Listen { addr: config.listen, source })?;
    let jobs = config
        .jobs
        .iter()
        .map(|job| {
            let state = JobState {
                job: RwLock::new(job.clone()),
                running: Mutex::new(None),
                changed: Notify::new(),
                alarms: Mutex::new(Alarms::default()),
            };
            (job.name.clone(), Arc::new(state))
        })
        .collect::<BTreeMap<_, _>>();
    let alerts = Alerts::start(config.webhooks.clone(), config.webhook_attempts);
    let (shutdown, _) = watch::channel(false);
    let max_running = config.max_running;
    let d = Arc::new(Daemon {
        config,
        repo,
        catalog,
        alerts,
        jobs,
        started: Utc::now(),
        view: RwLock::new(Arc::new(RepoView::default())),
        tasks: Mutex::new(JoinSet::new()),
        shutdown,
        slots: tokio::sync::Semaphore::new(max_running),
    });
    // A job whose last run failed starts with its alarm raised, so its next success
    // sends `recovered`.
    for (name, state) in &d.jobs {
        let failed = d
            .catalog
            .last_backup(name)
            .ok()
            .flatten()
            .is_some_and(|r| r.status == crate::catalog::FAILED);
        lock(&state.alarms).failing = failed;
    }
    crate::settings::restore_stored(&d);
    d.refresh_view().await;
    Ok((d, listener))
}

/// Serves the API and runs the scheduler until `stop` completes, then shuts down: no new
/// runs, running backups and drills get `shutdown_grace` to finish, then are aborted. An aborted backup
/// never wrote its manifest (the manifest is written last), so nothing half-made is visible;
/// its run is recorded as interrupted.
///
/// # Errors
/// When serving fails.
pub async fn serve(
    d: Arc<Daemon>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let addr = listener.local_addr().unwrap_or(d.config.listen);
    info!(%addr, jobs = d.jobs.len(), "lifeboatd listening");
    crate::scheduler::start(&d);
    let shutdown = d.shutdown.clone();
    let mut stopped = shutdown.subscribe();
    tokio::spawn(async move {
        stop.await;
        info!("shutdown requested");
        shutdown.send_replace(true);
    });
    let app = crate::api::router(Arc::clone(&d));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await
        .map_err(|source| DaemonError::Listen { addr, source })?;
    finish_runs(&d).await;
    info!("lifeboatd stopped");
    Ok(())
}

async fn finish_runs(d: &Daemon) {
    let mut tasks = std::mem::take(&mut *lock(&d.tasks));
    if tasks.is_empty() {
        return;
    }
    info!(running = tasks.len(), grace = ?d.config.shutdown_grace, "waiting for running backups and drills");
    let drained = tokio::time::timeout(d.config.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
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
    let _ = Duration::ZERO;
}
