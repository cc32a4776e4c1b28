//! Webhook alerts: a JSON body `{event, message, timestamp, source, job, snapshot}` posted to
//! every configured URL from a background task, retried with exponential backoff. Sending
//! never blocks a backup: events go into a bounded queue, and when it is full the event is
//! logged and dropped rather than waited for.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::config::redact;

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
    /// A job that failed or was stale is fine again.
    #[serde(rename = "recovered")]
    Recovered,
    /// A task of lifeboatd panicked (a bug); it was caught, and the run it was part of failed.
    #[serde(rename = "task.panicked")]
    TaskPanicked,
}

/// The body posted to webhooks.
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
}

/// Queue size; beyond it alerts are dropped (and logged) instead of slowing anything down.
const QUEUE: usize = 256;

/// Where alerts go and how often each is tried; a configuration reload replaces it.
#[derive(Debug, Clone, Default)]
struct Targets {
    urls: Vec<String>,
    attempts: u32,
}

/// The sending side of the alert queue. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Alerts {
    queue: mpsc::Sender<Alert>,
    targets: Arc<RwLock<Targets>>,
}

impl Alerts {
    /// Starts the sender task for `urls` (none: alerts are only logged).
    pub fn start(urls: Vec<String>, attempts: u32) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let targets = Arc::new(RwLock::new(Targets { urls, attempts }));
        tokio::spawn(send_loop(rx, Arc::clone(&targets)));
        Alerts { queue, targets }
    }

    /// Sends the alerts that come from now on to `urls` instead.
    pub fn set_targets(&self, urls: Vec<String>, attempts: u32) {
        match self.targets.write() {
            Ok(mut t) => *t = Targets { urls, attempts },
            Err(p) => *p.into_inner() = Targets { urls, attempts },
        }
    }

    /// Queues `alert` without waiting.
    pub fn send(&self, alert: Alert) {
        warn!(event = ?alert.event, job = %alert.job, "{}", alert.message);
        if crate::state::read(&self.targets).urls.is_empty() {
            return;
        }
        if let Err(e) = self.queue.try_send(alert) {
            warn!("alert queue full or closed, alert dropped: {e}");
        }
    }
}

async fn send_loop(mut rx: mpsc::Receiver<Alert>, targets: Arc<RwLock<Targets>>) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            warn!("webhooks disabled: cannot build an HTTP client: {e}");
            return;
        }
    };
    while let Some(alert) = rx.recv().await {
        let Targets { urls, attempts } = crate::state::read(&targets);
        let body = match serde_json::to_vec(&alert) {
            Ok(b) => b,
            Err(e) => {
                warn!("cannot encode alert: {e}");
                continue;
            }
        };
        for url in urls {
            // Each alert is retried in its own task so one slow receiver does not hold up
            // the next alert.
            tokio::spawn(deliver(client.clone(), url, body.clone(), attempts));
        }
    }
}

async fn deliver(client: reqwest::Client, url: String, body: Vec<u8>, attempts: u32) {
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=attempts {
        let sent = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match sent {
            Ok(_) => {
                debug!(url = %redact(&url), attempt, "alert delivered");
                return;
            }
            Err(e) => {
                let e = e.without_url();
                warn!(url = %redact(&url), attempt, "alert not delivered: {e}");
            }
        }
        if attempt < attempts {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }
    warn!(url = %redact(&url), "alert dropped after {attempts} attempts");
}
