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

/// Reads an LSN as PostgreSQL prints it (`0/3000060`: two hex numbers, the high and low 32
/// bits).
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.trim().split_once('/')?;
    let high = u32::from_str_radix(high, 16).ok()?;
    let low = u32::from_str_radix(low, 16).ok()?;
    Some((u64::from(high) << 32) | u64::from(low))
}

/// The timeline of a history file's name (`00000002.history` → 2).
pub fn history_timeline(name: &str) -> Option<u32> {
    let hex = name.strip_suffix(".history")?;
    (hex.len() == 8).then(|| u32::from_str_radix(hex, 16).ok()).flatten()
}

/// A history file's switch points, oldest first: each earlier timeline and the LSN where
/// it ended (`1\t0/3000000\tbefore 2026-12-04 ...`).
pub fn parse_history(text: &str) -> Vec<(u32, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let timeline = fields.next()?.parse().ok()?;
            let lsn = parse_lsn(fields.next()?)?;
            Some((timeline, lsn))
        })
        .collect()
}

/// What recovery from a base backup needs of the archive, and what of it is missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalNeeds {
    /// The timelines it follows, in order.
    pub timelines: Vec<u32>,
    /// Every segment it reads, in order: from the one holding the backup's end to the newest
    /// archived one of the last timeline.
    pub needed: Vec<String>,
    /// Those the archive lacks, with a newer one archived after them: gaps.
    pub missing: Vec<String>,
}

/// The timeline recovery from a base backup that ended at `stop_lsn` on `timeline` follows:
/// the newest one whose history passes through `timeline` at or after `stop_lsn`, else
/// `timeline` itself; given the archive's history files' switch points by timeline.
/// (PostgreSQL's `latest` takes the newest timeline of all, and refuses to start when it
/// branched before the backup ended.)
pub fn recovery_timeline(
    timeline: u32,
    stop_lsn: u64,
    histories: &std::collections::BTreeMap<u32, Vec<(u32, u64)>>,
) -> u32 {
    histories
        .iter()
        .filter(|(_, switches)| {
            switches.iter().any(|&(t, switch)| t == timeline && switch >= stop_lsn)
        })
        .map(|(&t, _)| t)
        .max()
        .unwrap_or(timeline)
}

/// The segments recovery reads from the archive after a base backup that ended at
/// `stop_lsn` on `timeline`, following the newest timeline that branched from it (as
/// `recovery_target_timeline = 'latest'` does), up to the newest archived segment; given the
/// archive's file names and its history files' switch points by timeline.
///
/// The backup's own WAL up to `stop_lsn` is in the base backup; the segment holding
/// `stop_lsn` is needed whole. On a timeline that ended at a switch point, segments before
/// the one holding it are needed; from that one on, the next timeline's.
pub fn wal_needs(
    timeline: u32,
    stop_lsn: u64,
    segment_size: u64,
    present: &std::collections::BTreeSet<String>,
    histories: &std::collections::BTreeMap<u32, Vec<(u32, u64)>>,
) -> WalNeeds {
    let size = segment_size.max(1);
    let target = recovery_timeline(timeline, stop_lsn, histories);
    // (timeline, first segment, end segment exclusive or open)
    let mut legs: Vec<(u32, u64, Option<u64>)> = Vec::new();
    let mut from = stop_lsn / size;
    match histories.get(&target).filter(|_| target != timeline).map(|h| (target, h)) {
        Some((target, switches)) => {
            let start = switches.iter().position(|&(t, _)| t == timeline).unwrap_or(0);
            for &(t, switch) in &switches[start..] {
                let end = switch / size;
                legs.push((t, from, Some(end)));
                from = end;
            }
            legs.push((target, from, None));
        }
        None => legs.push((timeline, from, None)),
    }
    let mut needs = WalNeeds::default();
    let Some(&(last_timeline, last_from, _)) = legs.last() else { return needs };
    // The open leg runs to the newest segment of its timeline that is archived.
    let newest = present
        .iter()
        .filter_map(|name| Segment::parse_sized(name, size))
        .filter(|s| s.timeline == last_timeline && s.number >= last_from)
        .map(|s| s.number)
        .max();
    for (t, first, end) in legs {
        needs.timelines.push(t);
        let end = match end {
            Some(end) => end,
            None => newest.map_or(first, |n| n + 1),
        };
        for number in first..end {
            let name = Segment { timeline: t, number }.name(size);
            if !present.contains(&name) {
                needs.missing.push(name.clone());
            }
            needs.needed.push(name);
        }
    }
    needs
}

/// The `restore_command` prefix that fetches files of a WAL archive: `EXE --repo URL
/// KEY_FLAGS… wal-fetch`, each word quoted for the shell. The server's settings append
/// `%f %p --name NAME`.
pub fn fetch_command(exe: &std::path::Path, repo_url: &str, key_flags: &[String]) -> String {
    let mut words = vec![exe.display().to_string(), "--repo".into(), repo_url.to_string()];
    words.extend(key_flags.iter().cloned());
    words.push("wal-fetch".into());
    words.iter().map(|w| crate::shell_quote(w)).collect::<Vec<_>>().join(" ")
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

    #[test]
    fn recovery_needs_follow_the_newest_timeline() {
        use std::collections::{BTreeMap, BTreeSet};
        let size = Segment::DEFAULT_SIZE;
        let name = |t: u32, n: u64| Segment { timeline: t, number: n }.name(size);
        assert_eq!(super::parse_lsn("1/2"), Some((1 << 32) | 2));
        assert_eq!(super::history_timeline("0000000A.history"), Some(10));
        let history = super::parse_history("1\t0/5000100\tbefore 2026-12-04\n");
        assert_eq!(history, [(1, 0x5000100)]);

        // Timeline 1 from segment 2 to 7; timeline 2 branched in segment 5, has 5 and 6.
        let mut present: BTreeSet<String> = (2..=7).map(|n| name(1, n)).collect();
        present.extend([name(2, 5), name(2, 6), "00000002.history".to_string()]);
        let histories = BTreeMap::from([(2, history)]);
        let needs = super::wal_needs(1, 0x2000100, size, &present, &histories);
        assert_eq!(needs.timelines, [1, 2]);
        assert_eq!(needs.needed, [name(1, 2), name(1, 3), name(1, 4), name(2, 5), name(2, 6)]);
        assert!(needs.missing.is_empty());

        // A gap on the way is named; the end of the archive is not a gap.
        present.remove(&name(1, 3));
        let needs = super::wal_needs(1, 0x2000100, size, &present, &histories);
        assert_eq!(needs.missing, [name(1, 3)]);
        // A backup that ended after the branch point stays on its own timeline.
        let needs = super::wal_needs(1, 0x6000000, size, &present, &histories);
        assert_eq!((needs.timelines, needs.needed), (vec![1], vec![name(1, 6), name(1, 7)]));
        assert_eq!(super::recovery_timeline(1, 0x6000000, &histories), 1);
        assert_eq!(super::recovery_timeline(1, 0x2000100, &histories), 2);
        // Timeline 3 branched from 2: a backup on 1 before 2's branch follows it to 3, one
        // on 2 after 3's branch stays on 2.
        let histories =
            BTreeMap::from([(2, vec![(1, 0x5000100)]), (3, vec![(1, 0x5000100), (2, 0x6800000)])]);
        assert_eq!(super::recovery_timeline(1, 0x2000100, &histories), 3);
        assert_eq!(super::recovery_timeline(2, 0x7000000, &histories), 2);
    }
}
