//! A segment: the pages some consecutive committed transactions wrote, as the replicator read
//! them from the `-wal`, with each commit's transaction id, time and database size.
//!
//! Layout (the repository chunks, compresses, seals and hashes it like any file):
//! - 8 bytes `LBSQSEG1`;
//! - a big-endian `u32` length, then that many bytes of JSON: [`SegmentHeader`];
//! - for each commit in order, for each of its pages: a big-endian `u32` page number and
//!   the page image (`page_size` bytes).
//!
//! Its name in the archive, `L<level>-<first txid>-<last txid>-g<generation>-t<end>`
//! ([`SegmentName`]), sorts by transaction id and says which generation it continues and
//! when it ends.
//!
//! A *merged* segment (level 1 and up, made by compaction: [`Merge`]) has one commit entry
//! that stands for a span of transactions (`first` to `txid`): each page's last image in the
//! span and the database's size after it. Laid over the database as it was at any
//! transaction from `first - 1` to `txid`, it gives the database at `txid`, since every page
//! the span wrote is replaced by its last image and no other page changed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use lifeboat_core::replica::SegmentName;

use super::walfile::WalPosition;

const MAGIC: &[u8; 8] = b"LBSQSEG1";

/// One shipped transaction, or in a merged segment the net effect of a span of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedCommit {
    /// In a merged segment, the first transaction of the span it stands for.
    pub first: Option<u64>,
    /// Its transaction id (the span's last): one more than the one before, across
    /// generations.
    pub txid: u64,
    /// When the replicator saw it committed (within one poll of the commit).
    pub time: DateTime<Utc>,
    /// Pages in the database after it.
    pub db_pages: u32,
    /// The pages it wrote.
    pub pages: Vec<(u32, Vec<u8>)>,
}

impl ShippedCommit {
    /// The first transaction it stands for.
    pub fn first_txid(&self) -> u64 {
        self.first.unwrap_or(self.txid)
    }
}

/// What a segment says about itself, before its pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    /// The generation it continues: the run of segments after one base snapshot.
    pub generation: u32,
    /// 0 as shipped; 1 and up merged.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub level: u8,
    /// The database's page size.
    pub page_size: u32,
    /// Where reading the `-wal` stood after its last commit (where the next segment starts).
    pub end: Option<WalPosition>,
    /// Its commits, without their pages.
    pub commits: Vec<CommitInfo>,
}

/// One commit in a [`SegmentHeader`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    /// In a merged segment, the first transaction of the span this entry stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<u64>,
    /// Transaction id (the span's last).
    pub txid: u64,
    /// When it was seen committed.
    pub time: DateTime<Utc>,
    /// Pages in the database after it.
    pub db_pages: u32,
    /// How many pages it wrote.
    pub pages: u32,
}

/// A segment, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its header fields other than the commits.
    pub generation: u32,
    /// 0 as shipped; 1 and up merged.
    pub level: u8,
    /// The database's page size.
    pub page_size: u32,
    /// Where reading the `-wal` stood after it.
    pub end: Option<WalPosition>,
    /// Its commits with their pages.
    pub commits: Vec<ShippedCommit>,
}

impl Segment {
    /// Its name in the archive; `None` when it holds no commit.
    pub fn name(&self) -> Option<SegmentName> {
        let last = self.commits.last()?;
        Some(SegmentName {
            first: self.commits.first()?.first_txid(),
            last: last.txid,
            generation: self.generation,
            level: self.level,
            end_ms: Some(last.time.timestamp_millis()),
        })
    }

    /// The bytes stored.
    pub fn encode(&self) -> Vec<u8> {
        let header = SegmentHeader {
            generation: self.generation,
            level: self.level,
            page_size: self.page_size,
            end: self.end,
            commits: self
                .commits
                .iter()
                .map(|c| CommitInfo {
                    first: c.first,
                    txid: c.txid,
                    time: c.time,
                    db_pages: c.db_pages,
                    pages: c.pages.len() as u32,
                })
                .collect(),
        };
        // Serializing plain structs of numbers and strings cannot fail.
        let json = serde_json::to_vec(&header).unwrap_or_default();
        let pages: usize = self.commits.iter().map(|c| c.pages.len()).sum();
        let mut out = Vec::with_capacity(12 + json.len() + pages * (4 + self.page_size as usize));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(&json);
        for commit in &self.commits {
            for (page_no, page) in &commit.pages {
                out.extend_from_slice(&page_no.to_be_bytes());
                out.extend_from_slice(page);
            }
        }
        out
    }

