//! Errors of the directory backend. Each names the path involved.

use std::path::PathBuf;

use lifeboat_core::Error as CoreError;

/// What can go wrong capturing or restoring a folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirError {
    /// The folder does not exist.
    #[error("folder {path} does not exist")]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The path is not a folder.
    #[error("{path} is not a folder")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// An exclude or include pattern is not a valid glob.
    #[error("invalid pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A swap by two renames failed after the original folder was moved aside, and it could
    /// not be moved back: it is kept, whole, under `aside`.
    #[error(
        "could not move the restored folder to {target} ({source}) nor put the original back ({rollback}): the original is kept at {aside}"
    )]
    SetAside {
        /// The restore target, now missing.
        target: PathBuf,
        /// Where the original folder is.
        aside: PathBuf,
        /// Why the restored folder could not be moved in.
        #[source]
        source: std::io::Error,
        /// Why the original could not be moved back.
        rollback: std::io::Error,
    },
}

impl From<DirError> for CoreError {
    fn from(e: DirError) -> Self {
        let hint = match &e {
            DirError::NotFound { .. } | DirError::NotADirectory { .. } => {
                "check the path of the folder"
            }
            DirError::BadPattern { .. } => "patterns are globs such as '*.log' or 'cache/**'",
            DirError::Io { .. } => "check permissions and free space",
            DirError::SetAside { .. } => {
                "rename the kept original back to the target (the next restore of it does so too)"
            }
        };
        CoreError::native(lifeboat_core::Kind::DIR, e, hint)
    }
}
