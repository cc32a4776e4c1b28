//! Heartbeat files for external monitors: `<heartbeat_dir>/<job>.last-success` holds the time
//! of the job's last successful backup (RFC 3339) and its mtime moves with it, so a monitor
//! can alert on age with `find -mmin` or by reading the file. Written by the one writer the
//! `lifeboat` CLI uses too (synced, then renamed: never half-written).

pub use lifeboat_core::heartbeat::{beat, path};
