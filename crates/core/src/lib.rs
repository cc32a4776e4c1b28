//! # lifeboat-core
//!
//! The domain of lifeboat, with no network and no database drivers:
//!
//! - the four roles every backend plays: [`Backup`] (take one consistent capture),
//!   [`Snapshot`] (a stored capture read back as a stream), [`RestorePlan`] (printable steps
//!   that put a snapshot onto a target, with a safety net) and [`Verifier`] (is it restorable
//!   and right?);
//! - the snapshot [`Manifest`] and SHA-256 ids ([`Digest`]);
//! - the [`Backend`] trait that ties a kind of target together, and the [`Registry`] of them;
//! - errors ([`Error`]) and progress reporting ([`Progress`]).
//!
//! ```
//! use lifeboat_core::{Digest, Kind};
//!
//! // Identical content gives identical ids: stored once.
//! assert_eq!(Digest::of(b"page"), Digest::of(b"page"));
//! assert_eq!("sqlite".parse::<Kind>()?, Kind::SQLITE);
//! # Ok::<_, String>(())
//! ```

pub mod backend;
mod backup;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod critical;
mod digest;
pub mod drill;
mod duration;
mod error;
pub mod heartbeat;
pub mod host;
mod kind;
mod manifest;
mod memory;
pub mod producer;
mod progress;
pub mod replica;
mod restore;
pub mod retention;
mod rows;
pub mod secret;
mod snapshot;
mod verify;
pub mod wal;

pub use backend::{Backend, Registry, TargetSpec};
pub use backup::{Backup, ByteStream, Capture, FinishCheck};
pub use digest::{ChunkId, Digest, SnapshotId, StreamHasher, VerifiedReader, verified_pieces};
pub use duration::{format_duration, parse_duration};
pub use error::{Error, Result, io_hint};
pub use kind::Kind;
pub use manifest::{MANIFEST_FORMAT, MAX_NAME_LEN, Manifest, Tags, check_snapshot_name};
pub use memory::{MemoryBackup, MemorySafetyNet, MemorySnapshot};
pub use progress::{NoProgress, Progress};
pub use restore::{
    PRE_RESTORE_TAG, PlanStep, RestoreContext, RestoreOptions, RestorePlan, RestoreReport,
    SafetyNet, aside_name, existing_parent, is_safety_snapshot, parent_folder, remove_leftovers,
    shell_quote, sync_parent_folder, sync_tree, temp_prefix,
};
pub use rows::{
    ExportFormat, ExportReport, ExportRequest, ExportTo, MergeMode, PredicateRefusal, ROWS_TAG,
    RowSelection, RowsReport, SqlDialect, TableChanges, TableExport, csv_field, export_file_name,
    predicate_in_parens, self_contained,
};
pub use snapshot::Snapshot;
pub use verify::{Check, Verifier, VerifyReport};
