//! Deltas: a chunk compressed against a similar chunk already stored (its base), as a
//! patch or as zstd with the base as a prefix.

use std::io;

use crate::compress::exact_length;

/// Whether `base` can serve as the reference of a delta ([`compress_against`]): any bytes
/// but none. A base is always taken as raw content (zstd's prefix), never parsed as a trained
/// dictionary, whatever its first bytes.
pub fn usable_as_base(base: &[u8]) -> bool {
    !base.is_empty()
}

/// Compresses one chunk as a delta against `base`, a similar chunk. Two forms:
/// - a patch ([`crate::patch`]): copies from the base and inserted bytes, cheapest when rows
///   or pages were deleted, inserted or moved. Made first, since it costs little; kept when
///   it is at most `good_enough` bytes.
/// - zstd with `base` as a prefix of the data (as `zstd --patch-from` does: one window spans
///   both, long-distance matching on), so the parts both share cost a few bytes each; better
///   when many small edits are spread over the chunk.
///
/// Otherwise the smaller of the two. Reading it back needs the same `base`
/// ([`decompress_against`]).
///
/// Long-distance matching is erratic on repetitive data such as a table dump's rows: the
/// same pair of chunks can give 90 bytes with one minimum match length and 12 KB with
/// another. So a zstd delta larger than `good_enough` bytes is made a second way and the
/// smaller one kept (on pgbench chunks this takes the total to half of either way alone).
///
/// # Errors
/// When `base` is not [`usable_as_base`], on an invalid level, or on allocation failure.
pub fn compress_against(
    data: &[u8],
    base: &[u8],
    level: i32,
    good_enough: usize,
) -> io::Result<Vec<u8>> {
    if !usable_as_base(base) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "base cannot serve as a delta base",
        ));
    }
    let patch = crate::patch::diff(data, base, level)?;
    if let Some(patch) = &patch
        && patch.len() <= good_enough
    {
        return Ok(patch.clone());
    }
    let zstd = zstd_against(data, base, level, good_enough)?;
    Ok(match patch {
        Some(patch) if patch.len() <= zstd.len() => patch,
        _ => zstd,
    })
}

/// zstd with `base` as prefix: the smaller of two long-distance match minimums, the second
/// tried only when the first gives more than `good_enough` bytes.
fn zstd_against(data: &[u8], base: &[u8], level: i32, good_enough: usize) -> io::Result<Vec<u8>> {
    let first = delta_with(data, base, level, SHORT_LDM_MIN_MATCH)?;
    if first.len() <= good_enough {
        return Ok(first);
    }
    let second = delta_with(data, base, level, DEFAULT_LDM_MIN_MATCH)?;
    Ok(if second.len() < first.len() { second } else { first })
}

/// One delta with long-distance matches of at least `ldm_min_match` bytes.
fn delta_with(data: &[u8], base: &[u8], level: i32, ldm_min_match: u32) -> io::Result<Vec<u8>> {
    use zstd::zstd_safe::{CCtx, CParameter};
    let mut cctx =
        CCtx::try_create().ok_or_else(|| io::Error::other("zstd: no memory for a context"))?;
    zstd_result(cctx.set_parameter(CParameter::CompressionLevel(level)))?;
    zstd_result(cctx.set_parameter(CParameter::WindowLog(window_log(base.len() + data.len()))))?;
    zstd_result(cctx.set_parameter(CParameter::EnableLongDistanceMatching(true)))?;
    zstd_result(cctx.set_parameter(CParameter::LdmMinMatch(ldm_min_match)))?;
    zstd_result(cctx.ref_prefix(base))?;
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
    zstd_result(cctx.compress2(&mut out, data))?;
    Ok(out)
}

/// Decompresses a delta made by [`compress_against`] (either form) with the same `base`;
/// refuses to produce other than `plain_len` bytes.
///
/// # Errors
/// When `base` is not usable, the blob is not valid zstd, was made against another base, or
/// does not decompress to exactly `plain_len` bytes.
pub fn decompress_against(blob: &[u8], base: &[u8], plain_len: usize) -> io::Result<Vec<u8>> {
    use zstd::zstd_safe::{DCtx, DParameter};
    if !usable_as_base(base) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "base cannot serve as a delta base",
        ));
    }
    if crate::patch::is_patch(blob) {
        return crate::patch::apply(blob, base, plain_len);
    }
    let mut dctx =
        DCtx::try_create().ok_or_else(|| io::Error::other("zstd: no memory for a context"))?;
    let window = window_log(base.len() + plain_len).max(MAX_DEFAULT_WINDOW_LOG);
    zstd_result(dctx.set_parameter(DParameter::WindowLogMax(window)))?;
    zstd_result(dctx.ref_prefix(base))?;
    let mut out = Vec::with_capacity(plain_len);
    zstd_result(dctx.decompress(&mut out, blob))?;
    exact_length(out, plain_len)
}

