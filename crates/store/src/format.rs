//! The repository's on-store format: object keys, the config object, packs and index files.
//! `docs/repository-format.md` describes the same in prose; keep them in step.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use lifeboat_codec::{ChunkerParams, compress};
use lifeboat_core::{ChunkId, Digest};
use object_store::path::Path;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::crypt::{Crypt, Domain};
use crate::error::{Result, StoreError};

/// The repository format version `init` writes by default: 2, chunk ids made with BLAKE3.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest repository format version this build reads and writes: 1, chunk ids made with
/// SHA-256. A repository keeps its version for life, so its chunks always dedupe.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// The version of index files (the same in both repository format versions).
pub const INDEX_VERSION: u32 = 1;

/// Key of the config object.
pub const CONFIG_KEY: &str = "config";
/// Prefix of snapshot manifests.
pub const SNAPSHOTS_PREFIX: &str = "snapshots";
/// Key of the catalog: the manifests listed at some point, in one object (see
/// [`encode_catalog`]).
pub const CATALOG_KEY: &str = "catalog";
/// Prefix of index files.
pub const INDEX_PREFIX: &str = "index";
/// Prefix of pack files.
pub const DATA_PREFIX: &str = "data";

/// Trailer magic at the very end of every pack.
pub const PACK_MAGIC: &[u8; 8] = b"LBPACK01";

/// The largest `chunker.max_size` a config may set.
const MAX_CHUNK_LIMIT: u64 = 64 << 20;
/// The range of `pack_size` a config may set.
const MIN_PACK_SIZE: u64 = 64 << 10;
const MAX_PACK_SIZE: u64 = 1 << 30;

/// The config object: written once by `init`, read by every opener.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoConfig {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Random repository id.
    pub id: String,
    /// When the repository was created.
    pub created: DateTime<Utc>,
    /// Chunk size limits every writer must use, so equal data cuts into equal chunks.
    pub chunker: ChunkerParams,
    /// Chunk compression: `zstd`.
    pub compression: String,
    /// zstd level for new chunks.
    pub compression_level: i32,
    /// Target pack size in bytes.
    pub pack_size: u64,
    /// Encryption at rest: `none`, or `xchacha20-poly1305` (every object but this one and
    /// the key slots sealed; chunk ids keyed; see `docs/repository-format.md`).
    pub encryption: String,
    /// How chunk ids are made: absent (SHA-256) in version-1 configs.
    #[serde(default)]
    pub chunk_ids: ChunkIdScheme,
}

/// The hash that names chunks in one repository (keyed in an encrypted one). Fixed when the
/// repository is made: equal content must get one id from every writer, for life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChunkIdScheme {
    /// SHA-256 (HMAC-SHA-256 when encrypted): format version 1.
    #[default]
    Sha256,
    /// BLAKE3 (keyed BLAKE3 when encrypted): format version 2, the default of `init`; hashes
    /// about twice as fast as SHA-256 with SHA-NI, so backups spend one core-second less
    /// per ~3 GB.
    Blake3,
}

impl ChunkIdScheme {
    /// The repository format version a new repository with this scheme gets: 1 for SHA-256,
    /// so that older lifeboat builds can still open it.
    pub fn format_version(self) -> u32 {
        match self {
            ChunkIdScheme::Sha256 => OLDEST_FORMAT_VERSION,
            ChunkIdScheme::Blake3 => FORMAT_VERSION,
        }
    }
}

impl std::fmt::Display for ChunkIdScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChunkIdScheme::Sha256 => "sha256",
            ChunkIdScheme::Blake3 => "blake3",
        })
    }
}

impl std::str::FromStr for ChunkIdScheme {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "sha256" => Ok(ChunkIdScheme::Sha256),
            "blake3" => Ok(ChunkIdScheme::Blake3),
            other => Err(format!("unknown chunk id hash {other:?} (sha256 or blake3)")),
        }
    }
}

impl RepoConfig {
    /// A new config with default parameters (BLAKE3 chunk ids) and a fresh id.
    pub fn new() -> Self {
        Self::with_chunk_ids(ChunkIdScheme::Blake3)
    }

    /// A new config with default parameters, chunk ids made with `scheme`, at the format
    /// version that scheme needs, and a fresh id.
    pub fn with_chunk_ids(scheme: ChunkIdScheme) -> Self {
        RepoConfig {
            version: scheme.format_version(),
            id: hex::encode(rand::random::<[u8; 16]>()),
            created: Utc::now(),
            chunker: ChunkerParams::default(),
            compression: "zstd".into(),
            compression_level: lifeboat_codec::compress::DEFAULT_LEVEL,
            pack_size: 8 << 20,
            encryption: "none".into(),
            chunk_ids: scheme,
        }
    }
}

