//! Repository URLs: a plain path or `file:///path`, `s3://bucket/prefix`, `memory://`.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;

use crate::error::{Result, StoreError};

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
                    std::fs::create_dir_all(path).map_err(|e| {
                        StoreError::Core(lifeboat_core::Error::io("creating", path, e))
                    })?;
                } else if !path.is_dir() {
                    return Err(StoreError::NotInitialised { url: url.into() });
                }
                let fs = LocalFileSystem::new_with_prefix(path).map_err(|e| {
                    StoreError::InvalidUrl { url: url.into(), reason: e.to_string() }
                })?;
                Ok(Arc::new(fs))
            }
            Location::S3 { bucket, prefix } => {
                let s3 =
                    AmazonS3Builder::from_env().with_bucket_name(bucket).build().map_err(|e| {
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
