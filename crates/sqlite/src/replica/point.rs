//! Restore to a point: the nearest base snapshot of a replica at or before the point, with
//! its generation's segments applied up to the point. The result is a [`Snapshot`] whose
//! stream is the database file as it was at that commit, so the usual restore plan writes
//! it (temporary file, checks, safety snapshot with `--force`, swap).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use lifeboat_core::replica::{PointTarget, ReachedPoint, ReplicaStore, SegmentName};
use lifeboat_core::{ByteStream, Error, Manifest, Result, Snapshot, SnapshotId};
use tokio::io::AsyncReadExt;

use super::segment::Segment;
use super::{ReplicaPoint, base_point};

/// A database file as it was at one commit of a replica: a base snapshot's pages with
/// later pages laid over them.
pub struct PointSnapshot {
    base: Arc<dyn Snapshot>,
    manifest: Manifest,
    pages: Arc<BTreeMap<u32, Vec<u8>>>,
    db_pages: u32,
    page_size: u32,
}

/// Segments fetched at once while a restore applies them in order.
const SEGMENTS_AHEAD: usize = 8;

fn damaged(object: String, reason: String) -> Error {
    Error::Corrupt { object, expected: "a readable segment".into(), actual: reason }
}

/// Plans the restore of replica `name` to `target`: picks the base, reads the segments it
/// needs and lays their pages over it (in memory: only pages changed since the base).
/// Merged segments are taken wherever their end fits the target, so a restore reads few
/// objects; a segment dropped by compaction between the listing and its read makes the
/// plan start again (twice at most).
///
/// # Errors
/// No base snapshot for the name; a target before the oldest base or beyond the history;
/// a `--txid` that is no longer a point of its own (merged); a gap in the segments before
/// the target; damaged segments; store errors.
pub async fn point_in_time(
    store: &dyn ReplicaStore,
    name: &str,
    target: PointTarget,
) -> Result<(PointSnapshot, ReachedPoint)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match point_once(store, name, target).await {
            Err(Error::Missing { object }) if attempt < 3 && object.starts_with("segment ") => {
                tracing::debug!(%object, "a segment went while the restore read; planning again");
            }
            other => return other,
        }
    }
}

/// The segments a restore reads, in order, and why it stops short when it does.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    segments: Vec<SegmentName>,
    /// The target lies inside a merged segment that no shipped segment covers any more.
    merged_past: Option<SegmentName>,
}

/// From the base at transaction `from`: at each step the segment that holds the next
/// transaction and reaches furthest without passing the target (a merged segment only when
/// its end fits; a shipped one, applied commit by commit, whenever it is there).
fn plan(names: &[SegmentName], from: u64, target: PointTarget) -> Plan {
    let fits = |n: &SegmentName| match target {
        PointTarget::Latest => true,
        PointTarget::Txid(txid) => n.last <= txid,
        PointTarget::Time(time) => n.end_time().is_some_and(|end| end <= time),
    };
    let mut plan = Plan::default();
    let mut cursor = from;
    loop {
        if let PointTarget::Txid(txid) = target
            && cursor >= txid
        {
            break;
        }
        let covering = || names.iter().filter(|n| n.holds(cursor + 1));
        let merged = covering().filter(|n| n.level > 0 && fits(n)).max_by_key(|n| n.last);
        let shipped = covering().filter(|n| n.level == 0).max_by_key(|n| n.last);
        let next = match (merged, shipped) {
            (Some(m), Some(s)) if s.last > m.last => s,
            (Some(m), _) => m,
            (None, Some(s)) => s,
            (None, None) => {
                plan.merged_past = covering().max_by_key(|n| n.last).copied();
                break;
            }
        };
        plan.segments.push(*next);
        cursor = next.last;
    }
    plan
}

