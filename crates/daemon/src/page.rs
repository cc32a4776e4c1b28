//! The status page, `GET /`: one server-rendered HTML page for a person to look at, with
//! no external assets (inline CSS and SVG, no script) so it works offline, behind a strict
//! Content-Security-Policy, and from a phone.
//!
//! It shows every job with its status in words (a degraded job says so, not only in red),
//! its last and next backup, the age of its newest backup against its RPO, its last drill's
//! RTO against its objective and its next drill; the open alerts; and, per job, the size and
//! duration of its last [`CHART_RUNS`] backups as small SVG bar charts. Next runs and
//! statuses come from [`Daemon::health`], the same numbers `/health` gives; the charts and
//! drills from the run catalog.
//!
//! Access: a bearer token; or the session cookie that the login form (`POST /` with a
//! `token` field) sets (see [`crate::auth`] for what it holds); or nothing when the
//! configuration's `open` names `status`. Without any of them the page is the login form
//! and shows no job data. Every value written into the page (job names, errors, messages)
//! goes through [`Escaped`].

use std::fmt::{self, Display, Write};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use crate::auth::{SESSION_COOKIE, SESSION_TTL, cookie, session_for, session_matches};
use crate::catalog::{FAILED, IN_PROGRESS, Operation, Run, RunFilter};
use crate::state::{Daemon, JobHealth, lock};

/// How many of a job's last backups the charts show.
pub const CHART_RUNS: usize = 30;

/// How often the page reloads itself (a `<meta http-equiv="refresh">`, no script).
const REFRESH_SECONDS: u32 = 60;

/// The page's Content-Security-Policy: nothing from anywhere, inline styles only, forms to
/// this origin. An injected `<script>` would not run even if escaping were ever missed.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Text made safe to write into HTML, as element content or a quoted attribute value.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// `text` made safe for HTML.
pub fn escape(text: &str) -> String {
    Escaped(text).to_string()
}

/// Who is reading the page, which decides what its header offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// With a bearer token.
    Token,
    /// Signed in through the form: the page offers to sign out.
    Session,
    /// Without signing in, because `open` names `status`.
    Open,
}

/// One job as the page shows it.
#[derive(Debug, Clone)]
pub struct JobView {
    /// The job's name.
    pub name: String,
    /// Its kind (`sqlite`, `dir`, ...).
    pub kind: String,
    /// What `/health` says of it: status, last run, newest backup and its age, RPO, next
    /// backup and drill.
    pub health: JobHealth,
    /// Its last finished drill.
    pub drill: Option<Run>,
    /// Whether it has a drill schedule.
    pub drills: bool,
    /// Its RTO objective (`rto`), when set.
    pub rto_objective: Option<Duration>,
    /// Its last finished backups, oldest first, at most [`CHART_RUNS`].
    pub runs: Vec<Run>,
}

/// An alert that is raised and not yet recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAlert {
    /// The job.
    pub job: String,
    /// What is wrong, in a few words (`backup failing`, `stale`, ...).
    pub what: &'static str,
    /// The details: the error or the reason.
    pub message: String,
}

/// Everything the page shows, gathered at one moment.
#[derive(Debug, Clone)]
pub struct Page {
    /// When it was gathered.
    pub now: DateTime<Utc>,
    /// `ok` or `degraded`, as `/health` says.
    pub status: &'static str,
    /// lifeboat's version.
    pub version: &'static str,
    /// Why the repository could not be listed, when it could not.
    pub repository_error: Option<String>,
    /// Every job, by name.
    pub jobs: Vec<JobView>,
    /// The open alerts.
    pub alerts: Vec<OpenAlert>,
    /// Problems reading the run catalog, shown rather than hidden.
    pub problems: Vec<String>,
}