impl RepoConfig {
    /// Whether objects are sealed (see [`crate::Password`]).
    pub fn encrypted(&self) -> bool {
        self.encryption != "none"
    }

    /// Reads and checks a config object: a version this build reads, usable chunker limits,
    /// an encryption it supports.
    ///
    /// # Errors
    /// [`StoreError::UnsupportedVersion`] or [`StoreError::Malformed`].
    pub fn parse(body: &[u8]) -> Result<Self> {
        let malformed = |reason: String| StoreError::Malformed { key: CONFIG_KEY.into(), reason };
        let config: RepoConfig =
            serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&config.version) {
            return Err(StoreError::UnsupportedVersion {
                found: config.version,
                supported: FORMAT_VERSION,
            });
        }
        if config.chunk_ids.format_version() != config.version {
            return Err(malformed(format!(
                "format version {} does not go with {} chunk ids",
                config.version, config.chunk_ids
            )));
        }
        config.chunker.validate().map_err(malformed)?;
        // Both sizes set how much a backup holds in memory: a damaged config must not make
        // it try to allocate terabytes.
        if u64::from(config.chunker.max_size) > MAX_CHUNK_LIMIT {
            return Err(malformed(format!(
                "max chunk size {} is above {MAX_CHUNK_LIMIT}",
                config.chunker.max_size
            )));
        }
        if !(MIN_PACK_SIZE..=MAX_PACK_SIZE).contains(&config.pack_size) {
            return Err(malformed(format!(
                "pack size {} is outside {MIN_PACK_SIZE}..={MAX_PACK_SIZE}",
                config.pack_size
            )));
        }
        if config.encryption != "none" && config.encryption != crate::crypt::ENCRYPTION {
            return Err(malformed(format!(
                "encryption {:?} is not supported by this build",
                config.encryption
            )));
        }
        Ok(config)
    }
}

impl Default for RepoConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Where one chunk lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    /// The chunk id (SHA-256 of the plain bytes).
    pub id: ChunkId,
    /// Byte offset of the compressed blob in its pack.
    pub offset: u64,
    /// Length of the compressed blob.
    pub length: u32,
    /// Length of the plain chunk.
    pub plain: u32,
    /// For a delta blob: the chunk it was compressed against ([`lifeboat_codec::delta::compress_against`]).
    /// Always a chunk stored whole, never itself a delta, so a read needs at most two blobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<ChunkId>,
    /// [`head_of`] the plain chunk: finds it again as the base for a changed version of it.
    /// On a delta blob, absent when it equals its base's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<u64>,
    /// [`tail_of`] the plain chunk, for the same purpose when the head moved (on a delta,
    /// absent when it equals its base's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<u64>,
}

/// How many bytes at each end of a chunk [`head_of`] and [`tail_of`] summarise.
pub const END_BYTES: usize = 256;

/// A summary of a chunk's first [`END_BYTES`] bytes. Chunk boundaries are cut by content, so
/// a changed version of a chunk usually starts where and as the old one did: equal heads
/// pair the two up when a backup looks for a delta base.
pub fn head_of(plain: &[u8]) -> u64 {
    summary(&plain[..plain.len().min(END_BYTES)])
}

/// A summary of a chunk's last [`END_BYTES`] bytes: pairs a changed chunk with its old version
/// when a change just before it moved its start (the cut before it) but not its end.
pub fn tail_of(plain: &[u8]) -> u64 {
    summary(&plain[plain.len().saturating_sub(END_BYTES)..])
}

/// The first 8 bytes, little-endian, of the SHA-256 of `bytes`.
fn summary(bytes: &[u8]) -> u64 {
    let digest = Digest::of(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.0[..8]);
    u64::from_le_bytes(first)
}

/// One pack and the blobs in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    /// The pack id (SHA-256 of the whole pack object).
    pub id: Digest,
    /// Size of the pack object in bytes.
    pub size: u64,
    /// The blobs, in pack order.
    pub blobs: Vec<BlobEntry>,
}

/// An index file: the packs one backup added. The repository index is the union of all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    /// Format version.
    pub version: u32,
    /// Packs described.
    pub packs: Vec<PackEntry>,
}

