//! Captures produced by blocking code on a thread of their own (a SQLite read transaction, a
//! folder walk): what the producer writes becomes the capture's stream, with a bounded
//! buffer in between, and what it returns becomes the snapshot's metadata.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use crate::{Capture, Error, FinishCheck, Kind, Result};

/// Bytes handed over at once.
const BATCH: usize = 1 << 20;
/// Batches buffered between producer and consumer (so at most ~8 MiB in flight).
const BATCHES_AHEAD: usize = 8;

/// Where a producer writes the captured bytes. Writing fails with `BrokenPipe` once the
/// consumer has stopped (its own error, or a cancel): the producer should stop too.
pub struct StreamSink {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: BytesMut,
}

impl Write for StreamSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BATCH {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

impl StreamSink {
    fn send(&mut self) -> io::Result<()> {
        let batch = self.buf.split().freeze();
        self.buf.reserve(BATCH);
        self.tx
            .blocking_send(Ok(batch))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the capture's reader stopped"))
    }
}

/// Reads what a [`StreamSink`] sends.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.current.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(bytes))) => self.current = bytes,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.current.len().min(buf.remaining());
        buf.put_slice(&self.current[..n]);
        self.current.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// A capture stream fed by a channel: each `Ok` is the next bytes, an `Err` ends the stream
/// with that error, and dropping every sender ends it cleanly. For async producers.
pub fn channel_stream(rx: mpsc::Receiver<io::Result<Bytes>>) -> crate::ByteStream {
    Box::pin(ChannelReader { rx, current: Bytes::new() })
}

/// Runs `produce` on a new thread named `name`. Its writes to the sink are the capture's
/// stream; the metadata it returns replaces the capture's when the stream has been read.
/// If it fails, the stream ends with its error and the capture does not become a snapshot.
///
/// # Errors
/// When the thread cannot be started.
pub fn blocking_capture<F>(
    name: &str,
    kind: Kind,
    size_hint: Option<u64>,
    produce: F,
) -> Result<Capture>
where
    F: FnOnce(&mut StreamSink) -> Result<serde_json::Value> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(BATCHES_AHEAD);
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut sink = StreamSink { tx, buf: BytesMut::with_capacity(BATCH) };
            let result = produce(&mut sink).and_then(|metadata| {
                sink.flush()
                    .map_err(|source| Error::from_stream("handing over the capture", source))?;
                Ok(metadata)
            });
            if let Err(e) = &result {
                let _ = sink.tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
            let _ = done_tx.send(result);
        })
        .map_err(|e| Error::Backend {
            kind: kind.clone(),
            message: format!("could not start the {name} thread: {e}"),
        })?;
    let finish: FinishCheck = Box::pin(async move {
        done_rx
            .await
            .map_err(|_| Error::Backend {
                kind,
                message: "the capture thread stopped without a result".into(),
            })?
            .map(Some)
    });
    let capture = Capture::new(channel_stream(rx), serde_json::Value::Null).on_finish(finish);
    Ok(match size_hint {
        Some(size) => capture.with_size_hint(size),
        None => capture,
    })
}
