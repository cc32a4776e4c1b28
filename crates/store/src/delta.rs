//! Choosing delta bases: for a new chunk, the chunk of the parent snapshot it is most likely a
//! changed version of (see "Delta chunks" in `docs/repository-format.md`).

use std::collections::HashMap;
use std::sync::Mutex;

use lifeboat_core::ChunkId;

use crate::repository::{BlobLocation, ChunkIndex};

/// How far (in chunks of the average size) from the last chunk that lined up with the parent
/// the position guess is still tried. Past it the stream is new data, where a guess would
/// cost a base read and a wasted compression per chunk.
const GUESS_REACH: u64 = 4;

/// A parent chunk as a candidate base.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    /// Where the parent chunk starts in the parent's stream.
    start: u64,
    /// Its plain length.
    plain: u32,
    /// The chunk stored whole that stands for it: itself, or its base when it is a delta.
    whole: (ChunkId, BlobLocation),
}

/// Finds delta bases among the parent snapshot's chunks, in this order:
/// 1. the parent chunk with the same head (first 256 bytes);
/// 2. else the one with the same tail (last 256 bytes);
/// 3. else, near a chunk that lined up with the parent (by head, tail or identity), the parent
///    chunk at the same position shifted by the same amount: after a cut point moved, the
///    next few cuts can move too, and such chunks match neither by head nor by tail.
///
/// A parent chunk that is a delta itself stands for its own base, so every delta needs
/// exactly one base stored whole.
#[derive(Debug, Default)]
pub(crate) struct BaseFinder {
    by_head: HashMap<u64, Candidate>,
    by_tail: HashMap<u64, Candidate>,
    by_id: HashMap<ChunkId, Candidate>,
    /// Parent chunks in stream order.
    in_order: Vec<Candidate>,
    /// Largest distance from the last alignment at which to guess by position.
    reach: u64,
    /// The last alignment seen: (offset in the new stream, new offset minus parent offset).
    aligned: Mutex<Option<(u64, i128)>>,
}

impl BaseFinder {
    /// Candidates from `parent_chunks` as located in `known`; `avg_size` is the chunker's.
    pub(crate) fn new(parent_chunks: &[ChunkId], known: &ChunkIndex, avg_size: u32) -> Self {
        let mut finder = BaseFinder { reach: GUESS_REACH * u64::from(avg_size), ..Self::default() };
        let mut start = 0u64;
        for id in parent_chunks {
            // Past a chunk the index lacks (a prune at work), positions are unknown.
            let Some(loc) = known.get(id) else { break };
            let whole = match loc.base {
                None => Some((*id, *loc)),
                Some(base) => known.get(&base).filter(|b| b.base.is_none()).map(|b| (base, *b)),
            };
            if let Some(whole) = whole {
                let candidate = Candidate { start, plain: loc.plain, whole };
                // A delta records its head and tail only where they differ from its base's.
                let inherited = |own: Option<u64>, of_base: Option<u64>| {
                    own.or(if loc.base.is_some() { of_base } else { None })
                };
                if let Some(head) = inherited(loc.head, whole.1.head) {
                    finder.by_head.insert(head, candidate);
                }
                if let Some(tail) = inherited(loc.tail, whole.1.tail) {
                    finder.by_tail.insert(tail, candidate);
                }
                finder.by_id.insert(*id, candidate);
                finder.in_order.push(candidate);
            }
            start += u64::from(loc.plain);
        }
        finder
    }

    /// Notes that the new stream's chunk at `offset` is the parent chunk `id` (deduplicated).
    pub(crate) fn seen(&self, id: &ChunkId, offset: u64) {
        if let Some(c) = self.by_id.get(id) {
            self.align(offset, c.start);
        }
    }

    /// The base for a new chunk of `plain` bytes at `offset` with the given head and tail.
    pub(crate) fn base_for(
        &self,
        head: u64,
        tail: u64,
        offset: u64,
        plain: u32,
    ) -> Option<(ChunkId, BlobLocation)> {
        if let Some(c) = self.by_head.get(&head) {
            self.align(offset, c.start);
            return Some(c.whole);
        }
        if let Some(c) = self.by_tail.get(&tail) {
            // Ends line up: the new chunk's end is the parent chunk's end.
            let end = offset + u64::from(plain);
            self.align(end, c.start + u64::from(c.plain));
            return Some(c.whole);
        }
        let (at, shift) = (*self.aligned.lock().ok()?)?;
        if offset.abs_diff(at) > self.reach {
            return None;
        }
        let target = u64::try_from(i128::from(offset) - shift).ok()?;
        let i = self.in_order.partition_point(|c| c.start + u64::from(c.plain) <= target);
        self.in_order.get(i).map(|c| c.whole)
    }

