//! Partial restores: some rows of a database snapshot, merged into the live database.
//!
//! A [`RowSelection`] names the rows (a predicate such as `tenant_id = 'X'`, optionally only
//! in some tables) and how they are written ([`MergeMode`]). Backends that hold tables
//! (SQLite, PostgreSQL) follow foreign keys from the selected rows, down to their children and
//! up to the parents they need, and report per table what they add, change and delete
//! ([`RowsReport`]).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::{Error, SnapshotId};

/// The tag on a safety snapshot that holds only the rows a partial restore could change,
/// not the whole database; its value is the condition that selected them. Restoring it with
/// that condition in `replace` mode undoes the partial restore.
pub const ROWS_TAG: &str = "rows";

/// How a partial restore writes the rows it selected into the live database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeMode {
    /// Add the selected rows that are missing; never change a row that exists.
    #[default]
    Insert,
    /// Also set the selected rows that exist to their snapshot values.
    Upsert,
    /// First delete the selection's current rows, then write the snapshot's: the selection
    /// ends exactly as it was in the snapshot.
    Replace,
}

impl MergeMode {
    /// Its name on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            MergeMode::Insert => "insert",
            MergeMode::Upsert => "upsert",
            MergeMode::Replace => "replace",
        }
    }
}

impl fmt::Display for MergeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MergeMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "insert" => Ok(MergeMode::Insert),
            "upsert" => Ok(MergeMode::Upsert),
            "replace" => Ok(MergeMode::Replace),
            other => Err(format!("unknown mode {other:?}: use insert, upsert or replace")),
        }
    }
}

/// The rows a partial restore brings back and how it writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowSelection {
    /// A boolean SQL expression over columns, `tenant_id = 'X'`. It is checked by the
    /// database's own parser against the snapshot's copy; the live database never runs it.
    pub predicate: String,
    /// Select only in these tables (rows they need along foreign keys still come along).
    /// Empty: every table that has the columns the predicate names.
    pub tables: Vec<String>,
    /// How the rows are written.
    pub mode: MergeMode,
}

impl RowSelection {
    /// The tables the selection starts from: each `--table` (resolved to its key by
    /// `key_of`), which must be one the predicate applies to, else every table in
    /// `applicable`. `name_of` gives a key's name for the refusal's hint.
    ///
    /// # Errors
    /// `key_of`'s refusal (no such table), or a `--table` the predicate does not apply to.
    pub fn seeds(
        &self,
        applicable: &std::collections::BTreeSet<String>,
        key_of: impl Fn(&str) -> Result<String, Error>,
        name_of: impl Fn(&str) -> String,
    ) -> Result<std::collections::BTreeSet<String>, Error> {
        let mut seeded = std::collections::BTreeSet::new();
        for wanted in &self.tables {
            let key = key_of(wanted)?;
            if !applicable.contains(&key) {
                let names: Vec<String> = applicable.iter().map(|k| name_of(k)).collect();
                return Err(Error::InvalidInput {
                    what: format!(
                        "--table {wanted} lacks a column --where {:?} names",
                        self.predicate
                    ),
                    hint: format!("the predicate applies to: {}", names.join(", ")),
                });
            }
            seeded.insert(key);
        }
        Ok(if seeded.is_empty() { applicable.clone() } else { seeded })
    }
}

/// What a partial restore does, or did, to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableChanges {
    /// The table.
    pub table: String,
    /// Rows written that were missing.
    pub add: u64,
    /// Rows set back to their snapshot values.
    pub change: u64,
    /// Rows of the selection that are not in the snapshot, deleted (`replace` only).
    pub delete: u64,
    /// Rows of the selection left as they are: already equal, or (under `insert`) present.
    pub keep: u64,
    /// Rows of the snapshot's selection not brought back because a row outside the
    /// selection now holds their key (another tenant's, say); `replace` refuses instead.
    pub held_elsewhere: u64,
}

