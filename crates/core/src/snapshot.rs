//! The `Snapshot` role: one stored, immutable capture that can be read back.

use async_trait::async_trait;

use crate::{ByteStream, Manifest, Result, SnapshotId};

/// A stored capture: its manifest and its bytes.
#[async_trait]
pub trait Snapshot: Send + Sync {
    /// The snapshot's id.
    fn id(&self) -> SnapshotId;

    /// The snapshot's manifest.
    fn manifest(&self) -> &Manifest;

    /// Streams the captured bytes back. Each chunk is checked against its id as it is read,
    /// and the end of the stream is an error unless the whole stream's SHA-256 and length
    /// match the manifest (see [`crate::VerifiedReader`]): a reader that reached the end
    /// without an error has exactly the captured bytes.
    ///
    /// # Errors
    /// When the stream cannot be opened; later errors surface while reading.
    async fn open(&self) -> Result<ByteStream>;

    /// Streams the captured bytes back to a reader that uses none of them until the stream
    /// ended without an error: one that writes them into a temporary file or a new folder,
    /// then checks and swaps. Such a reader is promised only the end-of-stream check (the
    /// whole stream's SHA-256 and length), which covers every byte, so an implementation may
    /// leave out the per-chunk checks it makes redundant. The default is [`Snapshot::open`].
    ///
    /// # Errors
    /// As [`Snapshot::open`].
    async fn open_whole(&self) -> Result<ByteStream> {
        self.open().await
    }
}

#[async_trait]
impl<T: Snapshot + ?Sized> Snapshot for &T {
    fn id(&self) -> SnapshotId {
        (**self).id()
    }
    fn manifest(&self) -> &Manifest {
        (**self).manifest()
    }
    async fn open(&self) -> Result<ByteStream> {
        (**self).open().await
    }
    async fn open_whole(&self) -> Result<ByteStream> {
        (**self).open_whole().await
    }
}

#[async_trait]
impl<T: Snapshot + ?Sized> Snapshot for std::sync::Arc<T> {
    fn id(&self) -> SnapshotId {
        (**self).id()
    }
    fn manifest(&self) -> &Manifest {
        (**self).manifest()
    }
    async fn open(&self) -> Result<ByteStream> {
        (**self).open().await
    }
    async fn open_whole(&self) -> Result<ByteStream> {
        (**self).open_whole().await
    }
}