/// Gathers the page from the service's health, alarms and run catalog.
pub fn gather(d: &Daemon) -> Page {
    let health = d.health();
    let view = d.view();
    let mut page = Page {
        now: Utc::now(),
        status: health.status,
        version: health.version,
        repository_error: view.error.clone(),
        jobs: Vec::new(),
        alerts: Vec::new(),
        problems: Vec::new(),
    };
    let mut problem = |what: &str, e: crate::DaemonError| {
        let text = format!("{what}: {e}");
        if !page.problems.contains(&text) {
            page.problems.push(text);
        }
    };
    let mut jobs = Vec::new();
    let mut alerts = Vec::new();
    for (name, state) in &d.jobs {
        let Some(job_health) = health.backups.get(name) else { continue };
        let job = state.job();
        let drill = d.catalog.last_finished(name, Operation::Drill).unwrap_or_else(|e| {
            problem("cannot read the drills", e);
            None
        });
        let filter = RunFilter {
            job: Some(name.clone()),
            operation: Some("backup".into()),
            // One more than shown: a run in progress is left out.
            limit: Some(CHART_RUNS as u32 + 1),
            status: None,
        };
        let mut runs = d.catalog.list(&filter).unwrap_or_else(|e| {
            problem("cannot read the runs", e);
            Vec::new()
        });
        runs.retain(|r| r.status != IN_PROGRESS);
        runs.truncate(CHART_RUNS);
        runs.reverse();
        // The alarms say what has been alerted; the health what holds now (alarms start
        // lowered after a restart until the next run raises them again).
        let alarms = *lock(&state.alarms);
        if alarms.failing || job_health.status == "failed" {
            let message = job_health
                .last_run
                .as_ref()
                .and_then(|r| r.error.clone())
                .unwrap_or_else(|| "the last backup failed".into());
            alerts.push(OpenAlert { job: name.clone(), what: "backup failing", message });
        }
        if alarms.stale || job_health.status == "stale" {
            let message = job_health
                .stale_reason
                .clone()
                .unwrap_or_else(|| "the newest backup is older than the RPO".into());
            alerts.push(OpenAlert { job: name.clone(), what: "stale", message });
        }
        if alarms.drill {
            let message = drill
                .as_ref()
                .and_then(|r| r.error.clone())
                .unwrap_or_else(|| "the last drill failed".into());
            alerts.push(OpenAlert { job: name.clone(), what: "drill failing", message });
        }
        if alarms.verify {
            let message = match d.catalog.last_verification(name, false) {
                Ok(run) => run.and_then(|r| r.error),
                Err(e) => {
                    problem("cannot read the verifications", e);
                    None
                }
            };
            let message = message.unwrap_or_else(|| "the last verification failed".into());
            alerts.push(OpenAlert { job: name.clone(), what: "verification failing", message });
        }
        jobs.push(JobView {
            name: name.clone(),
            kind: job.kind().to_string(),
            health: job_health.clone(),
            drill,
            drills: job.drill.is_some(),
            rto_objective: job.expect.rto,
            runs,
        });
    }
    page.jobs = jobs;
    page.alerts = alerts;
    page
}

/// A length of time for people: `45 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 if d.as_millis() == 0 => "0 s".into(),
        0..=9 if d.subsec_millis() != 0 => {
            let tenths = d.as_millis().div_ceil(100);
            format!("{}.{} s", tenths / 10, tenths % 10)
        }
        0..=59 => format!("{s} s"),
        60..=3599 if s.is_multiple_of(60) => format!("{} min", s / 60),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        3600..=86_399 if s % 3600 / 60 == 0 => format!("{} h", s / 3600),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ if s % 86_400 / 3600 == 0 => format!("{} d", s / 86_400),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Bytes for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// A moment as `<time>`: how long ago or until, the exact time in its title.
fn moment(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let delta = t - now;
    let words = match delta.to_std() {
        Ok(ahead) if ahead.as_secs() > 0 => format!("in {}", human_duration(whole(ahead))),
        Ok(_) => "now".to_string(),
        Err(_) => {
            let ago = (-delta).to_std().unwrap_or_default();
            if ago.as_secs() == 0 {
                "now".to_string()
            } else {
                format!("{} ago", human_duration(whole(ago)))
            }
        }
    };
    let exact = t.format("%Y-%m-%d %H:%M:%S UTC");
    format!("<time datetime=\"{}\" title=\"{exact}\">{words}</time>", t.to_rfc3339())
}