impl TableChanges {
    /// Records what happens to the selected rows that exist on both sides: `differing` from
    /// the snapshot and `equal` to it, plus `parents_there` (parents brought along that exist,
    /// never changed). `insert` keeps them all; `upsert` and `replace` change the differing.
    pub fn settle(&mut self, mode: MergeMode, differing: u64, equal: u64, parents_there: u64) {
        match mode {
            MergeMode::Insert => self.keep = differing + equal + parents_there,
            MergeMode::Upsert | MergeMode::Replace => {
                self.change = differing;
                self.keep = equal + parents_there;
            }
        }
    }

    /// Whether the table is written to at all.
    pub fn writes(&self) -> bool {
        self.add + self.change + self.delete > 0
    }
}

/// What a partial restore did (or, on a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct RowsReport {
    /// The live database written into.
    pub target: String,
    /// The snapshot the rows come from.
    pub snapshot: SnapshotId,
    /// The safety snapshot taken of the target before writing; none on a dry run.
    pub safety_snapshot: Option<SnapshotId>,
    /// Whether the safety snapshot holds only the selection's rows as they were (tagged
    /// [`ROWS_TAG`]): nothing else could change, no trigger or cascading update reaching
    /// further. Otherwise it holds the whole database.
    pub safety_rows_only: bool,
    /// The predicate.
    pub predicate: String,
    /// How the rows were written.
    pub mode: MergeMode,
    /// Whether this only counted.
    pub dry_run: bool,
    /// Per table with selected rows, in name order.
    pub tables: Vec<TableChanges>,
}

impl RowsReport {
    /// The sums over all tables.
    pub fn total(&self) -> TableChanges {
        self.tables.iter().fold(
            TableChanges { table: "total".into(), ..Default::default() },
            |t, c| TableChanges {
                add: t.add + c.add,
                change: t.change + c.change,
                delete: t.delete + c.delete,
                keep: t.keep + c.keep,
                held_elsewhere: t.held_elsewhere + c.held_elsewhere,
                ..t
            },
        )
    }
}

/// The format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// SQL statements the database's own shell loads as they are (`sqlite3 new.db < x.sql`).
    Sql,
    /// One CSV file per table, with a header row.
    Csv,
    /// One file per table, one JSON object per row.
    Jsonl,
}

impl ExportFormat {
    /// Its name on the command line, and the extension of its files.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Sql => "sql",
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
        }
    }
}

impl FromStr for ExportFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sql" => Ok(ExportFormat::Sql),
            "csv" => Ok(ExportFormat::Csv),
            "jsonl" => Ok(ExportFormat::Jsonl),
            other => Err(format!("unknown format {other:?}: use sql, csv or jsonl")),
        }
    }
}

/// Where an export goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportTo {
    /// Standard output: the SQL dump, or the one table of a CSV or JSONL export.
    Stdout,
    /// A folder (created when missing): `NAME.sql`, or `TABLE.csv` / `TABLE.jsonl` per table.
    /// Files already there are not overwritten.
    Folder(std::path::PathBuf),
}

impl ExportRequest {
    /// Refuses CSV or JSON lines of `tables` tables (other than one) on standard output.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] saying to give a folder.
    pub fn one_table_on_stdout(&self, tables: usize) -> Result<(), Error> {
        if self.format == ExportFormat::Sql || self.to != ExportTo::Stdout || tables == 1 {
            return Ok(());
        }
        Err(Error::InvalidInput {
            what: format!(
                "{} of {tables} tables cannot share standard output",
                self.format.as_str()
            ),
            hint: "give --out DIR for one file per table, or --table for one table".into(),
        })
    }
}

impl ExportTo {
    /// Where the rows named `name` go, as `NAME.EXTENSION` ([`export_file_name`]) in the
    /// folder, never over a file that is there; or standard output. The path when a file.
    ///
    /// # Errors
    /// [`Error::TargetExists`] when the file is there; [`Error::Io`] when it cannot be made.
    pub fn create(
        &self,
        name: &str,
        extension: &str,
    ) -> Result<(Box<dyn std::io::Write + Send>, Option<std::path::PathBuf>), Error> {
        match self {
            ExportTo::Stdout => Ok((Box::new(std::io::BufWriter::new(std::io::stdout())), None)),
            ExportTo::Folder(dir) => {
                let path = dir.join(export_file_name(name, extension));
                let file =
                    std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(
                        |e| match e.kind() {
                            std::io::ErrorKind::AlreadyExists => {
                                Error::TargetExists { target: path.display().to_string() }
                            }
                            _ => Error::io("creating", &path, e),
                        },
                    )?;
                Ok((Box::new(std::io::BufWriter::with_capacity(1 << 20, file)), Some(path)))
            }
        }
    }
}

