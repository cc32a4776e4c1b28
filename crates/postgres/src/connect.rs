//! Connections and the server's own tools.

use std::path::PathBuf;

use tokio_postgres::{Client, Config, NoTls};
use tracing::warn;

use crate::error::PgError;

/// Where the password-free description of a URL points (for messages).
pub(crate) fn describe(config: &Config) -> String {
    let (host, port) = server_of(config);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or("postgres"))
}

/// The server a URL names: its first host (the socket folder for a Unix socket;
/// `localhost` when none is given) and port (5432 by default).
pub(crate) fn server_of(config: &Config) -> (String, u16) {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    (host, config.get_ports().first().copied().unwrap_or(5432))
}

/// Parses a URL, filling the password, when the URL has none, from `PGPASSWORD` or else the
/// password file (`PGPASSFILE`, default `~/.pgpass`), as libpq does.
pub(crate) fn parse(url: &str) -> Result<Config, PgError> {
    let mut config: Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| PgError::BadUrl { reason: e.to_string() })?;
    if config.get_password().is_none() {
        if let Ok(pw) = std::env::var("PGPASSWORD") {
            config.password(pw);
        } else if let Some(pw) = pgpass_password(&config) {
            config.password(pw);
        }
    }
    Ok(config)
}

/// The password for `config` in the password file, if there is one that matches.
fn pgpass_password(config: &Config) -> Option<String> {
    let path = match std::env::var_os("PGPASSFILE") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".pgpass"),
    };
    let text = std::fs::read_to_string(&path).ok()?;
    {
        use std::os::unix::fs::PermissionsExt;
        // libpq ignores a password file others can read; so do we, with the same warning.
        if std::fs::metadata(&path).ok()?.permissions().mode() & 0o077 != 0 {
            warn!(file = %path.display(), "password file has group or world access; ignored (chmod 0600 it)");
            return None;
        }
    }
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
    let db = config.get_dbname().unwrap_or("postgres");
    let user = config.get_user().unwrap_or("postgres");
    pgpass_lookup(&text, [host.as_str(), port.as_str(), db, user])
}

/// The password of the first line of a password file whose host, port, database and user
/// match `wanted` (`*` matches anything; `\` escapes `:` and `\`).
fn pgpass_lookup(text: &str, wanted: [&str; 4]) -> Option<String> {
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut fields = Vec::new();
        let mut current = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        fields.push(current);
        if fields.len() == 5 && fields.iter().zip(wanted).all(|(f, w)| f == "*" || f == w) {
            return fields.pop();
        }
    }
    None
}

/// Connects and drives the connection in the background.
pub(crate) async fn connect(config: &Config) -> Result<Client, PgError> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
        let reason =
            if config.get_password().is_none() && db_message(&e).contains("password missing") {
                "the server asks for a password and none was given".into()
            } else {
                db_message(&e)
            };
        PgError::Connect { target: describe(config), reason }
    })?;
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

/// The server's message when there is one, else the error's with its causes ("invalid
/// configuration" alone would hide "password missing").
pub(crate) fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => d.message().to_string(),
        None => std::iter::successors(Some(e as &dyn std::error::Error), |e| e.source())
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(": "),
    }
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

/// One of the server's programs (`pg_basebackup`, `pg_ctl`, `pg_verifybackup`) of major
/// version `major`: from `PG_BINDIR` when it is set, otherwise Debian's
/// `/usr/lib/postgresql/<major>/bin`.
///
/// # Errors
/// [`PgError::ToolMissing`] naming the version needed.
pub(crate) fn server_tool(tool: &'static str, major: u32) -> Result<PathBuf, PgError> {
    let dir = match std::env::var("PG_BINDIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")),
    };
    let path = dir.join(tool);
    if path.exists() {
        Ok(path)
    } else {
        Err(PgError::ToolMissing { tool, major, looked: dir.display().to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::pgpass_lookup;

    #[test]
    fn password_file_lines_match_with_wildcards_and_escapes() {
        let file = "# comment\nother:5432:*:postgres:no\n127.0.0.1:*:app:postgres:se\\:cret\n*:*:*:*:fallback\n";
        assert_eq!(
            pgpass_lookup(file, ["127.0.0.1", "5433", "app", "postgres"]).as_deref(),
            Some("se:cret")
        );
        assert_eq!(
            pgpass_lookup(file, ["127.0.0.1", "5433", "db2", "postgres"]).as_deref(),
            Some("fallback")
        );
        assert_eq!(pgpass_lookup("h:1:d:u:p", ["x", "1", "d", "u"]), None);
    }
}