/// Whole seconds: "3 min ago", not "3 min 0.4 s ago".
fn whole(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

/// A job's status in words and the class that colours it.
fn status_words(h: &JobHealth) -> (&'static str, &'static str, &'static str) {
    match h.status {
        "failed" => ("bad", "degraded", "last backup failed"),
        "stale" => ("bad", "degraded", "stale: newest backup older than its RPO"),
        "pending" => ("wait", "pending", "no backup yet"),
        _ => ("good", "ok", "fresh"),
    }
}

/// Renders the page.
pub fn render(page: &Page, reader: Reader) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let degraded = page.status != "ok";
    let title = if degraded { "degraded" } else { "ok" };
    head(&mut out, &format!("lifeboatd: {title}"), true);
    let _ = write!(
        out,
        "<header><h1>lifeboatd</h1><p id=\"overall\" class=\"overall {}\" data-status=\"{}\">{}</p>",
        if degraded { "bad" } else { "good" },
        Escaped(page.status),
        if degraded { "Degraded: a job is failing or stale" } else { "OK: every job is fine" },
    );
    let _ = write!(
        out,
        "<p class=\"meta\">version {} · as of {} · reloads every minute",
        Escaped(page.version),
        page.now.format("%Y-%m-%d %H:%M:%S UTC")
    );
    match reader {
        Reader::Open => out.push_str(" · read-only, open to anyone who reaches this port"),
        Reader::Token => {}
        Reader::Session => out.push_str(
            " · <form method=\"post\" action=\"/\" class=\"inline\"><input type=\"hidden\" name=\"action\" value=\"sign-out\"><button type=\"submit\">Sign out</button></form>",
        ),
    }
    out.push_str("</p></header><main>");

    // Alerts first: they are what a person came to see.
    out.push_str("<section id=\"alerts\" aria-labelledby=\"alerts-title\"><h2 id=\"alerts-title\">Open alerts</h2>");
    let repository = page.repository_error.as_ref().map(|e| {
        format!(
            "<li class=\"alert bad\"><strong>repository unreachable</strong>: {}</li>",
            Escaped(e)
        )
    });
    if page.alerts.is_empty() && repository.is_none() {
        out.push_str("<p class=\"none\">None.</p>");
    } else {
        out.push_str("<ul>");
        out.push_str(repository.as_deref().unwrap_or(""));
        for a in &page.alerts {
            let _ = write!(
                out,
                "<li class=\"alert bad\" data-job=\"{job}\"><strong>{job}</strong>: {what}: <span class=\"message\">{message}</span></li>",
                job = Escaped(&a.job),
                what = Escaped(a.what),
                message = Escaped(&a.message),
            );
        }
        out.push_str("</ul>");
    }
    for p in &page.problems {
        let _ = write!(out, "<p class=\"alert bad\">{}</p>", Escaped(p));
    }
    out.push_str("</section>");

    out.push_str(
        "<section id=\"jobs\" aria-labelledby=\"jobs-title\"><h2 id=\"jobs-title\">Jobs</h2>",
    );
    if page.jobs.is_empty() {
        out.push_str("<p class=\"none\">No jobs are configured.</p>");
    } else {
        out.push_str("<table><thead><tr><th>Job</th><th>Status</th><th>Last backup</th><th>Next backup</th><th>RPO: newest backup's age</th><th>Last drill: RTO</th><th>Next drill</th></tr></thead><tbody>");
        for job in &page.jobs {
            job_row(&mut out, job, page.now);
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");

    let _ = write!(
        out,
        "<section id=\"charts\" aria-labelledby=\"charts-title\"><h2 id=\"charts-title\">Last {CHART_RUNS} backups</h2><p class=\"meta\">Oldest on the left. Size: captured (light) and newly stored after deduplication (dark). A failed run is a red mark.</p><div class=\"grid\">"
    );
    for job in &page.jobs {
        let _ = write!(
            out,
            "<article class=\"job-charts\" data-job=\"{name}\"><h3>{name}</h3>",
            name = Escaped(&job.name)
        );
        if job.runs.is_empty() {
            out.push_str("<p class=\"none\">No backups yet.</p>");
        } else {
            size_chart(&mut out, &job.name, &job.runs);
            duration_chart(&mut out, &job.name, &job.runs);
        }
        out.push_str("</article>");
    }
    out.push_str("</div></section></main></body></html>\n");
    out
}

fn job_row(out: &mut String, job: &JobView, now: DateTime<Utc>) {
    let h = &job.health;
    let (class, word, detail) = status_words(h);
    let running = if h.running { " <span class=\"tag\">running</span>" } else { "" };
    let _ = write!(
        out,
        "<tr class=\"job{attention}\" data-job=\"{name}\" data-status=\"{status}\"><td data-label=\"Job\"><strong>{name}</strong> <span class=\"kind\">{kind}</span></td><td data-label=\"Status\" class=\"status\"><span class=\"badge {class}\">{word}</span> {detail}{running}</td>",
        attention = if class == "bad" { " attention" } else { "" },
        name = Escaped(&job.name),
        status = Escaped(h.status),
        kind = Escaped(&job.kind),
    );

    out.push_str("<td data-label=\"Last backup\">");
    match &h.last_run {
        None => out.push_str("none yet"),
        Some(run) => {
            let when = run.finished.unwrap_or(run.started);
            if run.status == FAILED {
                let _ = write!(
                    out,
                    "<span class=\"bad\">failed</span> {}<div class=\"error\">{}</div>",
                    moment(when, now),
                    Escaped(run.error.as_deref().unwrap_or("no error recorded"))
                );
            } else {
                let _ = write!(out, "completed {}", moment(when, now));
                let mut facts = Vec::new();
                if let Some(size) = run.size {
                    facts.push(human_bytes(size));
                }
                if let Some(ms) = run.duration_ms {
                    facts.push(format!("took {}", human_duration(Duration::from_millis(ms))));
                }
                if !facts.is_empty() {
                    let _ = write!(out, "<div class=\"meta\">{}</div>", Escaped(&facts.join(", ")));
                }
            }
        }
    }
    out.push_str("</td><td data-label=\"Next backup\">");
    match h.next_run {
        Some(t) => out.push_str(&moment(t, now)),
        None => out.push_str("not scheduled"),
    }

    out.push_str("</td><td data-label=\"RPO\">");
    let rpo = Duration::from_secs(h.rpo_seconds);
    match h.age_seconds {
        Some(age) => {
            let over = age > h.rpo_seconds;
            let _ = write!(
                out,
                "<span class=\"{}\">{}</span> of {} objective{}<meter min=\"0\" max=\"{max}\" low=\"{low}\" high=\"{max}\" optimum=\"0\" value=\"{value}\"></meter>",
                if over { "bad" } else { "good" },
                human_duration(Duration::from_secs(age)),
                human_duration(rpo),
                if over { " <strong class=\"bad\">(over)</strong>" } else { "" },
                max = h.rpo_seconds.max(1),
                low = h.rpo_seconds.max(1) * 3 / 4,
                value = age.min(h.rpo_seconds.max(1)),
            );
        }
        None => {
            let _ = write!(out, "no backup; objective {}", human_duration(rpo));
        }
    }

    out.push_str("</td><td data-label=\"Last drill\">");
    let objective = job.rto_objective.map(|o| format!(" of {} objective", human_duration(o)));
    match &job.drill {
        None if job.drills => out.push_str("none yet"),
        None => out.push_str("no drill schedule"),
        Some(run) => {
            let when = run.finished.unwrap_or(run.started);
            let rto = run.rto_ms.map(|ms| human_duration(Duration::from_millis(ms)));
            if run.status == FAILED {
                let _ = write!(
                    out,
                    "<span class=\"bad\">failed</span> {}{}<div class=\"error\">{}</div>",
                    moment(when, now),
                    rto.map(|r| format!(", RTO {r}{}", objective.clone().unwrap_or_default()))
                        .unwrap_or_default(),
                    Escaped(run.error.as_deref().unwrap_or("no error recorded"))
                );
            } else {
                match rto {
                    Some(r) => {
                        let over = match (run.rto_ms, job.rto_objective) {
                            (Some(ms), Some(o)) => Duration::from_millis(ms) > o,
                            _ => false,
                        };
                        let _ = write!(
                            out,
                            "RTO <span class=\"{}\">{r}</span>{}",
                            if over { "bad" } else { "good" },
                            objective.unwrap_or_else(|| " (no objective set)".into())
                        );
                    }
                    None => out.push_str(
                        &run.detail.as_deref().map(|d| Escaped(d).to_string()).unwrap_or_default(),
                    ),
                }
                let _ = write!(out, "<div class=\"meta\">passed {}</div>", moment(when, now));
            }
        }
    }
    out.push_str("</td><td data-label=\"Next drill\">");
    match h.next_drill {
        Some(t) => out.push_str(&moment(t, now)),
        None => out.push('—'),
    }
    out.push_str("</td></tr>");
}

/// Chart geometry: a viewBox of `WIDTH` × `HEIGHT`, bars in `CHART_RUNS` slots.
const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 64.0;
const TOP: f64 = 14.0;

fn slot(i: usize) -> (f64, f64) {
    let step = WIDTH / CHART_RUNS as f64;
    (i as f64 * step + 1.0, step - 2.0)
}

fn bar_height(value: u64, max: u64) -> f64 {
    if value == 0 || max == 0 {
        return 0.0;
    }
    // At least a pixel for anything above zero, so a small value is seen.
    ((value as f64 / max as f64) * (HEIGHT - TOP)).max(1.0)
}

fn chart_open(out: &mut String, kind: &str, label: &str, max: &str, points: usize) {
    let _ = write!(
        out,
        "<figure><figcaption>{}</figcaption><svg class=\"chart\" data-chart=\"{kind}\" data-points=\"{points}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\"><line class=\"axis\" x1=\"0\" y1=\"{HEIGHT}\" x2=\"{WIDTH}\" y2=\"{HEIGHT}\"/><text x=\"2\" y=\"10\">max {}</text>",
        Escaped(label),
        Escaped(label),
        Escaped(max),
    );
}

fn run_title(run: &Run, what: &str) -> String {
    let when = run.started.format("%Y-%m-%d %H:%M UTC");
    if run.status == FAILED {
        format!("run {} at {when}: failed: {}", run.id, run.error.as_deref().unwrap_or(""))
    } else {
        format!("run {} at {when}: {what}", run.id)
    }
}

fn failed_mark(out: &mut String, i: usize, run: &Run) {
    let (x, w) = slot(i);
    let _ = write!(
        out,
        "<rect class=\"fail\" data-run=\"{}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"4\"><title>{}</title></rect>",
        run.id,
        HEIGHT - 4.0,
        Escaped(&run_title(run, "failed"))
    );
}

fn size_chart(out: &mut String, job: &str, runs: &[Run]) {
    let max = runs.iter().filter_map(|r| r.size.max(r.stored)).max().unwrap_or(0);
    let newest = runs.iter().rev().find(|r| r.status != FAILED);
    let newest = match newest {
        Some(r) => format!(
            "newest {} captured, {} newly stored",
            human_bytes(r.size.unwrap_or(0)),
            human_bytes(r.stored.unwrap_or(0))
        ),
        None => "none completed".to_string(),
    };
    let label = format!("{job}: size of the last {} backups; {newest}", runs.len());
    chart_open(out, "size", &label, &human_bytes(max), runs.len());
    for (i, run) in runs.iter().enumerate() {
        if run.status == FAILED {
            failed_mark(out, i, run);
            continue;
        }
        let (x, w) = slot(i);
        let (size, stored) = (run.size.unwrap_or(0), run.stored.unwrap_or(0));
        let title = run_title(
            run,
            &format!("{} captured, {} newly stored", human_bytes(size), human_bytes(stored)),
        );
        let (hs, ht) = (bar_height(size, max), bar_height(stored, max));
        let _ = write!(
            out,
            "<g data-run=\"{}\" data-size=\"{size}\" data-stored=\"{stored}\"><title>{}</title><rect class=\"size\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{hs:.1}\"/><rect class=\"stored\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{ht:.1}\"/></g>",
            run.id,
            Escaped(&title),
            HEIGHT - hs,
            HEIGHT - ht,
        );
    }
    out.push_str("</svg></figure>");
}

fn duration_chart(out: &mut String, job: &str, runs: &[Run]) {
    let max = runs.iter().filter_map(|r| r.duration_ms).max().unwrap_or(0);
    let newest = runs.iter().rev().find_map(|r| r.duration_ms);
    let label = format!(
        "{job}: duration of the last {} backups; newest {}",
        runs.len(),
        newest.map_or_else(|| "unknown".into(), |ms| human_duration(Duration::from_millis(ms))),
    );
    chart_open(out, "duration", &label, &human_duration(Duration::from_millis(max)), runs.len());
    for (i, run) in runs.iter().enumerate() {
        let ms = run.duration_ms.unwrap_or(0);
        let took = human_duration(Duration::from_millis(ms));
        let h = bar_height(ms, max);
        if run.status == FAILED {
            // A failed run took time too: its bar is drawn, marked red.
            let (x, w) = slot(i);
            let _ = write!(
                out,
                "<rect class=\"fail\" data-run=\"{}\" data-ms=\"{ms}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\"><title>{}</title></rect>",
                run.id,
                HEIGHT - h.max(4.0),
                h.max(4.0),
                Escaped(&format!("{} (took {took})", run_title(run, "")))
            );
            continue;
        }
        let (x, w) = slot(i);
        let _ = write!(
            out,
            "<rect class=\"duration\" data-run=\"{}\" data-ms=\"{ms}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{h:.1}\"><title>{}</title></rect>",
            run.id,
            HEIGHT - h,
            Escaped(&run_title(run, &format!("took {took}"))),
        );
    }
    out.push_str("</svg></figure>");
}

const STYLE: &str = "
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--muted:#5c6670;--line:#d8dee4;--good:#1a7f37;--bad:#c21d1d;--wait:#9a6700;--bar:#0969da;--bar2:#b6d4f5}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#30363d;--good:#3fb950;--bad:#ff6b6b;--wait:#d29922;--bar:#4493f8;--bar2:#1f3b5c}}
*{box-sizing:border-box}
body{margin:0 auto;max-width:80rem;padding:1rem;font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;background:var(--bg);color:var(--fg)}
h1{margin:0;font-size:1.5rem}h2{font-size:1.15rem;margin:1.5rem 0 .5rem}h3{font-size:1rem;margin:0 0 .25rem}
.meta,.kind,.none{color:var(--muted);font-size:.9em}
.overall{font-size:1.1rem;font-weight:600;margin:.25rem 0}
.good{color:var(--good)}.bad{color:var(--bad)}.wait{color:var(--wait)}
.badge{display:inline-block;padding:0 .45em;border-radius:.3em;font-weight:700;text-transform:uppercase;font-size:.8em;border:1px solid currentColor}
.tag{font-size:.8em;border:1px solid var(--line);border-radius:.3em;padding:0 .3em}
.error{color:var(--bad);font-size:.85em;overflow-wrap:anywhere;max-width:28rem}
ul{padding-left:1.2rem}.alert{margin:.2rem 0;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.45rem .5rem;border-bottom:1px solid var(--line)}
th{font-size:.85em;color:var(--muted);font-weight:600}
tr.attention td:first-child{box-shadow:inset 4px 0 var(--bad)}
meter{display:block;width:8rem;height:.6rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(20rem,1fr));gap:1rem}
.job-charts{border:1px solid var(--line);border-radius:.4rem;padding:.6rem}
figure{margin:.3rem 0}figcaption{font-size:.85em;color:var(--muted)}
svg.chart{width:100%;height:4.5rem;display:block}
svg text{font-size:9px;fill:var(--muted)}
.axis{stroke:var(--line)}.size{fill:var(--bar2)}.stored,.duration{fill:var(--bar)}.fail{fill:var(--bad)}
form.inline{display:inline}
.login{max-width:24rem;margin:3rem auto}
.login label{display:block;margin:.8rem 0 .3rem;font-weight:600}
input[type=password]{width:100%;padding:.5rem;font:inherit;border:1px solid var(--line);border-radius:.3rem;background:var(--bg);color:var(--fg)}
button{font:inherit;padding:.35rem .9rem;margin-top:.8rem;border:1px solid var(--line);border-radius:.3rem;background:var(--bar);color:#fff;cursor:pointer}
form.inline button{margin:0;padding:0 .5rem;background:none;color:inherit}
@media (max-width:48rem){
 table,thead,tbody,tr,td{display:block;width:100%}thead{display:none}
 tr.job{border:1px solid var(--line);border-radius:.4rem;margin:0 0 .8rem;padding:.3rem 0}
 td{border:0;padding:.25rem .6rem}
 td::before{content:attr(data-label);display:block;font-size:.8em;color:var(--muted)}
 .grid{grid-template-columns:1fr}
}
";

fn head(out: &mut String, title: &str, refresh: bool) {
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{}<meta name=\"referrer\" content=\"no-referrer\"><title>{}</title><style>{STYLE}</style></head><body>",
        if refresh {
            format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">")
        } else {
            String::new()
        },
        Escaped(title),
    );
}

