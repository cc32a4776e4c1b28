//! A fault-injecting object store: the one simulated component, wrapping a real store.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Wraps a store and makes the next N writes or reads fail with a transient error, or a
/// share of all reads, as a flaky link does.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    failing_puts: AtomicU32,
    failing_gets: AtomicU32,
    /// Percentage of reads that fail (see [`FaultyStore::fail_share_of_gets`]).
    flaky_percent: AtomicU32,
    /// The pseudo-random state deciding which reads fail, and each key's current run of
    /// failures.
    dice: Mutex<(u64, HashMap<Path, u32>)>,
    /// How many faults were injected so far.
    pub injected: AtomicU32,
    /// How many reads (whole or ranged GETs) were asked for, failed ones included.
    pub gets: AtomicU32,
    /// Microseconds every read and listing waits before it starts: a link's round trip.
    round_trip_micros: AtomicU64,
}

/// A flaky store never fails one key more often than this in a row, so a client that
/// retries (lifeboat tries 5 times) always gets through, as it does on a real flaky link.
pub const MAX_FAILURES_IN_A_ROW: u32 = 2;

impl FaultyStore {
    /// A store that behaves like `inner` until told to fail.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(FaultyStore {
            inner,
            failing_puts: AtomicU32::new(0),
            failing_gets: AtomicU32::new(0),
            flaky_percent: AtomicU32::new(0),
            dice: Mutex::new((0x9e37_79b9_7f4a_7c15, HashMap::new())),
            injected: AtomicU32::new(0),
            gets: AtomicU32::new(0),
            round_trip_micros: AtomicU64::new(0),
        })
    }

    /// From now on every read and listing first waits `round_trip`, as over a long link.
    pub fn set_round_trip(&self, round_trip: Duration) {
        let micros = u64::try_from(round_trip.as_micros()).unwrap_or(u64::MAX);
        self.round_trip_micros.store(micros, Ordering::SeqCst);
    }

    fn round_trip(&self) -> Duration {
        Duration::from_micros(self.round_trip_micros.load(Ordering::SeqCst))
    }

    async fn wait_round_trip(&self) {
        let round_trip = self.round_trip();
        if !round_trip.is_zero() {
            tokio::time::sleep(round_trip).await;
        }
    }

    /// From now on, `percent` of all reads fail at random with a transient error, but never
    /// more than `MAX_FAILURES_IN_A_ROW` (2) times in a row for one key.
    pub fn fail_share_of_gets(&self, percent: u32) {
        self.flaky_percent.store(percent.min(100), Ordering::SeqCst);
    }

    /// One read of `location`: counted, and failed when told to.
    fn read(&self, location: &Path) -> Result<()> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.take(&self.failing_gets, "get", location)?;
        let percent = self.flaky_percent.load(Ordering::SeqCst);
        if percent == 0 {
            return Ok(());
        }
        let fail = {
            let mut dice = self.dice.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // xorshift64
            let mut x = dice.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            dice.0 = x;
            let in_a_row = dice.1.entry(location.clone()).or_insert(0);
            let fail = x % 100 < u64::from(percent) && *in_a_row < MAX_FAILURES_IN_A_ROW;
            *in_a_row = if fail { *in_a_row + 1 } else { 0 };
            fail
        };
        if fail {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(object_store::Error::Generic {
                store: "faulty",
                source: format!("injected transient fault on get {location}").into(),
            });
        }
        Ok(())
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
        self.wait_round_trip().await;
        self.read(location)?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.wait_round_trip().await;
        self.read(location)?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let listing = self.inner.list(prefix);
        let round_trip = self.round_trip();
        if round_trip.is_zero() {
            return listing;
        }
        futures::stream::once(async move {
            tokio::time::sleep(round_trip).await;
            listing
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