/// The file name exports give `name` (a table, a database): `/` and NUL made `_`, a leading
/// `.` too (no hidden files, no `..`), then `.EXTENSION`.
///
/// ```
/// assert_eq!(lifeboat_core::export_file_name("public.orders", "csv"), "public.orders.csv");
/// assert_eq!(lifeboat_core::export_file_name("../x/y", "sql"), "_._x_y.sql");
/// ```
pub fn export_file_name(name: &str, extension: &str) -> String {
    let mut name: String =
        name.chars().map(|c| if c == '/' || c == '\0' { '_' } else { c }).collect();
    if name.starts_with('.') {
        name.replace_range(..1, "_");
    }
    format!("{name}.{extension}")
}

/// What to export from a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    /// Only the rows this condition selects, following foreign keys as a partial restore
    /// does; `None`: every row.
    pub predicate: Option<String>,
    /// Only these tables (with a predicate: select only in these).
    pub tables: Vec<String>,
    /// The format.
    pub format: ExportFormat,
    /// Where it goes.
    pub to: ExportTo,
    /// A database server the export may make a scratch database on and drop again, for
    /// kinds that select rows there (PostgreSQL with a predicate): `postgres://…`.
    pub server: Option<String>,
}

/// Rows exported from one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableExport {
    /// The table.
    pub table: String,
    /// Rows written.
    pub rows: u64,
    /// The file they went to; none on standard output.
    pub file: Option<String>,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// The snapshot exported.
    pub snapshot: SnapshotId,
    /// The format.
    pub format: ExportFormat,
    /// The predicate, when rows were selected.
    pub predicate: Option<String>,
    /// Per table, in the order written.
    pub tables: Vec<TableExport>,
}

/// One CSV field as exports write it (PostgreSQL's `COPY … CSV` convention): NULL is empty,
/// an empty string is `""`, and a value holding a comma, a quote or a line break is quoted
/// with its quotes doubled.
///
/// ```
/// use lifeboat_core::csv_field;
/// assert_eq!(csv_field(None), "");
/// assert_eq!(csv_field(Some("")), "\"\"");
/// assert_eq!(csv_field(Some("a,\"b\"")), "\"a,\"\"b\"\"\"");
/// assert_eq!(csv_field(Some("plain")), "plain");
/// ```
pub fn csv_field(value: Option<&str>) -> String {
    match value {
        None => String::new(),
        Some("") => "\"\"".into(),
        Some(text) if text.contains([',', '"', '\n', '\r']) => {
            format!("\"{}\"", text.replace('"', "\"\""))
        }
        Some(text) => text.to_string(),
    }
}

/// Why a `--where` predicate is refused, in the words every backend uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PredicateRefusal {
    /// The database's parser (named) refused it, for the reason given.
    Malformed {
        /// "SQLite", "PostgreSQL".
        database: &'static str,
        /// What the parser said.
        why: String,
    },
    /// It holds without naming any column: it would select every row.
    NamesNoColumn,
    /// It names no column of any table; `detail` is the parser's word on one table, `tables`
    /// the snapshot's.
    NoTableHasIt {
        /// What the parser said about one of the tables.
        detail: String,
        /// The snapshot's tables, listed.
        tables: String,
    },
}

