//! A store that enforces the bucket policy of a write-only host (see `docs/operations.md`):
//! no GET of data or manifests, no DELETE (GETs of `wal/` are allowed: a push reads an
//! entry's clear tag). It refuses such requests as S3 would, and records
//! them, so a test can say the client never even asked.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Prefixes a write-only host may not read.
const UNREADABLE: [&str; 3] = ["data/", "snapshots/", "prune/"];

/// Wraps a store with the write-only bucket policy.
#[derive(Debug)]
pub struct WriteOnlyPolicy {
    inner: Arc<dyn ObjectStore>,
    refused: Arc<Mutex<Vec<String>>>,
}

impl WriteOnlyPolicy {
    /// `inner`, as a write-only host's credentials see it.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(WriteOnlyPolicy { inner, refused: Arc::default() })
    }

    /// Every refused request so far, as `"GET key"` or `"DELETE key"`.
    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn check_read(&self, location: &Path) -> Result<()> {
        let key = location.to_string();
        if UNREADABLE.iter().any(|p| key.starts_with(p)) {
            return Err(refuse(&self.refused, format!("GET {key}")));
        }
        Ok(())
    }
}

fn refuse(log: &Mutex<Vec<String>>, what: String) -> object_store::Error {
    if let Ok(mut log) = log.lock() {
        log.push(what.clone());
    }
    object_store::Error::PermissionDenied {
        path: what.clone(),
        source: format!("the write-only bucket policy refuses {what}").into(),
    }
}

impl fmt::Display for WriteOnlyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WriteOnlyPolicy({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for WriteOnlyPolicy {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.check_read(location)?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.check_read(location)?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let log = Arc::clone(&self.refused);
        locations
            .map(move |location| {
                let location = location?;
                Err(refuse(&log, format!("DELETE {location}")))
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.check_read(from)?;
        self.inner.copy_opts(from, to, options).await
    }
}
