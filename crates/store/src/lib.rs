//! # lifeboat-store
//!
//! Where lifeboat's bytes live: a deduplicated, checksummed repository on any
//! [`object_store`] backend (a local folder, an S3-compatible server, memory).
//!
//! - [`Repository::init`] writes a versioned config object; [`Repository::open`] reads it and
//!   loads the chunk index.
//! - [`Repository::backup`] captures any [`lifeboat_core::Backup`] source: content-defined
//!   chunks, SHA-256 ids, zstd, packs of several MiB, an index file, and the manifest last.
//! - [`StoredSnapshot`] implements [`lifeboat_core::Snapshot`]: reading it back streams with
//!   bounded memory and checks every chunk.
//! - [`RepositoryVerifier`] implements [`lifeboat_core::Verifier`] (structure, read-data).
//!
//! ```
//! use lifeboat_core::{Kind, MemoryBackup, NoProgress, Snapshot};
//! use lifeboat_store::{BackupOptions, Repository};
//! use tokio::io::AsyncReadExt;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let repo = Repository::init("memory://").await?;
//! let source = MemoryBackup { name: "notes".into(), kind: Kind::DIR, data: vec![42; 1 << 20] };
//! let snap = repo.backup(&source, &BackupOptions::default(), &NoProgress).await?;
//! let mut back = Vec::new();
//! snap.open().await?.read_to_end(&mut back).await.unwrap();
//! assert_eq!(back, source.data);
//! assert!(snap.manifest().stored < 10_000, "a run of one byte compresses to almost nothing");
//! # Ok::<_, lifeboat_store::StoreError>(()) }).unwrap();
//! ```

mod backup;
mod catalog;
mod crypt;
mod delta;
mod error;
pub mod format;
pub mod freshness;
mod holder;
mod lease;
mod local;
mod prune;
mod read;
mod repair;
mod replica;
mod repository;
pub mod retention;
mod retry;
mod s3;
mod snapshot;
mod staging;
pub mod stats;
mod targets;
mod url;
mod verify;
mod wal;

pub use backup::{BackupOptions, host_name};
pub use catalog::CATALOG_SLACK;
pub use crypt::{Access, KdfParams, KeyFileText, KeySlot, Password};
pub use error::{DiskProblem, Result, StoreError};
pub use holder::{DEFAULT_LEASE_TTL, LeaseInfo};
pub use lease::{BackupLease, LOCKS_PREFIX, MaintenanceLease};
pub use local::LocalStore;
pub use prune::{MERGE_INDEX_FILES_ABOVE, PruneOptions, PruneReport};
pub use read::{READ_BATCH_BYTES, ReadOptions, read_chunk};
pub use repair::RepairReport;
pub use replica::{ReplicaBase, replica_series};
pub use repository::{
    BlobLocation, ChunkIndex, DamagedObject, FoundRepository, KeyInfo, Repository,
};
pub use s3::S3Options;
pub use snapshot::StoredSnapshot;
pub use staging::{STAGING_MIN_AGE, StagingFile};
pub use targets::MemberOutcome;
pub use url::{DEFAULT_REPOSITORY, Location, use_s3_defaults};
pub use verify::RepositoryVerifier;
pub use wal::{WAL_PREFIX, WalFile, WalPushed, WalStart, check_wal_file_name, replica_names_of};
