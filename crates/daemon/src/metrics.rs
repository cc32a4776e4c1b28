//! `/metrics`, written with the `prometheus-client` crate by Prometheus' conventions: every
//! name starts with `lifeboat_`, base units are in the name (`_seconds`, `_bytes`), counters
//! end in `_total`, times are Unix timestamps in seconds, and a job is the label `name`
//! (Prometheus sets `job` itself, to the scrape job, so a label of ours called `job` would be
//! renamed `exported_job`).
//!
//! The values come from the run catalog and the last listing of the repository at each
//! scrape, so they survive restarts; nothing is counted in memory but panics. Prometheus'
//! text format (0.0.4) by default; OpenMetrics when the scraper asks for it in `Accept`.
//!
//! `docs/grafana-dashboard.json` reads these metrics; a test checks that every one it names
//! is served.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::catalog::{Operation, RunFilter};
use crate::state::{Daemon, belongs_to, lock};

/// The labels of one sample: `name` (the job) and, for some, more.
type Labels = Vec<(String, String)>;
/// A gauge that holds any number.
type Value = Gauge<f64, AtomicU64>;

/// The content type of Prometheus' text format.
pub const TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// The content type of OpenMetrics' text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One family of gauges per job.
struct PerJob {
    family: Family<Labels, Value>,
}

impl PerJob {
    fn new(registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>) -> Self {
        let family = Family::<Labels, Value>::default();
        match unit {
            Some(unit) => registry.register_with_unit(name, help, unit, family.clone()),
            None => registry.register(name, help, family.clone()),
        }
        PerJob { family }
    }

    fn set(&self, job: &str, value: Option<f64>) {
        if let Some(v) = value {
            self.family.get_or_create(&vec![("name".to_string(), job.to_string())]).set(v);
        }
    }
}

/// A time as Unix seconds (with milliseconds).
fn unix(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn seconds(ms: Option<u64>) -> Option<f64> {
    ms.map(|ms| ms as f64 / 1000.0)
}

fn flag(on: bool) -> Option<f64> {
    Some(if on { 1.0 } else { 0.0 })
}

/// A gauge without labels.
fn single(registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>, value: f64) {
    let gauge = Value::default();
    gauge.set(value);
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, gauge),
        None => registry.register(name, help, gauge),
    }
}

