//! lifeboat's Docker container backend.
//!
//! A container snapshot holds the container's filesystem (the engine's export), the
//! contents of each volume and bind mount (read through the engine's archive API, never
//! from the host's docker folders), and its configuration from inspect: image, cmd,
//! entrypoint, env, labels, working dir, user, ports, restart policy, networks, mounts.
//!
//! - [`ContainerBackup`] captures one container; [`containers_with_label`] finds the
//!   containers to capture for a label selector.
//! - [`ContainerRestorePlan`] recreates a container from a snapshot beside the existing one,
//!   swaps them only once the new one keeps running, and puts the original back on failure.
//! - [`ContainerDrill`] proves a snapshot restorable in a throwaway container on no network.
//!
//! The engine's API version is negotiated, so older engines (API 1.41) work.
//!
//! ```no_run
//! # async fn demo() -> lifeboat_core::Result<()> {
//! use lifeboat_core::Backup;
//! let source = lifeboat_container::ContainerBackup::new("billing-api");
//! let capture = source.capture().await?;
//! # drop(capture);
//! # Ok(())
//! # }
//! ```

mod backend;
mod backup;
mod digests;
mod drill;
mod engine;
mod error;
mod leftovers;
mod metadata;
mod recreate;
mod restore;

pub use backend::ContainerBackend;
pub use backup::{ContainerBackup, containers_with_label};
pub use digests::{FileDigests, compare, tar_digests};
pub use drill::ContainerDrill;
pub use engine::connect;
pub use error::ContainerError;
pub use leftovers::{Leftover, clean_leftovers, is_lifeboat_working_container, leftovers};
pub use metadata::{ContainerMetadata, FILESYSTEM, MountInfo, NetworkAttachment, Section, redact};
pub use recreate::{MountPlan, RESTORED_LABEL};
pub use restore::{ContainerRestorePlan, DEFAULT_SETTLE};

/// A `tracing` filter directive every binary adds: the Docker client's own debug logs print
/// containers' configuration, env values (secrets) included, so they stay off at any level.
pub const LOG_DIRECTIVE: &str = "bollard=warn";

/// The snapshot kind this backend produces.
pub const KIND: lifeboat_core::Kind = lifeboat_core::Kind::CONTAINER;
