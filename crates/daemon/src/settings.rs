//! `GET/PUT/DELETE /api/config`: the jobs' schedule and retention, changed at run time and
//! kept in the run catalog so a restart keeps them. The file stays as written, so the
//! configuration has two sources; neither hides the other: every change is logged (when
//! made, at start, at each reload), `GET /api/config` names the origin of each setting that
//! can change (`file` or `api`) and what the file says beside what is in force, and
//! `DELETE /api/config` drops every change made through the API, back to the file.

use std::collections::BTreeMap;

use lifeboat_core::Registry;
use lifeboat_core::backend::OptionValue;
use lifeboat_core::retention::RetentionPolicy;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::config::{Job, redact};
use crate::error::Problem;
use crate::schedule::Schedule;
use crate::state::Daemon;

/// A change to some jobs' settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// Per job name.
    #[serde(default)]
    pub jobs: BTreeMap<String, JobChange>,
}

/// The settings of one job that may change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobChange {
    /// New schedule (cron with seconds, or `every 10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// New retention policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<RetentionPolicy>,
}

/// Where a setting in force comes from.
fn origin(from_api: bool) -> &'static str {
    if from_api { "api" } else { "file" }
}

/// The changes stored through the API, per job (unreadable ones are left out: they were
/// logged when applied).
fn stored(d: &Daemon) -> BTreeMap<String, JobChange> {
    d.catalog
        .overrides()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(job, text)| Some((job, serde_json::from_str(&text).ok()?)))
        .collect()
}

/// The configuration as the API shows it: no tokens, no passwords.
pub fn describe(d: &Daemon) -> Value {
    let config = d.config();
    let changes = stored(d);
    let jobs: Vec<Value> = d
        .jobs
        .iter()
        .map(|(name, s)| {
            let mut value = job_json(&d.registry, &s.job());
            let change = changes.get(name).cloned().unwrap_or_default();
            if let Some(fields) = value.as_object_mut() {
                fields.insert(
                    "origin".into(),
                    json!({
                        "schedule": origin(change.schedule.is_some()),
                        "keep": origin(change.keep.is_some()),
                    }),
                );
                // What the file says, beside what the API put in force over it.
                if change.schedule.is_some() || change.keep.is_some() {
                    let file = config.job(name);
                    fields.insert(
                        "file".into(),
                        json!({
                            "schedule": file.map(|j| j.schedule.to_string()),
                            "keep": file.and_then(|j| j.keep.clone()),
                        }),
                    );
                }
            }
            value
        })
        .collect();
    json!({
        "repository": redact(&config.repository),
        "encrypted": d.repo.is_encrypted(),
        // Where the password comes from, never the password.
        "password_file": match &config.password {
            Some(crate::config::PasswordSource::File(path)) => json!(path.display().to_string()),
            _ => Value::Null,
        },
        "password_command": match &config.password {
            Some(crate::config::PasswordSource::Command(command)) => json!(command),
            _ => Value::Null,
        },
        "listen": config.listen.to_string(),
        "open": config.open,
        "allow_restore": config.allow_restore,
        "max_running": config.max_running,
        "max_connections": config.max_connections,
        "header_timeout_seconds": config.header_timeout.as_secs_f64(),
        "run_timeout_seconds": config.run_timeout.as_secs(),
        "webhooks": config.webhooks.len(),
        "jobs": jobs,
    })
}

fn job_json(registry: &Registry, job: &Job) -> Value {
    let mut value = json!({
        "name": job.name,
        "kind": job.kind(),
        "target": redact(&job.spec.target),
        "schedule": job.schedule.to_string(),
        "timezone": job.timezone.name(),
        "keep": job.keep,
        "verify": job.verify,
        "drill": job.drill.as_ref().map(ToString::to_string),
        "rpo_seconds": job.expect.rpo.map(|d| d.as_secs()),
        "rto_seconds": job.expect.rto.map(|d| d.as_secs()),
        "jitter_seconds": job.jitter.as_secs(),
        "tags": job.tags,
    });
    // Every job key its backend declares, as the file gives it: unset flags false, unset
    // values null, numbers as numbers, URLs without their passwords.
    let commands = registry.find(job.kind()).map(|b| b.commands()).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        for spec in commands.into_iter().flat_map(|c| c.options) {
            let values = job.spec.options.values(spec.name);
            let text = |v: &String| match v.contains("://") {
                true => json!(redact(v)),
                false => json!(v),
            };
            let option = match spec.value {
                OptionValue::Flag => json!(job.spec.options.flag(spec.name)),
                OptionValue::One(_) => {
                    values.last().map_or(Value::Null, |v| match v.parse::<i64>() {
                        Ok(n) => json!(n),
                        Err(_) => text(v),
                    })
                }
                OptionValue::Many(_) => Value::Array(values.iter().map(text).collect()),
            };
            fields.entry(spec.config_key()).or_insert(option);
        }
    }
    value
}