/// Long-distance match minimums a delta tries: 24 bytes first (on pgbench chunks, deltas
/// 36% smaller than with zstd's own), then zstd's own 64.
const SHORT_LDM_MIN_MATCH: u32 = 24;
const DEFAULT_LDM_MIN_MATCH: u32 = 64;

/// The window zstd decoders accept without being told otherwise (128 MiB).
const MAX_DEFAULT_WINDOW_LOG: u32 = 27;

/// The smallest zstd window log that spans `len` bytes, within what decoders accept by default.
fn window_log(len: usize) -> u32 {
    (usize::BITS - len.saturating_sub(1).leading_zeros()).clamp(10, MAX_DEFAULT_WINDOW_LOG)
}

fn zstd_result(code: Result<usize, usize>) -> io::Result<usize> {
    code.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, zstd::zstd_safe::get_error_name(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::{DEFAULT_LEVEL, FRAME_MAGIC, compress, decompress};

    #[test]
    fn a_delta_of_a_similar_chunk_is_small_and_needs_its_base() -> io::Result<()> {
        let base: Vec<u8> =
            (0..200_000u32).flat_map(|i| (i.wrapping_mul(2_654_435_761)).to_le_bytes()).collect();
        let mut data = base.clone();
        data[1000] ^= 0xff;
        data.drain(50_000..50_100);
        data.extend_from_slice(b"appended");
        let full = compress(&data, DEFAULT_LEVEL)?;
        let delta = compress_against(&data, &base, DEFAULT_LEVEL, 0)?;
        assert!(delta.len() <= compress_against(&data, &base, DEFAULT_LEVEL, usize::MAX)?.len());
        assert!(delta.len() * 100 < full.len(), "delta {} vs full {}", delta.len(), full.len());
        assert_eq!(decompress_against(&delta, &base, data.len())?, data);
        let mut other = base.clone();
        other[0] ^= 1;
        assert!(decompress_against(&delta, &other, data.len()).map_or(true, |d| d != data));
        assert!(decompress(&delta, data.len()).is_err(), "a delta does not read without its base");
        // A base that starts like a trained zstd dictionary is still plain content.
        let mut dictionary_like = vec![0x37, 0xA4, 0x30, 0xEC];
        dictionary_like.extend_from_slice(&base);
        let delta_of_it = compress_against(&data, &dictionary_like, DEFAULT_LEVEL, 0)?;
        assert_eq!(decompress_against(&delta_of_it, &dictionary_like, data.len())?, data);
        assert!(delta_of_it.len() * 100 < full.len());
        assert_eq!(window_log(1), 10);
        assert_eq!(window_log(1 << 20), 20);
        assert_eq!(window_log((1 << 20) + 1), 21);
        assert_eq!(window_log(usize::MAX), MAX_DEFAULT_WINDOW_LOG);
        assert!(decompress_against(&delta, b"", data.len()).is_err());
        Ok(())
    }

    #[test]
    fn deleted_rows_make_a_patch_and_both_delta_forms_read_back() -> io::Result<()> {
        let base: Vec<u8> = (0..4000u32)
            .flat_map(|i| format!("{i}\t{}\t0\t{:40}\n", i / 100, "").into_bytes())
            .collect();
        let mut rows = base.clone();
        rows.drain(30_000..30_051);
        rows.drain(100_000..100_051);
        let delta = compress_against(&rows, &base, DEFAULT_LEVEL, 64)?;
        assert!(crate::patch::is_patch(&delta), "deleted rows: a patch");
        assert_eq!(decompress_against(&delta, &base, rows.len())?, rows);
        // A byte changed every 50 bytes: whichever form is smaller, and the zstd form reads too.
        let mut edited = base.clone();
        for i in (0..edited.len()).step_by(50) {
            edited[i] ^= 0x20;
        }
        let zstd = zstd_against(&edited, &base, DEFAULT_LEVEL, 0)?;
        assert!(zstd.starts_with(&FRAME_MAGIC));
        assert_eq!(decompress_against(&zstd, &base, edited.len())?, edited);
        let delta = compress_against(&edited, &base, DEFAULT_LEVEL, 0)?;
        assert!(delta.len() <= zstd.len());
        assert_eq!(decompress_against(&delta, &base, edited.len())?, edited);
        Ok(())
    }
}