async fn point_once(
    store: &dyn ReplicaStore,
    name: &str,
    target: PointTarget,
) -> Result<(PointSnapshot, ReachedPoint)> {
    let bases: Vec<(ReplicaPoint, Arc<dyn Snapshot>)> = store
        .snapshots_named(name)
        .await?
        .into_iter()
        .filter_map(|s| Some((base_point(s.manifest())?, s)))
        .collect();
    if bases.is_empty() {
        return Err(Error::InvalidInput {
            what: format!("{name:?} has no replica: no base snapshot was found under that name"),
            hint: format!(
                "start one with `lifeboat replicate sqlite PATH --name {name}`; without --at or --txid, restore takes a snapshot"
            ),
        });
    }
    let fits = |p: &ReplicaPoint| match target {
        PointTarget::Latest => true,
        PointTarget::Txid(txid) => p.txid <= txid,
        PointTarget::Time(time) => p.time <= time,
    };
    let Some((point, base)) =
        bases.iter().filter(|(p, _)| fits(p)).max_by_key(|(p, _)| p.txid).cloned()
    else {
        let oldest = bases.iter().map(|(p, _)| p).min_by_key(|p| p.txid);
        return Err(Error::InvalidInput {
            what: format!(
                "the history of {name:?} starts after that point (its oldest base holds transaction {} of {})",
                oldest.map_or(0, |p| p.txid),
                oldest.map_or_else(String::new, |p| p.time.to_rfc3339())
            ),
            hint: "pick a later --at or --txid".into(),
        });
    };
    let names: Vec<SegmentName> = store
        .segment_names(name)
        .await?
        .iter()
        .filter_map(|n| SegmentName::parse(n))
        .filter(|n| n.generation == point.generation && n.last > point.txid)
        .collect();
    let plan = plan(&names, point.txid, target);
    let page_size = base_page_size(base.manifest())?;
    let mut pages: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut db_pages = u32::try_from(base_page_count(base.manifest())).unwrap_or(u32::MAX);
    let mut reached = ReachedPoint {
        name: name.into(),
        txid: point.txid,
        time: point.time,
        generation: point.generation,
        base: base.id(),
        segments: 0,
        transactions: 0,
        nearest: None,
    };
    // Segments are fetched SEGMENTS_AHEAD at a time and applied in order.
    let fetches =
        futures::stream::iter(plan.segments.iter().copied().map(|segment_name| async move {
            let file = segment_name.to_string();
            let bytes = store.fetch_segment(name, &file).await;
            (file, bytes)
        }))
        .buffered(SEGMENTS_AHEAD);
    futures::pin_mut!(fetches);
    let mut past = false;
    'segments: while let Some((file, bytes)) = fetches.next().await {
        let bytes = bytes?;
        let object = format!("segment {file} of replica {name:?}");
        let segment = Segment::decode(&bytes).map_err(|e| damaged(object.clone(), e))?;
        if segment.page_size != page_size || segment.generation != point.generation {
            return Err(damaged(object, "its page size or generation is not its base's".into()));
        }
        reached.segments += 1;
        for commit in segment.commits {
            if commit.txid <= reached.txid {
                continue;
            }
            past = match target {
                PointTarget::Latest => false,
                PointTarget::Txid(txid) => commit.txid > txid,
                PointTarget::Time(time) => commit.time > time,
            };
            if past {
                break 'segments;
            }
            if commit.first_txid() > reached.txid + 1 {
                return Err(damaged(
                    object,
                    format!("transaction {} does not follow {}", commit.first_txid(), reached.txid),
                ));
            }
            for (page_no, page) in commit.pages {
                pages.insert(page_no, page);
            }
            db_pages = commit.db_pages;
            reached.transactions += commit.txid - reached.txid;
            reached.txid = commit.txid;
            reached.time = commit.time;
        }
    }
    if !past && let Some(merged) = plan.merged_past {
        let end = merged.end_time().map(|t| format!(" of {}", t.to_rfc3339())).unwrap_or_default();
        let why = format!(
            "transactions {} to {} of {name:?} were merged into one segment (compaction; its only point is transaction {}{end})",
            merged.first, merged.last, merged.last
        );
        if let PointTarget::Txid(txid) = target {
            return Err(Error::InvalidInput {
                what: format!("transaction {txid} is no longer a point of its own: {why}"),
                hint: format!(
                    "restore to transaction {} (--txid {}) or {} instead, or give --at; every commit stays a point for `replicate --keep-commits` (1h by default)",
                    reached.txid, reached.txid, merged.last
                ),
            });
        }
        if let PointTarget::Time(_) = target {
            tracing::warn!(
                "{why}: restoring to transaction {}, the nearest point kept before",
                reached.txid
            );
            reached.nearest = Some(format!(
                "{why}; transaction {} is the nearest point kept before",
                reached.txid
            ));
        }
    }
    let newest = names.iter().map(|n| n.last).max().unwrap_or(point.txid);
    if !past && plan.merged_past.is_none() && reached.txid < newest {
        // A hole: only a target before it can be reached.
        let hole = format!(
            "the segments of {name:?} have a gap after transaction {} (the history goes on to {newest})",
            reached.txid
        );
        match target {
            PointTarget::Txid(txid) if txid > reached.txid => {
                return Err(damaged(format!("replica {name:?}"), hole));
            }
            PointTarget::Txid(_) => {}
            _ => tracing::warn!("{hole}; restoring to transaction {}", reached.txid),
        }
    }
    if let PointTarget::Txid(txid) = target
        && reached.txid != txid
    {
        return Err(Error::InvalidInput {
            what: format!(
                "replica {name:?} has no transaction {txid} (its history reaches {})",
                reached.txid
            ),
            hint: "`lifeboat snapshots --name NAME` shows the replica's newest transaction".into(),
        });
    }
    // Pages past the end of the database are dropped; pages past the base's end must all
    // be in the segments.
    pages.retain(|p, _| *p <= db_pages);
    let mut manifest = base.manifest().clone();
    if let Some(meta) = manifest.metadata.as_object_mut() {
        meta.insert("page_count".into(), db_pages.into());
        let mut at = point.clone();
        at.txid = reached.txid;
        at.time = reached.time;
        at.wal = None;
        at.applied = reached.transactions;
        meta.insert("replica".into(), serde_json::to_value(&at).unwrap_or_default());
    }
    manifest.size = u64::from(db_pages) * u64::from(page_size);
    // The database as it was then: its age is the point's.
    manifest.time = reached.time;
    let snapshot = PointSnapshot { base, manifest, pages: Arc::new(pages), db_pages, page_size };
    Ok((snapshot, reached))
}

