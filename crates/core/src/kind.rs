//! The kinds of targets lifeboat captures.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// What a snapshot captured: the name of the backend that made it (`sqlite`, `postgres`, …).
///
/// The set is open. A repository may hold kinds this binary has no backend for; such
/// snapshots still list, verify, forget and prune, and only restoring them needs the backend.
///
/// ```
/// use lifeboat_core::Kind;
/// let redis: Kind = "redis".parse()?;
/// assert_ne!(redis, Kind::SQLITE);
/// assert_eq!(Kind::SQLITE.as_str(), "sqlite");
/// assert!("Redis DB".parse::<Kind>().is_err());
/// # Ok::<_, String>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Kind(Cow<'static, str>);

impl Kind {
    /// A SQLite database file.
    pub const SQLITE: Kind = Kind(Cow::Borrowed("sqlite"));
    /// A PostgreSQL database.
    pub const POSTGRES: Kind = Kind(Cow::Borrowed("postgres"));
    /// A Docker container with its configuration and volumes.
    pub const CONTAINER: Kind = Kind(Cow::Borrowed("container"));
    /// A directory tree.
    pub const DIR: Kind = Kind(Cow::Borrowed("dir"));

    /// The longest kind name accepted.
    pub const MAX_LEN: usize = 32;

    /// A kind known at compile time, for a backend's own constant. The name must follow the
    /// rules of [`Kind::from_str`]; a bad one is caught by the registry when the backend
    /// registers.
    pub const fn new_static(name: &'static str) -> Kind {
        Kind(Cow::Borrowed(name))
    }

    /// The lowercase name used in manifests, on the command line and in lifeboatd's jobs.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Why `name` cannot be a kind: it must be 1 to 32 lowercase ASCII letters, digits or
    /// `-`, starting with a letter.
    pub fn check(name: &str) -> Result<(), String> {
        let good = !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        match good {
            true => Ok(()),
            false => Err(format!(
                "kind {name:?} must be 1 to {} lowercase letters, digits or '-', starting with a letter",
                Self::MAX_LEN
            )),
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
        Self::check(s)?;
        Ok(Kind(Cow::Owned(s.to_string())))
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl PartialEq<str> for Kind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Kind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
