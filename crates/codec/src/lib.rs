//! # lifeboat-codec
//!
//! How the store turns a captured stream into stored blobs, and back. Only the store uses
//! it; a backend author never needs it.
//!
//! - [`ChunkerParams`], [`StreamChunker`]: content-defined chunking, so an insertion moves
//!   chunk boundaries only near it;
//! - [`compress`]: zstd, with bounds on what a blob may decompress to;
//! - [`patch`]: a chunk as copies from a base chunk plus inserted bytes;
//! - [`delta`]: a chunk against a similar stored one, as a patch or as zstd with the base as
//!   a prefix, whichever is smaller.
//!
//! The modules depend one way: `delta` uses `patch` and `compress`, `patch` uses `compress`.
//!
//! ```
//! use lifeboat_codec::{ChunkerParams, compress};
//!
//! let data = vec![7u8; 3 << 20];
//! let chunks = ChunkerParams::default().split(&data);
//! assert_eq!(chunks.concat(), data);
//! // Identical content gives identical chunks: stored once.
//! assert_eq!(chunks[0], chunks[1]);
//! let blob = compress::compress(&chunks[0], compress::DEFAULT_LEVEL)?;
//! assert_eq!(compress::decompress(&blob, chunks[0].len())?, chunks[0]);
//! # Ok::<_, std::io::Error>(())
//! ```

mod chunker;
pub mod compress;
pub mod delta;
pub mod patch;

pub use chunker::{ChunkerParams, StreamChunker};
