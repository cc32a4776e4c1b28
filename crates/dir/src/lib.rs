//! # lifeboat-dir
//!
//! Folders for lifeboat: [`DirBackup`] walks a folder in a fixed order and streams it as a
//! POSIX tar (files, folders, symlinks, hard links, permissions, mtimes; FIFOs and device
//! nodes as headers), recording what it saw; [`DirRestorePlan`] unpacks a snapshot into a
//! temporary folder beside the target, refusing every entry that would land outside it
//! (`..`, absolute paths, paths through symlinks), checks it, and only then swaps it in.
//!
//! A fixed walk order (sorted names) keeps the stream of an unchanged folder identical from
//! one night to the next, so content-defined chunking stores only what changed.

mod backup;
mod drill;
mod error;
mod list;
mod restore;

pub use backup::{DirBackup, DirMetadata};
pub use drill::DirDrill;
pub use error::DirError;
pub use list::{EntryInfo, list_entries};
pub use restore::{DirRestorePlan, safe_relative_path};
