//! Errors of the lifeboat domain.
//!
//! Rules for this module:
//! - One public, `#[non_exhaustive]` enum. Every variant says *what* happened and carries the
//!   fields a user needs to act on it: which file, which snapshot, which object key.
//! - Backend and store crates keep their own error enums and convert into this one, mapping the
//!   cases a caller can act on (not found, corrupt, target exists) onto the matching variant.
//! - [`Error::hint`] gives the one-line "what to do next" that binaries print under the message.
//! - No variant wraps `anyhow`; that belongs to binaries.

use std::io;
use std::path::PathBuf;

use crate::Kind;

/// Result type used throughout lifeboat's library crates.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in lifeboat's domain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a local file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "reading".
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A byte stream failed while it was being read or written.
    #[error("stream error while {action}: {source}")]
    Stream {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// No snapshot matches the given id, prefix or name.
    #[error("snapshot {id} not found")]
    SnapshotNotFound {
        /// The id, prefix or selector that was asked for.
        id: String,
    },
    /// A snapshot id prefix matches more than one snapshot.
    #[error("snapshot prefix {prefix} is ambiguous: it matches {matches} snapshots")]
    AmbiguousSnapshot {
        /// The prefix that was asked for.
        prefix: String,
        /// How many snapshots it matches.
        matches: usize,
    },
    /// Stored data does not match its checksum.
    #[error("{object} is corrupt: expected {expected}, found {actual}")]
    Corrupt {
        /// The object or chunk that failed the check.
        object: String,
        /// What was expected (usually a SHA-256 digest).
        expected: String,
        /// What was found.
        actual: String,
    },
    /// An object that a snapshot references is missing from the repository.
    #[error("{object} is missing from the repository")]
    Missing {
        /// The missing object or chunk.
        object: String,
    },
    /// The operation is not available for this kind of snapshot.
    #[error("{operation} is not supported for {kind} snapshots")]
    Unsupported {
        /// What was attempted.
        operation: String,
        /// The snapshot kind.
        kind: Kind,
    },
    /// This program has no backend for a kind (a newer lifeboat, or a team's own backend,
    /// made the snapshot).
    #[error(
        "cannot {operation} {kind} snapshots: this program has no {kind} backend (it knows {known})"
    )]
    UnknownKind {
        /// The kind without a backend.
        kind: Kind,
        /// What was attempted ("restore", "drill").
        operation: String,
        /// The kinds it knows, for the message.
        known: String,
    },
    /// An operation needs an option that was not given.
    #[error("{kind} needs the option {option}: {why}")]
    MissingOption {
        /// The backend asking.
        kind: Kind,
        /// The option, by its name in [`crate::backend::OptionSpec`].
        option: String,
        /// What it is for.
        why: String,
    },
    /// A restore target already exists and `force` was not given.
    #[error("restore target {target} already exists")]
    TargetExists {
        /// The target that exists.
        target: String,
    },
    /// The input given to a backend is not what it needs.
    #[error("{what}")]
    InvalidInput {
        /// What is wrong, in a sentence.
        what: String,
        /// What to do about it.
        hint: String,
    },
    /// A backend (database, engine) reported an error.
    #[error("{kind}: {message}")]
    Backend {
        /// The backend kind.
        kind: Kind,
        /// What failed.
        message: String,
    },
    /// A backend's own error, kept whole: the message and hint a user needs, and the
    /// backend's typed error as its [`source`](std::error::Error::source), for callers that
    /// downcast it (`PgError`, `ContainerError`, …) or walk its causes.
    #[error("{message}")]
    Native {
        /// The backend.
        kind: Kind,
        /// What went wrong, in a sentence (the backend error's own message).
        message: String,
        /// What to do about it.
        hint: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// Verification of a restored or stored capture failed.
    #[error("verification of {subject} failed: {}", failures.join("; "))]
    VerificationFailed {
        /// What was verified.
        subject: String,
        /// Each check that failed.
        failures: Vec<String>,
    },
    /// The repository (its store or format) reported an error.
    #[error("{message}")]
    Repository {
        /// What failed, with the object key where known.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
}

impl Error {
    /// A backend's error as a lifeboat error, kept as the source (see [`Error::Native`]).
    pub fn native(
        kind: Kind,
        error: impl std::error::Error + Send + Sync + 'static,
        hint: impl Into<String>,
    ) -> Self {
        Error::Native {
            kind,
            message: error.to_string(),
            hint: hint.into(),
            source: Box::new(error),
        }
    }

    /// Wraps an I/O error on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io { action, path: path.into(), source }
    }

    /// Wraps an error from reading or writing a stream. When the stream itself failed with a
    /// lifeboat error (a corrupt chunk surfacing through `AsyncRead`), that error is returned
    /// as it is, so the caller sees "chunk X is corrupt" rather than a generic I/O failure.
    pub fn from_stream(action: &'static str, source: io::Error) -> Self {
        if source.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return match source.into_inner().map(|inner| inner.downcast::<Error>()) {
                Some(Ok(ours)) => *ours,
                Some(Err(other)) => Error::Stream { action, source: io::Error::other(other) },
                None => Error::Stream { action, source: io::Error::other("stream failed") },
            };
        }
        Error::Stream { action, source }
    }

    /// A one-line suggestion of what the user can do next, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Io { source, .. } | Error::Stream { source, .. } => io_hint(source),
            Error::Unsupported { kind, .. } => Some(format!(
                "{kind} snapshots do not offer this; `lifeboat cat` gives any snapshot's stream"
            )),
            Error::Backend { .. } => Some(
                "the message above is the backend's own; run with LIFEBOAT_LOG=debug for the \
                 steps that led to it"
                    .into(),
            ),
            Error::SnapshotNotFound { .. } => {
                Some("run `lifeboat snapshots` to see the ids that exist".into())
            }
            Error::AmbiguousSnapshot { .. } => Some("give more characters of the id".into()),
            Error::Corrupt { .. } | Error::Missing { .. } => Some(
                "run `lifeboat verify --all --read-data` to see every affected snapshot; \
                 restore from another snapshot"
                    .into(),
            ),
            Error::TargetExists { .. } => Some(
                "replace it with the force option (a pre-restore safety snapshot is taken \
                 first), or restore to a new target"
                    .into(),
            ),
            Error::VerificationFailed { .. } => Some(
                "do not rely on the failing snapshots: restore from one that verifies, and take a \
                 new backup"
                    .into(),
            ),
            Error::InvalidInput { hint, .. } | Error::Native { hint, .. } => Some(hint.clone()),
            Error::UnknownKind { .. } => Some(
                "use a lifeboat built with that backend; listing, verify, forget and prune \
                 work without it"
                    .into(),
            ),
            Error::MissingOption { option, .. } => Some(format!("give the option {option}")),
            Error::Repository { hint, .. } => hint.clone(),
        }
    }
}

/// What to do about a local I/O failure, by its kind: the same advice wherever it happens
/// (capture, restore, unpacking a tar, a local repository).
pub fn io_hint(e: &io::Error) -> Option<String> {
    use io::ErrorKind as K;
    let hint = match e.kind() {
        K::NotFound => "check the path; it does not exist",
        K::PermissionDenied => "check the file's permissions and the user lifeboat runs as",
        K::StorageFull | K::QuotaExceeded => {
            "the disk is full: free space (or restore onto a file system with room); \
             nothing was replaced"
        }
        K::ReadOnlyFilesystem => {
            "the file system is mounted read-only: remount it or choose another place"
        }
        K::AlreadyExists => "something is already there: move it away or choose another path",
        K::InvalidData | K::UnexpectedEof => {
            "the data is not what it should be: run `lifeboat verify --read-data` on the snapshot"
        }
        _ => return None,
    };
    Some(hint.into())
}
