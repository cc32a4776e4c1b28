//! Content-defined chunking (FastCDC with normalised chunking).
//!
//! A cut point depends only on the bytes just before it, so inserting or deleting a few bytes
//! near the front of a stream moves only the boundaries around the edit; every later chunk keeps
//! its id and is not stored again. The gear table is fixed forever: changing it would change
//! every chunk id and defeat deduplication against existing repositories.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Chunk size limits. Stored in the repository config so every writer cuts alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// No chunk is shorter than this (except the last of a stream).
    pub min_size: u32,
    /// The target average; must be a power of two.
    pub avg_size: u32,
    /// No chunk is longer than this.
    pub max_size: u32,
}

impl Default for ChunkerParams {
    /// 64 KiB / 256 KiB / 1 MiB: small enough that a page-level change in a database
    /// costs a fraction of a MiB even stored whole, large enough that the index stays small.
    /// 1 MiB chunks were measured too (`docs/benchmarks.md`, session 6): with delta chunks
    /// they store less per changed chunk, but a SQLite backup peaked at 1.5 times the memory
    /// and its restore at 2.5 times, over what the SQLite benchmark allows.
    fn default() -> Self {
        ChunkerParams { min_size: 64 << 10, avg_size: 256 << 10, max_size: 1 << 20 }
    }
}

impl ChunkerParams {
    /// Checks the limits are usable: `min < avg < max`, `avg` a power of two.
    pub fn validate(&self) -> Result<(), String> {
        if !self.avg_size.is_power_of_two() || self.avg_size < 256 {
            return Err(format!("avg_size {} must be a power of two >= 256", self.avg_size));
        }
        if !(self.min_size < self.avg_size && self.avg_size < self.max_size) {
            return Err(format!(
                "chunk sizes must satisfy min < avg < max (got {}/{}/{})",
                self.min_size, self.avg_size, self.max_size
            ));
        }
        Ok(())
    }

    fn masks(&self) -> (u64, u64) {
        let bits = self.avg_size.trailing_zeros();
        // Normalisation level 1: harder to cut before the average, easier after it. Level 2
        // gives a tighter size spread, but measured here it resynchronises more slowly after
        // an insert (1.5 changed chunks on average and up to 13, against 1.2 and 4), and
        // resynchronising is what deduplication lives on. The gear hash shifts left, so the
        // high bits carry the most history: take the masks there.
        (top_bits(bits + 1), top_bits(bits.saturating_sub(1)))
    }

    /// Where the first chunk of `data` ends. `data` must hold either at least `max_size`
    /// bytes or the whole remaining stream.
    pub fn cut_point(&self, data: &[u8]) -> usize {
        let min = self.min_size as usize;
        let len = data.len().min(self.max_size as usize);
        if len <= min {
            return len;
        }
        let normal = (self.avg_size as usize).min(len);
        let (mask_small, mask_large) = self.masks();
        let mut hash: u64 = 0;
        let mut roll = |b: u8, mask: u64| {
            hash = (hash << 1).wrapping_add(GEAR[b as usize]);
            hash & mask == 0
        };
        if let Some(i) = data[min..normal].iter().position(|&b| roll(b, mask_small)) {
            return min + i + 1;
        }
        if let Some(i) = data[normal..len].iter().position(|&b| roll(b, mask_large)) {
            return normal + i + 1;
        }
        len
    }

    /// Splits a complete in-memory buffer into chunks.
    pub fn split<'a>(&self, mut data: &'a [u8]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let cut = self.cut_point(data);
            let (head, tail) = data.split_at(cut);
            out.push(head);
            data = tail;
        }
        out
    }
}

fn top_bits(n: u32) -> u64 {
    if n == 0 { 0 } else { u64::MAX << (64 - n.min(64)) }
}

/// Cuts an async byte stream into chunks, holding at most two maximum-size chunks in memory.
pub struct StreamChunker<R> {
    reader: R,
    params: ChunkerParams,
    buf: BytesMut,
    eof: bool,
}

