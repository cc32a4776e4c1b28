//! Fuzzing the chunk codecs that read what a store hands back: zstd, zstd against a base,
//! and patches. Each property feeds arbitrary bytes, or a valid delta with bytes flipped, cut
//! or inserted, and requires an error or exactly the claimed number of bytes, never a panic,
//! and never an allocation the claimed plain length does not bound. (The metadata parsers
//! are fuzzed in `fuzz.rs`.)
//!
//! The suite runs proptest's default number of cases (256 per property) in `cargo test`;
//! a longer run is
//! `PROPTEST_CASES=100000 cargo test --release -p lifeboat-store --test codecs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lifeboat_codec::{compress, delta, patch};
use proptest::prelude::*;

/// The largest plain length a fuzzed codec call is asked for: a hostile length field must
/// be refused or bounded, not trusted.
const PLAIN_LIMIT: usize = 1 << 20;

/// A damaged copy of `valid`: bytes flipped, a cut, and bytes inserted, as a flaky disk or a
/// hostile store would hand back.
#[derive(Debug, Clone)]
enum Damage {
    Flip { at: usize, mask: u8 },
    Cut { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Vec<Damage>> {
    let one = prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        any::<usize>().prop_map(|at| Damage::Cut { at }),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Damage::Insert { at, bytes }),
    ];
    proptest::collection::vec(one, 1..4)
}

fn apply_damage(valid: &[u8], damage: &[Damage]) -> Vec<u8> {
    let mut out = valid.to_vec();
    for d in damage {
        if out.is_empty() {
            break;
        }
        match d {
            Damage::Flip { at, mask } => {
                let i = at % out.len();
                out[i] ^= mask;
            }
            Damage::Cut { at } => out.truncate(at % out.len()),
            Damage::Insert { at, bytes } => {
                let i = at % (out.len() + 1);
                out.splice(i..i, bytes.iter().copied());
            }
        }
    }
    out
}

proptest! {
    #[test]
    fn chunk_codecs_never_panic_and_never_return_the_wrong_length(
        blob in proptest::collection::vec(any::<u8>(), 0..512),
        base in proptest::collection::vec(any::<u8>(), 0..512),
        plain in 0usize..PLAIN_LIMIT,
    ) {
        if let Ok(out) = compress::decompress(&blob, plain) {
            prop_assert_eq!(out.len(), plain);
        }
        if let Ok(out) = delta::decompress_against(&blob, &base, plain) {
            prop_assert_eq!(out.len(), plain);
        }
        if let Ok(out) = patch::apply(&blob, &base, plain) {
            prop_assert_eq!(out.len(), plain);
        }
        let _ = compress::decompress_bounded(&blob, PLAIN_LIMIT as u64);
    }

    #[test]
    fn a_damaged_delta_is_an_error_or_exactly_as_long_as_claimed(
        seed in any::<u64>(),
        damage in damage(),
    ) {
        let base = lifeboat_testkit::pseudo_random(4096, seed);
        let mut changed = base.clone();
        changed[100..120].fill(7);
        changed.extend_from_slice(b"appended row");
        let plain = changed.len();
        let valid = delta::compress_against(&changed, &base, 3, usize::MAX).unwrap();
        let bad = apply_damage(&valid, &damage);
        // Patches and zstd-against-a-base are told apart by their first bytes, so damage can
        // also make one look like the other.
        if let Ok(out) = delta::decompress_against(&bad, &base, plain) {
            prop_assert_eq!(out.len(), plain);
        }
    }
}
