//! Repository URLs: a plain path or `file:///path`, `s3://bucket/prefix`, `memory://`.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::RetryConfig;
use object_store::aws::AmazonS3Builder;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;

use crate::error::{Result, StoreError};
use crate::local::{FOLDER_MODE, LocalStore};

/// The repository used when none is given.
pub const DEFAULT_REPOSITORY: &str = "./lifeboat-repo";

/// Where a repository lives, parsed from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A folder on the local file system.
    Local(PathBuf),
    /// A bucket and key prefix on an S3-compatible server (configured from `AWS_*` variables).
    S3 {
        /// The bucket.
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing slashes.
        prefix: String,
    },
    /// A fresh in-memory store (tests).
    Memory,
}

impl Location {
    /// Parses a repository URL.
    ///
    /// ```
    /// use lifeboat_store::Location;
    /// assert_eq!(Location::parse("s3://bkt/a/b").unwrap(),
    ///            Location::S3 { bucket: "bkt".into(), prefix: "a/b".into() });
    /// assert!(matches!(Location::parse("/var/lib/lifeboat").unwrap(), Location::Local(_)));
    /// assert!(Location::parse("ftp://x").is_err());
    /// ```
    ///
    /// # Errors
    /// [`StoreError::UnknownScheme`] or [`StoreError::InvalidUrl`].
    pub fn parse(url: &str) -> Result<Self> {
        if url.is_empty() {
            return Err(StoreError::InvalidUrl { url: url.into(), reason: "it is empty".into() });
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Ok(Location::Local(PathBuf::from(url)));
        };
        match scheme {
            "file" => {
                if !rest.starts_with('/') {
                    return Err(StoreError::InvalidUrl {
                        url: url.into(),
                        reason: "file:// URLs need an absolute path (file:///path)".into(),
                    });
                }
                Ok(Location::Local(PathBuf::from(rest)))
            }
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(StoreError::InvalidUrl {
                        url: url.into(),
                        reason: "the bucket name is missing (s3://bucket/prefix)".into(),
                    });
                }
                Ok(Location::S3 { bucket: bucket.into(), prefix: prefix.trim_matches('/').into() })
            }
            "memory" => Ok(Location::Memory),
            _ => Err(StoreError::UnknownScheme { url: url.into() }),
        }
    }

    /// Opens the object store. A local folder is created only when `create` is set.
    ///
    /// # Errors
    /// When the folder is missing (and not created) or the S3 configuration is incomplete.
    pub fn open(&self, url: &str, create: bool) -> Result<Arc<dyn ObjectStore>> {
        match self {
            Location::Local(path) => {
                if create {
                    create_private_dir(path).map_err(|e| {
                        StoreError::Core(lifeboat_core::Error::io("creating", path, e))
                    })?;
                } else if !path.is_dir() {
                    return Err(StoreError::NotInitialised { url: url.into() });
                }
                let fs = LocalStore::new(path).map_err(|e| StoreError::InvalidUrl {
                    url: url.into(),
                    reason: e.to_string(),
                })?;
                Ok(Arc::new(fs))
            }
            Location::S3 { bucket, prefix } => {
                let secret = |name: &str| lifeboat_core::secret::from_env(name);
                let defaults = S3_DEFAULTS.get().cloned().unwrap_or_default();
                let (key_id, key, session) = (
                    secret("AWS_ACCESS_KEY_ID")?.or(defaults.access_key_id),
                    secret("AWS_SECRET_ACCESS_KEY")?.or(defaults.secret_access_key),
                    secret("AWS_SESSION_TOKEN")?.or(defaults.session_token),
                );
                let named = |name: &str| match name {
                    "AWS_ACCESS_KEY_ID" => key_id.clone(),
                    other => std::env::var(other).ok(),
                };
                if !s3_credentials_configured(named) {
                    return Err(StoreError::NoCredentials { url: url.into() });
                }
                // AWS_* variables as object_store reads them; the keys also from *_FILE.
                let mut s3 = AmazonS3Builder::from_env();
                if let Some(id) = key_id {
                    s3 = s3.with_access_key_id(id);
                }
                if let Some(key) = key {
                    s3 = s3.with_secret_access_key(key);
                }
                if let Some(token) = session {
                    s3 = s3.with_token(token);
                }
                let unset = |name: &str| std::env::var(name).map_or(true, |v| v.trim().is_empty());
                if let Some(endpoint) = defaults.endpoint.filter(|_| unset("AWS_ENDPOINT")) {
                    if endpoint.starts_with("http://") {
                        s3 = s3.with_allow_http(true);
                    }
                    s3 = s3.with_endpoint(endpoint);
                }
                if let Some(region) = defaults.region.filter(|_| unset("AWS_REGION")) {
                    s3 = s3.with_region(region);
                }
                let s3 =
                    s3.with_bucket_name(bucket).with_retry(no_retries()).build().map_err(|e| {
                        StoreError::InvalidUrl { url: url.into(), reason: e.to_string() }
                    })?;
                if prefix.is_empty() {
                    Ok(Arc::new(s3))
                } else {
                    Ok(Arc::new(PrefixStore::new(s3, prefix.as_str())))
                }
            }
            Location::Memory => Ok(Arc::new(InMemory::new())),
        }
    }
}