/// The login form, with `message` (why the last attempt failed) when there is one. It
/// shows no job data.
pub fn login_page(message: Option<&str>) -> String {
    let mut out = String::new();
    head(&mut out, "lifeboatd: sign in", false);
    out.push_str("<main class=\"login\"><h1>lifeboatd</h1><p class=\"meta\">The status page needs one of the service's API tokens (<code>tokens</code> or <code>LIFEBOAT_TOKENS</code>). Signing in sets a cookie that holds no token and is valid for 12 hours.</p>");
    if let Some(message) = message {
        let _ = write!(out, "<p class=\"alert bad\" role=\"alert\">{}</p>", Escaped(message));
    }
    out.push_str("<form id=\"login\" method=\"post\" action=\"/\"><label for=\"token\">Token</label><input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus><button type=\"submit\">Sign in</button></form></main></body></html>\n");
    out
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Whether the request carries a valid session cookie.
fn signed_in(d: &Daemon, headers: &HeaderMap) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| cookie(v, SESSION_COOKIE))
        .any(|value| session_matches(&d.config().tokens, value, Utc::now()))
}

/// Whether the request reached lifeboatd through HTTPS, as the TLS proxy in front of it says
/// (`X-Forwarded-Proto: https`, or `proto=https` in `Forwarded`). lifeboatd itself serves
/// plain HTTP; the cookie is then `Secure`, so a browser never sends it over plain HTTP.
fn through_https(headers: &HeaderMap) -> bool {
    let forwarded_proto =
        headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        });
    let forwarded = headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split([';', ',']).any(|part| part.trim().eq_ignore_ascii_case("proto=https"))
    });
    forwarded_proto || forwarded
}

