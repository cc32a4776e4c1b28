//! SHA-256 digests: chunk ids, pack ids, snapshot ids and whole-stream checksums.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest, shown and serialised as 64 lowercase hex characters.
///
/// ```
/// use lifeboat_core::Digest;
/// let d = Digest::of(b"abc");
/// assert_eq!(d.to_string(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
/// assert_eq!(d.to_string().parse::<Digest>().ok(), Some(d));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

/// The id of a chunk: the SHA-256 of its plain (uncompressed) bytes.
pub type ChunkId = Digest;

/// The id of a snapshot: the SHA-256 of its manifest as stored.
pub type SnapshotId = Digest;

impl Digest {
    /// Hashes `data` in one go (uses SHA-NI when the CPU has it).
    pub fn of(data: &[u8]) -> Self {
        Digest(Sha256::digest(data).into())
    }

    /// The digest as 64 hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first `n` hex characters, for display.
    pub fn short(&self) -> String {
        let mut s = self.to_hex();
        s.truncate(8);
        s
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl FromStr for Digest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| format!("{s:?} is not a 64-character hex SHA-256 digest"))?;
        Ok(Digest(out))
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental SHA-256 of a whole stream.
#[derive(Default, Clone)]
pub struct StreamHasher {
    inner: Sha256,
    len: u64,
}

impl StreamHasher {
    /// A hasher that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.len += data.len() as u64;
    }

    /// How many bytes were fed.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        Digest(self.inner.finalize().into())
    }
}

/// Pieces hashed on their way through, to be checked against `expected` (and
/// `expected_len`) at the end, as [`VerifiedReader`] does; the hashing runs on a thread of its
/// own beside whoever reads the pieces, so a reader that writes them out is not slowed by it.
/// The stream ends with [`Error::Corrupt`](crate::Error::Corrupt) naming `object` instead of
/// ending cleanly when the whole differs. Call it on a tokio runtime (the hasher runs on its
/// blocking pool).
pub fn verified_pieces(
    pieces: futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
    expected: Digest,
    expected_len: u64,
    object: impl Into<String>,
) -> futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>> {
    use futures::StreamExt;
    /// Pieces the hasher may lag behind by (at most 64 MiB with 1 MiB chunks).
    const LAG: usize = 64;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(LAG);
    let hasher = tokio::task::spawn_blocking(move || {
        let mut h = StreamHasher::new();
        while let Some(piece) = rx.blocking_recv() {
            h.update(&piece);
        }
        let len = h.len();
        (h.finish(), len)
    });
    let object = object.into();
    // `None` once the stream has ended, cleanly or with an error.
    let state = Some((pieces, Some(tx), hasher, object));
    futures::stream::unfold(state, move |state| async move {
        let (mut pieces, mut tx, hasher, object) = state?;
        match pieces.next().await {
            Some(Ok(piece)) => {
                // A hasher that stopped is reported at the end, when its result is missing.
                if let Some(sender) = &tx
                    && sender.send(piece.clone()).await.is_err()
                {
                    tx = None;
                }
                Some((Ok(piece), Some((pieces, tx, hasher, object))))
            }
            Some(Err(e)) => Some((Err(e), None)),
            None => {
                drop(tx);
                let (actual, len) = match hasher.await {
                    Ok(whole) => whole,
                    Err(e) => {
                        let stopped = crate::Error::Corrupt {
                            object,
                            expected: format!("{expected} ({expected_len} bytes)"),
                            actual: format!("not known: the hashing stopped ({e})"),
                        };
                        return Some((Err(std::io::Error::other(stopped)), None));
                    }
                };
                let wrong = whole_differs(expected, expected_len, actual, len, object)?;
                Some((Err(std::io::Error::other(wrong)), None))
            }
        }
    })
    .boxed()
}

/// The error a stream whose whole is `actual` (`len` bytes) gets when it should have been
/// `expected` (`expected_len` bytes); `None` when it is.
fn whole_differs(
    expected: Digest,
    expected_len: u64,
    actual: Digest,
    len: u64,
    object: String,
) -> Option<crate::Error> {
    (actual != expected || len != expected_len).then(|| crate::Error::Corrupt {
        object,
        expected: format!("{expected} ({expected_len} bytes)"),
        actual: format!("{actual} ({len} bytes)"),
    })
}

/// Wraps a reader so that reaching its end checks the whole stream's SHA-256 and length:
/// the last read returns an error instead of end-of-stream when they differ. Every
/// [`crate::Snapshot::open`] returns a reader with this guarantee.
pub struct VerifiedReader<R> {
    inner: R,
    hasher: Option<StreamHasher>,
    expected: Digest,
    expected_len: u64,
    object: String,
}

impl<R> VerifiedReader<R> {
    /// Checks `inner` against `expected` and `expected_len`; `object` names it in errors.
    pub fn new(inner: R, expected: Digest, expected_len: u64, object: impl Into<String>) -> Self {
        VerifiedReader {
            inner,
            hasher: Some(StreamHasher::new()),
            expected,
            expected_len,
            object: object.into(),
        }
    }
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for VerifiedReader<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let this = &mut *self;
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            if let Some(h) = this.hasher.as_mut() {
                h.update(new);
            }
            return Poll::Ready(Ok(()));
        }
        // End of the inner stream: check once.
        if let Some(h) = this.hasher.take() {
            let len = h.len();
            let actual = h.finish();
            let object = this.object.clone();
            if let Some(wrong) =
                whole_differs(this.expected, this.expected_len, actual, len, object)
            {
                return Poll::Ready(Err(std::io::Error::other(wrong)));
            }
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use futures::StreamExt;

    fn pieces(data: &[u8]) -> futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>> {
        let parts: Vec<std::io::Result<bytes::Bytes>> =
            data.chunks(7).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
        futures::stream::iter(parts).boxed()
    }

    async fn read_all(
        mut stream: futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
    ) -> (Vec<u8>, Option<String>) {
        let mut out = Vec::new();
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(piece) => out.extend_from_slice(&piece),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        (out, None)
    }

    /// The pieces pass through unchanged; the end is clean only when the whole matches, and
    /// a mismatch (other bytes, or a missing tail) names the object.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verified_pieces_pass_through_and_check_the_whole_at_the_end() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let digest = Digest::of(&data);
        let (got, error) =
            read_all(verified_pieces(pieces(&data), digest, data.len() as u64, "snapshot a")).await;
        assert_eq!((got.as_slice(), error), (data.as_slice(), None));

        let mut flipped = data.clone();
        flipped[5_000] ^= 1;
        let (got, error) =
            read_all(verified_pieces(pieces(&flipped), digest, data.len() as u64, "snapshot b"))
                .await;
        assert_eq!(got.len(), data.len(), "every piece is handed on before the check");
        assert!(error.as_deref().is_some_and(|e| e.contains("snapshot b")), "{error:?}");

        let short = &data[..9_000];
        let (_, error) =
            read_all(verified_pieces(pieces(short), digest, data.len() as u64, "snapshot c")).await;
        assert!(error.as_deref().is_some_and(|e| e.contains("snapshot c")), "{error:?}");
    }
}
