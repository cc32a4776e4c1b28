//! Webhook alerts, posted from a background task and retried with exponential backoff.
//! Sending never blocks a backup: events go into a bounded queue, and when it is full the
//! event is logged and dropped rather than waited for.
//!
//! Each webhook has a [`Format`]:
//! - `generic`: `{event, message, timestamp, source}` (the fields alert scripts already read)
//!   plus `job`, `snapshot`, `severity`, `dedup_key` and `version`;
//! - `slack`: an incoming-webhook message (`text` and `blocks`);
//! - `pagerduty`: an Events API v2 event with the job's dedup key: `trigger` for every
//!   problem, `resolve` for `recovered`, so the job's incident closes by itself.
//!
//! Every request carries `User-Agent: lifeboatd/VERSION` and `X-Lifeboat-Event`. With a
//! `secret`, it is signed: `X-Lifeboat-Timestamp` holds the Unix time of the attempt and
//! `X-Lifeboat-Signature` is `sha256=` and the hex HMAC-SHA256, keyed with the secret, of the
//! timestamp, a `.`, and the body's bytes. The receiver recomputes it and refuses an old
//! timestamp, so a captured request cannot be replayed later.
//!
//! Which events are sent is decided by the job's alarms (see
//! [`Daemon::raise`](crate::state::Daemon::raise)): one per state change, never two for one
//! recovery.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::config::redact;

/// The `User-Agent` of every webhook request.
pub const USER_AGENT: &str = concat!("lifeboatd/", env!("CARGO_PKG_VERSION"));
/// The header with the HMAC-SHA256 signature (`sha256=HEX`) when the webhook has a secret.
pub const SIGNATURE_HEADER: &str = "X-Lifeboat-Signature";
/// The header with the Unix time the signature covers.
pub const TIMESTAMP_HEADER: &str = "X-Lifeboat-Timestamp";
/// The header naming the event (`backup.failed`, `recovered`, ...).
pub const EVENT_HEADER: &str = "X-Lifeboat-Event";
/// Where PagerDuty's Events API v2 takes events, the URL of a `pagerduty` webhook by default.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Event {
    /// A backup failed.
    #[serde(rename = "backup.failed")]
    BackupFailed,
    /// Verification after a backup, or through the API, failed.
    #[serde(rename = "verify.failed")]
    VerifyFailed,
    /// A restore drill failed.
    #[serde(rename = "drill.failed")]
    DrillFailed,
    /// A job's newest snapshot is older than its RPO.
    #[serde(rename = "stale")]
    Stale,
    /// A job that failed, was stale, or failed a drill or a verification is fine again.
    #[serde(rename = "recovered")]
    Recovered,
    /// A task of lifeboatd panicked (a bug); it was caught, and the run it was part of failed.
    #[serde(rename = "task.panicked")]
    TaskPanicked,
}

impl Event {
    /// The name in bodies and headers (`backup.failed`).
    pub fn name(self) -> &'static str {
        match self {
            Event::BackupFailed => "backup.failed",
            Event::VerifyFailed => "verify.failed",
            Event::DrillFailed => "drill.failed",
            Event::Stale => "stale",
            Event::Recovered => "recovered",
            Event::TaskPanicked => "task.panicked",
        }
    }

    /// How bad it is, in PagerDuty's words: a job without a usable backup is critical, a
    /// failed check or a bug an error, a recovery news.
    pub fn severity(self) -> &'static str {
        match self {
            Event::BackupFailed | Event::Stale => "critical",
            Event::VerifyFailed | Event::DrillFailed | Event::TaskPanicked => "error",
            Event::Recovered => "info",
        }
    }
}

/// One alert, whatever the format it is posted in.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// What happened.
    pub event: Event,
    /// For people.
    pub message: String,
    /// When (RFC 3339, UTC).
    pub timestamp: String,
    /// Who sends it: `lifeboatd@HOST`.
    pub source: String,
    /// The job.
    pub job: String,
    /// The snapshot concerned, if any.
    pub snapshot: Option<String>,
}

impl Alert {
    /// An alert about `job`, timestamped now.
    pub fn new(
        event: Event,
        job: &str,
        message: impl Into<String>,
        snapshot: Option<String>,
    ) -> Self {
        Alert {
            event,
            message: message.into(),
            timestamp: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            source: format!("lifeboatd@{}", lifeboat_store::host_name()),
            job: job.into(),
            snapshot,
        }
    }

