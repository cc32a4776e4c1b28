//! `/metrics` in the Prometheus text format.

use std::fmt::Write;

use chrono::Utc;

use crate::catalog::RunFilter;
use crate::state::{Daemon, belongs_to, lock};

/// One metric family.
struct Family<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
    samples: Vec<(String, f64)>,
}

/// Renders every metric. Job names are restricted to `[A-Za-z0-9._-]` by the configuration,
/// so they need no escaping inside label values.
pub fn render(d: &Daemon) -> String {
    let view = d.view();
    let now = Utc::now();
    let by_name = lifeboat_store::stats::by_name(&view.snapshots);
    let mut families = vec![
        Family {
            name: "lifeboat_last_success_timestamp_seconds",
            kind: "gauge",
            help: "Unix time of the job's last successful backup.",
            samples: vec![],
        },
        Family {
            name: "lifeboat_last_duration_seconds",
            kind: "gauge",
            help: "Duration of the job's last finished backup.",
            samples: vec![],
        },
        Family {
            name: "lifeboat_last_size_bytes",
            kind: "gauge",
            help: "Bytes captured by the job's last successful backup.",
            samples: vec![],
        },
        Family {
            name: "lifeboat_last_stored_bytes",
            kind: "gauge",
            help: "New bytes the job's last successful backup added to the repository.",
            samples: vec![],
        },
        Family {
            name: "lifeboat_backups_total",
            kind: "counter",
            help: "Completed backups of the job recorded in the run catalog.",
            samples: vec![],
        },
        Family {
            name: "lifeboat_failures_total",
            kind: "counter",
            help: "Failed or interrupted backups of the job recorded in the run catalog.",
            samples: vec![],
        },
        Family {
            name: "lifeboat_last_run_failed",
            kind: "gauge",
            help: "1 when the job's last finished backup failed.",
            samples: vec![],
        },
        Family {
            name: "lifeboat_snapshots",
            kind: "gauge",
            help: "Snapshots of the job in the repository.",
            samples: vec![],
        },
        Family {
            name: "lifeboat_job_stored_bytes",
            kind: "gauge",
            help: "Bytes the job's snapshots added to the repository, summed (its share of the repository size).",
            samples: vec![],
        },
        Family {
            name: "lifeboat_stale",
            kind: "gauge",
            help: "1 when the job's newest snapshot is older than its RPO.",
            samples: vec![],
        },
        Family {
            name: "lifeboat_rpo_seconds",
            kind: "gauge",
            help: "The job's recovery point objective.",
            samples: vec![],
        },
        Family {
            name: "lifeboat_running",
            kind: "gauge",
            help: "1 while a backup of the job runs.",
            samples: vec![],
        },
        Family {
            name: "lifeboat_wal_last_archived_timestamp_seconds",
            kind: "gauge",
            help: "When the job's cluster last archived a WAL file (jobs with base backups): its RPO is the age of this.",
            samples: vec![],
        },
    ];
    for (name, state) in &d.jobs {
        let job = state.job();
        let label = format!("{{job=\"{name}\"}}");
        let success = d.catalog.last_success(name).ok().flatten();
        let last = d.catalog.last_backup(name).ok().flatten();
        let counts = d.catalog.counts(name).unwrap_or_default();
        // A selection's snapshots are named `JOB/MEMBER`.
        let (snapshots, stored) = by_name
            .iter()
            .filter(|(snapshot, _)| belongs_to(snapshot, name))
            .fold((0, 0), |(n, b), (_, s)| (n + s.snapshots, b + s.stored));
        let stale = d.stale_reason(&job, &view, now).is_some();
        let values = [
            success.as_ref().and_then(|r| r.finished).map(|t| t.timestamp_millis() as f64 / 1000.0),
            last.as_ref().and_then(|r| r.duration_ms).map(|ms| ms as f64 / 1000.0),
            success.as_ref().and_then(|r| r.size).map(|v| v as f64),
            success.as_ref().and_then(|r| r.stored).map(|v| v as f64),
            Some(counts.completed as f64),
            Some(counts.failed as f64),
            Some(if last.as_ref().is_some_and(|r| r.status == crate::catalog::FAILED) {
                1.0
            } else {
                0.0
            }),
            Some(snapshots as f64),
            Some(stored as f64),
            Some(if stale { 1.0 } else { 0.0 }),
            Some(job.rpo(now).as_secs_f64()),
            Some(if lock(&state.running).is_some() { 1.0 } else { 0.0 }),
            view.wal_newest.get(name.as_str()).map(|t| t.timestamp_millis() as f64 / 1000.0),
        ];
        for (family, value) in families.iter_mut().zip(values) {
            if let Some(v) = value {
                family.samples.push((label.clone(), v));
            }
        }
    }
    let in_progress = d
        .catalog
        .list(&RunFilter {
            status: Some(crate::catalog::IN_PROGRESS.into()),
            ..RunFilter::default()
        })
        .map(|r| r.len())
        .unwrap_or(0);
    families.push(Family {
        name: "lifeboat_repository_size_bytes",
        kind: "gauge",
        help: "Bytes in the repository's pack objects.",
        samples: vec![(String::new(), view.pack_bytes as f64)],
    });
    families.push(Family {
        name: "lifeboat_repository_snapshots",
        kind: "gauge",
        help: "Snapshots in the repository, every name.",
        samples: vec![(String::new(), view.snapshots.len() as f64)],
    });
    families.push(Family {
        name: "lifeboat_repository_up",
        kind: "gauge",
        help: "1 when the last listing of the repository succeeded.",
        samples: vec![(String::new(), if view.error.is_none() { 1.0 } else { 0.0 })],
    });
    families.push(Family {
        name: "lifeboat_runs_in_progress",
        kind: "gauge",
        help: "Runs of any kind in progress.",
        samples: vec![(String::new(), in_progress as f64)],
    });
    families.push(Family {
        name: "lifeboat_panics_total",
        kind: "counter",
        help: "Panics caught in lifeboatd's tasks since it started (bugs; each also alerts task.panicked).",
        samples: vec![(String::new(), d.panics.load(std::sync::atomic::Ordering::Relaxed) as f64)],
    });
    let mut out = String::new();
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (labels, value) in f.samples {
            let _ = writeln!(out, "{}{labels} {value}", f.name);
        }
    }
    out
}