    fn align(&self, new_offset: u64, parent_offset: u64) {
        if let Ok(mut aligned) = self.aligned.lock() {
            *aligned = Some((new_offset, i128::from(new_offset) - i128::from(parent_offset)));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use lifeboat_core::Digest;

    use super::*;

    fn location(plain: u32, head: u64, tail: u64, base: Option<ChunkId>) -> BlobLocation {
        BlobLocation {
            pack: Digest([0; 32]),
            offset: 0,
            length: plain / 10,
            plain,
            pack_size: 0,
            base,
            head: Some(head),
            tail: Some(tail),
        }
    }

    /// Five parent chunks of 100 bytes, heads 10.., tails 20..; the fourth a delta of the first.
    fn parent() -> (Vec<ChunkId>, ChunkIndex) {
        let ids: Vec<ChunkId> = (0..5u8).map(|i| Digest([i; 32])).collect();
        let mut known = ChunkIndex::new();
        for (i, id) in ids.iter().enumerate() {
            let base = (i == 3).then_some(ids[0]);
            known.insert(*id, location(100, 10 + i as u64, 20 + i as u64, base));
        }
        (ids, known)
    }

    #[test]
    fn finds_by_head_then_tail_then_position_near_an_alignment() {
        let (ids, known) = parent();
        let finder = BaseFinder::new(&ids, &known, 100);
        assert_eq!(finder.base_for(12, 0, 500, 100).unwrap().0, ids[2], "by head");
        // That put the new stream 300 bytes ahead of the parent: 507 is the parent's 207.
        assert_eq!(finder.base_for(3, 3, 507, 100).unwrap().0, ids[2], "by position");
        assert_eq!(finder.base_for(0, 24, 390, 100).unwrap().0, ids[4], "by tail");
        assert_eq!(finder.base_for(13, 0, 900, 100).unwrap().0, ids[0], "a delta's base");
        // The last alignment says the new stream runs 10 bytes behind the parent: offset 150
        // is the parent's 160, in its second chunk.
        finder.seen(&ids[1], 90);
        assert_eq!(finder.base_for(1, 1, 150, 100).unwrap().0, ids[1]);
        assert!(finder.base_for(1, 1, 90 + 401, 100).is_none(), "too far from any alignment");
        assert!(finder.base_for(1, 1, 80, 100).is_some());
    }

    #[test]
    fn a_delta_without_its_own_head_or_tail_is_found_by_its_bases() {
        let (ids, mut known) = parent();
        if let Some(delta) = known.get_mut(&ids[3]) {
            (delta.head, delta.tail) = (None, None);
        }
        // The base, ids[0], has head 10 and tail 20; the delta's bases stand for it.
        let finder = BaseFinder::new(&ids[1..], &known, 100);
        assert_eq!(finder.base_for(10, 0, 0, 100).unwrap().0, ids[0], "head inherited");
        assert_eq!(finder.base_for(0, 20, 0, 100).unwrap().0, ids[0], "tail inherited");
        // A chunk stored whole without a head (written before heads) has none.
        if let Some(whole) = known.get_mut(&ids[1]) {
            whole.head = None;
        }
        let finder = BaseFinder::new(&ids[1..3], &known, 100);
        assert!(finder.base_for(11, 0, 0, 100).is_none());
    }

    #[test]
    fn without_a_parent_or_an_alignment_finds_nothing() {
        let (ids, known) = parent();
        assert!(BaseFinder::new(&[], &known, 100).base_for(10, 20, 0, 100).is_none());
        let finder = BaseFinder::new(&ids, &known, 100);
        assert!(finder.base_for(1, 1, 0, 100).is_none(), "no alignment yet");
        // A parent chunk missing from the index ends the parent's known positions.
        let mut partial = known.clone();
        partial.remove(&ids[2]);
        let finder = BaseFinder::new(&ids, &partial, 100);
        assert!(finder.base_for(13, 0, 0, 100).is_none());
    }
}
