//! A fault-injecting object store: the one simulated component, wrapping a real store.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Wraps a store and makes the next N writes or reads fail with a transient error.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    failing_puts: AtomicU32,
    failing_gets: AtomicU32,
    /// How many faults were injected so far.
    pub injected: AtomicU32,
}

impl FaultyStore {
    /// A store that behaves like `inner` until told to fail.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(FaultyStore {
            inner,
            failing_puts: AtomicU32::new(0),
            failing_gets: AtomicU32::new(0),
            injected: AtomicU32::new(0),
        })
    }

    /// The next `n` PUTs fail.
    pub fn fail_puts(&self, n: u32) {
        self.failing_puts.store(n, Ordering::SeqCst);
    }

    /// The next `n` GETs fail.
    pub fn fail_gets(&self, n: u32) {
        self.failing_gets.store(n, Ordering::SeqCst);
    }

    fn take(&self, counter: &AtomicU32, what: &str, location: &Path) -> Result<()> {
        let took = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if took.is_ok() {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(object_store::Error::Generic {
                store: "faulty",
                source: format!("injected transient fault on {what} {location}").into(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.take(&self.failing_puts, "put", location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.take(&self.failing_puts, "multipart put", location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.take(&self.failing_gets, "get", location)?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.take(&self.failing_gets, "get", location)?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
