//! # lifeboat-ops
//!
//! Operations that need every backend or the whole repository, shared by the `lifeboat` CLI
//! and the `lifeboatd` service so both behave the same:
//!
//! - [`Target`] and [`source_for`]: the backup source for a target of any kind;
//! - [`plan_for`]: the restore plan for a snapshot of any kind, with its safety net;
//! - [`drill_backends`] and [`backend_for`]: the scratch restore of every kind;
//! - [`retention`]: a policy set applied to a repository, name by name;
//! - [`stats`]: per-name counts, sizes and deduplication;
//! - [`freshness`]: which names are stale;
//! - [`printable_metadata`]: metadata with secrets hidden, for listings.
//!
//! ```
//! use lifeboat_ops::{Target, source_for};
//! let source = source_for(&Target::Sqlite { path: "auth.db".into() })?;
//! assert_eq!(source.kind(), lifeboat_core::Kind::Sqlite);
//! # Ok::<_, lifeboat_core::Error>(())
//! ```

mod drill;
mod freshness;
mod restore;
pub mod retention;
mod source;
pub mod stats;

pub use drill::{backend_for, drill_backends};
pub use freshness::{Freshness, freshness};
pub use restore::{Selection, plan_for};
pub use source::{Target, source_for};

/// A snapshot's backend metadata as listings may show it: secrets (a container's env
/// values) replaced by `***`.
pub fn printable_metadata(manifest: &lifeboat_core::Manifest) -> serde_json::Value {
    match manifest.kind {
        lifeboat_core::Kind::Container => lifeboat_container::redact(&manifest.metadata),
        _ => manifest.metadata.clone(),
    }
}
