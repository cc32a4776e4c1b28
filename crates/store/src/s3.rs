//! S3 settings given in code, for services that embed lifeboat and keep their credentials
//! in their own configuration rather than in `AWS_*` variables.

use std::fmt;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::prefix::PrefixStore;

use crate::error::{Result, StoreError};
use crate::repository::Repository;

/// Where a repository lives on an S3-compatible server, and how to reach it. Nothing is read
/// from the environment.
///
/// ```
/// use lifeboat_store::S3Options;
/// let options = S3Options::new("backups", "platform/auth")
///     .endpoint("http://127.0.0.1:9000")
///     .credentials("key-id", "s3cr3t-value");
/// assert_eq!(options.url(), "s3://backups/platform/auth");
/// assert!(!format!("{options:?}").contains("s3cr3t-value"), "the secret is never printed");
/// ```
#[derive(Clone, Default)]
pub struct S3Options {
    /// The bucket.
    pub bucket: String,
    /// A key prefix inside it (may be empty).
    pub prefix: String,
    /// The server's URL (`https://…`); Amazon S3's when `None`.
    pub endpoint: Option<String>,
    /// The region; `us-east-1` when `None`.
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<String>,
    /// A session token for temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "***"))
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl S3Options {
    /// The repository under `prefix` in `bucket`.
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Options { bucket: bucket.into(), prefix: prefix.into(), ..Self::default() }
    }

    /// The same, on the server at `url` (plain `http://` is allowed for loopback servers).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The same, in `region`.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The same, with an access key.
    pub fn credentials(mut self, key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.access_key_id = Some(key_id.into());
        self.secret_access_key = Some(secret.into());
        self
    }

    /// The repository's URL, for messages: `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// The object store these options describe.
    ///
    /// # Errors
    /// [`StoreError::NoCredentials`] without an access key; [`StoreError::InvalidUrl`] when
    /// the settings do not make a store.
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>> {
        let (Some(key_id), Some(secret)) = (&self.access_key_id, &self.secret_access_key) else {
            return Err(StoreError::NoCredentials { url: self.url() });
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(self.region.as_deref().unwrap_or("us-east-1"))
            .with_access_key_id(key_id)
            .with_secret_access_key(secret)
            .with_retry(crate::url::no_retries());
        if let Some(endpoint) = &self.endpoint {
            builder =
                builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(token) = &self.session_token {
            builder = builder.with_token(token);
        }
        let s3 = builder
            .build()
            .map_err(|e| StoreError::InvalidUrl { url: self.url(), reason: e.to_string() })?;
        Ok(match self.prefix.trim_matches('/') {
            "" => Arc::new(s3),
            prefix => Arc::new(PrefixStore::new(s3, prefix)),
        })
    }
}

impl Repository {
    /// Opens the repository `options` describe, creating it when there is none.
    ///
    /// # Errors
    /// As [`S3Options::store`], [`Repository::open_store`] and [`Repository::init_store`].
    pub async fn open_or_init_s3(options: &S3Options) -> Result<Self> {
        let store = options.store()?;
        Self::open_or_init_store(store, &options.url()).await
    }
}
