//! Reading a live database's `-wal` file the way SQLite's own recovery does: a header, then
//! frames whose salts match the header and whose cumulative checksums chain from it. A
//! transaction counts only once its commit frame (the one that records the database size)
//! is read and checks out, so a frame still being written, a rolled-back transaction's
//! frames or a previous generation's leftovers are never taken.
//!
//! Format (sqlite.org/fileformat2.html#walformat): a 32-byte header (magic, version, page
//! size, checkpoint sequence, salt-1, salt-2, checksum), then frames of a 24-byte header
//! (page number, database size in pages for a commit frame or 0, salt-1, salt-2, cumulative
//! checksum) and one page.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Bytes in the `-wal` header.
pub const WAL_HEADER: usize = 32;
/// Bytes in a frame's header.
pub const FRAME_HEADER: usize = 24;

const MAGIC_LE: u32 = 0x377f_0682;
const MAGIC_BE: u32 = 0x377f_0683;

/// The `-wal` header: which generation of the log the frames after it belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalHeader {
    /// Checksums use big-endian words.
    pub big_endian: bool,
    /// The database's page size.
    pub page_size: u32,
    /// How many times the log was restarted (after a complete checkpoint).
    pub checkpoint_seq: u32,
    /// Incremented at every restart.
    pub salt1: u32,
    /// New random bits at every restart.
    pub salt2: u32,
    /// The header's own checksum: the seed of the first frame's.
    pub checksum: (u32, u32),
}

impl WalHeader {
    /// Parses and checks a header; `None` when the bytes are not a valid one (an empty or
    /// truncated `-wal`, or one being rewritten).
    pub fn parse(bytes: &[u8]) -> Option<WalHeader> {
        if bytes.len() < WAL_HEADER {
            return None;
        }
        let word =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let big_endian = match word(0) {
            MAGIC_LE => false,
            MAGIC_BE => true,
            _ => return None,
        };
        let page_size = word(8);
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return None;
        }
        let checksum = (word(24), word(28));
        if checksum_of(big_endian, (0, 0), &bytes[..24]) != checksum {
            return None;
        }
        Some(WalHeader {
            big_endian,
            page_size,
            checkpoint_seq: word(12),
            salt1: word(16),
            salt2: word(20),
            checksum,
        })
    }

    /// Bytes in one frame.
    pub fn frame_size(&self) -> u64 {
        FRAME_HEADER as u64 + u64::from(self.page_size)
    }

    /// Whether `next` is what SQLite writes when a writer restarts this log once: salt-1 one
    /// higher. (The checkpoint sequence cannot tell: each connection keeps its own count and
    /// writes that; and after a truncating checkpoint by another connection, the next writer
    /// draws both salts at random.)
    pub fn restarted_once_into(&self, next: &WalHeader) -> bool {
        next.salt1 == self.salt1.wrapping_add(1) && next.page_size == self.page_size
    }
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from `seed`.
pub fn checksum_of(big_endian: bool, seed: (u32, u32), data: &[u8]) -> (u32, u32) {
    let (mut s0, mut s1) = seed;
    for pair in data.chunks_exact(8) {
        let (a, b) = if big_endian {
            (
                u32::from_be_bytes([pair[0], pair[1], pair[2], pair[3]]),
                u32::from_be_bytes([pair[4], pair[5], pair[6], pair[7]]),
            )
        } else {
            (
                u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]),
                u32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]),
            )
        };
        s0 = s0.wrapping_add(a).wrapping_add(s1);
        s1 = s1.wrapping_add(b).wrapping_add(s0);
    }
    (s0, s1)
}

/// Where reading a `-wal` stands: after frame `frame` (a commit frame, or 0 for none yet) of
/// the log generation `header` describes, with the cumulative checksum there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalPosition {
    /// The log generation.
    pub header: WalHeader,
    /// Frames read, up to and including the last commit frame.
    pub frame: u32,
    /// The cumulative checksum after that frame (the header's when `frame` is 0).
    pub checksum: (u32, u32),
}

impl WalPosition {
    /// The start of a log generation.
    pub fn start_of(header: WalHeader) -> WalPosition {
        WalPosition { header, frame: 0, checksum: header.checksum }
    }

    fn offset(&self) -> u64 {
        WAL_HEADER as u64 + u64::from(self.frame) * self.header.frame_size()
    }
}

/// One committed transaction read from the log: the pages it wrote (a page written twice
/// appears once, with its last image) and the database's size after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalCommit {
    /// `(page number, page image)`, in the order first written.
    pub pages: Vec<(u32, Vec<u8>)>,
    /// Pages in the database after the commit.
    pub db_pages: u32,
}

/// What the `-wal` holds beyond a position.
#[derive(Debug)]
pub enum WalRead {
    /// The same generation: the commits after the position (maybe none) and the new
    /// position.
    Commits(Vec<WalCommit>, WalPosition),
    /// The log was restarted or replaced: its header is now this (or none: no `-wal`, or an
    /// empty one).
    NewHeader(Option<WalHeader>),
}

/// Reads the header of the `-wal` at `path`; `None` when there is none or it is not valid.
///
/// # Errors
/// I/O errors other than a missing file.
pub fn read_header(path: &Path) -> std::io::Result<Option<WalHeader>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut head = [0u8; WAL_HEADER];
    match file.read_exact(&mut head) {
        Ok(()) => Ok(WalHeader::parse(&head)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads every transaction committed in the `-wal` at `path` after `from`.
///
/// # Errors
/// I/O errors.
pub fn read_after(path: &Path, from: &WalPosition) -> std::io::Result<WalRead> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(WalRead::NewHeader(None)),
        Err(e) => return Err(e),
    };
    let mut head = [0u8; WAL_HEADER];
    if let Err(e) = file.read_exact(&mut head) {
        return if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Ok(WalRead::NewHeader(None))
        } else {
            Err(e)
        };
    }
    let header = WalHeader::parse(&head);
    if header != Some(from.header) {
        return Ok(WalRead::NewHeader(header));
    }
    file.seek(SeekFrom::Start(from.offset()))?;
    let mut rest = Vec::new();
    file.read_to_end(&mut rest)?;
    let (commits, at) = commits_in(&rest, from);
    Ok(WalRead::Commits(commits, at))
}

