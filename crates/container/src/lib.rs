//! lifeboat's Docker container backend.
//!
//! Not implemented yet: container filesystem export, configuration and volumes are tracked
//! as their own piece of work. The crate exists so the workspace layout matches the design.

/// The snapshot kind this backend will produce.
pub const KIND: lifeboat_core::Kind = lifeboat_core::Kind::Container;