/// The key of a pack: `data/<first two hex>/<id>`.
pub fn pack_key(id: &Digest) -> Path {
    let hex = id.to_hex();
    Path::from(format!("{DATA_PREFIX}/{}/{hex}", &hex[..2]))
}

/// The key of a snapshot manifest.
pub fn snapshot_key(id: &Digest) -> Path {
    Path::from(format!("{SNAPSHOTS_PREFIX}/{id}"))
}

/// The key of an index file.
pub fn index_key(id: &Digest) -> Path {
    Path::from(format!("{INDEX_PREFIX}/{id}"))
}

/// Parses the id at the end of a key such as `snapshots/<id>`.
pub fn id_from_key(key: &Path) -> Option<Digest> {
    key.filename().and_then(|name| name.parse().ok())
}

/// First bytes of a catalog object.
pub const CATALOG_MAGIC: &[u8; 8] = b"LBCATLG1";

/// A catalog object: [`CATALOG_MAGIC`], a little-endian `u32` count, then per snapshot its
/// 32-byte id, a little-endian `u32` length and its manifest's bytes exactly as stored under
/// `snapshots/<id>` (sealed, in an encrypted repository). Each entry is checked against its
/// id when used, so the catalog cannot change a manifest, only lack or outlive one.
pub fn encode_catalog<'a>(entries: impl Iterator<Item = (&'a Digest, &'a Bytes)>) -> Vec<u8> {
    let entries: Vec<_> = entries.collect();
    let size: usize = entries.iter().map(|(_, body)| 36 + body.len()).sum();
    let mut out = Vec::with_capacity(12 + size);
    out.extend_from_slice(CATALOG_MAGIC);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (id, body) in entries {
        out.extend_from_slice(&id.0);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
    }
    out
}

/// Reads what [`encode_catalog`] wrote; the reason when it is not such an object.
pub fn decode_catalog(body: &Bytes) -> std::result::Result<HashMap<Digest, Bytes>, String> {
    let rest = body.strip_prefix(CATALOG_MAGIC.as_slice()).ok_or("not a catalog (bad magic)")?;
    let take = |at: usize, n: usize| {
        (at.checked_add(n).is_some_and(|end| end <= rest.len())).then(|| &rest[at..at + n])
    };
    let word = |at: usize| -> std::result::Result<usize, String> {
        let b = take(at, 4).ok_or("truncated")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(0)?;
    let mut at = 4;
    let mut entries = HashMap::new();
    for n in 0..count {
        let id = take(at, 32).ok_or_else(|| format!("entry {n} truncated"))?;
        let id = Digest(id.try_into().map_err(|_| format!("entry {n} truncated"))?);
        let len = word(at + 32).map_err(|_| format!("entry {n} truncated"))?;
        take(at + 36, len).ok_or_else(|| format!("entry {n} truncated"))?;
        let start = CATALOG_MAGIC.len() + at + 36;
        entries.insert(id, body.slice(start..start + len));
        at += 36 + len;
    }
    if at != rest.len() {
        return Err(format!("{} bytes after the last entry", rest.len() - at));
    }
    Ok(entries)
}

/// zstd level of manifests, index files and pack trailers: their hex ids compress to about
/// half.
const METADATA_LEVEL: i32 = 3;

/// The largest manifest, index file or pack trailer read, decompressed: a damaged or hostile object
/// cannot exhaust memory.
const MAX_METADATA: u64 = 1 << 30;

/// Metadata up to this size decompresses whatever its ratio; above it, at most
/// [`MAX_METADATA_RATIO`] times the stored size. Real metadata is mostly hex ids and
/// compresses about 2:1, while a few KiB of zstd can claim a GiB of zeros.
const METADATA_FREE: u64 = 16 << 20;
const MAX_METADATA_RATIO: u64 = 64;

/// How many bytes `stored` bytes of metadata may decompress to.
fn metadata_limit(stored: usize) -> u64 {
    (stored as u64).saturating_mul(MAX_METADATA_RATIO).clamp(METADATA_FREE, MAX_METADATA)
}

/// Serialises a manifest, an index file or a pack trailer: zstd-compressed JSON.
///
/// # Errors
/// Never in practice (serialising and compressing plain data); `what` names the object.
pub fn encode_metadata<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>> {
    let malformed = |reason: String| StoreError::Malformed { key: what.into(), reason };
    let json = serde_json::to_vec(value).map_err(|e| malformed(e.to_string()))?;
    compress::compress(&json, METADATA_LEVEL).map_err(|e| malformed(e.to_string()))
}

/// Reads what [`encode_metadata`] wrote, or the plain JSON that repositories written before
/// compressed metadata hold (told apart by zstd's frame magic).
///
/// # Errors
/// [`StoreError::Malformed`] naming `key` when the bytes are not such an object.
pub fn decode_metadata<T: DeserializeOwned>(key: &str, body: &[u8]) -> Result<T> {
    let malformed = |reason: String| StoreError::Malformed { key: key.into(), reason };
    if body.starts_with(&compress::FRAME_MAGIC) {
        let json = compress::decompress_bounded(body, metadata_limit(body.len()))
            .map_err(|e| malformed(format!("compressed metadata: {e}")))?;
        serde_json::from_slice(&json).map_err(|e| malformed(e.to_string()))
    } else {
        serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))
    }
}