/// What follows the last frame of an old generation read by [`read_old_tail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterTail {
    /// A frame that is neither the old generation's next nor the new one's: the old
    /// generation ended there.
    Ended,
    /// A frame of the new generation: the old one's frames from there on are overwritten,
    /// so where it ended cannot be told.
    Overwritten,
    /// The file ends there (a truncating checkpoint): where it ended cannot be told.
    Absent,
}

/// After the `-wal` restarted into `next`: reads the old generation's commits after `from`
/// that are still in the file (the new generation overwrites frames from the start, so the
/// old tail lasts until it grows that far), chained from `from`'s checksum as always, and
/// says what follows them.
///
/// # Errors
/// I/O errors.
pub fn read_old_tail(
    path: &Path,
    from: &WalPosition,
    next: &WalHeader,
) -> std::io::Result<(Vec<WalCommit>, WalPosition, AfterTail)> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Vec::new(), *from, AfterTail::Absent));
        }
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(from.offset()))?;
    let mut rest = Vec::new();
    file.read_to_end(&mut rest)?;
    let (commits, at) = commits_in(&rest, from);
    let skip = (at.offset() - from.offset()) as usize;
    let after = match rest.get(skip..skip + FRAME_HEADER) {
        None => AfterTail::Absent,
        Some(head) => {
            let word =
                |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
            if word(8) == next.salt1 && word(12) == next.salt2 {
                AfterTail::Overwritten
            } else {
                AfterTail::Ended
            }
        }
    };
    Ok((commits, at, after))
}

/// The commits in `frames` (the bytes after `from`), and the position after the last one.
fn commits_in(frames: &[u8], from: &WalPosition) -> (Vec<WalCommit>, WalPosition) {
    let header = &from.header;
    let size = header.frame_size() as usize;
    let mut commits = Vec::new();
    let mut at = *from;
    let mut checksum = from.checksum;
    let mut pending: Vec<(u32, Vec<u8>)> = Vec::new();
    for (frame, bytes) in (from.frame + 1..).zip(frames.chunks_exact(size)) {
        let word =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let (page_no, db_pages, salt1, salt2) = (word(0), word(4), word(8), word(12));
        if salt1 != header.salt1 || salt2 != header.salt2 || page_no == 0 {
            break;
        }
        let page = &bytes[FRAME_HEADER..];
        let sum = checksum_of(header.big_endian, checksum, &bytes[..8]);
        let sum = checksum_of(header.big_endian, sum, page);
        if sum != (word(16), word(20)) {
            break;
        }
        checksum = sum;
        match pending.iter_mut().find(|(p, _)| *p == page_no) {
            Some(slot) => slot.1 = page.to_vec(),
            None => pending.push((page_no, page.to_vec())),
        }
        if db_pages != 0 {
            commits.push(WalCommit { pages: std::mem::take(&mut pending), db_pages });
            at = WalPosition { header: *header, frame, checksum };
        }
    }
    (commits, at)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn db_with_wal() -> (tempfile::TempDir, std::path::PathBuf, rusqlite::Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x);",
        )
        .unwrap();
        (dir, path, conn)
    }

    #[test]
    fn reads_each_commit_once_and_stops_at_the_end() {
        let (_dir, path, conn) = db_with_wal();
        let wal = crate::restore::journal_path(&path, "-wal");
        let header = read_header(&wal).unwrap().unwrap();
        let start = WalPosition::start_of(header);
        let WalRead::Commits(first, at) = read_after(&wal, &start).unwrap() else { panic!() };
        assert_eq!(first.len(), 1, "CREATE TABLE is one commit");
        for i in 0..3 {
            conn.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
        let WalRead::Commits(more, end) = read_after(&wal, &at).unwrap() else { panic!() };
        assert_eq!(more.len(), 3);
        assert!(end.frame > at.frame);
        let WalRead::Commits(none, same) = read_after(&wal, &end).unwrap() else { panic!() };
        assert!(none.is_empty());
        assert_eq!(same, end);
    }

    #[test]
    fn a_torn_frame_ends_the_read_before_its_transaction() {
        let (_dir, path, conn) = db_with_wal();
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let wal = crate::restore::journal_path(&path, "-wal");
        let start = WalPosition::start_of(read_header(&wal).unwrap().unwrap());
        let WalRead::Commits(all, _) = read_after(&wal, &start).unwrap() else { panic!() };
        assert_eq!(all.len(), 2);
        // Damage the last frame's page: the last commit is no longer whole.
        let mut bytes = std::fs::read(&wal).unwrap();
        let n = bytes.len();
        bytes[n - 10] ^= 0xff;
        std::fs::write(&wal, &bytes).unwrap();
        let WalRead::Commits(kept, _) = read_after(&wal, &start).unwrap() else { panic!() };
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn a_restart_shows_as_a_new_header() {
        let (_dir, path, conn) = db_with_wal();
        let wal = crate::restore::journal_path(&path, "-wal");
        let first = read_header(&wal).unwrap().unwrap();
        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())).unwrap();
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let WalRead::NewHeader(Some(next)) =
            read_after(&wal, &WalPosition::start_of(first)).unwrap()
        else {
            panic!()
        };
        assert!(first.restarted_once_into(&next));
    }
}
