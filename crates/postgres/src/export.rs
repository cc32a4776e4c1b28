//! Exports of PostgreSQL snapshots as a SQL script `psql` loads as it is: the snapshot's
//! archive turned into text by `pg_restore` of the source server's major version, the whole
//! database or one table (with its partitions, indexes and constraints).
//!
//! The script goes to a temporary file first and reaches its place (or standard output) only
//! once the whole stream was read and checked and `pg_restore` succeeded: a damaged snapshot
//! never leaves a plausible half script behind.

use lifeboat_core::{
    Error, ExportFormat, ExportReport, ExportRequest, ExportTo, Kind, Progress, Result, Snapshot,
    TableExport,
};
use tokio::process::Command;

use crate::archive::{Head, read_head, select_table};
use crate::backup::PostgresMetadata;
use crate::connect::server_tools;
use crate::restore::{run_pg_restore, split_qualified, write_list};

/// Exports `snapshot` as `request` says (see the module's documentation).
///
/// # Errors
/// A snapshot that is not a PostgreSQL one; `--where`, CSV or JSON lines, or more than one
/// table (not offered for PostgreSQL yet); a table the snapshot does not have; a file that
/// is already there; `pg_restore` missing or failing; a damaged snapshot.
pub async fn export(
    snapshot: &dyn Snapshot,
    request: &ExportRequest,
    progress: &dyn Progress,
) -> Result<ExportReport> {
    let manifest = snapshot.manifest();
    if manifest.kind != Kind::POSTGRES {
        return Err(Error::Unsupported { operation: "export".into(), kind: manifest.kind.clone() });
    }
    let not_yet = |what: &str, hint: &str| Error::InvalidInput {
        what: format!("{what} is not offered for PostgreSQL snapshots yet"),
        hint: hint.into(),
    };
    if let Some(predicate) = &request.predicate {
        let Some(server) = request.server.as_deref() else {
            return Err(Error::InvalidInput {
                what: "export --where of a PostgreSQL snapshot selects the rows on a server, and none was given".into(),
                hint: "give --postgres-server postgres://user@host/postgres (a scratch database is made there and dropped), or set LIFEBOAT_DRILL_POSTGRES".into(),
            });
        };
        return crate::rows::export_selection(snapshot, server, predicate, request, progress).await;
    }
    if request.tables.len() > 1 {
        return Err(not_yet("more than one --table", "export one table at a time, or all of them"));
    }
    let expected: PostgresMetadata =
        serde_json::from_value(manifest.metadata.clone()).map_err(|e| Error::Backend {
            kind: Kind::POSTGRES,
            message: format!("the manifest's PostgreSQL metadata is unreadable: {e}"),
        })?;
    let tools = server_tools(expected.server_major)?;

    // One table: what pg_restore needs for it, from the archive's table of contents.
    let listed = match request.tables.first() {
        Some(table) => {
            let mut reader = snapshot.open().await?;
            let (_, head) = read_head(&mut reader, "the snapshot").await;
            let Head::Complete(head) = head else {
                return Err(Error::Backend {
                    kind: Kind::POSTGRES,
                    message: "the snapshot's table of contents could not be read".into(),
                });
            };
            let (schema, name) = split_qualified(table);
            let listed = select_table(&head.entries, schema.as_deref(), &name);
            if listed.tables.is_empty() {
                return Err(Error::InvalidInput {
                    what: format!("--table {table}: the snapshot has no such table"),
                    hint: format!(
                        "its tables are: {}",
                        expected.tables.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
            Some(listed)
        }
        None => None,
    };
    let list_file = match &listed {
        Some(listed) => Some(write_list(listed)?),
        None => None,
    };

    let wanted: Vec<(String, u64)> = expected
        .tables
        .iter()
        .filter(|(key, _)| match &listed {
            Some(listed) => {
                let (s, n) = split_qualified(key);
                listed.tables.iter().any(|(ls, ln)| *ln == n && Some(ls) == s.as_ref())
            }
            None => true,
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let sql = request.format == ExportFormat::Sql;
    request.one_table_on_stdout(wanted.len())?;

    let (temp, final_path) = script_place(request, &expected.database)?;

    let mut command = Command::new(&tools.pg_restore);
    command.arg("--file").arg(temp.path());
    if !sql {
        command.arg("--data-only");
    }
    if let Some(list) = &list_file {
        command.arg("-L").arg(list.path());
    }
    let label = format!("export {}", manifest.name);
    run_pg_restore(&mut command, snapshot, &label, progress).await?;
    drop(list_file);

    if !sql {
        let tables = rows_from_script(temp.path(), request)?;
        return Ok(ExportReport {
            snapshot: snapshot.id(),
            format: request.format,
            predicate: None,
            tables,
        });
    }
    let file = deliver(temp, final_path)?;
    // The rows the script holds are the snapshot's, as its manifest counted them.
    let tables = wanted
        .into_iter()
        .map(|(table, rows)| TableExport { table, rows, file: file.clone() })
        .collect();
    Ok(ExportReport { snapshot: snapshot.id(), format: ExportFormat::Sql, predicate: None, tables })
}

/// Where an export's script is written first, and where it then goes: a temporary file
/// beside the `DATABASE.sql` of the request's folder (refused when that is there), or in
/// TMPDIR for standard output (`None`). CSV and JSON lines need no script: the folder is made.
pub(crate) fn script_place(
    request: &ExportRequest,
    database: &str,
) -> Result<(tempfile::NamedTempFile, Option<std::path::PathBuf>)> {
    let sql = request.format == ExportFormat::Sql;
    let (dir, final_path) = match &request.to {
        ExportTo::Folder(dir) if !sql => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the folder", dir, e))?;
            (dir.clone(), None)
        }
        ExportTo::Folder(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the folder", dir, e))?;
            let path = dir.join(lifeboat_core::export_file_name(database, "sql"));
            if path.exists() {
                return Err(Error::TargetExists { target: path.display().to_string() });
            }
            (dir.clone(), Some(path))
        }
        ExportTo::Stdout => (std::env::temp_dir(), None),
    };
    let temp = tempfile::Builder::new()
        .prefix(".lifeboat-export-")
        .suffix(".sql")
        .tempfile_in(&dir)
        .map_err(|e| Error::io("creating a temporary file in", &dir, e))?;
    Ok((temp, final_path))
}

/// Moves a finished script to `final_path` (never over a file), or copies it to standard
/// output; returns the file it went to.
pub(crate) fn deliver(
    temp: tempfile::NamedTempFile,
    final_path: Option<std::path::PathBuf>,
) -> Result<Option<String>> {
    match final_path {
        Some(path) => {
            temp.persist_noclobber(&path).map_err(|e| match e.error.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    Error::TargetExists { target: path.display().to_string() }
                }
                _ => Error::io("moving the export to", &path, e.error),
            })?;
            Ok(Some(path.display().to_string()))
        }
        None => {
            let mut from = std::fs::File::open(temp.path())
                .map_err(|e| Error::io("reading", temp.path(), e))?;
            std::io::copy(&mut from, &mut std::io::stdout().lock())
                .map_err(|e| Error::io("writing", "standard output", e))?;
            Ok(None)
        }
    }
}

/// Identifiers as a `COPY` line names them: `schema.table` or `"Odd name"`, unquoted.
fn identifiers(text: &str) -> (Vec<String>, &str) {
    let mut names = Vec::new();
    let mut rest = text.trim_start();
    loop {
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut name = String::new();
            let mut chars = quoted.char_indices().peekable();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                if c == '"' {
                    if chars.peek().map(|(_, n)| *n) == Some('"') {
                        chars.next();
                        name.push('"');
                        continue;
                    }
                    end = i + 1;
                    break;
                }
                name.push(c);
            }
            names.push(name);
            rest = &quoted[end..];
        } else {
            let end = rest.find(['.', ' ', '(', ')', ',']).unwrap_or(rest.len());
            names.push(rest[..end].to_string());
            rest = &rest[end..];
        }
        match rest.strip_prefix('.') {
            Some(more) => rest = more,
            None => return (names, rest),
        }
    }
}

/// `COPY schema.table (a, b) FROM stdin;`: the table as `schema.table` and its columns.
fn copy_header(line: &str) -> Option<(String, Vec<String>)> {
    let rest = line.strip_prefix("COPY ")?.strip_suffix(" FROM stdin;")?;
    let (table, mut rest) = identifiers(rest);
    let mut columns = Vec::new();
    rest = rest.trim_start();
    if let Some(list) = rest.strip_prefix('(') {
        let mut list = list;
        loop {
            let (mut name, after) = identifiers(list);
            columns.push(name.pop().unwrap_or_default());
            let after = after.trim_start();
            match after.strip_prefix(',') {
                Some(more) => list = more,
                None => break,
            }
        }
    }
    Some((table.join("."), columns))
}

/// The fields of one row of `COPY` text: `None` for NULL (`\N`), escapes undone.
fn copy_fields(line: &[u8]) -> Vec<Option<Vec<u8>>> {
    line.split(|b| *b == b'\t')
        .map(|field| {
            if field == b"\\N" {
                return None;
            }
            let mut out = Vec::with_capacity(field.len());
            let mut i = 0;
            while i < field.len() {
                let b = field[i];
                i += 1;
                if b != b'\\' || i == field.len() {
                    out.push(b);
                    continue;
                }
                let e = field[i];
                i += 1;
                match e {
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(11),
                    b'0'..=b'7' => {
                        let mut v = u32::from(e - b'0');
                        for _ in 0..2 {
                            match field.get(i) {
                                Some(d @ b'0'..=b'7') => {
                                    v = v * 8 + u32::from(d - b'0');
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        out.push(v as u8);
                    }
                    b'x' => {
                        let mut v = 0u32;
                        let mut digits = 0;
                        while digits < 2 {
                            match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                                Some(d) => {
                                    v = v * 16 + d;
                                    i += 1;
                                    digits += 1;
                                }
                                None => break,
                            }
                        }
                        if digits == 0 {
                            out.push(b'x');
                        } else {
                            out.push(v as u8);
                        }
                    }
                    other => out.push(other),
                }
            }
            Some(out)
        })
        .collect()
}

/// One table's rows being written as CSV or JSON lines: to its own file in the request's
/// folder (never over one), or to standard output.
pub(crate) struct RowsOut {
    export: TableExport,
    columns: Vec<String>,
    format: ExportFormat,
    out: Box<dyn std::io::Write + Send>,
}

impl RowsOut {
    /// Opens `table`'s output and, for CSV, writes the header of `columns`.
    pub(crate) fn open(
        table: String,
        columns: Vec<String>,
        request: &ExportRequest,
    ) -> Result<Self> {
        let (out, file) = request.to.create(&table, request.format.as_str())?;
        let file = file.map(|p| p.display().to_string());
        let mut rows = RowsOut {
            export: TableExport { table, rows: 0, file },
            columns,
            format: request.format,
            out,
        };
        if rows.format == ExportFormat::Csv {
            let header: Vec<String> =
                rows.columns.iter().map(|c| lifeboat_core::csv_field(Some(c))).collect();
            writeln!(rows.out, "{}", header.join(",")).map_err(|e| rows.failed(e))?;
        }
        Ok(rows)
    }

    fn failed(&self, e: std::io::Error) -> Error {
        Error::io(
            "writing",
            self.export.file.clone().unwrap_or_else(|| "standard output".into()),
            e,
        )
    }

    /// Writes one row of `COPY` text.
    pub(crate) fn copy_line(&mut self, line: &[u8]) -> Result<()> {
        let fields = copy_fields(line);
        if self.format == ExportFormat::Csv {
            let cells: Vec<String> = fields
                .iter()
                .map(|f| {
                    lifeboat_core::csv_field(
                        f.as_ref().map(|b| String::from_utf8_lossy(b)).as_deref(),
                    )
                })
                .collect();
            writeln!(self.out, "{}", cells.join(",")).map_err(|e| self.failed(e))?;
        } else {
            let mut object = serde_json::Map::new();
            for (column, field) in self.columns.iter().zip(&fields) {
                let value = match field {
                    Some(bytes) => String::from_utf8_lossy(bytes).into_owned().into(),
                    None => serde_json::Value::Null,
                };
                object.insert(column.clone(), value);
            }
            serde_json::to_writer(&mut *self.out, &object).map_err(|e| Error::Backend {
                kind: Kind::POSTGRES,
                message: format!("writing JSON: {e}"),
            })?;
            self.out.write_all(b"\n").map_err(|e| self.failed(e))?;
        }
        self.export.rows += 1;
        Ok(())
    }

    /// Flushes the output; what was written.
    pub(crate) fn finish(mut self) -> Result<TableExport> {
        self.out.flush().map_err(|e| self.failed(e))?;
        Ok(self.export)
    }
}

use std::io::Write as _;

/// Writes the rows of the data-only script at `script` as CSV or JSON lines, a file per
/// table in the request's folder (or the one table on standard output).
fn rows_from_script(script: &std::path::Path, request: &ExportRequest) -> Result<Vec<TableExport>> {
    use std::io::BufRead;
    let read = |e| Error::io("reading", script, e);
    let input =
        std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(script).map_err(read)?);
    let mut done = Vec::new();
    let mut current: Option<RowsOut> = None;
    for line in input.split(b'\n') {
        let line = line.map_err(read)?;
        match current.as_mut() {
            None => {
                if let Some((table, columns)) =
                    std::str::from_utf8(&line).ok().and_then(copy_header)
                {
                    current = Some(RowsOut::open(table, columns, request)?);
                }
            }
            Some(_) if line == b"\\." => {
                if let Some(rows) = current.take() {
                    done.push(rows.finish()?);
                }
            }
            Some(rows) => rows.copy_line(&line)?,
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_lines_read_back_as_postgresql_wrote_them() {
        assert_eq!(
            copy_header("COPY public.\"Odd \"\"name\" (a, \"b c\") FROM stdin;"),
            Some(("public.Odd \"name".into(), vec!["a".into(), "b c".into()]))
        );
        assert_eq!(copy_header("SET x = 1;"), None);
        let fields = copy_fields(b"1\t\\N\ttwo\\nlines\tback\\\\slash\t\\101\\x42");
        assert_eq!(
            fields,
            vec![
                Some(b"1".to_vec()),
                None,
                Some(b"two\nlines".to_vec()),
                Some(b"back\\slash".to_vec()),
                Some(b"AB".to_vec()),
            ]
        );
    }
}
