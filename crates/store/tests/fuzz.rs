//! Fuzz targets for every parser of what the store hands back: manifests, index files, pack
//! trailers, the config object and leases. Whatever the bytes, a parser returns an error or
//! a value; it never panics and never allocates more than the input can justify.
//!
//! A fixed number of cases runs with the test suite; run longer with e.g.
//! `PROPTEST_CASES=100000 cargo test -p lifeboat-store --release --test fuzz`.
#![allow(clippy::unwrap_used)]

use lifeboat_codec::compress;
use lifeboat_core::{Digest, Manifest};
use lifeboat_store::LeaseInfo;
use lifeboat_store::format::{
    BlobEntry, IndexFile, PACK_MAGIC, PackBuilder, PackEntry, RepoConfig, decode_index,
    decode_metadata, encode_metadata, index_key, pack_trailer_len, read_pack_trailer,
};
use object_store::path::Path;
use proptest::prelude::*;

/// Valid encodings with bytes flipped, cut or appended: the inputs closest to real damage.
fn damaged(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len().max(1);
    (proptest::collection::vec((0..len, any::<u8>()), 0..8), 0..=len, any::<bool>()).prop_map(
        move |(flips, cut, append)| {
            let mut bytes = valid.clone();
            for (at, mask) in flips {
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= mask;
                }
            }
            if append {
                bytes.extend_from_slice(&[0xff; 7]);
            } else {
                bytes.truncate(cut);
            }
            bytes
        },
    )
}

fn arbitrary_or_damaged(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..2048), damaged(valid)]
}

fn sample_pack() -> (Vec<u8>, PackEntry) {
    let mut pack = PackBuilder::with_capacity(256);
    for i in 0..4u8 {
        let entry = BlobEntry {
            id: Digest::of(&[i]),
            offset: 0,
            length: 0,
            plain: 40,
            base: (i > 1).then(|| Digest::of(&[0])),
            head: Some(u64::from(i)),
            tail: None,
        };
        pack.push(entry, &[i; 17]);
    }
    pack.finish().unwrap()
}

fn sample_index() -> Vec<u8> {
    let (_, entry) = sample_pack();
    encode_metadata(&IndexFile { version: 1, packs: vec![entry] }, "t").unwrap()
}

fn sample_manifest() -> Vec<u8> {
    let json = serde_json::json!({
        "format": 1, "kind": "sqlite", "name": "auth", "host": "h", "tags": {},
        "time": "2026-01-01T00:00:00Z", "size": 3, "stored": 3, "duration_ms": 1,
        "sha256": Digest::of(b"abc").to_hex(), "chunks": [Digest::of(b"abc").to_hex()],
        "metadata": {}, "parent": null
    });
    encode_metadata(&json, "t").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn manifests(bytes in arbitrary_or_damaged(sample_manifest())) {
        let _ = decode_metadata::<Manifest>("snapshots/x", &bytes);
    }

    #[test]
    fn index_files(bytes in arbitrary_or_damaged(sample_index()), keyed in any::<bool>()) {
        // Keyed by its own hash, a damaged file reaches the parser and the entry checks.
        let key = if keyed { index_key(&Digest::of(&bytes)) } else { Path::from("index/x") };
        if let Ok(file) = decode_index(&key, &bytes) {
            for pack in &file.packs {
                for blob in &pack.blobs {
                    prop_assert!(blob.offset + u64::from(blob.length) <= pack.size);
                }
            }
        }
    }

    #[test]
    fn pack_trailers(bytes in arbitrary_or_damaged(sample_pack().0)) {
        if let Ok(blobs) = read_pack_trailer("data/x", &bytes) {
            for blob in blobs {
                prop_assert!(blob.offset + u64::from(blob.length) <= bytes.len() as u64);
            }
        }
    }

    #[test]
    fn pack_footers(len in any::<u32>(), size in any::<u64>()) {
        // A length field claiming up to 4 GiB is checked against the pack's size before
        // anything is fetched or allocated.
        let mut tail = len.to_le_bytes().to_vec();
        tail.extend_from_slice(PACK_MAGIC);
        match pack_trailer_len("data/x", &tail, size) {
            Ok(n) => prop_assert!(n + 12 <= size),
            Err(_) => prop_assert!(u64::from(len) + 12 > size || size < 12),
        }
    }

    #[test]
    fn configs(bytes in arbitrary_or_damaged(serde_json::to_vec(&RepoConfig::new()).unwrap())) {
        if let Ok(config) = RepoConfig::parse(&bytes) {
            prop_assert!(config.pack_size <= 1 << 30);
            prop_assert!(config.chunker.max_size <= 64 << 20);
        }
    }

    #[test]
    fn config_sizes(max in any::<u32>(), pack in any::<u64>()) {
        let mut config = serde_json::to_value(RepoConfig::new()).unwrap();
        config["chunker"]["max_size"] = max.into();
        config["pack_size"] = pack.into();
        if let Ok(parsed) = RepoConfig::parse(&serde_json::to_vec(&config).unwrap()) {
            prop_assert!(parsed.pack_size <= 1 << 30 && parsed.chunker.max_size <= 64 << 20);
        }
    }

    #[test]
    fn leases(bytes in arbitrary_or_damaged(br#"{"owner":"a","host":"h","pid":1,"operation":"prune","acquired":"2026-01-01T00:00:00Z","expires":"2026-01-01T00:01:00Z"}"#.to_vec())) {
        let _ = serde_json::from_slice::<LeaseInfo>(&bytes);
    }
}

/// A few KiB of zstd that claim a GiB of zeros are refused at a bound set by their size.
#[test]
fn metadata_bombs_are_refused() {
    let zeros = vec![0u8; 256 << 20];
    let bomb = compress::compress(&zeros, 19).unwrap();
    drop(zeros);
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    let err = decode_metadata::<Manifest>("snapshots/x", &bomb).unwrap_err();
    assert!(err.to_string().contains("decompresses to more than 16777216 bytes"), "{err}");
}
