//! Errors of the PostgreSQL backend, each naming the server or database.

use lifeboat_core::{Error as CoreError, Kind};

/// What can go wrong talking to PostgreSQL or running its tools.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The connection URL could not be parsed.
    #[error("invalid PostgreSQL URL: {reason}")]
    BadUrl {
        /// Why.
        reason: String,
    },
    /// Connecting failed (unreachable, refused, authentication, missing database).
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// Host, port and database, without the password.
        target: String,
        /// The server's or the network's answer.
        reason: String,
    },
    /// A query failed.
    #[error("query on {target} failed: {reason}")]
    Query {
        /// Host, port and database.
        target: String,
        /// The server's answer.
        reason: String,
    },
    /// No `pg_dump`/`pg_restore` for the server's major version is installed.
    #[error("no {tool} for PostgreSQL {major} found (looked in {looked})")]
    ToolMissing {
        /// The tool.
        tool: &'static str,
        /// The server's major version.
        major: u32,
        /// Where lifeboat looked.
        looked: String,
    },
    /// A base backup read from the data directory failed.
    #[error("reading the data directory {dir}: {reason}")]
    DataDirectory {
        /// The data directory (empty when not known at that point).
        dir: String,
        /// What went wrong.
        reason: String,
    },
    /// A tool exited with an error.
    #[error("{tool} failed ({status}): {stderr}")]
    Tool {
        /// The tool.
        tool: &'static str,
        /// Its exit status.
        status: String,
        /// The end of what it printed on stderr.
        stderr: String,
    },
}

impl PgError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            PgError::BadUrl { .. } => "use postgres://user:password@host:port/database".into(),
            PgError::Connect { reason, .. } if reason.contains("none was given") => {
                "give the password in the URL (postgres://user:PASSWORD@host:port/db), in \
                 PGPASSWORD, or in ~/.pgpass (or the file PGPASSFILE names, mode 0600)"
                    .into()
            }
            PgError::Connect { reason, .. } if reason.contains("password") => {
                "check the user and password in the URL (or PGPASSWORD)".into()
            }
            PgError::Connect { reason, .. } if reason.contains("does not exist") => {
                "check the database name; `psql -l` lists them".into()
            }
            PgError::Connect { .. } => {
                "check that the server is running and reachable at that host and port".into()
            }
            PgError::Query { reason, .. } if connection_lost(reason) => {
                "the server ended a connection during the backup (a restart, \
                 pg_terminate_backend, a timeout); nothing was saved: run the backup again"
                    .into()
            }
            PgError::Query { .. } => "check the user's privileges on the database".into(),
            PgError::ToolMissing { major, .. } => {
                format!(
                    "install the client tools of PostgreSQL {major} (apt-get install postgresql-client-{major}) or set PG_BINDIR"
                )
            }
            PgError::DataDirectory { .. } => {
                "run lifeboat on the database host as root or the server's owner, or read over \
                 the replication protocol with --via replication; nothing was saved"
                    .into()
            }
            PgError::Tool { tool: "pg_restore", .. } => {
                "nothing was swapped: the target database is as it was and the partial restore \
                 was dropped; see pg_restore's message, then check the server's log and free space"
                    .into()
            }
            PgError::Tool { .. } => {
                "see the tool's message above; the snapshot was not written".into()
            }
        }
    }
}

impl From<PgError> for CoreError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Query { ref reason, .. } if !connection_lost(reason) => {
                CoreError::Backend { kind: Kind::POSTGRES, message: e.to_string() }
            }
            other => {
                let hint = other.hint();
                CoreError::native(Kind::POSTGRES, other, hint)
            }
        }
    }
}

/// Whether a server message says the connection itself went away.
fn connection_lost(reason: &str) -> bool {
    reason.contains("terminating connection") || reason.contains("connection closed")
}
