//! The kinds of targets lifeboat captures.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a snapshot captured. Every backend produces exactly one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Kind {
    /// A SQLite database file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
    /// A Docker container with its configuration and volumes.
    Container,
    /// A directory tree.
    Dir,
}

impl Kind {
    /// The lowercase name used in manifests and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
            Kind::Container => "container",
            Kind::Dir => "dir",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sqlite" => Ok(Kind::Sqlite),
            "postgres" => Ok(Kind::Postgres),
            "container" => Ok(Kind::Container),
            "dir" => Ok(Kind::Dir),
            other => {
                Err(format!("unknown kind {other:?} (expected sqlite, postgres, container or dir)"))
            }
        }
    }
}
