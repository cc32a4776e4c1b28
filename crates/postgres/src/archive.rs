//! Just enough of `pg_dump`'s custom archive format (`-Fc`) to write the table data of an
//! archive ourselves.
//!
//! Written to a pipe, a custom archive is: a header, the table of contents (every object,
//! each table's data as a `TABLE DATA` entry with its `COPY ... FROM stdin;` statement), then
//! one data block per data entry in table-of-contents order. Uncompressed (`-Z0`), a block is
//! the byte `1`, the entry's dump id, one length-prefixed piece per row as `COPY ... TO
//! STDOUT` sends it, the piece `\.\n\n\n`, and a zero length. Integers are a sign byte and
//! then `int_size` bytes, least significant first; strings are a length (-1 for none) and
//! their bytes.
//!
//! The parser reads the header and table of contents that `pg_dump` writes before any data,
//! so the data blocks can be produced by parallel `COPY`s in the same snapshot, and the
//! result is the archive `pg_dump` itself would have written: `pg_restore` reads it as is.
//! Archive versions 1.12 to 1.15 (PostgreSQL 11 to 16) are understood; anything else is
//! reported as unsupported and the caller streams `pg_dump`'s own output instead.

use std::collections::{HashMap, HashSet};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The block type of table data.
const BLOCK_DATA: u8 = 1;
/// The custom format's code in the header.
const FORMAT_CUSTOM: u8 = 1;
/// What `pg_dump` writes after the rows of each table.
pub(crate) const END_OF_COPY: &[u8] = b"\\.\n\n\n";

/// One entry of the table of contents, with the fields the data blocks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TocEntry {
    /// The entry's dump id (what a data block names).
    pub dump_id: i64,
    /// Whether the archive holds a data block for it.
    pub has_data: bool,
    /// `TABLE DATA`, `TABLE`, `INDEX`, ...
    pub desc: String,
    /// The object's name (the table's, for table data).
    pub tag: String,
    /// Its schema.
    pub namespace: String,
    /// For table data: `COPY schema.table (columns) FROM stdin;\n`.
    pub copy_stmt: Option<String>,
    /// The dump ids of the entries it depends on.
    pub deps: Vec<i64>,
}

/// The header and table of contents of an archive.
#[derive(Debug, Clone)]
pub(crate) struct ArchiveHead {
    /// Size of an integer in the archive.
    pub int_size: usize,
    /// Every entry, in archive order.
    pub entries: Vec<TocEntry>,
    /// How many bytes the header and table of contents take.
    pub len: usize,
}

/// The outcome of reading the start of an archive.
#[derive(Debug)]
pub(crate) enum Head {
    /// Header and table of contents are complete in the bytes given.
    Complete(ArchiveHead),
    /// More bytes are needed.
    Incomplete,
    /// Not an archive this module can extend (with the reason); use `pg_dump`'s own output.
    Unsupported(String),
}

/// Reads the header and table of contents at the start of `buf`.
pub(crate) fn parse_head(buf: &[u8]) -> Head {
    let mut r = Reader { buf, pos: 0, int_size: 4 };
    match r.head() {
        Ok(head) => Head::Complete(head),
        Err(Stop::More) => Head::Incomplete,
        Err(Stop::Unsupported(why)) => Head::Unsupported(why),
    }
}

