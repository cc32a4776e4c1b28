//! # lifeboat-daemon
//!
//! The logic of `lifeboatd`, the service that replaces cron entries, hand-written backup
//! APIs, heartbeat files and webhook scripts:
//!
//! - [`config`]: one TOML file, secrets from the environment, every problem listed by line;
//! - [`schedule`] and [`scheduler`]: cron with seconds or intervals, never two runs of a
//!   job at once, one catch-up run after downtime, jitter;
//! - [`runner`]: backup, retention, verification, heartbeat, alerts for one run;
//! - [`catalog`]: the run log in a local SQLite file;
//! - [`api`]: the JSON HTTP API with bearer tokens; [`metrics`]: Prometheus text;
//!   [`page`]: the status page a person reads, `GET /`;
//! - [`alerts`]: webhooks with retries; [`heartbeat`]: files for external monitors;
//! - [`service`]: start, serve, reload on SIGHUP, graceful shutdown; [`http`]: the server
//!   with its limits; [`supervise`]: deadlines, caught panics, the run watchdog;
//!   [`notify`]: systemd readiness and watchdog.
//!
//! It names no backend: the caller hands it a [`Registry`](lifeboat_core::Registry) (the
//! `lifeboat` crate's `backends()`, plus a team's own), which gives the kinds a job may have,
//! each kind's job keys, and the backups, drills and restores.
//!
//! ```no_run
//! # async fn demo(registry: lifeboat_core::Registry) -> Result<(), lifeboat_daemon::DaemonError> {
//! use lifeboat_daemon::config::{Config, ProcessEnv};
//! let path = std::path::Path::new("/etc/lifeboat/lifeboatd.toml");
//! let config = Config::load(path, &ProcessEnv, &registry)?;
//! lifeboat_daemon::service::run(config, registry).await
//! # }
//! ```
//!
//! Without the HTTP API, [`service::open`] then [`service::run_scheduler`] run the scheduled
//! backups, retention, verification and drills inside a service of one's own.

pub mod alerts;
pub mod api;
pub mod auth;
pub mod catalog;
pub mod config;
mod error;
pub mod heartbeat;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod page;
pub mod replica;
pub mod runner;
pub mod schedule;
pub mod scheduler;
pub mod service;
pub mod settings;
pub mod state;
pub mod supervise;

pub use error::{DaemonError, Problem};