/// Every metric, collected now into a registry.
fn collect(d: &Daemon) -> Registry {
    let mut r = Registry::with_prefix("lifeboat");
    let view = d.view();
    let now = Utc::now();
    let by_name = lifeboat_store::stats::by_name(&view.snapshots);
    let s = Some(Unit::Seconds);
    let b = Some(Unit::Bytes);
    let last_success = PerJob::new(
        &mut r,
        "last_success_timestamp",
        "When the job's last successful backup finished (Unix time)",
        s.clone(),
    );
    let backup_duration = PerJob::new(
        &mut r,
        "last_backup_duration",
        "How long the job's last finished backup took, verification included",
        s.clone(),
    );
    let verify_success = PerJob::new(
        &mut r,
        "last_verify_success_timestamp",
        "When a verification of the job's snapshots last passed (after a backup or through the API)",
        s.clone(),
    );
    let verify_duration = PerJob::new(
        &mut r,
        "last_verify_duration",
        "How long the last verification of the job's snapshots took",
        s.clone(),
    );
    let drill_success = PerJob::new(
        &mut r,
        "last_drill_success_timestamp",
        "When the job's last passing restore drill finished",
        s.clone(),
    );
    let drill_rto = PerJob::new(
        &mut r,
        "last_drill_rto",
        "The recovery time the job's last drill measured (restore and checks)",
        s.clone(),
    );
    let rto_objective = PerJob::new(
        &mut r,
        "rto_objective",
        "The job's recovery time objective (`rto`), for drills",
        s.clone(),
    );
    let rpo_objective = PerJob::new(
        &mut r,
        "rpo_objective",
        "The job's recovery point objective: it is stale when its newest snapshot is older",
        s.clone(),
    );
    let next_run = PerJob::new(
        &mut r,
        "next_run_timestamp",
        "When the job's next scheduled backup starts",
        s.clone(),
    );
    let wal = PerJob::new(
        &mut r,
        "wal_last_archived_timestamp",
        "When the job's cluster last archived a WAL file (jobs with base backups): its RPO is the age of this",
        s.clone(),
    );
    let size = PerJob::new(
        &mut r,
        "last_size",
        "Bytes captured by the job's last successful backup",
        b.clone(),
    );
    let stored = PerJob::new(
        &mut r,
        "last_stored",
        "New bytes the job's last successful backup added to the repository",
        b.clone(),
    );
    let job_stored = PerJob::new(
        &mut r,
        "job_stored",
        "Bytes the job's snapshots added to the repository, summed (its share of the repository size)",
        b.clone(),
    );
    let snapshots =
        PerJob::new(&mut r, "snapshots", "Snapshots of the job in the repository", None);
    let stale = PerJob::new(
        &mut r,
        "stale",
        "1 when the job's newest snapshot is older than its RPO",
        None,
    );
    let failed = PerJob::new(
        &mut r,
        "last_run_failed",
        "1 when the job's last finished backup failed",
        None,
    );
    let running = PerJob::new(&mut r, "running", "1 while a backup of the job runs", None);
    let replica_lag = PerJob::new(
        &mut r,
        "replica_lag",
        "How long the oldest commit a sqlite-replica job has read but not shipped yet has waited (0 when everything is shipped)",
        s.clone(),
    );
    let replica_commit = PerJob::new(
        &mut r,
        "replica_last_commit_timestamp",
        "When the newest commit a sqlite-replica job shipped was seen committed",
        s.clone(),
    );
    let replica_txid = PerJob::new(
        &mut r,
        "replica_last_txid",
        "The newest transaction a sqlite-replica job shipped",
        None,
    );
    let replica_running = PerJob::new(
        &mut r,
        "replica_running",
        "1 while a sqlite-replica job's replicator runs",
        None,
    );
    let backups = Family::<Labels, Counter<u64, AtomicU64>>::default();
    r.register("backups", "Completed backups of the job in the run catalog", backups.clone());
    let failures = Family::<Labels, Counter<u64, AtomicU64>>::default();
    r.register(
        "failures",
        "Failed runs in the run catalog by job (`name`), `operation` (backup, verify, drill, restore) and `reason` (error, verification, check, timeout, panic, interrupted)",
        failures.clone(),
    );

    for (name, state) in &d.jobs {
        let job = state.job();
        let success = d.catalog.last_success(name).ok().flatten();
        let last = d.catalog.last_backup(name).ok().flatten();
        let verified = d.catalog.last_verification(name, false).ok().flatten();
        let verified_ok = d.catalog.last_verification(name, true).ok().flatten();
        let drilled = d.catalog.last_finished(name, Operation::Drill).ok().flatten();
        let drilled_ok = d.catalog.last_completed(name, Operation::Drill).ok().flatten();
        let counts = d.catalog.counts(name).unwrap_or_default();
        // A selection's snapshots are named `JOB/MEMBER`.
        let (count, bytes) = by_name
            .iter()
            .filter(|(snapshot, _)| belongs_to(snapshot, name))
            .fold((0, 0), |(n, b), (_, s)| (n + s.snapshots, b + s.stored));
        last_success.set(name, success.as_ref().and_then(|r| r.finished).map(unix));
        backup_duration.set(name, seconds(last.as_ref().and_then(|r| r.duration_ms)));
        verify_success.set(name, verified_ok.as_ref().and_then(|r| r.finished).map(unix));
        verify_duration
            .set(name, seconds(verified.as_ref().and_then(|r| r.verify_ms.or(r.duration_ms))));
        drill_success.set(name, drilled_ok.as_ref().and_then(|r| r.finished).map(unix));
        drill_rto.set(name, seconds(drilled.as_ref().and_then(|r| r.rto_ms)));
        rto_objective.set(name, job.expect.rto.map(|d| d.as_secs_f64()));
        rpo_objective.set(name, Some(job.rpo(now).as_secs_f64()));
        next_run.set(name, state.next_run(now).map(unix));
        wal.set(name, view.wal_newest.get(name.as_str()).copied().map(unix));
        size.set(name, success.as_ref().and_then(|r| r.size).map(|v| v as f64));
        stored.set(name, success.as_ref().and_then(|r| r.stored).map(|v| v as f64));
        job_stored.set(name, Some(bytes as f64));
        snapshots.set(name, Some(count as f64));
        stale.set(name, flag(d.stale_reason(&job, &view, now).is_some()));
        failed.set(name, flag(last.as_ref().is_some_and(|r| r.status == crate::catalog::FAILED)));
        running.set(name, flag(lock(&state.running).is_some()));
        if job.replica.is_some() {
            let replica = lock(&state.replica).clone();
            let status = replica.status.as_ref();
            replica_running.set(name, flag(replica.running));
            replica_lag
                .set(name, seconds(status.map(|s| if replica.running { s.lag_ms } else { 0 })));
            replica_commit.set(name, status.and_then(|s| s.last_commit).map(unix));
            replica_txid.set(name, status.map(|s| s.last_txid as f64));
        }
        backups.get_or_create(&vec![("name".into(), name.clone())]).inc_by(counts.completed);
    }
    for f in d.catalog.failures().unwrap_or_default() {
        let labels = vec![
            ("name".to_string(), f.job),
            ("operation".to_string(), f.operation),
            ("reason".to_string(), f.reason),
        ];
        failures.get_or_create(&labels).inc_by(f.count);
    }

    let in_progress = d
        .catalog
        .list(&RunFilter {
            status: Some(crate::catalog::IN_PROGRESS.into()),
            ..RunFilter::default()
        })
        .map(|r| r.len())
        .unwrap_or(0);
    single(
        &mut r,
        "repository_size",
        "Bytes in the repository's pack objects",
        b,
        view.pack_bytes as f64,
    );
    single(
        &mut r,
        "repository_snapshots",
        "Snapshots in the repository, every name",
        None,
        view.snapshots.len() as f64,
    );
    single(
        &mut r,
        "repository_up",
        "1 when the last listing of the repository succeeded",
        None,
        if view.error.is_none() { 1.0 } else { 0.0 },
    );
    single(&mut r, "runs_in_progress", "Runs of any kind in progress", None, in_progress as f64);
    let panics = Counter::<u64, AtomicU64>::default();
    panics.inc_by(d.panics.load(Ordering::Relaxed));
    r.register(
        "panics",
        "Panics caught in lifeboatd's tasks since it started (bugs; each also alerts task.panicked)",
        panics,
    );
    single(&mut r, "start_timestamp", "When lifeboatd started", s, unix(d.started));
    r.register(
        "build",
        "The lifeboat version serving these metrics (always 1)",
        Info::new(vec![("version".to_string(), env!("CARGO_PKG_VERSION").to_string())]),
    );
    r
}

/// Renders every metric in Prometheus' text format, or OpenMetrics' with `openmetrics`.
/// Returns the body and its content type.
pub fn render(d: &Daemon, openmetrics: bool) -> (String, &'static str) {
    let registry = collect(d);
    let mut out = String::new();
    let written = if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, &registry)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
    };
    if let Err(e) = written {
        // Writing to a String does not fail; if it ever did, say so rather than serve half.
        tracing::warn!("cannot encode the metrics: {e}");
        out = format!("# lifeboatd could not encode its metrics: {e}\n");
    }
    (out, if openmetrics { OPENMETRICS } else { TEXT })
}