enum Stop {
    More,
    Unsupported(String),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    int_size: usize,
}

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Result<&[u8], Stop> {
        let end = self.pos.checked_add(n).ok_or(Stop::More)?;
        let slice = self.buf.get(self.pos..end).ok_or(Stop::More)?;
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, Stop> {
        Ok(self.bytes(1)?[0])
    }

    fn int(&mut self) -> Result<i64, Stop> {
        let negative = self.byte()? != 0;
        let mut value: i64 = 0;
        for (i, b) in self.bytes(self.int_size)?.iter().enumerate() {
            value |= i64::from(*b) << (8 * i);
        }
        Ok(if negative { -value } else { value })
    }

    fn string(&mut self) -> Result<Option<String>, Stop> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| unsupported("a string length out of range"))?;
        if len > 1 << 30 {
            return Err(unsupported("a string longer than 1 GiB"));
        }
        Ok(Some(String::from_utf8_lossy(self.bytes(len)?).into_owned()))
    }

    fn head(&mut self) -> Result<ArchiveHead, Stop> {
        if self.bytes(5)? != b"PGDMP" {
            return Err(unsupported("not a pg_dump archive"));
        }
        let (major, minor, _rev) = (self.byte()?, self.byte()?, self.byte()?);
        if major != 1 || !(12..=15).contains(&minor) {
            return Err(unsupported(&format!("archive version {major}.{minor}")));
        }
        self.int_size = usize::from(self.byte()?);
        let off_size = usize::from(self.byte()?);
        if !(1..=8).contains(&self.int_size) || !(1..=8).contains(&off_size) {
            return Err(unsupported("unusual integer sizes"));
        }
        if self.byte()? != FORMAT_CUSTOM {
            return Err(unsupported("not the custom format"));
        }
        let compressed = if minor >= 15 { i64::from(self.byte()?) } else { self.int()? };
        if compressed != 0 {
            return Err(unsupported("a compressed archive"));
        }
        for _ in 0..7 {
            self.int()?; // creation time
        }
        for _ in 0..3 {
            self.string()?; // database, server version, pg_dump version
        }
        let count = self.int()?;
        let mut entries = Vec::new();
        for _ in 0..count {
            let dump_id = self.int()?;
            let has_data = self.int()? != 0;
            self.string()?; // table oid
            self.string()?; // oid
            let tag = self.string()?.unwrap_or_default();
            let desc = self.string()?.unwrap_or_default();
            self.int()?; // section
            self.string()?; // definition
            self.string()?; // drop statement
            let copy_stmt = self.string()?;
            let namespace = self.string()?.unwrap_or_default();
            self.string()?; // tablespace
            if minor >= 14 {
                self.string()?; // table access method
            }
            self.string()?; // owner
            self.string()?; // "with oids"
            let mut deps = Vec::new();
            while let Some(dep) = self.string()? {
                deps.extend(dep.trim().parse::<i64>().ok());
            }
            self.byte()?; // data offset: state, then the offset
            self.bytes(off_size)?;
            entries.push(TocEntry { dump_id, has_data, desc, tag, namespace, copy_stmt, deps });
        }
        Ok(ArchiveHead { int_size: self.int_size, entries, len: self.pos })
    }
}

/// The largest table of contents read before giving up on it.
pub(crate) const MAX_HEAD: usize = 64 << 20;

/// Reads an archive from `reader` (`source` names it in reasons) until its header and
/// table of contents are complete, or it is clear they cannot be used; returns the bytes
/// read and what they are.
pub(crate) async fn read_head(
    reader: &mut (impl AsyncRead + Unpin),
    source: &str,
) -> (Vec<u8>, Head) {
    let mut consumed = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => return (consumed, Head::Unsupported(format!("reading {source}: {e}"))),
        };
        if n == 0 {
            return (consumed, Head::Unsupported(format!("{source} ended early")));
        }
        consumed.extend_from_slice(&buf[..n]);
        match parse_head(&consumed) {
            Head::Incomplete if consumed.len() < MAX_HEAD => {}
            Head::Incomplete => {
                return (consumed, Head::Unsupported("a very large table of contents".into()));
            }
            other => return (consumed, other),
        }
    }
}

/// What restoring one table of an archive takes: the table, its partitions at every level,
/// and what belongs to them (data, indexes, constraints, defaults, sequences, triggers,
/// comments, grants), as pg_restore's `-L` list.
///
/// `pg_restore -t` matches the named table's own entries only: a partitioned parent comes
/// back empty, without its partitions, and no table gets its indexes, constraints or the
/// sequences its defaults draw from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TableSelection {
    /// The dump ids to restore, in archive order.
    pub ids: Vec<i64>,
    /// `(schema, name)` of each table restored, unquoted as the archive stores them.
    pub tables: Vec<(String, String)>,
}

impl TableSelection {
    /// The `-L` list: one entry per line, its dump id first (all pg_restore reads).
    pub fn list(&self) -> String {
        self.ids.iter().map(|id| format!("{id};\n")).collect()
    }
}

/// Entries that belong to a table, or to something that belongs to one.
const BELONGING: &[&str] = &[
    "TABLE DATA",
    "INDEX",
    "INDEX ATTACH",
    "CONSTRAINT",
    "CHECK CONSTRAINT",
    "FK CONSTRAINT",
    "DEFAULT",
    "TRIGGER",
    "POLICY",
    "ROW SECURITY",
    "RULE",
    "COMMENT",
    "ACL",
    "SECURITY LABEL",
    "SEQUENCE",
    "SEQUENCE OWNED BY",
    "SEQUENCE SET",
    "STATISTICS",
    "STATISTICS DATA",
];