    /// Reads what [`Segment::encode`] wrote; the error says what is wrong.
    ///
    /// # Errors
    /// A description of the first inconsistency found.
    pub fn decode(bytes: &[u8]) -> Result<Segment, String> {
        let header = Self::decode_header(bytes)?;
        let json_len = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let mut at = 12 + json_len;
        let page_size = header.page_size as usize;
        let mut commits = Vec::with_capacity(header.commits.len());
        let mut last_txid = None;
        for info in header.commits {
            let first = info.first.unwrap_or(info.txid);
            if first > info.txid {
                return Err(format!("its span {first} to {} runs backwards", info.txid));
            }
            if last_txid.is_some_and(|t: u64| first != t + 1) {
                return Err(format!("transaction {first} does not follow {last_txid:?}"));
            }
            last_txid = Some(info.txid);
            let mut pages = Vec::with_capacity(info.pages as usize);
            for _ in 0..info.pages {
                let end = at + 4 + page_size;
                let Some(record) = bytes.get(at..end) else {
                    return Err("it ends inside a page".into());
                };
                let page_no = u32::from_be_bytes([record[0], record[1], record[2], record[3]]);
                if page_no == 0 {
                    return Err("it names page 0".into());
                }
                pages.push((page_no, record[4..].to_vec()));
                at = end;
            }
            commits.push(ShippedCommit {
                first: info.first,
                txid: info.txid,
                time: info.time,
                db_pages: info.db_pages,
                pages,
            });
        }
        if at != bytes.len() {
            return Err(format!("{} bytes follow its last page", bytes.len() - at));
        }
        Ok(Segment {
            generation: header.generation,
            level: header.level,
            page_size: header.page_size,
            end: header.end,
            commits,
        })
    }

    /// Reads only the header.
    ///
    /// # Errors
    /// A description of what is wrong.
    pub fn decode_header(bytes: &[u8]) -> Result<SegmentHeader, String> {
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err("it does not start as a segment".into());
        }
        let json_len = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let json = bytes.get(12..12 + json_len).ok_or("its header is cut short")?;
        let header: SegmentHeader =
            serde_json::from_slice(json).map_err(|e| format!("its header is unreadable: {e}"))?;
        if !(512..=65536).contains(&header.page_size) || !header.page_size.is_power_of_two() {
            return Err(format!("page size {} is not one SQLite uses", header.page_size));
        }
        Ok(header)
    }
}

fn is_zero(level: &u8) -> bool {
    *level == 0
}

/// The net effect of consecutive segments, built up one segment at a time: each page's last
/// image and the database's size after the last commit. It becomes a merged segment.
#[derive(Debug, Clone)]
pub struct Merge {
    generation: u32,
    page_size: u32,
    first: u64,
    last: u64,
    started: DateTime<Utc>,
    time: DateTime<Utc>,
    db_pages: u32,
    end: Option<WalPosition>,
    pages: BTreeMap<u32, Vec<u8>>,
    segments: usize,
}

impl Merge {
    /// Starts with `segment`; `None` when it holds no commit.
    pub fn new(segment: &Segment) -> Option<Merge> {
        let head = segment.commits.first()?;
        let mut merge = Merge {
            generation: segment.generation,
            page_size: segment.page_size,
            first: head.first_txid(),
            last: head.first_txid().saturating_sub(1),
            started: head.time,
            time: head.time,
            db_pages: head.db_pages,
            end: segment.end,
            pages: BTreeMap::new(),
            segments: 0,
        };
        merge.add(segment).ok()?;
        Some(merge)
    }

    /// Adds what `segment` holds after the last transaction merged (it may overlap what is
    /// merged, as a merged segment may, but must leave no gap).
    ///
    /// # Errors
    /// A description of why it does not continue what is merged.
    pub fn add(&mut self, segment: &Segment) -> Result<(), String> {
        if segment.generation != self.generation || segment.page_size != self.page_size {
            return Err("its generation or page size differs".into());
        }
        for commit in &segment.commits {
            if commit.txid <= self.last {
                continue;
            }
            if commit.first_txid() > self.last + 1 {
                return Err(format!(
                    "transaction {} does not follow {}",
                    commit.first_txid(),
                    self.last
                ));
            }
            for (page_no, page) in &commit.pages {
                self.pages.insert(*page_no, page.clone());
            }
            self.db_pages = commit.db_pages;
            self.last = commit.txid;
            self.time = commit.time;
        }
        self.end = segment.end.or(self.end);
        self.segments += 1;
        Ok(())
    }

    /// The last transaction merged.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// How many segments went in.
    pub fn segments(&self) -> usize {
        self.segments
    }

    /// The page bytes held.
    pub fn bytes(&self) -> usize {
        self.pages.len() * self.page_size as usize
    }

    /// When the first commit merged was seen.
    pub fn started(&self) -> DateTime<Utc> {
        self.started
    }

