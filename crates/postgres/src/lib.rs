//! # lifeboat-postgres
//!
//! PostgreSQL for lifeboat. [`PostgresBackup`] opens a REPEATABLE READ transaction, exports
//! its snapshot, records the server version, encoding, schemas, extensions, sequences and
//! every user table's exact row count in that snapshot, then streams the server's own
//! `pg_dump --snapshot` (custom format, uncompressed so deduplication works) straight into
//! the repository. The dump and the counts describe the same instant.
//!
//! Restores (`pg_restore` fed from the repository) and deep verification build on the same
//! connection helpers.

mod archive;
mod backend;
mod backup;
mod cluster;
mod cluster_backend;
mod cluster_drill;
mod cluster_files;
mod connect;
mod database;
mod drill;
mod error;
mod export;
mod parallel;
mod pgdata;
mod restore;
mod rows;

pub use backend::{DRILL_SERVER, PostgresBackend};
pub use backup::{PostgresBackup, PostgresMetadata};
pub use cluster::{CLUSTER_KIND, ClusterBackup, ClusterMetadata, ReadVia, cluster_name};
pub use cluster_backend::PostgresClusterBackend;
pub use cluster_drill::ClusterDrill;
pub use connect::{ServerTools, server_tools};
pub use database::{DatabaseFacts, Grant, Setting};
pub use drill::PostgresDrill;
pub use error::PgError;
pub use export::export;
pub use pgdata::{PgdataRestorePlan, RecoveryTarget};
pub use restore::{MissingRoles, PostgresRestorePlan};
pub use rows::restore_rows;

/// The snapshot kind this backend produces.
pub const KIND: lifeboat_core::Kind = lifeboat_core::Kind::POSTGRES;
