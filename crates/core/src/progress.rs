//! Progress reporting for long work. Libraries report; binaries decide how to show it.

/// Receives progress of one long operation (bytes captured, restored or verified).
pub trait Progress: Send + Sync {
    /// A new phase begins; `total` bytes when known.
    fn start(&self, label: &str, total: Option<u64>);
    /// `bytes` more were processed.
    fn advance(&self, bytes: u64);
    /// The phase ended.
    fn finish(&self);
}

/// Discards progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _label: &str, _total: Option<u64>) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}
