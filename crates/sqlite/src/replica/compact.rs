//! Compaction: merging a replica's segments into levels, so that a restore reads a bounded
//! number of objects whatever the commit rate, and dropping what a merged segment replaced
//! once its points are no longer kept.
//!
//! - Level 1: the replicator merges what it ships over each `spans[0]` (a minute) in memory
//!   ([`Merge`]) and stores it beside the shipped segments, when it replaces at least
//!   [`LEVEL1_MIN_SEGMENTS`] of them.
//! - Level 2: level-1 (and lone shipped) segments older than `keep_level1` are read back
//!   and merged per `spans[1]` (an hour), in the background.
//! - A shipped segment is dropped once a merged segment that covers it ends more than
//!   `keep_commits` ago; a level-1 segment once a level-2 one that covers it ends more than
//!   `keep_level1` ago. A merged segment only ever replaces segments that are stored and
//!   listed before it, and nothing is dropped in the pass that stores its replacement.
//!
//! A merged segment is a copy of the pages it holds: until `prune` removes the data of the
//! segments it replaced (dropping an entry frees nothing by itself), both are stored.
//!
//! So with the defaults every commit of the last hour is a restore point, every minute of
//! the last day, every hour before that; a restore reads at most about 60 shipped segments,
//! 1,440 level-1 segments and one level-2 segment per hour since its base.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lifeboat_core::replica::{Compaction, ReplicaStore, SegmentName};
use lifeboat_core::{Error, Result};

use super::segment::{Merge, Segment};

/// Level-1 merges are stored early when they hold this many page bytes.
pub(crate) const LEVEL1_BYTES: usize = 64 << 20;
/// A level-1 merge of fewer shipped segments is not stored: it would save a restore at most
/// three objects and cost a copy of their pages until prune removes the data of the
/// segments it replaces (an hourly burst of writes ships one or two segments).
pub(crate) const LEVEL1_MIN_SEGMENTS: usize = 4;
/// Level-2 merges stop taking segments past this many page bytes.
const LEVEL2_BYTES: usize = 256 << 20;
/// Segments fetched at once while a level-2 merge is built.
const FETCH_AHEAD: usize = 8;

/// What one pass over a replica's listing decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Tidy {
    /// Segments replaced by a merged segment whose points are no longer kept.
    pub drop: Vec<SegmentName>,
    /// Runs of consecutive segments to merge into one level-2 segment (one per generation).
    pub level2: Vec<Vec<SegmentName>>,
}

fn older_than(name: &SegmentName, now: DateTime<Utc>, age: Duration) -> bool {
    let age = chrono::TimeDelta::from_std(age).unwrap_or(chrono::TimeDelta::MAX);
    name.end_time().is_some_and(|end| now.signed_duration_since(end) > age)
}

/// Decides, from a listing alone, what to drop and what to merge into level 2.
pub(crate) fn plan(names: &[SegmentName], now: DateTime<Utc>, rules: &Compaction) -> Tidy {
    let mut tidy = Tidy::default();
    let mut generations: BTreeMap<u32, Vec<SegmentName>> = BTreeMap::new();
    for name in names {
        generations.entry(name.generation).or_default().push(*name);
    }
    for segments in generations.values() {
        let covered_by = |n: &SegmentName, level: u8, age: Duration| {
            segments.iter().any(|m| {
                m.level >= level
                    && m.first <= n.first
                    && n.last <= m.last
                    && m != n
                    && older_than(m, now, age)
            })
        };
        for n in segments {
            let replaced = match n.level {
                0 => covered_by(n, 1, rules.keep_commits),
                1 => covered_by(n, 2, rules.keep_level1),
                _ => false,
            };
            if replaced {
                tidy.drop.push(*n);
            }
        }
        if let Some(chain) = level2_chain(segments, now, rules) {
            tidy.level2.push(chain);
        }
    }
    tidy
}

/// The next run of segments below level 2, after the newest level-2 segment, all older
/// than `keep_level1` and together spanning `spans[1]`: complete only once the segment
/// after it would make it longer than that.
fn level2_chain(
    segments: &[SegmentName],
    now: DateTime<Utc>,
    rules: &Compaction,
) -> Option<Vec<SegmentName>> {
    let below: Vec<&SegmentName> = segments.iter().filter(|n| n.level < 2).collect();
    let mut cursor = segments
        .iter()
        .filter(|n| n.level >= 2)
        .map(|n| n.last)
        .max()
        .or_else(|| below.iter().map(|n| n.first).min().map(|f| f.saturating_sub(1)))?;
    let span = chrono::TimeDelta::from_std(rules.spans[1]).unwrap_or(chrono::TimeDelta::MAX);
    let mut chain: Vec<SegmentName> = Vec::new();
    loop {
        let next = below
            .iter()
            .filter(|n| n.holds(cursor + 1))
            .max_by_key(|n| (n.last, n.level))
            .copied()?;
        if !older_than(next, now, rules.keep_level1) {
            return None;
        }
        if let (Some(start), Some(end)) =
            (chain.first().and_then(|c| c.end_time()), next.end_time())
            && end.signed_duration_since(start) > span
        {
            return (chain.len() > 1).then_some(chain);
        }
        chain.push(*next);
        cursor = next.last;
    }
}

