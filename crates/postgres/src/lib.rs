//! lifeboat's PostgreSQL backend.
//!
//! Not implemented yet: logical backups through `pg_dump --snapshot`, guarded restores and
//! deep verification are tracked as their own piece of work. The crate exists so the
//! workspace layout matches the design from the start.

/// The snapshot kind this backend will produce.
pub const KIND: lifeboat_core::Kind = lifeboat_core::Kind::Postgres;
