//! The optional configuration file of the `lifeboat` command: the repository, how to get its
//! password, S3 settings and the log format, so they need not be given every time.
//!
//! Found at `LIFEBOAT_CONFIG`, else `$XDG_CONFIG_HOME/lifeboat/config.toml` (or
//! `~/.config/lifeboat/config.toml`) when that exists. A flag wins over its environment
//! variable, which wins over the file, which wins over the built-in default. lifeboatd's
//! file has the same top-level keys, so `LIFEBOAT_CONFIG=/etc/lifeboat/lifeboatd.toml`
//! points the command at the service's repository; the keys only lifeboatd reads are left
//! alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lifeboat_core::Error;
use serde::Deserialize;

/// What the file says.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct FileConfig {
    /// `--repo`.
    pub repository: Option<String>,
    /// `--password-file`.
    pub password_file: Option<PathBuf>,
    /// `--password-command`.
    pub password_command: Option<String>,
    /// `--key-file`.
    pub key_file: Option<PathBuf>,
    /// `--log-format`.
    pub log_format: Option<String>,
    /// S3 settings for `s3://` repositories, used where the `AWS_*` variables have none.
    pub s3: Option<S3Config>,
    /// Everything else: lifeboatd's settings and jobs.
    #[serde(flatten)]
    pub other: BTreeMap<String, toml::Value>,
}

/// The `[s3]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The server (`https://…`, `http://` allowed); Amazon S3 when unset.
    pub endpoint: Option<String>,
    /// The region.
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key itself (prefer the file).
    pub secret_access_key: Option<String>,
    /// A file holding the secret access key.
    pub secret_access_key_file: Option<PathBuf>,
}

/// Where the configuration file is, and why: `None` when there is none to read.
pub fn path() -> Option<(PathBuf, &'static str)> {
    if let Some(path) = std::env::var_os("LIFEBOAT_CONFIG").filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(path), "LIFEBOAT_CONFIG"));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))?;
    let path = base.join("lifeboat").join("config.toml");
    path.is_file().then_some((path, "the default place"))
}

/// Reads the file at `path`.
///
/// # Errors
/// A file that cannot be read or is not valid, named with the reason.
pub fn load(path: &Path) -> Result<FileConfig, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::InvalidInput {
        what: format!("the configuration file {} cannot be read: {e}", path.display()),
        hint: "fix LIFEBOAT_CONFIG, or remove the file to run without one".into(),
    })?;
    toml::from_str(&text).map_err(|e| Error::InvalidInput {
        what: format!("the configuration file {} is not valid: {}", path.display(), e.message()),
        hint: "see `lifeboat config show`, and docs/operations.md, \"The lifeboat configuration file\"".into(),
    })
}

impl FileConfig {
    /// The S3 settings as the store takes them; the secret read from its file.
    ///
    /// # Errors
    /// A secret file that cannot be read.
    pub fn s3_defaults(&self) -> Result<Option<lifeboat_store::S3Options>, Error> {
        let Some(s3) = &self.s3 else { return Ok(None) };
        let secret = match (&s3.secret_access_key, &s3.secret_access_key_file) {
            (Some(secret), _) => Some(secret.clone()),
            (None, Some(file)) => {
                Some(lifeboat_core::secret::read_file(file).map_err(|e| Error::InvalidInput {
                    what: format!(
                        "s3.secret_access_key_file {} cannot be read: {e}",
                        file.display()
                    ),
                    hint: "make it readable by this user".into(),
                })?)
            }
            (None, None) => None,
        };
        Ok(Some(lifeboat_store::S3Options {
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            access_key_id: s3.access_key_id.clone(),
            secret_access_key: secret,
            ..Default::default()
        }))
    }

    /// The global flags the file gives a default for: (argument id, value).
    pub fn defaults(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut put = |id: &'static str, value: Option<String>| {
            if let Some(v) = value {
                out.push((id, v));
            }
        };
        put("repo", self.repository.clone());
        put("password_file", self.password_file.as_ref().map(|p| p.display().to_string()));
        put("password_command", self.password_command.clone());
        put("key_file", self.key_file.as_ref().map(|p| p.display().to_string()));
        put("log_format", self.log_format.clone());
        out
    }
}