/// Reads `chain` back and stores its net effect as one segment of `level`: `None` when
/// fewer than two segments went in (nothing would be gained).
///
/// # Errors
/// Store errors; a damaged segment, or one that does not continue the chain.
pub(crate) async fn merge_stored(
    store: &dyn ReplicaStore,
    name: &str,
    chain: Vec<SegmentName>,
    level: u8,
) -> Result<Option<SegmentName>> {
    let fetches = futures::stream::iter(chain.into_iter().map(|n| async move {
        let file = n.to_string();
        let bytes = store.fetch_segment(name, &file).await;
        (file, bytes)
    }))
    .buffered(FETCH_AHEAD);
    futures::pin_mut!(fetches);
    let mut merge: Option<Merge> = None;
    while let Some((file, bytes)) = fetches.next().await {
        let corrupt = |actual: String| Error::Corrupt {
            object: format!("segment {file} of replica {name:?}"),
            expected: "a segment that continues the ones before it".into(),
            actual,
        };
        let segment = Segment::decode(&bytes?).map_err(corrupt)?;
        match merge.as_mut() {
            None => merge = Merge::new(&segment),
            Some(m) => m.add(&segment).map_err(corrupt)?,
        }
        if merge.as_ref().is_some_and(|m| m.bytes() >= LEVEL2_BYTES) {
            break;
        }
    }
    match merge {
        Some(m) if m.segments() > 1 => store_merged(store, name, m, level).await.map(Some),
        _ => Ok(None),
    }
}

/// Stores `merge` as a segment of `level`; returns its name.
///
/// # Errors
/// Store errors.
pub(crate) async fn store_merged(
    store: &dyn ReplicaStore,
    name: &str,
    merge: Merge,
    level: u8,
) -> Result<SegmentName> {
    let segment = merge.into_segment(level);
    let Some(segment_name) = segment.name() else {
        return Err(Error::InvalidInput {
            what: "an empty merge cannot be stored".into(),
            hint: "this is a bug in lifeboat".into(),
        });
    };
    store.push_segment(name, &segment_name.to_string(), segment.encode()).await?;
    Ok(segment_name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap()
    }

    fn seg(level: u8, first: u64, last: u64, minute: i64) -> SegmentName {
        SegmentName {
            first,
            last,
            generation: 1,
            level,
            end_ms: Some(at(minute).timestamp_millis()),
        }
    }

    fn rules() -> Compaction {
        Compaction {
            spans: [Duration::from_secs(60), Duration::from_secs(600)],
            keep_commits: Duration::from_secs(300),
            keep_level1: Duration::from_secs(1200),
        }
    }

    #[test]
    fn shipped_segments_go_once_a_merge_covers_them_and_their_points_are_no_longer_kept() {
        // Shipped 1..=10 over minutes 0..10, level 1 over minutes 0-4 and 5-9.
        let mut names: Vec<SegmentName> =
            (0..10).map(|i| seg(0, i * 10 + 1, i * 10 + 10, i as i64)).collect();
        names.push(seg(1, 1, 50, 4));
        names.push(seg(1, 51, 100, 9));
        // At minute 12: level 1 ending at 4 is 8 minutes old (> 5): its shipped go.
        let tidy = plan(&names, at(12), &rules());
        assert_eq!(tidy.drop, names[..5].to_vec());
        assert!(tidy.level2.is_empty(), "nothing is older than 20 minutes yet");
        // At minute 40 everything is old: all shipped go, and one level-2 chain forms of at
        // most 10 minutes (minutes 4 and 9: the chain of both level-1 segments would need
        // the one after it to be complete, and there is none yet).
        let tidy = plan(&names, at(40), &rules());
        assert_eq!(tidy.drop.len(), 10);
        assert!(tidy.level2.is_empty(), "the run is not complete: {tidy:?}");
        names.push(seg(0, 101, 110, 30));
        let tidy = plan(&names, at(60), &rules());
        assert_eq!(tidy.level2, vec![vec![names[10], names[11]]]);
        // With the level-2 segment stored, the level-1 segments it covers go once it is
        // older than 20 minutes, and the next chain starts after it.
        names.push(seg(2, 1, 100, 9));
        let tidy = plan(&names, at(60), &rules());
        assert!(tidy.drop.contains(&names[10]) && tidy.drop.contains(&names[11]));
        assert!(!tidy.drop.contains(&names[13]), "level 2 is never dropped by compaction");
        assert!(tidy.level2.is_empty());
    }

    #[test]
    fn a_gap_or_a_recent_segment_stops_the_level2_chain() {
        let names = vec![seg(0, 1, 10, 0), seg(0, 12, 20, 1), seg(0, 21, 30, 30)];
        assert!(plan(&names, at(100), &rules()).level2.is_empty(), "gap after 10");
        let names = vec![seg(0, 1, 10, 0), seg(0, 11, 20, 1), seg(0, 21, 30, 95)];
        assert!(plan(&names, at(100), &rules()).level2.is_empty(), "the third is recent");
        let names = vec![seg(0, 1, 10, 0), seg(0, 11, 20, 1), seg(0, 21, 30, 40)];
        assert_eq!(plan(&names, at(100), &rules()).level2, vec![names[..2].to_vec()]);
    }
}
