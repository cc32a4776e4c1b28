//! Connections and the server's own tools.

use std::path::PathBuf;

use tokio_postgres::{Client, Config, NoTls};
use tracing::warn;

use crate::error::PgError;

/// Where the password-free description of a URL points (for messages).
pub(crate) fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or("postgres"))
}

/// Parses a URL, filling the password from `PGPASSWORD` when the URL has none.
pub(crate) fn parse(url: &str) -> Result<Config, PgError> {
    let mut config: Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| PgError::BadUrl { reason: e.to_string() })?;
    if config.get_password().is_none()
        && let Ok(pw) = std::env::var("PGPASSWORD")
    {
        config.password(pw);
    }
    Ok(config)
}

/// Connects and drives the connection in the background.
pub(crate) async fn connect(config: &Config) -> Result<Client, PgError> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| PgError::Connect { target: describe(config), reason: db_message(&e) })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Connects under `application_name` (what `pg_stat_activity` shows), unless the URL names
/// one itself.
pub(crate) async fn connect_as(config: &Config, application_name: &str) -> Result<Client, PgError> {
    let mut config = config.clone();
    if config.get_application_name().is_none() {
        config.application_name(application_name);
    }
    connect(&config).await
}

/// The server's message when there is one, else the error's.
pub(crate) fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())
}

/// `pg_dump` and `pg_restore` of one major version.
#[derive(Debug, Clone)]
pub struct ServerTools {
    /// `pg_dump`.
    pub pg_dump: PathBuf,
    /// `pg_restore`.
    pub pg_restore: PathBuf,
}

/// The tools matching a server's major version: from `PG_BINDIR` when it is set (an explicit
/// choice is not second-guessed), otherwise Debian's `/usr/lib/postgresql/<major>/bin`.
///
/// # Errors
/// [`PgError::ToolMissing`] naming the version needed.
pub fn server_tools(major: u32) -> Result<ServerTools, PgError> {
    let dirs = match std::env::var("PG_BINDIR") {
        Ok(dir) => vec![PathBuf::from(dir)],
        Err(_) => vec![PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"))],
    };
    for dir in &dirs {
        let (pg_dump, pg_restore) = (dir.join("pg_dump"), dir.join("pg_restore"));
        if pg_dump.exists() && pg_restore.exists() {
            return Ok(ServerTools { pg_dump, pg_restore });
        }
    }
    Err(PgError::ToolMissing {
        tool: "pg_dump",
        major,
        looked: dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
    })
}