    /// The merged segment of `level`: one entry for the whole span, the pages past the
    /// database's end at its last transaction left out.
    pub fn into_segment(self, level: u8) -> Segment {
        let db_pages = self.db_pages;
        Segment {
            generation: self.generation,
            level,
            page_size: self.page_size,
            end: self.end,
            commits: vec![ShippedCommit {
                first: Some(self.first),
                txid: self.last,
                time: self.time,
                db_pages,
                pages: self.pages.into_iter().filter(|(p, _)| *p <= db_pages).collect(),
            }],
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_reads_back_as_written_and_damage_is_named() {
        let commit = |txid, page: u8| ShippedCommit {
            first: None,
            txid,
            time: Utc::now(),
            db_pages: 3,
            pages: vec![(2, vec![page; 512]), (3, vec![page + 1; 512])],
        };
        let segment = Segment {
            generation: 7,
            level: 0,
            page_size: 512,
            end: None,
            commits: vec![commit(10, 1), commit(11, 5)],
        };
        let bytes = segment.encode();
        assert_eq!(Segment::decode(&bytes).unwrap(), segment);
        let name = segment.name().unwrap();
        assert_eq!(SegmentName::parse(&name.to_string()), Some(name));
        assert_eq!(
            name.to_string(),
            format!(
                "L0-000000000000000a-000000000000000b-g00000007-t{:x}",
                segment.commits[1].time.timestamp_millis()
            )
        );
        let old = SegmentName::parse("L0-000000000000000a-000000000000000b-g00000007").unwrap();
        assert_eq!((old.first, old.last, old.level, old.end_ms), (10, 11, 0, None));
        assert!(SegmentName::parse("L1-000000000000000a-000000000000000b-g00000007").is_none());
        assert!(Segment::decode(&bytes[..bytes.len() - 1]).unwrap_err().contains("inside a page"));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Segment::decode(&longer).unwrap_err().contains("follow"));
        assert!(SegmentName::parse("000000010000000000000003").is_none());
    }

    fn commit(txid: u64, db_pages: u32, pages: &[(u32, u8)]) -> ShippedCommit {
        ShippedCommit {
            first: None,
            txid,
            time: DateTime::from_timestamp(1_800_000_000 + txid as i64, 0).unwrap(),
            db_pages,
            pages: pages.iter().map(|(p, b)| (*p, vec![*b; 512])).collect(),
        }
    }

    fn segment(commits: Vec<ShippedCommit>) -> Segment {
        Segment { generation: 2, level: 0, page_size: 512, end: None, commits }
    }

    /// Lays commits over `pages` in order, as a restore does.
    fn replay(pages: &mut BTreeMap<u32, Vec<u8>>, commits: &[ShippedCommit]) -> u32 {
        let mut db_pages = 0;
        for c in commits {
            for (p, page) in &c.pages {
                pages.insert(*p, page.clone());
            }
            db_pages = c.db_pages;
        }
        pages.retain(|p, _| *p <= db_pages);
        db_pages
    }

    #[test]
    fn a_merged_segment_is_the_net_effect_of_its_span_from_any_point_inside_it() {
        let a = segment(vec![commit(5, 4, &[(1, 1), (4, 1)]), commit(6, 4, &[(2, 2)])]);
        let b = segment(vec![commit(7, 3, &[(1, 3)]), commit(8, 5, &[(5, 4), (4, 4)])]);
        let c = segment(vec![commit(9, 5, &[(2, 5)])]);
        let mut merge = Merge::new(&a).unwrap();
        merge.add(&b).unwrap();
        // Overlapping what is merged is fine; a gap is not.
        merge.add(&b).unwrap();
        merge.add(&c).unwrap();
        assert!(
            merge.clone().add(&segment(vec![commit(11, 5, &[])])).unwrap_err().contains("follow")
        );
        assert_eq!((merge.last(), merge.segments()), (9, 4));
        let merged = merge.into_segment(1);
        let bytes = merged.encode();
        let decoded = Segment::decode(&bytes).unwrap();
        assert_eq!(decoded, merged);
        let name = decoded.name().unwrap();
        assert_eq!((name.first, name.last, name.level), (5, 9, 1));
        assert_eq!(SegmentName::parse(&name.to_string()), Some(name));
        assert_eq!(name.end_time(), Some(c.commits[0].time));
        let all: Vec<ShippedCommit> = [&a, &b, &c].iter().flat_map(|s| s.commits.clone()).collect();
        // From the state at each transaction inside the span, the merged entry gives the
        // same database as replaying the rest.
        for start in 0..all.len() {
            let mut base = BTreeMap::from([(3, vec![9u8; 512])]);
            replay(&mut base, &all[..start]);
            let mut expected = base.clone();
            let expected_pages = replay(&mut expected, &all[start..]);
            let mut got = base;
            let got_pages = replay(&mut got, &decoded.commits);
            assert_eq!((got, got_pages), (expected, expected_pages), "from transaction {start}");
        }
    }
}
