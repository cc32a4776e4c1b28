//! Exports of SQLite snapshots: a SQL dump `sqlite3` loads as it is (laid out as its `.dump`
//! is), or one CSV or JSON-lines file per table; every row, or the rows a predicate selects
//! with what they need along foreign keys (as a partial restore selects them).
//!
//! The snapshot is written to a scratch folder in `TMPDIR` first (every chunk and the whole
//! stream checked); the predicate only ever runs there.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use lifeboat_core::{
    Error, ExportFormat, ExportReport, ExportRequest, ExportTo, MergeMode, Progress, Result,
    RowSelection, Snapshot, TableExport,
};
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use crate::error::{SqliteError, backend};
use crate::inspect::{ident, open_existing};
use crate::restore::metadata_of;
use crate::rows::{
    Scratch, Table, attach, key_tuple, read_schema, select_in_snapshot, snapshot_rows, table_key,
};

/// One entry of the schema, in the order the database holds them.
struct SchemaEntry {
    kind: String,
    name: String,
    table: String,
    sql: String,
}

fn schema_entries(conn: &Connection, path: &Path) -> Result<Vec<SchemaEntry>> {
    let mut stmt = conn
        .prepare(
            "SELECT type, name, tbl_name, sql FROM main.sqlite_schema WHERE sql IS NOT NULL \
             ORDER BY rowid",
        )
        .map_err(SqliteError::sqlite("reading the schema of", path))?;
    stmt.query_map([], |r| {
        Ok(SchemaEntry { kind: r.get(0)?, name: r.get(1)?, table: r.get(2)?, sql: r.get(3)? })
    })
    .and_then(|rows| rows.collect())
    .map_err(|e| SqliteError::sqlite("reading the schema of", path)(e).into())
}

/// `value` as an SQL literal.
fn sql_literal(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) if f.is_infinite() => if f > 0.0 { "1e999" } else { "-1e999" }.into(),
        // `{:?}` keeps a fraction (`1.0`) and every digit that tells the value apart.
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) if !text.contains('\0') => format!("'{}'", text.replace('\'', "''")),
            _ => format!("CAST(X'{}' AS TEXT)", hex::encode_upper(bytes)),
        },
        ValueRef::Blob(bytes) => format!("X'{}'", hex::encode_upper(bytes)),
    }
}

/// `value` as one CSV field ([`lifeboat_core::csv_field`]), blobs in hex.
fn csv_field(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => lifeboat_core::csv_field(None),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(bytes) => lifeboat_core::csv_field(Some(&String::from_utf8_lossy(bytes))),
        ValueRef::Blob(bytes) => hex::encode(bytes),
    }
}

/// `value` as JSON: blobs as hex strings, infinities as strings.
fn json_value(value: ValueRef<'_>) -> serde_json::Value {
    match value {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => {
            serde_json::Number::from_f64(f).map_or_else(|| f.to_string().into(), Into::into)
        }
        ValueRef::Text(bytes) => String::from_utf8_lossy(bytes).into_owned().into(),
        ValueRef::Blob(bytes) => hex::encode(bytes).into(),
    }
}

fn written(path: &Option<PathBuf>) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| match path {
        Some(p) => Error::io("writing", p, e),
        None => Error::io("writing", "standard output", e),
    }
}

/// The rows of `t` to export: all, or the selected ones and the parents they need.
fn rows_query(t: &Table, selected: bool) -> String {
    let cols = t.columns.iter().map(|c| format!("t.{}", ident(c))).collect::<Vec<_>>().join(", ");
    let name = ident(&t.name);
    if selected {
        format!(
            "SELECT {cols} FROM main.{name} AS t WHERE {} IN (SELECT * FROM {})",
            key_tuple(t, "t"),
            snapshot_rows(t)
        )
    } else {
        format!("SELECT {cols} FROM main.{name} AS t")
    }
}

