//! A segment: the pages some consecutive committed transactions wrote, as the replicator read
//! them from the `-wal`, with each commit's transaction id, time and database size.
//!
//! Layout (the repository chunks, compresses, seals and hashes it like any file):
//! - 8 bytes `LBSQSEG1`;
//! - a big-endian `u32` length, then that many bytes of JSON: [`SegmentHeader`];
//! - for each commit in order, for each of its pages: a big-endian `u32` page number and
//!   the page image (`page_size` bytes).
//!
//! Its name in the archive, `L0-<first txid>-<last txid>-g<generation>` (16 and 8 hex
//! digits), sorts by transaction id and says which generation it continues.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use lifeboat_core::replica::SegmentName;

use super::walfile::WalPosition;

const MAGIC: &[u8; 8] = b"LBSQSEG1";

/// One shipped transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedCommit {
    /// Its transaction id: one more than the one before, across generations.
    pub txid: u64,
    /// When the replicator saw it committed (within one poll of the commit).
    pub time: DateTime<Utc>,
    /// Pages in the database after it.
    pub db_pages: u32,
    /// The pages it wrote.
    pub pages: Vec<(u32, Vec<u8>)>,
}

/// What a segment says about itself, before its pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    /// The generation it continues: the run of segments after one base snapshot.
    pub generation: u32,
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
    /// Transaction id.
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
        Some(SegmentName {
            first: self.commits.first()?.txid,
            last: self.commits.last()?.txid,
            generation: self.generation,
        })
    }

    /// The bytes stored.
    pub fn encode(&self) -> Vec<u8> {
        let header = SegmentHeader {
            generation: self.generation,
            page_size: self.page_size,
            end: self.end,
            commits: self
                .commits
                .iter()
                .map(|c| CommitInfo {
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
            if last_txid.is_some_and(|t: u64| info.txid != t + 1) {
                return Err(format!("transaction {} does not follow {last_txid:?}", info.txid));
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_reads_back_as_written_and_damage_is_named() {
        let commit = |txid, page: u8| ShippedCommit {
            txid,
            time: Utc::now(),
            db_pages: 3,
            pages: vec![(2, vec![page; 512]), (3, vec![page + 1; 512])],
        };
        let segment = Segment {
            generation: 7,
            page_size: 512,
            end: None,
            commits: vec![commit(10, 1), commit(11, 5)],
        };
        let bytes = segment.encode();
        assert_eq!(Segment::decode(&bytes).unwrap(), segment);
        let name = segment.name().unwrap();
        assert_eq!(SegmentName::parse(&name.to_string()), Some(name));
        assert_eq!(name.to_string(), "L0-000000000000000a-000000000000000b-g00000007");
        assert!(Segment::decode(&bytes[..bytes.len() - 1]).unwrap_err().contains("inside a page"));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Segment::decode(&longer).unwrap_err().contains("follow"));
        assert!(SegmentName::parse("000000010000000000000003").is_none());
    }
}