/// The entries restoring table `name` (in `schema`, or in any schema) takes.
pub(crate) fn select_table(
    entries: &[TocEntry],
    schema: Option<&str>,
    name: &str,
) -> TableSelection {
    let by_id: HashMap<i64, &TocEntry> = entries.iter().map(|e| (e.dump_id, e)).collect();
    let is = |id: &i64, desc: &str| by_id.get(id).is_some_and(|e| e.desc == desc);
    let mut selected: HashSet<i64> = entries
        .iter()
        .filter(|e| e.desc == "TABLE" && e.tag == name && schema.is_none_or(|s| s == e.namespace))
        .map(|e| e.dump_id)
        .collect();
    // Partitions, at every level. A `TABLE ATTACH` is named after its partition and depends
    // on it and on the parent.
    loop {
        let mut grew = false;
        for attach in entries.iter().filter(|e| e.desc == "TABLE ATTACH") {
            if selected.contains(&attach.dump_id) {
                continue;
            }
            let partition = attach.deps.iter().copied().find(|d| {
                by_id.get(d).is_some_and(|t| {
                    t.desc == "TABLE" && t.tag == attach.tag && t.namespace == attach.namespace
                })
            });
            let Some(partition) = partition else { continue };
            if attach.deps.iter().any(|d| *d != partition && is(d, "TABLE") && selected.contains(d))
            {
                selected.insert(partition);
                selected.insert(attach.dump_id);
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    let tables: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e.desc == "TABLE" && selected.contains(&e.dump_id))
        .map(|e| (e.namespace.clone(), e.tag.clone()))
        .collect();
    // The sequences the tables draw from: a serial column's sequence does not depend on its
    // table; its default (and `OWNED BY`) depend on both, and a sequence a table's own
    // definition names is one of the table's dependencies.
    let draws: Vec<i64> = entries
        .iter()
        .filter(|e| {
            (e.desc == "TABLE" && selected.contains(&e.dump_id))
                || ((e.desc == "DEFAULT" || e.desc == "SEQUENCE OWNED BY")
                    && e.deps.iter().any(|d| is(d, "TABLE") && selected.contains(d)))
        })
        .flat_map(|e| e.deps.iter().copied().filter(|d| is(d, "SEQUENCE")))
        .collect();
    selected.extend(draws);
    // Then whatever belongs to what is selected and needs nothing else the archive would
    // create (a schema is created beforehand): an index, a default, a foreign key to a
    // selected table; never a trigger whose function is not restored, nor a foreign key to
    // a table that is not.
    loop {
        let mut grew = false;
        for e in entries {
            if selected.contains(&e.dump_id) || !BELONGING.contains(&e.desc.as_str()) {
                continue;
            }
            let belongs = e.deps.iter().any(|d| selected.contains(d));
            let needs_nothing_else = e.deps.iter().all(|d| {
                selected.contains(d) || by_id.get(d).is_none_or(|dep| dep.desc == "SCHEMA")
            });
            // `OWNED BY` names the sequence's table, which only the sequence depends on.
            let owner_restored = e.desc != "SEQUENCE OWNED BY"
                || e.deps
                    .iter()
                    .filter_map(|d| by_id.get(d))
                    .flat_map(|sequence| sequence.deps.iter())
                    .filter(|d| is(d, "TABLE"))
                    .all(|d| selected.contains(d));
            if belongs && needs_nothing_else && owner_restored {
                selected.insert(e.dump_id);
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    let ids = entries.iter().map(|e| e.dump_id).filter(|id| selected.contains(id)).collect();
    TableSelection { ids, tables }
}

fn unsupported(why: &str) -> Stop {
    Stop::Unsupported(why.to_string())
}

/// Appends an archive integer.
pub(crate) fn put_int(out: &mut Vec<u8>, int_size: usize, value: i64) {
    out.push(u8::from(value < 0));
    let magnitude = value.unsigned_abs();
    for i in 0..int_size {
        out.push(magnitude.checked_shr(8 * i as u32).unwrap_or(0) as u8);
    }
}

/// The start of the data block of entry `dump_id`.
pub(crate) fn block_start(int_size: usize, dump_id: i64) -> Vec<u8> {
    let mut out = vec![BLOCK_DATA];
    put_int(&mut out, int_size, dump_id);
    out
}

/// The end of a data block: the end-of-copy piece and the zero length.
pub(crate) fn block_end(int_size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    put_int(&mut out, int_size, END_OF_COPY.len() as i64);
    out.extend_from_slice(END_OF_COPY);
    put_int(&mut out, int_size, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            Some(s) => {
                put_int(out, 4, s.len() as i64);
                out.extend_from_slice(s.as_bytes());
            }
            None => put_int(out, 4, -1),
        }
    }

    /// A small archive the way pg_dump 15 writes one to a pipe.
    fn archive(entries: &[(i64, bool, &str, &str, Option<&str>)]) -> Vec<u8> {
        let mut out = b"PGDMP".to_vec();
        out.extend_from_slice(&[1, 14, 0, 4, 8, 1]);
        put_int(&mut out, 4, 0);
        for v in [1, 2, 3, 25, 10, 126, 0] {
            put_int(&mut out, 4, v);
        }
        for s in ["db", "15.18", "15.18"] {
            string(&mut out, Some(s));
        }
        put_int(&mut out, 4, entries.len() as i64);
        for (id, data, desc, tag, copy) in entries {
            put_int(&mut out, 4, *id);
            put_int(&mut out, 4, i64::from(*data));
            for s in [Some("1259"), Some("16384"), Some(*tag), Some(*desc)] {
                string(&mut out, s);
            }
            put_int(&mut out, 4, 2);
            for s in [Some("CREATE ..."), None, *copy, Some("public"), None, Some("heap")] {
                string(&mut out, s);
            }
            for s in [Some("postgres"), Some("false"), Some("12"), None] {
                string(&mut out, s);
            }
            out.push(1);
            out.extend_from_slice(&[0; 8]);
        }
        out
    }

    #[test]
    fn reads_the_table_of_contents_and_its_length() {
        let bytes = archive(&[
            (12, false, "TABLE", "t", None),
            (3346, true, "TABLE DATA", "t", Some("COPY public.t (id, s) FROM stdin;\n")),
        ]);
        let mut with_data = bytes.clone();
        with_data.extend_from_slice(&block_start(4, 3346));
        let Head::Complete(head) = parse_head(&with_data) else {
            panic!("the archive head should parse");
        };
        assert_eq!(head.len, bytes.len());
        assert_eq!(head.entries.len(), 2);
        assert_eq!(head.entries[1].dump_id, 3346);
        assert!(head.entries[1].has_data);
        assert_eq!(head.entries[1].desc, "TABLE DATA");
        assert_eq!(head.entries[1].deps, [12]);
        assert_eq!(head.entries[1].namespace, "public");
        assert_eq!(
            head.entries[1].copy_stmt.as_deref(),
            Some("COPY public.t (id, s) FROM stdin;\n")
        );
    }

    #[test]
    fn a_cut_archive_asks_for_more_and_others_are_unsupported() {
        let bytes = archive(&[(1, false, "TABLE", "t", None)]);
        for cut in [0, 3, 20, bytes.len() - 1] {
            assert!(matches!(parse_head(&bytes[..cut]), Head::Incomplete), "cut at {cut}");
        }
        let mut newer = bytes.clone();
        newer[6] = 16;
        assert!(matches!(parse_head(&newer), Head::Unsupported(_)));
        assert!(matches!(parse_head(b"-- PostgreSQL dump"), Head::Unsupported(_)));
    }

    /// The table of contents pg_dump 15 writes for `sales.events`, partitioned by range
    /// into `events_2023` and `events_2024`, itself partitioned into two halves, with a
    /// bigserial primary key and an index on the parent; and a table `public.other`.
    fn partitioned_toc() -> Vec<TocEntry> {
        let entry = |id: i64, desc: &str, namespace: &str, tag: &str, deps: &[i64]| TocEntry {
            dump_id: id,
            has_data: desc == "TABLE DATA",
            desc: desc.into(),
            tag: tag.into(),
            namespace: namespace.into(),
            copy_stmt: None,
            deps: deps.to_vec(),
        };
        vec![
            entry(3399, "ENCODING", "", "ENCODING", &[]),
            entry(6, "SCHEMA", "", "sales", &[]),
            entry(221, "TABLE", "public", "other", &[]),
            entry(216, "TABLE", "sales", "events", &[6]),
            entry(215, "SEQUENCE", "sales", "events_id_seq", &[216, 6]),
            entry(3403, "SEQUENCE OWNED BY", "sales", "events_id_seq", &[215]),
            entry(217, "TABLE", "sales", "events_2023", &[215, 6, 216]),
            entry(218, "TABLE", "sales", "events_2024", &[215, 216, 6]),
            entry(219, "TABLE", "sales", "events_2024h1", &[215, 218, 6]),
            entry(220, "TABLE", "sales", "events_2024h2", &[215, 6, 218]),
            entry(3218, "TABLE ATTACH", "sales", "events_2023", &[217, 216]),
            entry(3219, "TABLE ATTACH", "sales", "events_2024", &[218, 216]),
            entry(3220, "TABLE ATTACH", "sales", "events_2024h1", &[219, 218]),
            entry(3221, "TABLE ATTACH", "sales", "events_2024h2", &[220, 218]),
            entry(3222, "DEFAULT", "sales", "events id", &[215, 216, 216]),
            entry(3396, "TABLE DATA", "public", "other", &[221]),
            entry(3393, "TABLE DATA", "sales", "events_2023", &[217]),
            entry(3394, "TABLE DATA", "sales", "events_2024h1", &[219]),
            entry(3395, "TABLE DATA", "sales", "events_2024h2", &[220]),
            entry(3404, "SEQUENCE SET", "sales", "events_id_seq", &[215]),
            entry(3229, "CONSTRAINT", "sales", "events events_pkey", &[216, 216]),
            entry(3232, "CONSTRAINT", "sales", "events_2023 events_2023_pkey", &[217, 3229]),
            entry(3235, "CONSTRAINT", "sales", "events_2024 events_2024_pkey", &[218, 3229]),
            entry(3238, "CONSTRAINT", "sales", "events_2024h1 events_2024h1_pkey", &[219, 3235]),
            entry(3227, "INDEX", "sales", "events_note", &[216]),
            entry(3230, "INDEX", "sales", "events_2023_note_idx", &[3227, 217]),
            entry(3242, "INDEX ATTACH", "sales", "events_2023_note_idx", &[3230, 3227, 217, 216]),
            entry(
                3247,
                "INDEX ATTACH",
                "sales",
                "events_2024h1_pkey",
                &[219, 3238, 218, 3229, 3235],
            ),
        ]
    }

    #[test]
    fn a_partitioned_table_is_selected_with_its_partitions_and_what_belongs_to_them() {
        let toc = partitioned_toc();
        let all = select_table(&toc, Some("sales"), "events");
        let names: Vec<&str> = all.tables.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            names,
            ["events", "events_2023", "events_2024", "events_2024h1", "events_2024h2"]
        );
        let everything_of_sales: Vec<i64> =
            toc.iter().filter(|e| e.namespace == "sales").map(|e| e.dump_id).collect();
        assert_eq!(all.ids, everything_of_sales);
        assert_eq!(select_table(&toc, None, "events"), all, "any schema");
        assert_eq!(all.list().lines().next(), Some("216;"));

        // A partition alone: its own partitions and what needs nothing else; never its
        // attachment to the parent, the sequence's OWNED BY the parent, constraints under
        // the parent's.
        let half = select_table(&toc, Some("sales"), "events_2024");
        assert_eq!(half.ids, [215, 218, 219, 220, 3220, 3221, 3394, 3395, 3404]);

        let plain = select_table(&toc, Some("public"), "other");
        assert_eq!(plain.ids, [221, 3396]);
        assert_eq!(plain.tables, [("public".to_string(), "other".to_string())]);
        assert!(select_table(&toc, Some("public"), "events").ids.is_empty());
    }

    #[test]
    fn blocks_are_framed_as_pg_dump_frames_them() {
        assert_eq!(block_start(4, 0x0d12), [1, 0, 0x12, 0x0d, 0, 0]);
        assert_eq!(block_end(4), [0, 5, 0, 0, 0, b'\\', b'.', b'\n', b'\n', b'\n', 0, 0, 0, 0, 0]);
        let mut negative = Vec::new();
        put_int(&mut negative, 4, -1);
        assert_eq!(negative, [1, 1, 0, 0, 0]);
    }
}