/// Writes each row of `query` through `write_row`; returns the count.
fn each_row(
    conn: &Connection,
    query: &str,
    path: &Path,
    mut write_row: impl FnMut(&rusqlite::Row<'_>) -> Result<()>,
) -> Result<u64> {
    let mut stmt = conn.prepare(query).map_err(SqliteError::sqlite("reading the rows of", path))?;
    let mut rows = stmt.query([]).map_err(SqliteError::sqlite("reading the rows of", path))?;
    let mut n = 0;
    while let Some(row) = rows.next().map_err(SqliteError::sqlite("reading the rows of", path))? {
        write_row(row)?;
        n += 1;
    }
    Ok(n)
}

/// Writes the SQL dump, laid out as `sqlite3`'s `.dump`: tables in the order the schema
/// holds them, each followed by its rows; a virtual table's entry written into the schema as
/// it is (its data lives in ordinary tables); AUTOINCREMENT counters; then indexes, triggers
/// and views. Returns the rows per table.
#[allow(clippy::too_many_arguments)]
fn write_dump(
    conn: &Connection,
    path: &Path,
    entries: &[SchemaEntry],
    tables: &std::collections::BTreeMap<String, Table>,
    chosen_names: &BTreeSet<String>,
    whole: bool,
    selected: bool,
    out: &mut dyn Write,
    file: &Option<PathBuf>,
) -> Result<Vec<TableExport>> {
    let fail = written(file);
    let read = |e| -> Error { SqliteError::sqlite("reading the rows of", path)(e).into() };
    let mut done = Vec::new();
    writeln!(out, "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;").map_err(&fail)?;
    let mut writable_schema = false;
    for entry in entries.iter().filter(|e| e.kind == "table") {
        let key = entry.name.to_lowercase();
        if entry.sql.trim_start().to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
            if !whole {
                continue;
            }
            if !writable_schema {
                writeln!(out, "PRAGMA writable_schema=ON;").map_err(&fail)?;
                writable_schema = true;
            }
            writeln!(
                out,
                "INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table',{},{},0,{});",
                sql_literal(ValueRef::Text(entry.name.as_bytes())),
                sql_literal(ValueRef::Text(entry.table.as_bytes())),
                sql_literal(ValueRef::Text(entry.sql.as_bytes())),
            )
            .map_err(&fail)?;
            continue;
        }
        let Some(t) = tables.get(&key).filter(|_| chosen_names.contains(&key)) else { continue };
        // Once the schema was written into, a table may be there already (a virtual
        // table's own tables).
        let create = match entry.sql.strip_prefix("CREATE TABLE ") {
            Some(rest) if writable_schema => format!("CREATE TABLE IF NOT EXISTS {rest}"),
            _ => entry.sql.clone(),
        };
        writeln!(out, "{create};").map_err(&fail)?;
        let all: i64 = conn
            .query_row("SELECT count(*) FROM pragma_table_xinfo(?1)", [&t.name], |r| r.get(0))
            .map_err(SqliteError::sqlite("reading the columns of", path))?;
        // Generated columns are computed again on load: the others are named.
        let into = if all as usize != t.columns.len() {
            let cols = t.columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(",");
            format!("INSERT INTO {}({cols}) VALUES(", ident(&t.name))
        } else {
            format!("INSERT INTO {} VALUES(", ident(&t.name))
        };
        let width = t.columns.len();
        let rows = each_row(conn, &rows_query(t, selected), path, |row| {
            let mut line = into.clone();
            for i in 0..width {
                if i > 0 {
                    line.push(',');
                }
                line.push_str(&sql_literal(row.get_ref(i).map_err(read)?));
            }
            line.push_str(");\n");
            out.write_all(line.as_bytes()).map_err(&fail)
        })?;
        done.push(TableExport {
            table: t.name.clone(),
            rows,
            file: file.as_ref().map(|f| f.display().to_string()),
        });
    }
    // AUTOINCREMENT counters.
    let has_sequence = entries.iter().any(|e| e.kind == "table" && e.name == "sqlite_sequence");
    if whole && has_sequence {
        writeln!(out, "DELETE FROM sqlite_sequence;").map_err(&fail)?;
        each_row(conn, "SELECT name, seq FROM main.sqlite_sequence", path, |row| {
            let (n, s) = (row.get_ref(0).map_err(read)?, row.get_ref(1).map_err(read)?);
            writeln!(
                out,
                "INSERT INTO sqlite_sequence VALUES({},{});",
                sql_literal(n),
                sql_literal(s)
            )
            .map_err(&fail)
        })?;
    }
    for e in entries {
        let keep = match e.kind.as_str() {
            "index" | "trigger" => chosen_names.contains(&e.table.to_lowercase()),
            "view" => whole,
            _ => false,
        };
        if keep {
            writeln!(out, "{};", e.sql).map_err(&fail)?;
        }
    }
    if writable_schema {
        writeln!(out, "PRAGMA writable_schema=OFF;").map_err(&fail)?;
    }
    writeln!(out, "COMMIT;").map_err(&fail)?;
    out.flush().map_err(&fail)?;
    Ok(done)
}

/// Exports `snapshot` as `request` says (see the module's documentation).
///
/// # Errors
/// A snapshot that is not a checked SQLite capture; a predicate refused as a partial restore
/// refuses it; a table that is not in the snapshot; CSV or JSON lines of several tables on
/// standard output; a file that is already there; and failures reading or writing.
pub async fn export(
    snapshot: &dyn Snapshot,
    request: &ExportRequest,
    progress: &dyn Progress,
) -> Result<ExportReport> {
    metadata_of(snapshot.manifest())?;
    if let ExportTo::Folder(dir) = &request.to {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the folder", dir, e))?;
    }
    let dir = tempfile::Builder::new()
        .prefix("lifeboat-export-")
        .tempdir()
        .map_err(|e| Error::io("creating a scratch folder in", std::env::temp_dir(), e))?;
    let scratch = Scratch::write(snapshot, dir, progress).await?;
    let request = request.clone();
    let name = snapshot.manifest().name.clone();
    let id = snapshot.id();
    tokio::task::spawn_blocking(move || export_scratch(&scratch, &request, &name, id))
        .await
        .map_err(|e| backend(format!("export task failed: {e}")))?
}