/// S3 settings a configuration file gave this process, used where the environment has none.
static S3_DEFAULTS: std::sync::OnceLock<crate::S3Options> = std::sync::OnceLock::new();

/// Gives `s3://` URLs opened by this process settings to use where the `AWS_*` environment
/// has none: the endpoint, region and keys of a configuration file (`bucket` and `prefix`
/// are not used). The first call wins.
pub fn use_s3_defaults(defaults: crate::S3Options) {
    let _ = S3_DEFAULTS.set(defaults);
}

/// object_store's retry settings for lifeboat's stores: none of its own, since lifeboat
/// retries (`retry.rs`) with a short budget; ten retries inside each of ours made a refused
/// port take 15 s to report.
pub(crate) fn no_retries() -> RetryConfig {
    RetryConfig {
        max_retries: 0,
        retry_timeout: std::time::Duration::from_secs(60),
        ..RetryConfig::default()
    }
}

/// Whether the environment names S3 credentials, or asks for the cloud's own ways to find
/// them. Without this check object_store falls back to the EC2 instance metadata service
/// (169.254.169.254): off EC2 that is a connection to an address nobody asked for, and a
/// long wait before a misleading error.
fn s3_credentials_configured(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let is =
        |name: &str, value: &str| var(name).is_some_and(|v| v.trim().eq_ignore_ascii_case(value));
    set("AWS_ACCESS_KEY_ID")
        || set("AWS_WEB_IDENTITY_TOKEN_FILE")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || is("AWS_SKIP_SIGNATURE", "true")
        || is("AWS_EC2_METADATA_DISABLED", "false")
}

/// Creates the repository folder (and missing parents) owner-only, and makes its creation
/// durable: the folder is fsynced, and so is the parent that gained its entry.
fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let existed = path.is_dir();
    std::fs::create_dir_all(path)?;
    if existed {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(FOLDER_MODE))?;
    std::fs::File::open(path)?.sync_all()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    std::fs::File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_needs_credentials_or_an_explicit_opt_in() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert!(!s3_credentials_configured(env(&[])));
        assert!(!s3_credentials_configured(env(&[
            ("AWS_ENDPOINT", "http://x"),
            ("AWS_ACCESS_KEY_ID", "")
        ])));
        assert!(!s3_credentials_configured(env(&[("AWS_EC2_METADATA_DISABLED", "true")])));
        assert!(s3_credentials_configured(env(&[("AWS_ACCESS_KEY_ID", "k")])));
        assert!(s3_credentials_configured(env(&[("AWS_EC2_METADATA_DISABLED", "false")])));
        assert!(s3_credentials_configured(env(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")])));
    }
}
