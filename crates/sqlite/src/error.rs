//! Errors of the SQLite backend.
//!
//! Each variant names the database file. Converting into [`lifeboat_core::Error`] keeps the
//! message and adds the hint a user needs (wrong path, not a database, locked).

use std::path::PathBuf;

use lifeboat_core::{Error as CoreError, Kind};

/// What can go wrong capturing, restoring or checking a SQLite database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// The database file does not exist.
    #[error("SQLite database {path} does not exist")]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The file exists but is not a SQLite database.
    #[error("{path} is not a SQLite database ({reason})")]
    NotADatabase {
        /// The path given.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// SQLite reported an error.
    #[error("SQLite error while {action} {path}: {source}")]
    Sqlite {
        /// What was being done.
        action: &'static str,
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database stayed locked by another connection for too long.
    #[error("{path} stayed locked by another connection for {seconds} s while {action}")]
    Locked {
        /// What was being done.
        action: &'static str,
        /// The database file.
        path: PathBuf,
        /// How long lifeboat waited.
        seconds: u64,
    },
    /// The capture was abandoned because the repository side stopped reading.
    #[error("the capture of {path} was cancelled")]
    Cancelled {
        /// The database file.
        path: PathBuf,
    },
    /// Replication of the database cannot go on.
    #[error("replicating {path}: {reason}")]
    Replica {
        /// The database file.
        path: PathBuf,
        /// What happened.
        reason: String,
    },
    /// A file operation failed.
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
}

impl SqliteError {
    pub(crate) fn sqlite(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(rusqlite::Error) -> Self {
        let path = path.into();
        move |source| SqliteError::Sqlite { action, path, source }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| SqliteError::Io { action, path, source }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            SqliteError::NotFound { .. } => "check the path to the database file".into(),
            SqliteError::NotADatabase { .. } => {
                "point lifeboat at the SQLite database file itself (not a dump, -wal or -shm file)"
                    .into()
            }
            SqliteError::Locked { .. } => {
                "a long write transaction holds the database; retry when it has finished".into()
            }
            SqliteError::Cancelled { .. } => "see the error that stopped the backup".into(),
            SqliteError::Replica { .. } => {
                "start `lifeboat replicate sqlite` again: it resumes where the repository ends"
                    .into()
            }
            SqliteError::Sqlite { .. } | SqliteError::Io { .. } => {
                "check the file's permissions and free disk space".into()
            }
        }
    }
}

impl From<SqliteError> for CoreError {
    fn from(e: SqliteError) -> Self {
        let hint = e.hint();
        CoreError::native(Kind::SQLITE, e, hint)
    }
}

pub(crate) fn backend(message: impl Into<String>) -> CoreError {
    CoreError::Backend { kind: Kind::SQLITE, message: message.into() }
}
