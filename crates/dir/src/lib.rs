//! # lifeboat-dir
//!
//! Folders for lifeboat: [`DirBackup`] walks a folder in a fixed order and streams it as a
//! POSIX tar (files, folders, symlinks, hard links, permissions, mtimes; FIFOs and device
//! nodes as headers), recording what it saw. It opens every entry relative to its parent
//! folder's handle without following symlinks and checks the inode is the one it looked at,
//! so an entry swapped for a symlink mid-walk is left out with a warning, never followed out
//! of the folder. [`DirRestorePlan`] unpacks a snapshot into a temporary folder beside the
//! target, refusing every entry that would land outside it (`..`, absolute paths, paths
//! through symlinks), checks it, and only then exchanges it with the target in one step
//! (`renameat2(RENAME_EXCHANGE)`).
//!
//! A fixed walk order (sorted names) keeps the stream of an unchanged folder identical from
//! one night to the next, so content-defined chunking stores only what changed.

mod backend;
mod backup;
mod drill;
mod error;
mod list;
mod restore;

pub use backend::DirBackend;
pub use backup::{DirBackup, DirMetadata};
pub use drill::DirDrill;
pub use error::DirError;
pub use list::{EntryInfo, list_entries};
pub use restore::{DirRestorePlan, safe_relative_path};