/// `GET /`: the page for a token, a session or when open; the login form (401) otherwise.
pub(crate) async fn show(State(d): State<Arc<Daemon>>, headers: HeaderMap) -> Response {
    let reader = match crate::api::authorized(&d, &headers) {
        Err(e) => return e.into_response(),
        Ok(true) => Reader::Token,
        Ok(false) if signed_in(&d, &headers) => Reader::Session,
        Ok(false) if d.config().open.status => Reader::Open,
        Ok(false) => return html(StatusCode::UNAUTHORIZED, login_page(None)),
    };
    html(StatusCode::OK, render(&gather(&d), reader))
}

/// `POST /`: the login form's `token` signs in (a session cookie, then back to the page);
/// `action=sign-out` signs out.
pub(crate) async fn login(
    State(d): State<Arc<Daemon>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut token = None;
    let mut sign_out = false;
    for (key, value) in url::form_urlencoded::parse(&body) {
        match &*key {
            "token" => token = Some(value.trim().to_string()),
            "action" if value == "sign-out" => sign_out = true,
            _ => {}
        }
    }
    let secure = if through_https(&headers) { "; Secure" } else { "" };
    let cookie = if sign_out {
        format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}")
    } else {
        let config = d.config();
        let Some(token) = token.filter(|t| crate::auth::token_matches(&config.tokens, t)) else {
            tracing::warn!("status page: a sign-in with a wrong or missing token was refused");
            let message = "That is not one of the configured tokens.";
            return html(StatusCode::UNAUTHORIZED, login_page(Some(message)));
        };
        let expires = Utc::now()
            + chrono::Duration::from_std(SESSION_TTL).unwrap_or(chrono::Duration::hours(12));
        format!(
            "{SESSION_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
            session_for(&token, expires),
            SESSION_TTL.as_secs()
        )
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match HeaderValue::from_str(&cookie) {
        Ok(value) => {
            headers.insert(header::SET_COOKIE, value);
        }
        // The cookie is ASCII (digits, hex and fixed text); this cannot happen.
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn run(id: i64, status: &str, size: u64, ms: u64, error: Option<&str>) -> Run {
        Run {
            id,
            job: "j".into(),
            operation: "backup".into(),
            trigger: "api".into(),
            status: status.into(),
            started: Utc::now(),
            finished: Some(Utc::now()),
            duration_ms: Some(ms),
            snapshot: None,
            size: Some(size),
            stored: Some(size / 2),
            error: error.map(String::from),
            detail: None,
            reason: None,
            verify_ms: None,
            rto_ms: None,
        }
    }

    fn page(name: &str, error: &str) -> Page {
        let failed = run(2, FAILED, 0, 300, Some(error));
        let health = JobHealth {
            status: "failed",
            running: false,
            newest_snapshot: None,
            newest_time: None,
            age_seconds: Some(30),
            rpo_seconds: 600,
            stale_reason: None,
            last_run: Some(failed.clone()),
            next_run: Some(Utc::now() + chrono::Duration::minutes(5)),
            next_drill: None,
            replica: None,
        };
        Page {
            now: Utc::now(),
            status: "degraded",
            version: "0.1.0",
            repository_error: None,
            jobs: vec![JobView {
                name: name.into(),
                kind: "sqlite".into(),
                health,
                drill: None,
                drills: false,
                rto_objective: None,
                runs: vec![run(1, "completed", 2048, 1500, None), failed],
            }],
            alerts: vec![OpenAlert {
                job: name.into(),
                what: "backup failing",
                message: error.into(),
            }],
            problems: vec![],
        }
    }

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("plain é"), "plain é");
    }

    #[test]
    fn names_and_errors_with_markup_are_shown_as_text() {
        let evil = "<script>alert(1)</script>";
        let html =
            render(&page(&format!("a\"{evil}"), &format!("no such file {evil}")), Reader::Open);
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("no such file &lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(html.contains("data-job=\"a&quot;&lt;script&gt;"), "{html}");
        assert!(html.contains("DEGRADED") || html.contains(">degraded<"), "{html}");
        assert!(html.contains("last backup failed"));
        // Two runs: one of each chart's bars or marks per run.
        assert_eq!(html.matches("data-run=\"1\"").count(), 2, "{html}");
        assert_eq!(html.matches("data-run=\"2\"").count(), 2, "{html}");
        let login = login_page(Some(evil));
        assert!(!login.contains("<script") && login.contains("&lt;script&gt;"), "{login}");
    }

    #[test]
    fn durations_and_sizes_read_as_people_write_them() {
        let cases = [
            (0, "0 s"),
            (400, "0.4 s"),
            (4_000, "4 s"),
            (9_950, "10.0 s"),
            (12_000, "12 s"),
            (60_000, "1 min"),
            (200_000, "3 min 20 s"),
            (7_500_000, "2 h 5 min"),
            (86_400_000 * 2 + 3_600_000 * 4, "2 d 4 h"),
        ];
        for (ms, text) in cases {
            assert_eq!(human_duration(Duration::from_millis(ms)), text, "{ms} ms");
        }
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn the_cookie_is_secure_only_behind_https() {
        let mut headers = HeaderMap::new();
        assert!(!through_https(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(through_https(&headers));
        let mut headers = HeaderMap::new();
        headers.insert(header::FORWARDED, HeaderValue::from_static("for=1.2.3.4;proto=https"));
        assert!(through_https(&headers));
        headers.insert(header::FORWARDED, HeaderValue::from_static("proto=http"));
        assert!(!through_https(&headers));
    }
}