fn base_page_size(manifest: &Manifest) -> Result<u32> {
    manifest
        .metadata
        .get("page_size")
        .and_then(|v| v.as_u64())
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| Error::InvalidInput {
            what: "the base snapshot records no page size".into(),
            hint: "it is not a SQLite replica's base".into(),
        })
}

fn base_page_count(manifest: &Manifest) -> u64 {
    manifest.metadata.get("page_count").and_then(|v| v.as_u64()).unwrap_or(0)
}

#[async_trait]
impl Snapshot for PointSnapshot {
    fn id(&self) -> SnapshotId {
        self.base.id()
    }

    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The base's stream, page by page, with the later pages laid over it and cut (or
    /// extended) to the database's size at the point. The base is read to its end even when
    /// the database shrank, so its own checks (every chunk, the whole stream's SHA-256) run.
    async fn open(&self) -> Result<ByteStream> {
        let mut base = self.base.open().await?;
        let (pages, db_pages, page_size) = (self.pages.clone(), self.db_pages, self.page_size);
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
        tokio::spawn(async move {
            let size = page_size as usize;
            let mut batch = Vec::with_capacity(1 << 20);
            let mut page = vec![0u8; size];
            let mut page_no: u32 = 0;
            let send = |batch: &mut Vec<u8>| {
                let full = std::mem::replace(batch, Vec::with_capacity(1 << 20));
                tx.send(Ok(Bytes::from(full)))
            };
            loop {
                match base.read_exact(&mut page).await {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
                page_no += 1;
                if page_no <= db_pages {
                    batch.extend_from_slice(pages.get(&page_no).map_or(&page[..], |p| &p[..]));
                }
                if batch.len() >= 1 << 20 && send(&mut batch).await.is_err() {
                    return;
                }
            }
            for n in page_no + 1..=db_pages {
                let Some(p) = pages.get(&n) else {
                    let _ = tx
                        .send(Err(std::io::Error::other(format!(
                            "page {n} is past the base's end and in no segment"
                        ))))
                        .await;
                    return;
                };
                batch.extend_from_slice(p);
                if batch.len() >= 1 << 20 && send(&mut batch).await.is_err() {
                    return;
                }
            }
            if !batch.is_empty() {
                let _ = send(&mut batch).await;
            }
        });
        Ok(lifeboat_core::producer::channel_stream(rx))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
    }

    fn seg(level: u8, first: u64, last: u64, second: i64) -> SegmentName {
        SegmentName {
            first,
            last,
            generation: 1,
            level,
            end_ms: Some(at(second).timestamp_millis()),
        }
    }

    #[test]
    fn a_plan_takes_the_furthest_segment_that_does_not_pass_the_target() {
        // Level 2 over 1-40 (ends at second 40), level 1 over 41-60 and 61-80, shipped
        // segments of 10 from 51 on (41-50 dropped).
        let mut names = vec![seg(2, 1, 40, 40), seg(1, 41, 60, 60), seg(1, 61, 80, 80)];
        names.extend((5..9).map(|i| seg(0, i * 10 + 1, i * 10 + 10, i as i64 * 10 + 10)));
        let plan_of = |target| plan(&names, 0, target);
        let latest = vec![names[0], names[1], names[2], names[6]];
        assert_eq!(plan_of(PointTarget::Latest).segments, latest);
        // A base at 45 starts inside level 1's 41-60: laid over it, that gives 60.
        assert_eq!(plan(&names, 45, PointTarget::Latest).segments, latest[1..].to_vec());
        assert_eq!(
            plan_of(PointTarget::Time(at(75))).segments,
            vec![names[0], names[1], names[4], names[5], names[6]],
            "up to 60 merged, then shipped segments applied commit by commit until past"
        );
        assert_eq!(plan_of(PointTarget::Txid(70)).segments, vec![names[0], names[1], names[4]]);
        // Inside 41-50, which only level 1 holds now: the plan stops at 40 and says why.
        let stuck = plan_of(PointTarget::Time(at(45)));
        assert_eq!((stuck.segments, stuck.merged_past), (vec![names[0]], Some(names[1])));
        let stuck = plan_of(PointTarget::Txid(45));
        assert_eq!((stuck.segments, stuck.merged_past), (vec![names[0]], Some(names[1])));
        // A gap is no merge: nothing covers the next transaction.
        let gap = plan(&[seg(0, 1, 10, 1), seg(0, 12, 20, 2)], 0, PointTarget::Latest);
        assert_eq!((gap.segments.len(), gap.merged_past), (1, None));
    }
}