impl PredicateRefusal {
    /// The refusal of `predicate` as an error with a hint.
    pub fn of(self, predicate: &str) -> Error {
        let example = "e.g. \"tenant_id = 'acme'\"";
        let (what, hint) = match self {
            PredicateRefusal::Malformed { database, why } => (
                format!("--where {predicate:?} is not a condition {database} accepts: {why}"),
                format!("give one boolean SQL expression over the tables' columns, {example}"),
            ),
            PredicateRefusal::NamesNoColumn => (
                format!("--where {predicate:?} names no column, so it would select every row"),
                format!("name the column that tells the rows apart, {example}"),
            ),
            PredicateRefusal::NoTableHasIt { detail, tables } => (
                format!(
                    "--where {predicate:?} names no column of any table in the snapshot ({detail})"
                ),
                format!("the snapshot's tables are: {tables}"),
            ),
        };
        Error::InvalidInput { what, hint }
    }
}

/// The predicate as a database reads it inside `WHERE (…)`: the newline ends a `--`
/// comment, so the predicate cannot hide the closing parenthesis.
pub fn predicate_in_parens(predicate: &str) -> String {
    format!("({predicate}\n)")
}

/// Whose quoting rules [`self_contained`] reads a predicate with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlDialect {
    /// `'text'`, `"name"`, `` `name` ``, `[name]`; `/* */` comments do not nest.
    Sqlite,
    /// `'text'`, `E'te\'xt'`, `$tag$text$tag$`, `"name"`; `/* */` comments nest; `[` is a
    /// subscript.
    Postgres,
}

/// Whether `predicate` is one self-contained expression at the level of its tokens: its
/// parentheses balance outside quotes and comments, never closing more than they opened
/// (`x = 1) OR (1 = 1` would otherwise widen the `WHERE (…)` it is put in), and it holds
/// no `;`. The database's own parser checks the rest.
///
/// ```
/// use lifeboat_core::{SqlDialect, self_contained};
/// assert!(self_contained("tenant_id = 'a;)' AND (x)", SqlDialect::Sqlite).is_ok());
/// assert!(self_contained("x = 1) OR (1 = 1", SqlDialect::Sqlite).is_err());
/// assert!(self_contained("note = $$it's; done)$$", SqlDialect::Postgres).is_ok());
/// assert!(self_contained("x = 1; DROP TABLE t", SqlDialect::Postgres).is_err());
/// ```
///
/// # Errors
/// Why it is not: a quote or comment never closed, a parenthesis never opened or closed,
/// a `;`.
pub fn self_contained(predicate: &str, dialect: SqlDialect) -> Result<(), String> {
    let chars: Vec<char> = predicate.chars().collect();
    let is_name = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let mut depth = 0i64;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' => {
                // PostgreSQL's E'…' takes backslash escapes.
                let escapes = dialect == SqlDialect::Postgres
                    && i > 0
                    && matches!(chars[i - 1], 'e' | 'E')
                    && (i < 2 || !is_name(chars[i - 2]));
                i = close_quote(&chars, i + 1, '\'', escapes).ok_or("a ' is never closed")?;
            }
            '"' => i = close_quote(&chars, i + 1, '"', false).ok_or("a \" is never closed")?,
            '`' if dialect == SqlDialect::Sqlite => {
                i = close_quote(&chars, i + 1, '`', false).ok_or("a ` is never closed")?
            }
            '[' if dialect == SqlDialect::Sqlite => {
                i = chars[i..]
                    .iter()
                    .position(|&x| x == ']')
                    .map(|p| i + p + 1)
                    .ok_or("a [ is never closed")?
            }
            '$' if dialect == SqlDialect::Postgres && (i == 0 || !is_name(chars[i - 1])) => {
                // $tag$ … $tag$ (the tag may be empty; $1 is a parameter, not a quote).
                let tag_end = chars[i + 1..].iter().position(|&x| !is_name(x) || x == '$');
                match tag_end.map(|p| i + 1 + p) {
                    Some(end) if chars[end] == '$' && !next.is_some_and(|n| n.is_ascii_digit()) => {
                        let tag: String = chars[i..=end].iter().collect();
                        let rest: String = chars[end + 1..].iter().collect();
                        let found =
                            rest.find(&tag).ok_or(format!("a {tag} quote is never closed"))?;
                        i = end + 1 + rest[..found].chars().count() + tag.chars().count();
                    }
                    _ => i += 1,
                }
            }
            '-' if next == Some('-') => {
                i = chars[i..].iter().position(|&x| x == '\n').map_or(chars.len(), |p| i + p + 1);
            }
            '/' if next == Some('*') => {
                let mut nested = 1;
                i += 2;
                while nested > 0 {
                    match (chars.get(i), chars.get(i + 1)) {
                        (None, _) => return Err("a /* comment is never closed".into()),
                        (Some('*'), Some('/')) => {
                            nested -= 1;
                            i += 2;
                        }
                        (Some('/'), Some('*')) if dialect == SqlDialect::Postgres => {
                            nested += 1;
                            i += 2;
                        }
                        _ => i += 1,
                    }
                }
            }
            '(' => {
                depth += 1;
                i += 1;
            }
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("it closes a parenthesis it did not open".into());
                }
                i += 1;
            }
            ';' => return Err("it holds a ; (one condition, not statements)".into()),
            _ => i += 1,
        }
    }
    if depth > 0 { Err("a parenthesis is never closed".into()) } else { Ok(()) }
}

