//! zstd compression of chunks and metadata: the plain form, with guards against blobs that
//! decompress to more than they should.

use std::cell::RefCell;
use std::io;

/// The zstd level lifeboat uses unless configured: 3, zstd's own default, which beats gzip -6
/// on size at several times its speed.
pub const DEFAULT_LEVEL: i32 = 3;

/// Compresses one chunk.
///
/// # Errors
/// Only on an invalid level or allocation failure inside zstd.
pub fn compress(data: &[u8], level: i32) -> io::Result<Vec<u8>> {
    // One compression context per thread, reused: creating a context and clearing its tables
    // for every chunk costs a few percent of a backup.
    thread_local! {
        static CONTEXT: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    }
    CONTEXT.with(|cell| {
        let mut slot = cell.borrow_mut();
        if !matches!(&*slot, Some((l, _)) if *l == level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        match slot.as_mut() {
            Some((_, compressor)) => compressor.compress(data),
            None => zstd::bulk::compress(data, level),
        }
    })
}

/// Decompresses one chunk whose plain length is known; refuses to produce more than
/// `plain_len` bytes, so a corrupt or hostile blob cannot exhaust memory.
///
/// # Errors
/// When the blob is not valid zstd or does not decompress to exactly `plain_len` bytes.
pub fn decompress(blob: &[u8], plain_len: usize) -> io::Result<Vec<u8>> {
    let out = zstd::bulk::decompress(blob, plain_len)?;
    exact_length(out, plain_len)
}

/// The first bytes of every zstd frame: tells compressed metadata from plain JSON.
pub const FRAME_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Decompresses a zstd blob of unknown plain length, refusing more than `limit` bytes.
///
/// # Errors
/// When the blob is not valid zstd or holds more than `limit` bytes.
pub fn decompress_bounded(blob: &[u8], limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(blob)?.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("decompresses to more than {limit} bytes"),
        ));
    }
    Ok(out)
}

/// `out`, when it has exactly `plain_len` bytes.
pub(crate) fn exact_length(out: Vec<u8>, plain_len: usize) -> io::Result<Vec<u8>> {
    if out.len() != plain_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("decompressed to {} bytes, expected {plain_len}", out.len()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_length_guard() -> io::Result<()> {
        let data = b"hello hello hello hello hello".repeat(100);
        let blob = compress(&data, DEFAULT_LEVEL)?;
        assert!(blob.len() < data.len() / 10);
        assert_eq!(decompress(&blob, data.len())?, data);
        assert!(decompress(&blob, data.len() - 1).is_err());
        assert!(decompress(b"not zstd", 10).is_err());
        assert!(blob.starts_with(&FRAME_MAGIC));
        assert_eq!(decompress_bounded(&blob, data.len() as u64)?, data);
        assert!(decompress_bounded(&blob, data.len() as u64 - 1).is_err());
        Ok(())
    }
}