    /// The key that ties a job's problems and its recovery together: one incident per job
    /// and host (`lifeboatd@HOST/JOB`).
    pub fn dedup_key(&self) -> String {
        format!("{}/{}", self.source, self.job)
    }
}

/// How a webhook's body is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `{event, message, timestamp, source, job, snapshot, severity, dedup_key, version}`.
    #[default]
    Generic,
    /// A Slack incoming-webhook message.
    Slack,
    /// A PagerDuty Events API v2 event.
    PagerDuty,
}

impl Format {
    /// Every format by its name in the configuration.
    pub const ALL: [(&'static str, Format); 3] =
        [("generic", Format::Generic), ("slack", Format::Slack), ("pagerduty", Format::PagerDuty)];

    /// The format called `name`.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }
}

/// One place alerts go.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Where to post.
    pub url: String,
    /// How the body is written.
    pub format: Format,
    /// The HMAC-SHA256 key of the signature header; unsigned without one.
    pub secret: Option<String>,
    /// PagerDuty's integration key (`pagerduty` format only).
    pub routing_key: Option<String>,
}

impl Webhook {
    /// A `generic` webhook to `url`, unsigned.
    pub fn generic(url: impl Into<String>) -> Self {
        Webhook { url: url.into(), format: Format::Generic, secret: None, routing_key: None }
    }
}

impl std::fmt::Debug for Webhook {
    // The URL's query, the secret and the routing key are secrets: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &redact(&self.url))
            .field("format", &self.format)
            .field("signed", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The body of `alert` for `hook`.
pub fn body(hook: &Webhook, alert: &Alert) -> Value {
    match hook.format {
        Format::Generic => json!({
            "event": alert.event,
            "message": alert.message,
            "timestamp": alert.timestamp,
            "source": alert.source,
            "job": alert.job,
            "snapshot": alert.snapshot,
            "severity": alert.event.severity(),
            "dedup_key": alert.dedup_key(),
            "version": env!("CARGO_PKG_VERSION"),
        }),
        Format::Slack => {
            let mark = match alert.event {
                Event::Recovered => ":white_check_mark:",
                Event::VerifyFailed | Event::DrillFailed | Event::TaskPanicked => ":warning:",
                Event::BackupFailed | Event::Stale => ":red_circle:",
            };
            let text = format!(
                "{mark} {} {}: {}",
                alert.event.name(),
                alert.job,
                slack_escape(&alert.message)
            );
            let mut context = vec![slack_escape(&alert.source), alert.timestamp.clone()];
            if let Some(snapshot) = &alert.snapshot {
                context.push(format!("snapshot `{}`", snapshot.get(..12).unwrap_or(snapshot)));
            }
            json!({
                "text": text,
                "blocks": [
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "text": format!("{mark} *{}* `{}`\n{}", alert.event.name(), alert.job, slack_escape(&alert.message)),
                        },
                    },
                    {
                        "type": "context",
                        "elements": [{ "type": "mrkdwn", "text": context.join(" · ") }],
                    },
                ],
            })
        }
        Format::PagerDuty => {
            let routing_key = hook.routing_key.clone().unwrap_or_default();
            if alert.event == Event::Recovered {
                return json!({
                    "routing_key": routing_key,
                    "event_action": "resolve",
                    "dedup_key": alert.dedup_key(),
                });
            }
            // PagerDuty refuses a summary past 1024 characters.
            let summary: String = alert.message.chars().take(1024).collect();
            json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": alert.dedup_key(),
                "client": "lifeboatd",
                "payload": {
                    "summary": summary,
                    "source": alert.source,
                    "severity": alert.event.severity(),
                    "timestamp": alert.timestamp,
                    "component": alert.job,
                    "group": "lifeboat",
                    "class": alert.event.name(),
                    "custom_details": {
                        "event": alert.event,
                        "job": alert.job,
                        "snapshot": alert.snapshot,
                        "message": alert.message,
                    },
                },
            })
        }
    }
}

/// `sha256=HEX`: the HMAC-SHA256 of `timestamp`, `.`, and `body`, keyed with `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = crate::auth::hmac_sha256(
        secret.as_bytes(),
        &[timestamp.to_string().as_bytes(), b".", body],
    );
    format!("sha256={}", hex::encode(mac))
}

/// Queue size; beyond it alerts are dropped (and logged) instead of slowing anything down.
const QUEUE: usize = 256;

