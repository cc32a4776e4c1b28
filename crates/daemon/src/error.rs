//! Errors of the service.
//!
//! Rules: one enum for the crate; every variant names what it was about (which job, which
//! file, which run) and [`DaemonError::hint`] says what to do next. Errors of the library
//! crates are kept as sources, so their own hints still reach the user.

use std::path::PathBuf;

use serde::Serialize;

/// One problem in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Line in the file (1-based).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Everything that can go wrong in the service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// Neither `--config` nor `LIFEBOAT_CONFIG` names a file.
    #[error("no configuration file given")]
    NoConfig,
    /// The configuration file cannot be read.
    #[error("cannot read the configuration {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration has problems; all of them are listed.
    #[error("{} has {} problem{}:{}", path.display(), problems.len(), if problems.len() == 1 { "" } else { "s" }, problems.iter().map(|p| format!("\n  line {}: {}", p.line, p.message)).collect::<String>())]
    InvalidConfig {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// The run catalog cannot be opened or written.
    #[error("run catalog {path}: {source}")]
    Catalog {
        /// The catalog file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A local file (heartbeat, state folder) cannot be written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The API cannot listen on its address.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No job has this name.
    #[error("no job named {job:?}")]
    UnknownJob {
        /// The name asked for.
        job: String,
    },
    /// The repository password cannot be read from where the configuration says.
    #[error("cannot read the repository password from {from}: {reason}")]
    PasswordUnreadable {
        /// Where it was read from (`password_file PATH`, `password_command "CMD"`).
        from: String,
        /// Why.
        reason: String,
        /// The I/O error, when there is one.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The repository is encrypted and the configuration gives no password.
    #[error("the repository at {repository} is encrypted and the configuration gives no password")]
    PasswordRequired {
        /// The repository URL (without credentials).
        repository: String,
    },
    /// The configuration gives a password but the repository is plaintext.
    #[error(
        "the repository at {repository} is not encrypted, yet the configuration gives a \
         password: nothing is read or written in the clear"
    )]
    NotEncrypted {
        /// The repository URL (without credentials).
        repository: String,
    },
    /// A repository operation failed.
    #[error(transparent)]
    Store(Box<lifeboat_store::StoreError>),
    /// A domain error (restore plans, drills).
    #[error(transparent)]
    Core(Box<lifeboat_core::Error>),
}

impl From<lifeboat_store::StoreError> for DaemonError {
    fn from(e: lifeboat_store::StoreError) -> Self {
        DaemonError::Store(Box::new(e))
    }
}

impl From<lifeboat_core::Error> for DaemonError {
    fn from(e: lifeboat_core::Error) -> Self {
        DaemonError::Core(Box::new(e))
    }
}

impl DaemonError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            DaemonError::NoConfig => Some("start it as `lifeboatd --config /etc/lifeboat/lifeboatd.toml` or set LIFEBOAT_CONFIG; examples/lifeboatd.toml is a starting point".into()),
            DaemonError::ReadConfig { .. } => Some("check the path and that the service user may read it".into()),
            DaemonError::InvalidConfig { .. } => Some("fix every line listed, then start again; docs/operations.md describes each key".into()),
            DaemonError::Catalog { path, .. } => Some(format!("check that {} is on a writable local disk; the catalog only holds the run log and can be moved away", path.display())),
            DaemonError::Io { .. } => Some("check the folder exists and the service user may write to it (state_dir, heartbeat_dir)".into()),
            DaemonError::Listen { .. } => Some("another process may use the port; change `listen` or stop the other process".into()),
            DaemonError::UnknownJob { .. } => Some("GET /api/config lists the jobs".into()),
            DaemonError::PasswordUnreadable { .. } => Some("check `password_file` / `password_command` in the configuration: the file must be readable by the service user and hold the password; the command must succeed and print it".into()),
            DaemonError::PasswordRequired { .. } => Some("set `password_file = \"PATH\"` (a file readable only by the service user holding the password) or `password_command = \"CMD\"` in the configuration".into()),
            DaemonError::NotEncrypted { .. } => Some("if it was created encrypted, its config was changed: do not use it and check who can write to the store; if it is meant to be plaintext, remove `password_file` / `password_command` from the configuration".into()),
            DaemonError::Store(source) => source.hint(),
            DaemonError::Core(e) => e.hint(),
        }
    }
}