impl<R: AsyncRead + Unpin> StreamChunker<R> {
    /// Chunks `reader` with `params`.
    pub fn new(reader: R, params: ChunkerParams) -> Self {
        let cap = params.max_size as usize * 2;
        StreamChunker { reader, params, buf: BytesMut::with_capacity(cap), eof: false }
    }

    /// The next chunk, or `None` at the end of the stream.
    ///
    /// # Errors
    /// Returns the reader's error.
    pub async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        let max = self.params.max_size as usize;
        while !self.eof && self.buf.len() < max {
            self.buf.reserve(max * 2 - self.buf.len());
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                self.eof = true;
            }
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let cut = self.params.cut_point(&self.buf);
        Ok(Some(self.buf.split_to(cut).freeze()))
    }
}

/// The gear table: 256 pseudo-random 64-bit values from a fixed SplitMix64 sequence.
static GEAR: [u64; 256] = gear_table();

const fn gear_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut state: u64 = 0x6c69_6665_626f_6174; // "lifeboat"
    let mut i = 0;
    while i < 256 {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        table[i] = z ^ (z >> 31);
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> ChunkerParams {
        ChunkerParams { min_size: 256, avg_size: 1024, max_size: 4096 }
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn default_params_are_valid() {
        assert_eq!(ChunkerParams::default().validate(), Ok(()));
        assert!(ChunkerParams { min_size: 10, avg_size: 1000, max_size: 2000 }.validate().is_err());
    }

    #[test]
    fn average_size_is_near_target() {
        let p = ChunkerParams::default();
        let data = pseudo_random(32 << 20, 7);
        let chunks = p.split(&data);
        let avg = data.len() / chunks.len();
        let target = p.avg_size as usize;
        // The minimum is skipped before cutting starts, so the mean sits above the target.
        assert!(
            avg > target / 2 && avg < target * 2,
            "average chunk {avg} is far from {target} over {} chunks",
            chunks.len()
        );
    }

    proptest! {
        #[test]
        fn chunks_cover_the_input_within_limits(data in proptest::collection::vec(any::<u8>(), 0..20_000)) {
            let p = small();
            let chunks = p.split(&data);
            prop_assert_eq!(chunks.concat(), data.clone());
            for (i, c) in chunks.iter().enumerate() {
                prop_assert!(c.len() <= p.max_size as usize);
                if i + 1 < chunks.len() {
                    prop_assert!(c.len() >= p.min_size as usize);
                }
            }
        }

        #[test]
        fn an_insert_near_the_front_changes_few_chunks(
            seed in any::<u64>(),
            at in 0usize..2000,
            insert in proptest::collection::vec(any::<u8>(), 1..16),
        ) {
            let p = small();
            let data = pseudo_random(200_000, seed);
            let mut edited = data.clone();
            edited.splice(at..at, insert);
            let before: std::collections::HashSet<&[u8]> = p.split(&data).into_iter().collect();
            let after = p.split(&edited);
            let changed = after.iter().filter(|c| !before.contains(*c)).count();
            // Boundaries resynchronise within a few chunks of the edit; everything after is shared.
            prop_assert!(changed <= 10, "{} of {} chunks changed", changed, after.len());
            let tail = &after[after.len() / 2..];
            prop_assert!(tail.iter().all(|c| before.contains(*c)), "a chunk far from the edit changed");
        }

        #[test]
        fn stream_chunker_matches_split(data in proptest::collection::vec(any::<u8>(), 0..30_000)) {
            let p = small();
            let rt = tokio::runtime::Builder::new_current_thread().build().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let streamed = rt.block_on(async {
                let mut c = StreamChunker::new(&data[..], p);
                let mut out = Vec::new();
                while let Some(chunk) = c.next_chunk().await.map_err(|e| e.to_string())? {
                    out.push(chunk.to_vec());
                }
                Ok::<_, String>(out)
            }).map_err(TestCaseError::fail)?;
            let split: Vec<Vec<u8>> = p.split(&data).into_iter().map(<[u8]>::to_vec).collect();
            prop_assert_eq!(streamed, split);
        }
    }
}
