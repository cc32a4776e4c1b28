//! PostgreSQL's WAL file names, for the WAL archive's commands: which segment comes next
//! (to prefetch during recovery) and which names are segments at all.
//!
//! A segment's name is 24 hex digits: the timeline, then the segment number split in two
//! (`log`, `seg`), where one `log` holds 4 GiB of WAL, so 256 segments of the default
//! 16 MiB.
//!
//! ```
//! use lifeboat_core::wal::Segment;
//! let s = Segment::parse("0000000100000000000000FF").unwrap();
//! assert_eq!(s.next().name(Segment::DEFAULT_SIZE), "000000010000000100000000");
//! assert!(Segment::parse("00000002.history").is_none());
//! ```

/// One WAL segment: a timeline and a segment number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Segment {
    /// The timeline (1 for a cluster never recovered to a point).
    pub timeline: u32,
    /// The segment's number in the log (its start LSN divided by the segment size).
    pub number: u64,
}

impl Segment {
    /// PostgreSQL's default segment size: 16 MiB.
    pub const DEFAULT_SIZE: u64 = 16 << 20;

    /// Reads a segment file name (24 upper-case hex digits) of the default size; `None` for
    /// anything else (history files, backup-history files, partial segments).
    pub fn parse(name: &str) -> Option<Segment> {
        Self::parse_sized(name, Self::DEFAULT_SIZE)
    }

    /// As [`Segment::parse`], for segments of `size` bytes (a power of two, 1 MiB to 1 GiB).
    pub fn parse_sized(name: &str, size: u64) -> Option<Segment> {
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        let upper = name.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
        if name.len() != 24 || !upper || !size.is_power_of_two() || size < (1 << 20) {
            return None;
        }
        let per_log = (1u64 << 32) / size;
        let (timeline, log, seg) = (hex(&name[..8])?, hex(&name[8..16])?, hex(&name[16..])?);
        if u64::from(seg) >= per_log {
            return None;
        }
        Some(Segment { timeline, number: u64::from(log) * per_log + u64::from(seg) })
    }

    /// Its file name at segments of `size` bytes.
    pub fn name(&self, size: u64) -> String {
        let per_log = ((1u64 << 32) / size.max(1)).max(1);
        format!("{:08X}{:08X}{:08X}", self.timeline, self.number / per_log, self.number % per_log)
    }

    /// The segment after it on the same timeline.
    pub fn next(&self) -> Segment {
        Segment { number: self.number + 1, ..*self }
    }

    /// The names of the `count` segments after it on the same timeline, in order, at
    /// segments of `size` bytes.
    pub fn following(&self, count: usize, size: u64) -> Vec<String> {
        (1..=count as u64)
            .map(|i| Segment { number: self.number + i, ..*self }.name(size))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Segment;

    #[test]
    fn names_round_trip_and_wrap() {
        let size = Segment::DEFAULT_SIZE;
        let s = Segment::parse("000000020000000A0000003C").unwrap_or_else(|| panic!("parses"));
        assert_eq!((s.timeline, s.number), (2, 10 * 256 + 0x3C));
        assert_eq!(s.name(size), "000000020000000A0000003C");
        let last = Segment::parse("0000000100000000000000FF").unwrap_or_else(|| panic!("parses"));
        assert_eq!(
            last.following(2, size),
            ["000000010000000100000000", "000000010000000100000001"]
        );
        // 64 MiB segments: 64 per log.
        let big = Segment::parse_sized("00000001000000000000003F", 64 << 20)
            .unwrap_or_else(|| panic!("parses"));
        assert_eq!(big.next().name(64 << 20), "000000010000000100000000");
        assert!(Segment::parse_sized("000000010000000000000040", 64 << 20).is_none());
        for other in
            ["00000002.history", "000000010000000000000003.partial", "0000000100000000000000ff"]
        {
            assert!(Segment::parse(other).is_none(), "{other}");
        }
    }
}