/// Checks the whole change first, then applies it to every job and stores it.
///
/// # Errors
/// Every problem found; nothing is changed then.
pub fn apply(d: &Daemon, change: &Change) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut parsed = Vec::new();
    for (name, c) in &change.jobs {
        let problem =
            |message: String| Problem { line: 0, message: format!("job {name:?}: {message}") };
        let Some(state) = d.jobs.get(name) else {
            problems.push(problem("no such job".into()));
            continue;
        };
        // Every setting of the job is checked, so one answer lists all its problems.
        let timezone = state.job().timezone;
        let schedule = c.schedule.as_deref().map(|s| Schedule::parse(s, timezone)).transpose();
        if let Err(e) = &schedule {
            problems.push(problem(format!("schedule: {e}")));
        }
        if c.keep.as_ref().is_some_and(RetentionPolicy::is_empty) {
            problems.push(problem("keep keeps nothing and would remove every snapshot".into()));
        }
        if let Ok(schedule) = schedule {
            parsed.push((name, state, schedule, c));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    for (name, state, schedule, c) in parsed {
        update(state, schedule, c.keep.clone());
        let stored = stored_change(d, name, c);
        if let Err(e) = d.catalog.set_override(name, &stored) {
            warn!(job = %name, "settings changed but not stored, a restart forgets them: {e}");
        }
        info!(job = %name, "settings changed through the API: {stored}");
        state.changed.notify_waiters();
    }
    Ok(())
}

fn update(
    state: &crate::state::JobState,
    schedule: Option<Schedule>,
    keep: Option<RetentionPolicy>,
) {
    let mut job = match state.job.write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if let Some(s) = schedule {
        job.schedule = s;
    }
    if let Some(k) = keep {
        job.keep = Some(k);
    }
}

/// The job's stored change merged with the new one, as JSON.
fn stored_change(d: &Daemon, name: &str, c: &JobChange) -> String {
    let mut merged: JobChange = d
        .catalog
        .overrides()
        .unwrap_or_default()
        .into_iter()
        .find(|(job, _)| job == name)
        .and_then(|(_, s)| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    if c.schedule.is_some() {
        merged.schedule.clone_from(&c.schedule);
    }
    if c.keep.is_some() {
        merged.keep.clone_from(&c.keep);
    }
    serde_json::to_string(&merged).unwrap_or_default()
}

/// Drops every change made through the API: each job gets the file's schedule and retention
/// back (as last loaded or reloaded). Returns the jobs that had changes.
///
/// # Errors
/// The run catalog cannot be written; nothing changed then.
pub fn forget(d: &Daemon) -> Result<Vec<String>, crate::DaemonError> {
    let names: Vec<String> = stored(d).into_keys().collect();
    d.catalog.clear_overrides()?;
    let config = d.config();
    for name in &names {
        let (Some(state), Some(file)) = (d.jobs.get(name), config.job(name)) else { continue };
        let mut job = match state.job.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        job.schedule = file.schedule.clone();
        job.keep.clone_from(&file.keep);
        drop(job);
        info!(job = %name, "settings changed through the API dropped: the file's apply again");
        state.changed.notify_waiters();
    }
    Ok(names)
}

/// Applies the changes stored by earlier `PUT /api/config` calls (at start).
pub fn restore_stored(d: &Daemon) {
    let stored = match d.catalog.overrides() {
        Ok(s) => s,
        Err(e) => {
            warn!("stored settings not read: {e}");
            return;
        }
    };
    for (name, text) in stored {
        let Some(state) = d.jobs.get(&name) else { continue };
        let change: JobChange = match serde_json::from_str(&text) {
            Ok(c) => c,
            Err(e) => {
                warn!(job = %name, "stored settings ignored: {e}");
                continue;
            }
        };
        let timezone = state.job().timezone;
        match change.schedule.as_deref().map(|s| Schedule::parse(s, timezone)).transpose() {
            Ok(schedule) => {
                update(state, schedule, change.keep.clone());
                info!(job = %name, "settings changed through the API apply over the file: {text}");
            }
            Err(e) => warn!(job = %name, "stored schedule ignored: {e}"),
        }
    }
}