/// Builds pack objects: compressed blobs back to back, then a trailer that lists them so the
/// index can be rebuilt from the packs alone.
#[derive(Debug, Default)]
pub struct PackBuilder {
    buf: Vec<u8>,
    blobs: Vec<BlobEntry>,
}

impl PackBuilder {
    /// An empty pack with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        PackBuilder { buf: Vec::with_capacity(capacity), blobs: Vec::new() }
    }

    /// Appends one compressed blob described by `entry`; its `offset` and `length` are set
    /// here.
    pub fn push(&mut self, entry: BlobEntry, blob: &[u8]) {
        self.blobs.push(BlobEntry {
            offset: self.buf.len() as u64,
            length: blob.len() as u32,
            ..entry
        });
        self.buf.extend_from_slice(blob);
    }

    /// Bytes of blobs so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no blob was pushed.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Finishes the pack: returns its bytes and its index entry.
    ///
    /// # Errors
    /// Never in practice (serialising plain data).
    pub fn finish(self) -> Result<(Vec<u8>, PackEntry)> {
        self.finish_in(&Crypt::Plain)
    }

    /// As [`PackBuilder::finish`], the trailer sealed as `crypt` says.
    pub(crate) fn finish_in(mut self, crypt: &Crypt) -> Result<(Vec<u8>, PackEntry)> {
        let trailer = crypt.seal(Domain::Trailer, encode_metadata(&self.blobs, "new pack")?)?;
        self.buf.extend_from_slice(&trailer);
        self.buf.extend_from_slice(&(trailer.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(PACK_MAGIC);
        let id = Digest::of(&self.buf);
        let entry = PackEntry { id, size: self.buf.len() as u64, blobs: self.blobs };
        Ok((self.buf, entry))
    }
}

/// Bytes at the end of a pack after its trailer: the trailer's length (u32, little-endian)
/// and [`PACK_MAGIC`].
pub const PACK_FOOTER: usize = 12;

/// The length of the trailer that ends a pack of `pack_size` bytes, read from the pack's last
/// bytes (`tail`, at least [`PACK_FOOTER`] of them). The length is checked against the pack's
/// size, so a damaged length never makes a reader fetch or allocate more than the pack holds.
///
/// # Errors
/// [`StoreError::Malformed`] when the magic is missing or the length does not fit the pack.
pub fn pack_trailer_len(key: &str, tail: &[u8], pack_size: u64) -> Result<u64> {
    let malformed = |reason: &str| StoreError::Malformed { key: key.into(), reason: reason.into() };
    let n = tail.len();
    if n < PACK_FOOTER || pack_size < PACK_FOOTER as u64 || &tail[n - 8..] != PACK_MAGIC {
        return Err(malformed("pack trailer magic missing"));
    }
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&tail[n - 12..n - 8]);
    let len = u64::from(u32::from_le_bytes(len_bytes));
    if len + PACK_FOOTER as u64 > pack_size {
        return Err(malformed("pack trailer length too large"));
    }
    Ok(len)
}

/// Reads the blob list from a whole pack's bytes (for verification and index rebuilds).
///
/// # Errors
/// [`StoreError::Malformed`] when the trailer is missing or invalid.
pub fn read_pack_trailer(key: &str, pack: &[u8]) -> Result<Vec<BlobEntry>> {
    read_pack_trailer_in(key, pack, &Crypt::Plain)
}