/// Where alerts go and how often each is tried; a configuration reload replaces it.
#[derive(Debug, Clone, Default)]
struct Targets {
    hooks: Vec<Webhook>,
    attempts: u32,
}

/// The sending side of the alert queue. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Alerts {
    queue: mpsc::Sender<Alert>,
    targets: Arc<RwLock<Targets>>,
}

impl Alerts {
    /// Starts the sender task for `hooks` (none: alerts are only logged).
    pub fn start(hooks: Vec<Webhook>, attempts: u32) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let targets = Arc::new(RwLock::new(Targets { hooks, attempts }));
        tokio::spawn(send_loop(rx, Arc::clone(&targets)));
        Alerts { queue, targets }
    }

    /// Sends the alerts that come from now on to `hooks` instead.
    pub fn set_targets(&self, hooks: Vec<Webhook>, attempts: u32) {
        match self.targets.write() {
            Ok(mut t) => *t = Targets { hooks, attempts },
            Err(p) => *p.into_inner() = Targets { hooks, attempts },
        }
    }

    /// Queues `alert` without waiting.
    pub fn send(&self, alert: Alert) {
        warn!(event = alert.event.name(), job = %alert.job, "{}", alert.message);
        if crate::state::read(&self.targets).hooks.is_empty() {
            return;
        }
        if let Err(e) = self.queue.try_send(alert) {
            warn!("alert queue full or closed, alert dropped: {e}");
        }
    }
}

async fn send_loop(mut rx: mpsc::Receiver<Alert>, targets: Arc<RwLock<Targets>>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .user_agent(USER_AGENT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            warn!("webhooks disabled: cannot build an HTTP client: {e}");
            return;
        }
    };
    while let Some(alert) = rx.recv().await {
        let Targets { hooks, attempts } = crate::state::read(&targets);
        for hook in hooks {
            let body = match serde_json::to_vec(&body(&hook, &alert)) {
                Ok(b) => b,
                Err(e) => {
                    warn!("cannot encode alert: {e}");
                    continue;
                }
            };
            // Each alert is retried in its own task so one slow receiver does not hold up
            // the next alert.
            tokio::spawn(deliver(client.clone(), hook, alert.event, body, attempts));
        }
    }
}

async fn deliver(
    client: reqwest::Client,
    hook: Webhook,
    event: Event,
    body: Vec<u8>,
    attempts: u32,
) {
    let url = redact(&hook.url);
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=attempts {
        let mut request = client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header(EVENT_HEADER, event.name());
        if let Some(secret) = &hook.secret {
            let now = Utc::now().timestamp();
            request = request
                .header(TIMESTAMP_HEADER, now.to_string())
                .header(SIGNATURE_HEADER, signature(secret, now, &body));
        }
        let sent =
            request.body(body.clone()).send().await.and_then(reqwest::Response::error_for_status);
        match sent {
            Ok(_) => {
                debug!(url = %url, attempt, "alert delivered");
                return;
            }
            Err(e) => {
                let e = e.without_url();
                warn!(url = %url, attempt, "alert not delivered: {e}");
            }
        }
        if attempt < attempts {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }
    warn!(url = %url, "alert dropped after {attempts} attempts");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signatures_cover_the_timestamp_and_the_body() {
        let a = signature("s3cret", 1_700_000_000, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64, "{a}");
        assert_ne!(a, signature("s3cret", 1_700_000_001, b"{}"));
        assert_ne!(a, signature("s3cret", 1_700_000_000, b"{ }"));
        assert_ne!(a, signature("other", 1_700_000_000, b"{}"));
    }

    #[test]
    fn pagerduty_resolves_the_jobs_incident_on_recovery() {
        let hook = Webhook {
            url: PAGERDUTY_URL.into(),
            format: Format::PagerDuty,
            secret: None,
            routing_key: Some("R0UT1NG".into()),
        };
        let failed = body(&hook, &Alert::new(Event::BackupFailed, "auth", "x".repeat(2000), None));
        assert_eq!(failed["event_action"], "trigger");
        assert_eq!(failed["payload"]["summary"].as_str().unwrap().len(), 1024);
        let back = body(&hook, &Alert::new(Event::Recovered, "auth", "ok", None));
        assert_eq!(back["event_action"], "resolve");
        assert_eq!(back["dedup_key"], failed["dedup_key"]);
        assert_eq!(back.as_object().unwrap().len(), 3, "{back}");
    }
}
