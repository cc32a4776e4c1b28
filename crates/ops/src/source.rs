//! The backup source for a target of any kind.

use std::path::PathBuf;

use lifeboat_container::ContainerBackup;
use lifeboat_core::{Backup, Kind};
use lifeboat_dir::DirBackup;
use lifeboat_postgres::PostgresBackup;
use lifeboat_sqlite::SqliteBackup;

/// What to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A SQLite database file.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres {
        /// postgres://user:password@host:port/database
        url: String,
        /// Connections reading table data at once; the number of cores (2 to 8) when `None`.
        connections: Option<usize>,
    },
    /// A Docker container, by name or id.
    Container {
        /// The container's name or id.
        name: String,
    },
    /// A folder.
    Dir {
        /// The folder.
        path: PathBuf,
        /// Globs, relative to the folder, to leave out.
        excludes: Vec<String>,
    },
}

impl Target {
    /// The kind of snapshot the target gives.
    pub fn kind(&self) -> Kind {
        match self {
            Target::Sqlite { .. } => Kind::Sqlite,
            Target::Postgres { .. } => Kind::Postgres,
            Target::Container { .. } => Kind::Container,
            Target::Dir { .. } => Kind::Dir,
        }
    }
}

/// The backup source for `target`.
///
/// # Errors
/// None today; kept fallible so backends that need to connect first fit the same call.
pub fn source_for(target: &Target) -> lifeboat_core::Result<Box<dyn Backup>> {
    Ok(match target {
        Target::Sqlite { path } => Box::new(SqliteBackup::new(path.clone())),
        Target::Postgres { url, connections } => {
            let backup = PostgresBackup::new(url.clone());
            Box::new(match connections {
                Some(n) => backup.with_jobs(*n),
                None => backup,
            })
        }
        Target::Container { name } => Box::new(ContainerBackup::new(name.clone())),
        Target::Dir { path, excludes } => Box::new(
            excludes.iter().cloned().fold(DirBackup::new(path.clone()), DirBackup::exclude),
        ),
    })
}