/// As [`read_pack_trailer`], the trailer opened as `crypt` says.
pub(crate) fn read_pack_trailer_in(
    key: &str,
    pack: &[u8],
    crypt: &Crypt,
) -> Result<Vec<BlobEntry>> {
    let n = pack.len();
    let len = pack_trailer_len(key, pack, n as u64)? as usize;
    let body =
        crypt.open_slice(key, Domain::Trailer, &pack[n - PACK_FOOTER - len..n - PACK_FOOTER])?;
    let blobs: Vec<BlobEntry> = decode_metadata(key, &body)?;
    check_blobs(key, &blobs, (n - PACK_FOOTER - len) as u64)?;
    Ok(blobs)
}

/// Checks that every blob lies inside the first `blob_bytes` bytes of its pack (before the
/// trailer): an entry pointing elsewhere is damage, not something to read.
fn check_blobs(key: &str, blobs: &[BlobEntry], blob_bytes: u64) -> Result<()> {
    for blob in blobs {
        if blob.offset.checked_add(u64::from(blob.length)).is_none_or(|end| end > blob_bytes) {
            return Err(StoreError::Malformed {
                key: key.into(),
                reason: format!(
                    "blob {} at {}+{} lies outside the pack's {blob_bytes} bytes of blobs",
                    blob.id, blob.offset, blob.length
                ),
            });
        }
    }
    Ok(())
}

/// Reads an index file: its bytes must hash to the id in its key (`index/<sha256>`), as a
/// manifest's must, and every entry must lie inside its pack. A bit flipped in an offset
/// would otherwise pass as an entry that backups deduplicate against.
///
/// # Errors
/// [`lifeboat_core::Error::Corrupt`] when the hash differs; [`StoreError::Malformed`] when
/// the key is not an index key or the content is not a valid index file.
pub fn decode_index(key: &Path, body: &[u8]) -> Result<IndexFile> {
    decode_index_in(key, body, &Crypt::Plain)
}

/// As [`decode_index`], the file opened as `crypt` says.
pub(crate) fn decode_index_in(key: &Path, body: &[u8], crypt: &Crypt) -> Result<IndexFile> {
    let Some(expected) = id_from_key(key) else {
        return Err(StoreError::Malformed {
            key: key.to_string(),
            reason: "the key is not index/<sha256>".into(),
        });
    };
    let actual = Digest::of(body);
    if actual != expected {
        return Err(lifeboat_core::Error::Corrupt {
            object: key.to_string(),
            expected: expected.to_hex(),
            actual: actual.to_hex(),
        }
        .into());
    }
    let body = crypt.open_slice(key.as_ref(), Domain::Index, body)?;
    let file: IndexFile = decode_metadata(key.as_ref(), &body)?;
    if file.version != INDEX_VERSION {
        return Err(StoreError::Malformed {
            key: key.to_string(),
            reason: format!("index format version {} (expected {INDEX_VERSION})", file.version),
        });
    }
    for pack in &file.packs {
        check_blobs(key.as_ref(), &pack.blobs, pack.size.saturating_sub(PACK_FOOTER as u64))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trip() -> Result<()> {
        let blob = |id: &[u8], base: Option<ChunkId>| BlobEntry {
            id: Digest::of(id),
            offset: 0,
            length: 0,
            plain: 1,
            base,
            head: Some(head_of(id)),
            tail: Some(tail_of(id)),
        };
        let mut b = PackBuilder::with_capacity(64);
        b.push(blob(b"a", None), b"AA");
        b.push(blob(b"b", Some(Digest::of(b"a"))), b"BBB");
        let (bytes, entry) = b.finish()?;
        assert_eq!(entry.id, Digest::of(&bytes));
        assert_eq!(read_pack_trailer("p", &bytes)?, entry.blobs);
        assert_eq!(&bytes[2..5], b"BBB");
        assert_eq!((entry.blobs[1].offset, entry.blobs[1].length), (2, 3));
        assert_eq!(entry.blobs[1].base, Some(Digest::of(b"a")));
        assert!(read_pack_trailer("p", &bytes[..bytes.len() - 1]).is_err());
        // Plain JSON, as written before metadata was compressed, still reads.
        let plain = serde_json::to_vec(&entry).unwrap_or_default();
        assert_eq!(decode_metadata::<PackEntry>("i", &plain)?, entry);
        assert_eq!(decode_metadata::<PackEntry>("i", &encode_metadata(&entry, "i")?)?, entry);
        assert!(decode_metadata::<PackEntry>("i", b"garbage").is_err());
        Ok(())
    }
}