fn export_scratch(
    scratch: &Scratch,
    request: &ExportRequest,
    name: &str,
    snapshot: lifeboat_core::SnapshotId,
) -> Result<ExportReport> {
    let path = scratch.copy.as_path();
    let conn = open_existing(path)?;
    // With a predicate, the selection read the schema already.
    let tables = match &request.predicate {
        Some(predicate) => {
            let selection = RowSelection {
                predicate: predicate.clone(),
                tables: request.tables.clone(),
                mode: MergeMode::Insert,
            };
            let tables = select_in_snapshot(scratch, &selection)?.tables;
            attach(&conn, &scratch.sets, "sel", path)?;
            tables
        }
        None => read_schema(&conn, "main", path)?,
    };
    let selected = request.predicate.is_some();
    let entries = schema_entries(&conn, path)?;
    // Which tables: with a predicate, those with selected rows; else those named, or all.
    let wanted = request
        .tables
        .iter()
        .map(|table| table_key(&tables, table))
        .collect::<Result<BTreeSet<String>>>()?;
    let mut chosen = Vec::new();
    for entry in entries.iter().filter(|e| e.kind == "table") {
        let key = entry.name.to_lowercase();
        let Some(t) = tables.get(&key) else { continue };
        let take = if selected {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {}", snapshot_rows(t)), [], |r| r.get(0))
                .map_err(SqliteError::sqlite("counting the selection of", path))?;
            n > 0
        } else {
            wanted.is_empty() || wanted.contains(&key)
        };
        if take {
            chosen.push(t);
        }
    }
    let mut report = ExportReport {
        snapshot,
        format: request.format,
        predicate: request.predicate.clone(),
        tables: Vec::new(),
    };
    match request.format {
        ExportFormat::Sql => {
            let (mut out, file) = request.to.create(name, "sql")?;
            let whole = !selected && wanted.is_empty();
            let chosen_names: BTreeSet<String> =
                chosen.iter().map(|t| t.name.to_lowercase()).collect();
            report.tables = write_dump(
                &conn,
                path,
                &entries,
                &tables,
                &chosen_names,
                whole,
                selected,
                &mut out,
                &file,
            )?;
        }
        ExportFormat::Csv | ExportFormat::Jsonl => {
            request.one_table_on_stdout(chosen.len())?;
            for t in &chosen {
                let (mut out, file) = request.to.create(&t.name, request.format.as_str())?;
                let fail = written(&file);
                let width = t.columns.len();
                let rows = if request.format == ExportFormat::Csv {
                    let header: Vec<String> =
                        t.columns.iter().map(|c| csv_field(ValueRef::Text(c.as_bytes()))).collect();
                    writeln!(out, "{}", header.join(",")).map_err(&fail)?;
                    each_row(&conn, &rows_query(t, selected), path, |row| {
                        let mut fields = Vec::with_capacity(width);
                        for i in 0..width {
                            let v = row
                                .get_ref(i)
                                .map_err(SqliteError::sqlite("reading the rows of", path))?;
                            fields.push(csv_field(v));
                        }
                        writeln!(out, "{}", fields.join(",")).map_err(&fail)
                    })?
                } else {
                    each_row(&conn, &rows_query(t, selected), path, |row| {
                        let mut object = serde_json::Map::new();
                        for (i, c) in t.columns.iter().enumerate() {
                            let v = row
                                .get_ref(i)
                                .map_err(SqliteError::sqlite("reading the rows of", path))?;
                            object.insert(c.clone(), json_value(v));
                        }
                        serde_json::to_writer(&mut out, &object)
                            .map_err(|e| backend(format!("writing JSON: {e}")))?;
                        out.write_all(b"\n").map_err(&fail)
                    })?
                };
                out.flush().map_err(&fail)?;
                report.tables.push(TableExport {
                    table: t.name.clone(),
                    rows,
                    file: file.as_ref().map(|f| f.display().to_string()),
                });
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_literals_sqlite_reads_back_as_they_were() {
        assert_eq!(sql_literal(ValueRef::Real(1.0)), "1.0");
        assert_eq!(sql_literal(ValueRef::Real(0.1)), "0.1");
        assert_eq!(sql_literal(ValueRef::Text(b"it's")), "'it''s'");
        assert_eq!(sql_literal(ValueRef::Text(b"\xff")), "CAST(X'FF' AS TEXT)");
        assert_eq!(sql_literal(ValueRef::Blob(&[0, 171])), "X'00AB'");
        assert_eq!(csv_field(ValueRef::Text(b"a,\"b\"")), "\"a,\"\"b\"\"\"");
        assert_eq!(csv_field(ValueRef::Null), "");
    }
}
