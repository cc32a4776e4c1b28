//! The `Backup` role: a source that takes one consistent capture of a target.

use std::pin::Pin;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::io::AsyncRead;

use crate::{Kind, Result};

/// A byte stream read by the repository or written by a restore.
pub type ByteStream = Pin<Box<dyn AsyncRead + Send>>;

/// A check that runs once a capture's stream has been read to the end. It may return
/// metadata that could only be known then (facts gathered in the same transaction after
/// the data), which replaces the capture's up-front metadata.
pub type FinishCheck = BoxFuture<'static, Result<Option<serde_json::Value>>>;

/// One consistent capture in flight: the stream plus the typed facts recorded with it.
pub struct Capture {
    /// The captured bytes.
    pub reader: ByteStream,
    /// Backend-specific facts stored in the manifest.
    pub metadata: serde_json::Value,
    /// The stream's length, when known up front (for progress bars).
    pub size_hint: Option<u64>,
    finish: Option<FinishCheck>,
}

impl Capture {
    /// A capture of `reader` with `metadata`.
    pub fn new(reader: ByteStream, metadata: serde_json::Value) -> Self {
        Capture { reader, metadata, size_hint: None, finish: None }
    }

    /// Sets the known length of the stream.
    pub fn with_size_hint(mut self, size: u64) -> Self {
        self.size_hint = Some(size);
        self
    }

    /// Registers a check that runs after the stream was read to the end, e.g. waiting for a
    /// dump process's exit status. If it fails the snapshot is not written.
    pub fn on_finish(mut self, check: FinishCheck) -> Self {
        self.finish = Some(check);
        self
    }

    /// Runs the finishing check, if any, and returns the final metadata: the check's, or
    /// `metadata` when it has none.
    ///
    /// # Errors
    /// The check's error: the capture is not consistent and must not become a snapshot.
    pub async fn finish(
        finish: Option<FinishCheck>,
        metadata: serde_json::Value,
    ) -> Result<serde_json::Value> {
        match finish {
            Some(check) => Ok(check.await?.unwrap_or(metadata)),
            None => Ok(metadata),
        }
    }

    /// Splits into the stream, metadata and finishing check.
    pub fn into_parts(self) -> (ByteStream, serde_json::Value, Option<u64>, Option<FinishCheck>) {
        (self.reader, self.metadata, self.size_hint, self.finish)
    }
}

/// A target that can be captured: a SQLite file, a PostgreSQL database, a container, a folder.
#[async_trait]
pub trait Backup: Send + Sync {
    /// The kind of snapshot this source produces.
    fn kind(&self) -> Kind;

    /// The snapshot name used when the user gives none (file stem, database name, ...).
    fn default_name(&self) -> String;

    /// A description of the target for messages (path, URL, container name).
    fn target(&self) -> String;

    /// Takes one consistent capture. The live target keeps serving while it runs.
    ///
    /// # Errors
    /// When the target is missing, unreadable, or not of this kind.
    async fn capture(&self) -> Result<Capture>;

    /// A cheap summary of the target's current state, when the backend can tell changes
    /// without reading everything (a container's changed paths and their times). Two equal
    /// fingerprints mean nothing changed in between; the repository then records an
    /// "unchanged" snapshot instead of capturing again. `None` (the default) means "always
    /// capture".
    ///
    /// # Errors
    /// When the target cannot be inspected.
    async fn fingerprint(&self) -> Result<Option<String>> {
        Ok(None)
    }
}

#[async_trait]
impl<T: Backup + ?Sized> Backup for &T {
    fn kind(&self) -> Kind {
        (**self).kind()
    }
    fn default_name(&self) -> String {
        (**self).default_name()
    }
    fn target(&self) -> String {
        (**self).target()
    }
    async fn capture(&self) -> Result<Capture> {
        (**self).capture().await
    }
    async fn fingerprint(&self) -> Result<Option<String>> {
        (**self).fingerprint().await
    }
}

#[async_trait]
impl<T: Backup + ?Sized> Backup for std::sync::Arc<T> {
    fn kind(&self) -> Kind {
        (**self).kind()
    }
    fn default_name(&self) -> String {
        (**self).default_name()
    }
    fn target(&self) -> String {
        (**self).target()
    }
    async fn capture(&self) -> Result<Capture> {
        (**self).capture().await
    }
    async fn fingerprint(&self) -> Result<Option<String>> {
        (**self).fingerprint().await
    }
}