/// The position after the quote `quote` that closes a quoted run starting at `from`; a
/// doubled quote stands for itself, and with `escapes` a backslash escapes the next
/// character. `None` when it is never closed.
fn close_quote(chars: &[char], from: usize, quote: char, escapes: bool) -> Option<usize> {
    let mut i = from;
    while i < chars.len() {
        match chars[i] {
            '\\' if escapes => i += 2,
            c if c == quote && chars.get(i + 1) == Some(&quote) => i += 2,
            c if c == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn predicates_are_scanned_with_each_dialects_quotes() {
        use SqlDialect::{Postgres, Sqlite};
        for (text, dialect, ok) in [
            ("a = 'x'", Sqlite, true),
            ("a = 'it''s)'", Sqlite, true),
            ("[odd (name] = 1", Sqlite, true),
            ("`odd)` = 1", Sqlite, true),
            ("a = 1 -- ) comment", Sqlite, true),
            ("a = 1 /* ) */", Sqlite, true),
            ("a = 'open", Sqlite, false),
            ("a = 1)", Sqlite, false),
            ("(a = 1", Sqlite, false),
            ("a = 1; b", Sqlite, false),
            ("tags[1] = 'x'", Postgres, true),
            ("a = E'it\\'s )'", Postgres, true),
            ("a = $q$ ) ; $q$", Postgres, true),
            ("a = $$x$$ AND b = $1", Postgres, true),
            ("a = 1 /* /* ) */ */", Postgres, true),
            ("a = 1 /* /* */", Postgres, false),
            ("a = $q$ never", Postgres, false),
            ("a = 'x' ) OR ( true", Postgres, false),
            ("note = 'a\\' OR true --'", Postgres, true),
        ] {
            assert_eq!(self_contained(text, dialect).is_ok(), ok, "{text:?} in {dialect:?}");
        }
    }

    use super::*;

    #[test]
    fn modes_parse_and_print_as_on_the_command_line() {
        for mode in [MergeMode::Insert, MergeMode::Upsert, MergeMode::Replace] {
            assert_eq!(mode.as_str().parse::<MergeMode>(), Ok(mode));
        }
        assert!("merge".parse::<MergeMode>().unwrap_err().contains("insert, upsert or replace"));
    }

    #[test]
    fn the_total_sums_every_table() {
        let report = RowsReport {
            target: "t".into(),
            snapshot: SnapshotId::of(b"x"),
            safety_snapshot: None,
            safety_rows_only: false,
            predicate: "p".into(),
            mode: MergeMode::Replace,
            dry_run: true,
            tables: vec![
                TableChanges {
                    table: "a".into(),
                    add: 1,
                    change: 2,
                    delete: 3,
                    keep: 4,
                    held_elsewhere: 0,
                },
                TableChanges {
                    table: "b".into(),
                    add: 10,
                    change: 20,
                    delete: 30,
                    keep: 40,
                    held_elsewhere: 5,
                },
            ],
        };
        let total = report.total();
        assert_eq!((total.add, total.change, total.delete, total.keep), (11, 22, 33, 44));
        assert_eq!(total.held_elsewhere, 5);
    }
}
